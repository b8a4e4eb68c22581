"""After return and asylum through the case service's API (issue 11 points 1-2), against the real
FerretDB and Kafka: 201 with the record, listed on the case; 409 not_returned; 422 naming each
field; 403 for analysts and advocates; case.after_return_recorded and case.asylum_recorded on
case.events with exactly the API's fields and nothing about the person; the same command again
adds nothing (no second record, no second event); each write reaches intake's audit trail."""

from __future__ import annotations

import json
import uuid

import pytest

from services.case import domain
from services.case.store import CaseStore
from shared.mongo import utcnow
from tests.integration import test_audit_writes
from tests.support import SYNTH, read_topic, wait_for

intake_group = test_audit_writes.intake_group  # intake's consumer, appending audit events: fixtures here too
audit_consumer = test_audit_writes.audit_consumer

NEWS = {"learned_on": "2024-02-01", "effective_on": "2023-11-20", "source_type": "fellow_escapee",
        "source_reliability": "probable", "custody": "mss", "outcome": "kyohwaso", "sentence_years": 5,
        "forced_labour": "yes", "work": ["mining", "wigs_eyelashes"], "products": ["false eyelashes", "wigs"],
        "facilities": ["Kyohwaso No. 12"], "companies": ["Example Hair Products Co."], "ill_treatment": ["torture"]}
STEP = {"procedure": "art46", "step": "applied", "effective_on": "2024-01-05", "source_type": "family",
        "source_reliability": "confirmed"}


def _open_case(settings, mongo) -> str:
    """A case as the case service opens it from a report (its non-identifying facts only)."""
    case_id = str(uuid.uuid4())
    reported = {"report_id": str(uuid.uuid4()), "sex": "female", "birth_year": 1990, "nationality": "KP",
                "province": "Jilin", "detained_on": "2023-04-18", "deportation_imminent": False,
                "vulnerabilities": [], "consent_advocacy": "anonymous", "consent_statistics": True,
                "received_on": "2023-04-20"}
    CaseStore(mongo[settings.database_name("case")]).save(
        case_id, lambda _: (domain.open_case(case_id, reported, utcnow()), []), publisher=None,
        topic="case.events", now=utcnow())
    return case_id


def _move(case_client, tokens, case_id: str, to: str, on: str) -> None:
    res = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                           json={"to": to, "effective_on": on, "reason": f"{SYNTH} seen by her sister"})
    assert res.status_code == 200, res.get_json()


@pytest.fixture
def returned(case_client, tokens, settings, mongo) -> str:
    """A case detained, then repatriated."""
    case_id = _open_case(settings, mongo)
    _move(case_client, tokens, case_id, "detained", "2023-05-01")
    _move(case_client, tokens, case_id, "repatriated", "2023-11-01")
    return case_id


def _events(settings, case_id: str, event_type: str) -> list[dict]:
    found = []
    for record in read_topic(settings.kafka_bootstrap, "case.events"):
        event = json.loads(record.value)
        if event["case_id"] == case_id and event["event_type"] == event_type:
            assert record.key == case_id.encode()
            found.append(event)
    return found


def test_news_after_return_is_recorded_listed_and_published_with_the_api_fields_only(
        case_client, tokens, settings, returned):
    res = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"], json=NEWS)
    assert res.status_code == 201, res.get_json()
    record = res.get_json()
    assert record["record_id"] and record["outcome"] == "kyohwaso" and record["sentence_years"] == 5.0
    assert "Idempotent-Replayed" not in res.headers

    for role in ("caseworker", "analyst", "advocate", "admin"):  # everyone who reads the case sees it
        case = case_client.get(f"/api/v1/cases/{returned}", headers=tokens[role]).get_json()
        assert [r["record_id"] for r in case["after_return"]] == [record["record_id"]], role
        assert case["asylum"] == []

    events = wait_for(lambda: _events(settings, returned, "case.after_return_recorded"), what="the event")
    assert len(events) == 1
    assert events[0]["payload"] == {**NEWS, "record_id": record["record_id"], "sentence_years": 5.0}
    assert events[0]["actor"]  # who: the envelope's pseudonymous account id
    for event in [e for e in (json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "case.events"))
                  if e["case_id"] == returned]:
        assert SYNTH not in json.dumps(event)  # the status reasons typed about her stay sealed


