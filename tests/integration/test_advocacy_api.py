"""Advocacy against the real FerretDB and Kafka: requests and their responses, appeals refused
without consent (nothing stored, nothing sent), the deportation clock and its replay."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from services.advocacy import handlers
from services.advocacy.store import AdvocacyStore
from shared.bus import Publisher
from shared.events import new_event, validate_event
from shared.mongo import utcnow
from tests.support import SYNTH, read_topic, topic_size


@pytest.fixture(scope="module")
def advocacy(settings, mongo, advocacy_app):
    """What the advocacy consumer would use: its store, a producer, the settings."""
    store = AdvocacyStore(mongo[settings.database_name("advocacy")])
    store.ensure_indexes()
    publisher = Publisher(settings, principal="admin", client_id="it-advocacy")
    yield {"store": store, "publisher": publisher, "settings": settings}
    publisher.close()


def _deliver(advocacy, event: dict) -> None:
    """Apply a case event the way the consumer does (validated as consumed)."""
    handlers.on_case_event(validate_event(json.loads(json.dumps(event))), now=utcnow(), **advocacy)


def _open_case(advocacy, consent: str = "named", imminent: bool = False) -> str:
    case_id = str(uuid.uuid4())
    _deliver(advocacy, new_event("case.opened", producer="case", case_id=case_id, payload={
        "status": "reported", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
        "detained_on": "2024-01-05", "deportation_imminent": imminent, "vulnerabilities": [],
        "consent_advocacy": consent, "consent_statistics": True}))
    return case_id


def _events(settings, case_id: str) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "advocacy.events")
            if r.key == case_id.encode()]


def test_a_request_for_three_cases_then_denied_is_announced_per_case_with_the_dates(advocacy_client, tokens,
                                                                                    advocacy, settings):
    cases = [_open_case(advocacy, consent) for consent in ("named", "anonymous", "named")]
    sent_on = (utcnow().date() - dt.timedelta(days=2)).isoformat()
    res = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"],
                               json={"case_ids": cases, "office": "UNHCR Beijing", "sent_on": sent_on,
                                     "channel": "email"})
    assert res.status_code == 201, res.get_json()
    request = res.get_json()
    assert request["status"] == "sent" and request["case_ids"] == cases and request["overdue"] is False
    assert request["follow_up_on"] == (utcnow().date() + dt.timedelta(days=5)).isoformat()
    received_on = utcnow().date().isoformat()
    answered = advocacy_client.post(f"/api/v1/unhcr-access-requests/{request['request_id']}/responses",
                                    headers=tokens["advocate"], json={"outcome": "denied", "received_on": received_on})
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json()["status"] == "denied"
    assert answered.get_json()["responses"][0]["received_on"] == received_on
    again = advocacy_client.post(f"/api/v1/unhcr-access-requests/{request['request_id']}/responses",
                                 headers=tokens["advocate"], json={"outcome": "granted", "received_on": received_on})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "not_allowed"
    for case_id in cases:
        types = [(e["event_type"], e["payload"].get("outcome")) for e in _events(settings, case_id)]
        assert types == [("unhcr_access.requested", None), ("unhcr_access.responded", "denied")]
    listed = advocacy_client.get(f"/api/v1/unhcr-access-requests?case_id={cases[1]}", headers=tokens["caseworker"])
    assert [r["request_id"] for r in listed.get_json()["items"]] == [request["request_id"]]


def test_a_request_without_an_answer_past_its_follow_up_date_is_overdue(advocacy_client, tokens, advocacy):
    case_id = _open_case(advocacy)
    sent_on = (utcnow().date() - dt.timedelta(days=8)).isoformat()
    res = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"],
                               json={"case_ids": [case_id], "office": "UNHCR Bangkok", "sent_on": sent_on,
                                     "channel": "letter"})
    assert res.status_code == 201 and res.get_json()["overdue"] is True
    overdue = advocacy_client.get("/api/v1/unhcr-access-requests?overdue=true", headers=tokens["advocate"]).get_json()
    assert res.get_json()["request_id"] in {r["request_id"] for r in overdue["items"]}
    assert all(r["overdue"] for r in overdue["items"])


def test_an_appeal_naming_a_case_without_consent_is_refused_and_leaves_nothing(advocacy_client, tokens, advocacy,
                                                                              settings):
    allowed, refused = _open_case(advocacy, "named"), _open_case(advocacy, "none")
    appeals = advocacy["store"].appeals
    before_docs = appeals.versions.count_documents({})
    before_events = topic_size(settings.kafka_bootstrap, "advocacy.events")
    res = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json={
        "case_ids": [allowed, refused], "kind": "urgent_appeal", "recipients": ["UN WGEID", "SR DPRK"],
        "issued_on": utcnow().date().isoformat()})
    assert res.status_code == 409
    error = res.get_json()["error"]
    assert error["code"] == "no_consent" and error["case_ids"] == [refused]
    assert appeals.versions.count_documents({}) == before_docs
    assert topic_size(settings.kafka_bootstrap, "advocacy.events") == before_events
    for body, field in [({"case_ids": [allowed], "kind": "urgent_appeal", "recipients": ["Nobody Known"],
                          "issued_on": "2024-01-01"}, "recipients"),
                        ({"case_ids": [str(uuid.uuid4())], "kind": "urgent_appeal"}, "case_ids"),
                        ({"case_ids": [allowed], "kind": "petition"}, "kind")]:
        bad = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json=body)
        assert bad.status_code == 422 and field in bad.get_json()["error"]["fields"], bad.get_json()
    assert advocacy_client.post("/api/v1/appeals", headers=tokens["caseworker"],
                                json={"case_ids": [allowed], "kind": "urgent_appeal"}).status_code == 403
    ok = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json={
        "case_ids": [allowed], "kind": "urgent_appeal", "recipients": ["UN WGEID", "SR DPRK"],
        "issued_on": utcnow().date().isoformat()})
    assert ok.status_code == 201 and ok.get_json()["status"] == "issued"
    assert [e["event_type"] for e in _events(settings, allowed)] == ["appeal.issued"]


def test_the_clock_opens_one_draft_per_episode_even_when_the_topic_is_replayed(advocacy_client, tokens, advocacy,
                                                                              settings):
    case_id = _open_case(advocacy, "anonymous")
    became = new_event("case.status_changed", producer="case", case_id=case_id,
                       payload={"from": "reported", "to": "deportation_imminent", "effective_on": "2024-02-01"})
    _deliver(advocacy, became)
    drafts = advocacy_client.get(f"/api/v1/appeals?case_id={case_id}", headers=tokens["advocate"]).get_json()["items"]
    assert len(drafts) == 1 and drafts[0]["status"] == "draft" and drafts[0]["origin"] == "deportation_clock"
    due = dt.datetime.fromisoformat(drafts[0]["due_by"])
    expected = dt.datetime.fromisoformat(became["occurred_at"]) + dt.timedelta(hours=24)
    assert abs(due - expected) < dt.timedelta(milliseconds=1)  # stored to the millisecond
    assert 0 < drafts[0]["seconds_left"] <= 24 * 3600 and drafts[0]["overdue"] is False
    _deliver(advocacy, became)  # delivered again
    advocacy["store"].cases.delete_one({"_id": case_id})  # and the read model rebuilt from the start
    _deliver(advocacy, new_event("case.opened", producer="case", case_id=case_id, payload={
        "status": "reported", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
        "detained_on": None, "deportation_imminent": False, "vulnerabilities": [], "consent_advocacy": "anonymous",
        "consent_statistics": True}))
    _deliver(advocacy, became)
    items = advocacy_client.get(f"/api/v1/appeals?case_id={case_id}", headers=tokens["advocate"]).get_json()["items"]
    assert [a["appeal_id"] for a in items] == [drafts[0]["appeal_id"]]
    drafted = [e for e in _events(settings, case_id) if e["event_type"] == "appeal.drafted"]
    assert len({e["payload"]["appeal_id"] for e in drafted}) == 1
    # The case leaves imminent risk: the draft says so.
    _deliver(advocacy, new_event("case.status_changed", producer="case", case_id=case_id,
                                 payload={"from": "deportation_imminent", "to": "detained",
                                          "effective_on": "2024-02-03"}))
    after = advocacy_client.get(f"/api/v1/appeals/{drafts[0]['appeal_id']}", headers=tokens["advocate"]).get_json()
    assert after["status"] == "draft" and after["episode_ended_at"] is not None
    # Issue it: the date is recorded, one appeal.issued event for the case.
    issued = advocacy_client.post(f"/api/v1/appeals/{after['appeal_id']}/issue", headers=tokens["advocate"],
                                  json={"issued_on": utcnow().date().isoformat(), "recipients": ["SR Torture"]})
    assert issued.status_code == 200 and issued.get_json()["issued_on"] == utcnow().date().isoformat()
    assert issued.get_json()["seconds_left"] is None


def test_letters_render_in_both_languages_and_every_format(advocacy_client, tokens, advocacy):
    case_id = _open_case(advocacy, "anonymous")
    res = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json={
        "case_ids": [case_id], "kind": "urgent_appeal", "recipients": ["SR DPRK"],
        "issued_on": utcnow().date().isoformat()})
    appeal_id = res.get_json()["appeal_id"]
    for lang in ("en", "ko"):
        for fmt in ("md", "html", "pdf"):
            letter = advocacy_client.get(f"/api/v1/appeals/{appeal_id}/letter?lang={lang}&format={fmt}",
                                         headers=tokens["advocate"])
            assert letter.status_code == 200, (lang, fmt, letter.get_data()[:300])
            assert letter.mimetype == {"md": "text/markdown", "html": "text/html", "pdf": "application/pdf"}[fmt]
            assert SYNTH.encode() not in letter.get_data()
    assert advocacy_client.get(f"/api/v1/appeals/{appeal_id}/letter?format=doc",
                               headers=tokens["advocate"]).status_code == 422
