"""Free text stays inside the encryption boundary (issue 10 point 5), field by field, against the
real FerretDB and Kafka: what a user could type a detainee's name and telephone number into is
either a fixed choice (typed text refused, never stored, sent or echoed) or sealed by its own
service, and is found in clear in no database, no Kafka record, no log line and no analyst's answer.
(The status change's reason has its own file, test_case_notes.py.)"""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest

from services.reporting import handlers as reporting_handlers
from services.reporting.store import ReportingStore
from shared.config import all_topics
from shared.events import new_event, validate_event
from shared.mongo import utcnow
from tests.integration.conftest import PASSWORD
from tests.integration import test_advocacy_api, test_event_flow
from tests.integration.test_advocacy_api import _events, _open_case
from tests.support import SYNTH, page_login, read_topic, synthetic_report, topic_size, wait_for


advocacy = test_advocacy_api.advocacy  # the fixtures
case_consumer = test_event_flow.case_consumer


def _typed() -> str:
    """What someone might type about a person: a synthetic name and telephone number."""
    return f"{SYNTH} Kim {uuid.uuid4().hex[:6]}, brother's phone +86 138 0013 8000"


def _in_clear(mongo, settings, text: str) -> list[str]:
    """The databases and collections of this test session holding `text` in clear."""
    found = []
    for name in mongo.list_database_names():
        if name.startswith(settings.db_prefix):
            for coll in mongo[name].list_collection_names():
                if any(text in json.dumps(doc, default=str, ensure_ascii=False) for doc in mongo[name][coll].find({})):
                    found.append(f"{name}.{coll}")
    return found


def _on_kafka(settings, text: str) -> list[str]:
    needle = text.encode()
    return [f"{topic}@{r.partition}:{r.offset}" for topic in all_topics()
            for r in read_topic(settings.kafka_bootstrap, topic) if needle in (r.value or b"")]


@pytest.fixture
def logs(caplog):
    """Every log record of the test, down to DEBUG, as text."""
    caplog.set_level(logging.DEBUG)
    return caplog


# --- the UNHCR office: a fixed choice -----------------------------------------------------------


def test_an_office_typed_as_free_text_is_refused_and_goes_nowhere(advocacy_client, tokens, advocacy, settings,
                                                                  mongo, logs):
    case_id = _open_case(advocacy)
    typed = _typed()
    events_before = topic_size(settings.kafka_bootstrap, "advocacy.events")
    res = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"], json={
        "case_ids": [case_id], "office": typed, "sent_on": utcnow().date().isoformat(), "channel": "email"})
    assert res.status_code == 422
    error = res.get_json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"] == {"office": ["Choose an office from the list of UNHCR offices."]}
    assert SYNTH not in res.get_data(as_text=True)  # the refusal never echoes what was typed
    assert advocacy["store"].list_requests(case_id=case_id) == []
    assert topic_size(settings.kafka_bootstrap, "advocacy.events") == events_before
    assert _in_clear(mongo, settings, SYNTH + " Kim") == [] and _on_kafka(settings, typed) == []
    assert typed not in logs.text


def test_an_office_is_a_code_of_the_list_given_by_code_or_name_and_only_the_code_travels(
        advocacy_client, tokens, advocacy, settings):
    offices = advocacy_client.get("/api/v1/unhcr-offices", headers=tokens["analyst"]).get_json()["items"]
    assert {"code": "beijing", "en": "UNHCR Beijing", "ko": "유엔난민기구 베이징 사무소"} in offices
    case_id = _open_case(advocacy)
    made = []
    for given in ("UNHCR Beijing", "seoul", "유엔난민기구 방콕 사무소", "  unhcr   MOSCOW "):
        res = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"], json={
            "case_ids": [case_id], "office": given, "sent_on": utcnow().date().isoformat(), "channel": "email"})
        assert res.status_code == 201, res.get_json()
        made.append(res.get_json())
    assert [(r["office"], r["office_name"]) for r in made] == [
        ("beijing", "UNHCR Beijing"), ("seoul", "UNHCR Seoul"), ("bangkok", "UNHCR Bangkok"),
        ("moscow", "UNHCR Moscow")]
    stored = {r["request_id"]: r["office"] for r in advocacy["store"].list_requests(case_id=case_id)}
    assert stored == {r["request_id"]: r["office"] for r in made}
    sent = {e["payload"]["request_id"]: e["payload"]["office"] for e in _events(settings, case_id)
            if e["event_type"] == "unhcr_access.requested"}
    assert sent == stored


def test_the_request_form_offers_the_list_in_the_page_language_and_refuses_typed_text(
        advocacy_client, advocacy, users, settings, mongo, logs):
    case_id = _open_case(advocacy)
    page_login(advocacy_client, users["advocate"], PASSWORD, lang="ko", next_path="/requests/new")
    form = advocacy_client.get(f"/requests/new?case_id={case_id}").get_data(as_text=True)
    select = form.split('<select id="office" name="office"', 1)[1].split("</select>", 1)[0]
    assert '<option value="beijing" selected>유엔난민기구 베이징 사무소</option>' in select
    assert '<option value="hong_kong" >유엔난민기구 홍콩 사무소</option>' in select
    assert '<input type="text" id="office"' not in form

    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    typed = _typed()
    res = advocacy_client.post("/requests/new", data={"csrf_token": token, "case_ids": case_id, "office": typed,
                                                      "channel": "email", "sent_on": utcnow().date().isoformat()})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "유엔난민기구 사무소 목록에서 사무소를 고르십시오." in html.split('id="office-error"', 1)[1]
    assert SYNTH not in html
    assert advocacy["store"].list_requests(case_id=case_id) == []
    assert _in_clear(mongo, settings, typed) == [] and typed not in logs.text

    res = advocacy_client.post("/requests/new", data={"csrf_token": token, "case_ids": case_id, "office": "tokyo",
                                                      "channel": "email", "sent_on": utcnow().date().isoformat()})
    assert res.status_code == 302
    shown = advocacy_client.get(res.headers["Location"]).get_data(as_text=True)
    assert "<dd>유엔난민기구 일본대표부</dd>" in shown