def test_the_same_news_sent_again_adds_nothing(case_client, tokens, settings, returned):
    first = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"], json=NEWS)
    reordered = {**NEWS, "work": ["wigs_eyelashes", "mining", "mining"], "products": ["wigs", "False eyelashes",
                                                                                        " false eyelashes "]}
    again = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["admin"], json=reordered)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["record_id"] == first.get_json()["record_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                             json={**NEWS, "learned_on": "2024-02-03", "effective_on": "2024-01-10",
                                   "outcome": "kwanliso", "sentence_years": None})
    assert other.status_code == 201 and other.get_json()["record_id"] != first.get_json()["record_id"]
    case = case_client.get(f"/api/v1/cases/{returned}", headers=tokens["caseworker"]).get_json()
    assert [r["outcome"] for r in case["after_return"]] == ["kyohwaso", "kwanliso"]  # by the date it happened
    wait_for(lambda: len(_events(settings, returned, "case.after_return_recorded")) == 2, what="both events")
    assert len({e["payload"]["record_id"] for e in _events(settings, returned, "case.after_return_recorded")}) == 2


def test_only_a_case_that_has_been_repatriated_has_news_after_return(case_client, tokens, settings, mongo):
    case_id = _open_case(settings, mongo)
    _move(case_client, tokens, case_id, "detained", "2023-05-01")
    res = case_client.post(f"/api/v1/cases/{case_id}/after-return", headers=tokens["caseworker"], json=NEWS)
    assert res.status_code == 409
    assert res.get_json()["error"]["code"] == "not_returned"
    assert case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["caseworker"]).get_json()["after_return"] == []
    missing = case_client.post(f"/api/v1/cases/{uuid.uuid4()}/after-return", headers=tokens["caseworker"], json=NEWS)
    assert missing.status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"learned_on": "2999-01-01"}, "learned_on"),
    ({"effective_on": "2024-02-02"}, "effective_on"),  # after it was learned
    ({"learned_on": "1 February 2024"}, "learned_on"),
    ({"outcome": "released"}, "sentence_years"),  # a sentence without a camp
    ({"sentence_years": 5.25}, "sentence_years"),
    ({"custody": "police"}, "custody"),
    ({"work": ["sewing"]}, "work.0"),
    ({"forced_labour": "no"}, "work"),
    ({"companies": ["x" * 121]}, "companies.0"),
    ({"full_name": f"{SYNTH} Kim"}, "full_name"),  # a field the route does not have
])
def test_bad_news_is_refused_naming_the_field(case_client, tokens, returned, change, field):
    res = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                           json={**NEWS, **change})
    assert res.status_code == 422, res.get_json()
    error = res.get_json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"], error
    assert case_client.get(f"/api/v1/cases/{returned}", headers=tokens["caseworker"]).get_json()["after_return"] == []


def test_a_contact_among_the_names_of_things_is_refused_saying_so(case_client, tokens, returned):
    res = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                           json={**NEWS, "products": ["wigs"], "companies": ["Example Co.", "ask 010-5555-0199"],
                                 "facilities": ["someone@example.org"]})
    assert res.status_code == 422
    fields = res.get_json()["error"]["fields"]
    assert fields["companies.1"] == ["Name things, never people: this looks like a phone number."]
    assert fields["facilities.0"] == ["Name things, never people: this looks like an e-mail address."]
    assert "5555" not in res.get_data(as_text=True)


