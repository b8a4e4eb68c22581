"""Consent only ever narrows by itself: intake's rule (the authority), the case service's and
reporting's copies, and the consent.changed contract."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from services.case import domain as case_domain
from services.intake import domain
from services.reporting import domain as reporting_domain
from shared.events import EventError, new_event, validate_event

NAMED = {"advocacy": "named", "statistics": True}
ANONYMOUS = {"advocacy": "anonymous", "statistics": True}
NONE = {"advocacy": "none", "statistics": False}


def _effective(command, reports):
    consent = domain.effective_consent(command, reports)
    return consent["advocacy"], consent["statistics"], consent["disputed"]


def test_nothing_to_go_on_is_no_consent_at_all():
    assert domain.effective_consent(None, []) is None


def test_one_report_is_the_case_consent_and_not_disputed():
    assert _effective(None, [NAMED]) == ("named", True, False)


@pytest.mark.parametrize("first, second, expected", [
    (NAMED, NONE, ("none", False, True)),
    (NONE, NAMED, ("none", False, True)),  # a later report never widens
    (NAMED, ANONYMOUS, ("anonymous", True, True)),
    (ANONYMOUS, NAMED, ("anonymous", True, True)),
    ({"advocacy": "named", "statistics": False}, {"advocacy": "named", "statistics": True}, ("named", False, True)),
    (NAMED, NAMED, ("named", True, False)),
])
def test_reports_that_disagree_give_the_most_restrictive_and_say_so(first, second, expected):
    assert _effective(None, [first, second]) == expected


def test_the_order_of_reports_does_not_matter():
    reports = [NAMED, ANONYMOUS, {"advocacy": "named", "statistics": False}]
    assert _effective(None, reports) == _effective(None, list(reversed(reports))) == ("anonymous", False, True)


def test_a_recorded_consent_holds_and_later_reports_only_narrow_it():
    assert _effective(NAMED, []) == ("named", True, False)
    assert _effective(NAMED, [NAMED]) == ("named", True, False)
    assert _effective(ANONYMOUS, [NAMED]) == ("anonymous", True, True)  # a widening report leaves it
    assert _effective(NAMED, [NONE]) == ("none", False, True)  # a narrowing one narrows it
    assert domain.effective_consent(NAMED, [])["commanded"] is True
    assert domain.effective_consent(None, [NAMED])["commanded"] is False


def test_a_change_is_told_only_when_the_consent_or_the_dispute_changes():
    one = domain.effective_consent(None, [NONE])
    two = domain.effective_consent(None, [NONE, NAMED])
    three = domain.effective_consent(None, [NONE, NAMED, NAMED])
    assert not domain.consent_changed(None, one)  # a first report: case.reported carries it
    assert domain.consent_changed(one, two)  # the same consent, but now disputed
    assert not domain.consent_changed(two, three)
    assert domain.consent_changed(domain.effective_consent(None, [NAMED]), domain.effective_consent(None, [NAMED, NONE]))


def test_the_event_carries_no_reason_and_refuses_one():
    payload = domain.consent_payload({"advocacy": "named", "statistics": True, "disputed": False}, "family")
    assert payload == {"consent_advocacy": "named", "consent_statistics": True, "given_by": "family",
                       "disputed": False}
    new_event("consent.changed", producer="intake", case_id=str(uuid.uuid4()), payload=payload)
    with pytest.raises(EventError):
        new_event("consent.changed", producer="intake", case_id=str(uuid.uuid4()),
                  payload={**payload, "reason": "free text"})
    with pytest.raises(EventError):
        new_event("consent.changed", producer="intake", case_id=str(uuid.uuid4()), payload={**payload, "given_by": "me"})


def test_consumers_read_the_older_form_of_consent_changed():
    event = new_event("consent.changed", producer="intake", case_id=str(uuid.uuid4()),
                      payload={"consent_advocacy": "none", "consent_statistics": False})
    loaded = validate_event(event)
    assert loaded["payload"]["disputed"] is False and loaded["payload"]["given_by"] is None


def _case(**consent) -> dict:
    return {"_id": "c1", "status": "reported", "vulnerabilities": [], "report_ids": ["r1"], "report_count": 1,
            "deportation_imminent": False, "province": "Jilin", "consent_advocacy": "none",
            "consent_statistics": False, **consent}


def _reported(**consent) -> dict:
    return {"report_id": "r2", "deportation_imminent": False, "province": "Jilin", "vulnerabilities": [],
            "consent_advocacy": "named", "consent_statistics": True, **consent}


def test_the_case_service_never_widens_consent_from_a_report():
    case, changes = case_domain.attach_report(_case(), _reported())
    assert (case["consent_advocacy"], case["consent_statistics"]) == ("none", False)
    assert "consent_advocacy" not in changes and "consent_statistics" not in changes
    case, changes = case_domain.attach_report(_case(consent_advocacy="named", consent_statistics=True),
                                              _reported(consent_advocacy="anonymous"))
    assert case["consent_advocacy"] == "anonymous" and changes["consent_advocacy"] == "anonymous"


def test_the_case_service_applies_consent_changed_once():
    case = _case()
    payload = {"consent_advocacy": "named", "consent_statistics": True, "given_by": "person", "disputed": False}
    updated, changes = case_domain.apply_consent({**case, "consent_disputed": True}, payload)
    assert changes == {"consent_advocacy": "named", "consent_statistics": True}
    assert updated["consent_disputed"] is False and updated["consent_given_by"] == "person"
    again, nothing = case_domain.apply_consent(updated, payload)
    assert again is updated and nothing == {}
    disputed, changes = case_domain.apply_consent(case, {"consent_advocacy": "none", "consent_statistics": False,
                                                         "given_by": None, "disputed": True})
    assert changes == {} and disputed["consent_disputed"] is True


def _event(kind: str, payload: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": kind, "case_id": "c1", "payload": payload,
            "occurred_at": dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)}


def test_reporting_counts_a_case_only_as_far_as_its_statistics_consent_goes():
    base = {"sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
            "received_on": dt.date(2024, 1, 1)}
    record = reporting_domain.apply_event(None, _event("case.reported", {**base, "consent_statistics": False}))
    record = reporting_domain.apply_event(record, _event("case.reported", {**base, "consent_statistics": True}))
    assert record["consent_statistics"] is False  # a later report does not widen it
    record = reporting_domain.apply_event(record, _event("consent.changed", {"consent_advocacy": "named",
                                                                            "consent_statistics": True}))
    assert record["consent_statistics"] is True  # intake's recorded consent does