# --- the UPR cycle: a fixed form; the snapshot's title: about the submission, never sent on ---------


def _reported_case(settings, mongo) -> str:
    """A case reporting knows (as its consumer would have applied case.reported), counted by a snapshot."""
    case_id = str(uuid.uuid4())
    event = new_event("case.reported", producer="intake", case_id=case_id, payload={
        "report_id": str(uuid.uuid4()), "matched_existing_case": False, "sex": "female", "birth_year": 1990,
        "nationality": "KP", "province": "Jilin", "detained_on": "2024-01-05", "deportation_imminent": False,
        "expected_deportation_on": None, "vulnerabilities": [], "trafficking_victim": False, "source_type": "family",
        "source_reliability": "confirmed", "received_on": "2024-01-06", "consent_advocacy": "anonymous",
        "consent_statistics": True})
    reporting_handlers.on_event(validate_event(json.loads(json.dumps(event))),
                                store=ReportingStore(mongo[settings.database_name("reporting")]))
    return case_id


def test_a_cycle_typed_as_free_text_is_refused_and_a_title_never_leaves_reporting(
        reporting_client, tokens, users, settings, mongo, logs):
    case_id = _reported_case(settings, mongo)
    typed = _typed()
    snapshots = mongo[settings.database_name("reporting")]["snapshots"]
    before = (snapshots.count_documents({}), topic_size(settings.kafka_bootstrap, "reporting.events"))
    for cycle in (typed, "CN-4 " + typed, "cn-4", "CN-0", "CN-100", "KP-E2E"):
        res = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                    json={"cycle": cycle, "as_of": "2024-06-30"})
        assert res.status_code == 422, cycle
        assert res.get_json()["error"]["fields"] == {
            "cycle": ["Give the reviewed State's two-letter code and the cycle's number, such as CN-4."]}
        assert SYNTH not in res.get_data(as_text=True)
    assert (snapshots.count_documents({}), topic_size(settings.kafka_bootstrap, "reporting.events")) == before

    page_login(reporting_client, users["analyst"], PASSWORD, lang="ko", next_path="/snapshots")
    form = reporting_client.get("/snapshots").get_data(as_text=True)
    token = re.search(r'id="snapshot-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', form).group(1)
    res = reporting_client.post("/snapshots", data={"csrf_token": token, "cycle": typed, "as_of": "2024-06-30"})
    assert res.status_code == 422
    assert "심사 대상국의 두 글자 코드와 주기 번호를 적으십시오(예: CN-4)." in \
        res.get_data(as_text=True).split('id="cycle-error"', 1)[1]
    assert snapshots.count_documents({}) == before[0]

    # The title is the analysts' name for a submission (printed on its annex), never a person's:
    # kept by reporting alone, in no event, no other service's database and no log.
    # (A word of its own, not the SYNTH marker: other tests scan every non-intake database for that.)
    title = f"Titlemark submission {uuid.uuid4().hex[:6]}"
    taken = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                  json={"cycle": "CN-4", "as_of": "2024-06-30", "title": title})
    assert taken.status_code == 201, taken.get_json()
    assert case_id in taken.get_json()["case_ids"]
    sent = [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "reporting.events")
            if r.key == case_id.encode()]
    assert [e["payload"] for e in sent] == [{"snapshot_id": taken.get_json()["snapshot_id"], "cycle": "CN-4",
                                            "as_of": "2024-06-30"}]
    assert _in_clear(mongo, settings, title) == [f"{settings.database_name('reporting')}.snapshots"]
    assert _on_kafka(settings, title) == [] and _on_kafka(settings, typed) == []
    assert typed not in logs.text and title not in logs.text


# --- the status change's reason: the rest of the acceptance (logs, every topic, every service) ---


def test_a_status_reason_is_in_no_log_no_topic_and_no_analysts_answer(
        client, case_client, advocacy_client, reporting_client, tokens, settings, mongo, case_consumer, logs):
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    case_id = created["case_id"]
    wait_for(lambda: case_consumer.get(case_id), what="the case to open")
    typed = _typed()
    moved = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                             json={"to": "detained", "effective_on": "2024-01-09", "reason": typed})
    assert moved.status_code == 200 and moved.get_json()["history"][-1]["reason"] == typed
    sealed = mongo[settings.database_name("case")]["cases"].find_one({"_id": case_id})["history"][-1]
    assert sealed["reason"] is None and sealed["reason_sealed"]  # kept, but only in sealed form

    assert _in_clear(mongo, settings, typed) == [] and _on_kafka(settings, typed) == []
    assert typed not in logs.text and "+86 138" not in logs.text
    answers = [case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["analyst"]),
               case_client.get("/api/v1/cases?status=detained", headers=tokens["analyst"]),
               advocacy_client.get(f"/api/v1/appeals?case_id={case_id}", headers=tokens["analyst"]),
               advocacy_client.get(f"/api/v1/unhcr-access-requests?case_id={case_id}", headers=tokens["analyst"]),
               reporting_client.get("/api/v1/statistics?measure=detained&as_of=2024-02-01&by=province",
                                    headers=tokens["analyst"]),
               reporting_client.get("/api/v1/upr/questions?as_of=2024-02-01", headers=tokens["analyst"])]
    for answer in answers:
        assert answer.status_code == 200, answer.get_json()
        assert "+86 138" not in answer.get_data(as_text=True) and SYNTH not in answer.get_data(as_text=True)
