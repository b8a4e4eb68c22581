"""Advocacy's rules: consent, the deportation clock and its episodes, appeals and requests."""

import datetime as dt

import pytest

from services.advocacy import domain

NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.timezone.utc)
OPENED = {"status": "reported", "sex": "female", "birth_year": 1994, "nationality": "KP", "province": "Jilin",
          "detained_on": "2024-03-01", "deportation_imminent": False, "vulnerabilities": ["pregnant"],
          "consent_advocacy": "anonymous", "consent_statistics": True}


def _case(**changes):
    return domain.apply_case_event(None, "case.opened", {**OPENED, **changes})


@pytest.mark.parametrize("before, event_type, payload, expected", [
    (None, "case.opened", OPENED, None),
    (None, "case.opened", {**OPENED, "deportation_imminent": True}, "start"),
    ({**OPENED}, "case.status_changed", {"from": "reported", "to": "deportation_imminent"}, "start"),
    ({**OPENED}, "case.facts_updated", {"deportation_imminent": True}, "start"),
    ({**OPENED, "status": "deportation_imminent"}, "case.status_changed",
     {"from": "deportation_imminent", "to": "detained"}, "end"),
    ({**OPENED, "status": "deportation_imminent"}, "case.facts_updated", {"deportation_imminent": True}, None),
    ({**OPENED, "status": "deportation_imminent", "deportation_imminent": True}, "case.status_changed",
     {"from": "deportation_imminent", "to": "detained"}, None),  # a report still says imminent
    ({**OPENED, "status": "detained", "deportation_imminent": True}, "case.facts_updated",
     {"deportation_imminent": False}, "end"),
])
def test_the_clock_starts_and_ends_with_imminent_risk(before, event_type, payload, expected):
    after = domain.apply_case_event(before, event_type, payload)
    assert domain.clock_change(before, after) == expected


def test_a_clock_draft_is_due_after_the_configured_hours_from_when_the_risk_began_and_its_id_is_stable():
    started = NOW - dt.timedelta(hours=3)
    draft = domain.clock_draft("c-1", _case(), "ev-1", started, 24, NOW)
    assert draft["status"] == "draft" and draft["kind"] == "urgent_appeal" and draft["case_ids"] == ["c-1"]
    assert draft["due_by"] == started + dt.timedelta(hours=24)
    assert domain.time_left(draft, NOW) == dt.timedelta(hours=21)
    assert draft["appeal_id"] == domain.clock_draft("c-1", _case(), "ev-1", started, 24, NOW)["appeal_id"]
    assert draft["appeal_id"] != domain.clock_draft("c-1", _case(), "ev-2", started, 24, NOW)["appeal_id"]
    assert domain.time_left(draft, started + dt.timedelta(hours=25)) < dt.timedelta(0)  # overdue


def test_the_draft_says_when_its_case_left_imminent_risk_once():
    draft = domain.clock_draft("c-1", _case(), "ev-1", NOW, 24, NOW)
    ended = domain.end_episode(draft, NOW + dt.timedelta(hours=2), NOW)
    assert ended["episode"]["ended_at"] == NOW + dt.timedelta(hours=2)
    assert ended["history"][-1]["note"] == domain.EPISODE_ENDED
    assert domain.end_episode(ended, NOW, NOW) is None
    manual = domain.new_appeal("a-1", {"case_ids": ["c-1"], "kind": "urgent_appeal"}, actor="u", now=NOW)
    assert domain.end_episode(manual, NOW, NOW) is None


def test_consent_none_is_refused_and_names_the_cases():
    cases = {"a": _case(consent_advocacy="named"), "b": _case(consent_advocacy="none"),
             "c": _case(consent_advocacy="anonymous")}
    domain.check_consent(["a", "c"], cases)
    with pytest.raises(domain.NoConsent) as refused:
        domain.check_consent(["a", "b", "c"], cases)
    assert refused.value.case_ids == ["b"]


def test_an_appeal_moves_draft_issued_answered_and_refuses_the_rest():
    draft = domain.new_appeal("a-1", {"case_ids": ["c-1", "c-1"], "kind": "urgent_appeal", "recipients": ["CAT"]},
                              actor="u", now=NOW)
    assert draft["status"] == "draft" and draft["case_ids"] == ["c-1"]
    with pytest.raises(domain.NotAllowed):
        domain.answer(draft, outcome="response_received", received_on=NOW.date(), actor="u", now=NOW)
    with pytest.raises(domain.NotAllowed):
        domain.issue(draft, issued_on=NOW.date() + dt.timedelta(days=1), recipients=None, actor="u", now=NOW)
    issued = domain.issue(draft, issued_on=dt.date(2024, 3, 9), recipients=None, actor="u", now=NOW)
    assert issued["status"] == "issued" and issued["issued_on"] == "2024-03-09" and issued["recipients"] == ["CAT"]
    with pytest.raises(domain.NotAllowed):
        domain.issue(issued, issued_on=NOW.date(), recipients=None, actor="u", now=NOW)
    with pytest.raises(domain.NotAllowed):  # before it was sent
        domain.answer(issued, outcome="response_received", received_on=dt.date(2024, 3, 1), actor="u", now=NOW)
    answered = domain.answer(issued, outcome="response_received", received_on=NOW.date(), actor="u", now=NOW)
    assert answered["status"] == "response_received" and answered["responses"][0]["received_on"] == "2024-03-10"
    assert domain.time_left(answered, NOW) is None
    no_recipient = domain.new_appeal("a-2", {"case_ids": ["c-1"], "kind": "urgent_appeal"}, actor="u", now=NOW)
    with pytest.raises(domain.NotAllowed):
        domain.issue(no_recipient, issued_on=NOW.date(), recipients=None, actor="u", now=NOW)


def test_a_request_is_overdue_without_a_final_answer_past_its_follow_up_date():
    request = domain.new_request("r-1", {"case_ids": ["a", "b", "c"], "office": "UNHCR Beijing", "channel": "email",
                                         "sent_on": dt.date(2024, 3, 1)}, follow_up_days=7, actor="u", now=NOW)
    assert request["follow_up_on"] == "2024-03-08" and request["status"] == "sent"
    assert not domain.is_overdue(request, dt.date(2024, 3, 8)) and domain.is_overdue(request, dt.date(2024, 3, 9))
    acknowledged = domain.respond(request, outcome="acknowledged", received_on=dt.date(2024, 3, 5), follow_up_days=7,
                                  actor="u", now=NOW)
    assert acknowledged["follow_up_on"] == "2024-03-12" and not domain.is_overdue(acknowledged, dt.date(2024, 3, 9))
    denied = domain.respond(acknowledged, outcome="denied", received_on=dt.date(2024, 3, 9), follow_up_days=7,
                            actor="u", now=NOW)
    assert denied["status"] == "denied" and not domain.is_overdue(denied, dt.date(2030, 1, 1))
    assert [r["outcome"] for r in denied["responses"]] == ["acknowledged", "denied"]
    with pytest.raises(domain.NotAllowed):
        domain.respond(denied, outcome="granted", received_on=dt.date(2024, 3, 10), follow_up_days=7, actor="u",
                       now=NOW)
    with pytest.raises(domain.NotAllowed):  # before it was sent
        domain.respond(request, outcome="granted", received_on=dt.date(2024, 2, 1), follow_up_days=7, actor="u",
                       now=NOW)