@pytest.mark.parametrize("role", ["analyst", "advocate"])
def test_only_caseworkers_and_admins_record(case_client, tokens, returned, role):
    for path, body in (("after-return", NEWS), ("asylum", STEP)):
        res = case_client.post(f"/api/v1/cases/{returned}/{path}", headers=tokens[role], json=body)
        assert res.status_code == 403, (path, res.get_json())
    assert case_client.get(f"/api/v1/cases/{returned}", headers=tokens[role]).get_json()["after_return"] == []


def test_asylum_steps_are_recorded_for_any_case_and_published(case_client, tokens, settings, mongo):
    case_id = _open_case(settings, mongo)
    made = [case_client.post(f"/api/v1/cases/{case_id}/asylum", headers=tokens["caseworker"], json=body)
            for body in ({**STEP, "step": "tic_issued", "effective_on": "2024-02-01"}, STEP, STEP,
                         {**STEP, "procedure": "unhcr_rsd", "step": "recognised", "effective_on": "2023-12-01"})]
    assert [m.status_code for m in made] == [201] * 4
    assert made[1].get_json()["record_id"] == made[2].get_json()["record_id"]
    asylum = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["analyst"]).get_json()["asylum"]
    assert [(a["procedure"], a["step"], a["effective_on"]) for a in asylum] == [
        ("unhcr_rsd", "recognised", "2023-12-01"), ("art46", "applied", "2024-01-05"),
        ("art46", "tic_issued", "2024-02-01")]
    events = wait_for(lambda: (lambda e: e if len(e) == 3 else None)(_events(settings, case_id, "case.asylum_recorded")),
                      what="three asylum events")
    by_id = {a["record_id"]: {k: v for k, v in a.items() if k != "recorded_at"} for a in asylum}
    assert sorted((e["payload"] for e in events), key=lambda p: p["effective_on"]) == \
        sorted(by_id.values(), key=lambda p: p["effective_on"])

    wrong = case_client.post(f"/api/v1/cases/{case_id}/asylum", headers=tokens["caseworker"],
                             json={**STEP, "step": "recognised"})
    assert wrong.status_code == 422 and "step" in wrong.get_json()["error"]["fields"]
    future = case_client.post(f"/api/v1/cases/{case_id}/asylum", headers=tokens["caseworker"],
                              json={**STEP, "effective_on": "2999-01-01"})
    assert future.status_code == 422 and "effective_on" in future.get_json()["error"]["fields"]


def test_each_record_leaves_an_audit_entry_naming_the_caseworker(client, case_client, tokens, users, returned,
                                                                 audit_consumer):
    record = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                              json=NEWS).get_json()
    step = case_client.post(f"/api/v1/cases/{returned}/asylum", headers=tokens["caseworker"], json=STEP).get_json()
    after = test_audit_writes._entry(client, tokens, "the after-return entry", case_id=returned,
                                     action="after_return_recorded")
    asylum = test_audit_writes._entry(client, tokens, "the asylum entry", case_id=returned, action="asylum_recorded")
    assert after["username"] == asylum["username"] == users["caseworker"]
    assert (after["object_id"], after["detail"]) == (record["record_id"], "kyohwaso")
    assert (asylum["object_id"], asylum["detail"]) == (step["record_id"], "art46 applied")
    # the same command again is no new write: no second entry (a new step, sent after it, is there)
    case_client.post(f"/api/v1/cases/{returned}/asylum", headers=tokens["caseworker"], json=STEP)
    refused = case_client.post(f"/api/v1/cases/{returned}/asylum", headers=tokens["caseworker"],
                               json={**STEP, "step": "refused", "effective_on": "2024-02-10"}).get_json()
    entries = wait_for(lambda: (lambda found: found if len(found) >= 2 else None)(
        test_audit_writes._audit(client, tokens, case_id=returned, action="asylum_recorded")),
        timeout_s=30, what="the next step's entry")
    assert sorted(e["object_id"] for e in entries) == sorted([step["record_id"], refused["record_id"]])
