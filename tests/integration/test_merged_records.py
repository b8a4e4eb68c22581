"""Records on a merged duplicate (issue 11) through the real path, against the real FerretDB and
Kafka: two reports of one person open two cases; the one merged away holds news after return and
an asylum step; a caseworker merges it in intake; the case service's consumer, given the
case.merged three times (the same record redelivered, then announced again under a new id),
carries both records to the surviving case once, as its own case.after_return_recorded and
case.asylum_recorded with their audit; the merged case then refuses new records (409 naming the
surviving case; on the page, in English and Korean); reporting, fed every event of both cases
twice, counts the person once, equal to a count made here from the test's own facts, and the
evidence register counts her testimony once."""

from __future__ import annotations

import json
import uuid

import pytest

from services.case import domain
from services.reporting import handlers as reporting_handlers
from services.reporting.store import ReportingStore
from shared.events import new_event, validate_event
from tests.integration.test_after_return_api import NEWS, STEP, _move
from tests.integration.test_after_return_pages import NEWS_FORM, _csrf, _login, _text
from tests.integration import test_event_flow
from tests.support import near_duplicate_pair, read_topic, wait_for

case_consumer = test_event_flow.case_consumer  # the case service's consumer and a raw producer: fixtures here too
raw_producer = test_event_flow.raw_producer

# The person's facts, as this test states them: the independent count below reads only these.
RETURNED_ON = "2023-11-01"
NEWS_ON = NEWS["effective_on"]            # 2023-11-20: kyohwaso, held by the MSS, forced labour, torture
APPLIED_ON = STEP["effective_on"]         # 2024-01-05: article 46 application
AS_OF = ["2023-10-31", "2023-11-10", "2023-12-31", "2024-06-30"]
MEASURES = {"repatriated": RETURNED_ON, "returned_fate_known": NEWS_ON, "held_by_mss": NEWS_ON,
            "sent_to_kyohwaso": NEWS_ON, "forced_labour_reported": NEWS_ON, "ill_treatment_reported": NEWS_ON,
            "sent_to_kwanliso": None, "art46_applied": APPLIED_ON, "art46_tic_issued": None}


def _expected(measure: str, as_of: str) -> int:
    """How many persons of this test a measure counts on a date: one person, once, from the day."""
    day = MEASURES[measure]
    return int(day is not None and day <= as_of)


def _letters(n: int = 8) -> str:
    return "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:n])


def _events_of(settings, topic: str, case_ids: set) -> list[dict]:
    """The events about these cases on a topic (other tests of the run also write records that
    are not events at all: the dead-letter and broker-rights tests' forgeries)."""
    found = []
    for record in read_topic(settings.kafka_bootstrap, topic):
        try:
            event = json.loads(record.value)
        except (TypeError, ValueError):
            continue
        if isinstance(event, dict) and event.get("case_id") in case_ids:
            found.append(event)
    return found


@pytest.fixture
def merged(client, case_client, tokens, settings, case_consumer, raw_producer):
    """Case x (news after return, an article 46 application) merged into case y, the merge
    delivered three times; {"x", "y", "province", "product", "news", "step", "merge"}."""
    first, second = near_duplicate_pair()
    cases = {}
    for name, body in (("y", first), ("x", second)):
        res = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"])
        assert res.status_code == 201, res.get_json()
        cases[name] = res.get_json()["case_id"]
    x, y = cases["x"], cases["y"]
    for case_id in (x, y):
        wait_for(lambda: case_consumer.get(case_id), timeout_s=30, what="the case to open")
        _move(case_client, tokens, case_id, "detained", "2023-05-01")
        _move(case_client, tokens, case_id, "repatriated", RETURNED_ON)
    product = f"Synthetic hairpieces {_letters()}"
    news = case_client.post(f"/api/v1/cases/{x}/after-return", headers=tokens["caseworker"],
                            json={**NEWS, "products": [product]})
    step = case_client.post(f"/api/v1/cases/{x}/asylum", headers=tokens["caseworker"], json=STEP)
    assert news.status_code == step.status_code == 201

    res = client.post(f"/api/v1/cases/{x}/merge", json={"into_case_id": y}, headers=tokens["caseworker"])
    assert res.status_code == 200, res.get_json()
    wait_for(lambda: len((case_consumer.get(y) or {}).get("after_return") or []) == 1, timeout_s=30,
             what="the news carried to the surviving case")
    (record,) = [r for r in read_topic(settings.kafka_bootstrap, "intake.events") if r.key == x.encode()
                 and json.loads(r.value)["event_type"] == "case.merged"]
    merge = json.loads(record.value)
    raw_producer.send("intake.events", key=record.key, value=record.value).get(timeout=10)  # redelivered
    again = new_event("case.merged", producer="intake", case_id=x, actor=merge["actor"], payload={"into_case_id": y})
    raw_producer.send("intake.events", key=x.encode(), value=json.dumps(again).encode()).get(timeout=10)
    # Same key, same partition: once the third is applied, the second has been too.
    wait_for(lambda: again["event_id"] in (case_consumer.get(y) or {}).get("applied_event_ids", []), timeout_s=30,
             what="the merge announced again, applied")
    return {"x": x, "y": y, "province": first["detention"]["province"], "product": product,
            "news": news.get_json(), "step": step.get_json(), "merge": merge}


def test_the_surviving_case_takes_the_records_once_with_their_events_and_audit(case_client, tokens, settings,
                                                                               merged):
    x, y = merged["x"], merged["y"]
    survivor = case_client.get(f"/api/v1/cases/{y}", headers=tokens["caseworker"]).get_json()
    (news,), (step,) = survivor["after_return"], survivor["asylum"]
    assert news["record_id"] == domain.carried_record_id(y, "after_return", merged["news"]["record_id"])
    assert step["record_id"] == domain.carried_record_id(y, "asylum", merged["step"]["record_id"])
    own = ("record_id", "recorded_at")  # the rest is the same: business dates, source, reliability, ...
    assert {k: v for k, v in news.items() if k not in own} == {k: v for k, v in merged["news"].items() if k not in own}
    assert {k: v for k, v in step.items() if k not in own} == {k: v for k, v in merged["step"].items() if k not in own}
    closed = case_client.get(f"/api/v1/cases/{x}", headers=tokens["caseworker"]).get_json()
    assert closed["status"] == "closed_duplicate" and len(closed["after_return"]) == len(closed["asylum"]) == 1

    def published():
        events = _events_of(settings, "case.events", {y})
        kinds = [e["event_type"] for e in events]
        return events if "case.asylum_recorded" in kinds and kinds.count("audit.recorded") >= 4 else None

    events = wait_for(published, timeout_s=20, what="the survivor's events")
    recorded = [e for e in events if e["event_type"] in ("case.after_return_recorded", "case.asylum_recorded")]
    assert sorted((e["event_type"], e["payload"]["record_id"]) for e in recorded) == \
        sorted([("case.after_return_recorded", news["record_id"]), ("case.asylum_recorded", step["record_id"])])
    stated = [{k: v for k, v in r.items() if k not in own} for r in (merged["news"], merged["step"])]
    assert sorted(({k: v for k, v in e["payload"].items() if k != "record_id"} for e in recorded), key=len) == \
        sorted(stated, key=len)
    assert all(e["actor"] == merged["merge"]["actor"] and e["causation_id"] for e in recorded)
    audits = {e["payload"]["object_id"]: e for e in events if e["event_type"] == "audit.recorded"}
    assert audits[news["record_id"]]["payload"]["action"] == "after_return_recorded"
    assert audits[news["record_id"]]["payload"]["detail"] == "kyohwaso"
    assert audits[step["record_id"]]["payload"]["detail"] == "art46 applied"
    assert {audits[r]["actor"] for r in (news["record_id"], step["record_id"])} == {merged["merge"]["actor"]}
    assert merged["product"] not in json.dumps([a["payload"] for a in audits.values()])


def test_the_merged_case_refuses_new_records_naming_the_surviving_case(case_client, tokens, merged):
    x, y = merged["x"], merged["y"]
    late = case_client.post(f"/api/v1/cases/{x}/after-return", headers=tokens["caseworker"],
                            json={**NEWS, "learned_on": "2024-02-10", "outcome": "kwanliso", "sentence_years": None})
    assert late.status_code == 409, late.get_json()
    error = late.get_json()["error"]
    assert error["code"] == "merged_duplicate" and error["merged_into"] == y
    assert y in error["message"] and y in error["fields"]["case_id"][0]
    step = case_client.post(f"/api/v1/cases/{x}/asylum", headers=tokens["admin"],
                            json={**STEP, "step": "tic_issued", "effective_on": "2024-02-01"})
    assert step.status_code == 409 and step.get_json()["error"]["merged_into"] == y
    # The same command as before the merge (a retry) answers the record it stored then.
    retry = case_client.post(f"/api/v1/cases/{x}/asylum", headers=tokens["caseworker"], json=STEP)
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    for case_id in (x, y):
        case = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["caseworker"]).get_json()
        assert len(case["after_return"]) == len(case["asylum"]) == 1, case_id


@pytest.mark.parametrize("lang, words", [
    ("en", ("This case was merged into case {y} as a duplicate: record it on that case.",
            "News after return and asylum steps of this person are recorded on case")),
    ("ko", ("이 사건은 중복으로 {y} 사건에 병합되었습니다. 그 사건에 기록하십시오.",
            "이 사람의 송환 후 소식과 망명 절차 단계는 다음 사건에 기록합니다:")),
])
def test_the_merged_case_page_sends_her_to_the_surviving_case(case_client, tokens, users, merged, lang, words):
    x, y = merged["x"], merged["y"]
    refused, pointer = words[0].format(y=y), words[1]
    _login(case_client, users["caseworker"], lang=lang)
    page = f"/cases/{x}"
    shown = _text(case_client.get(page))
    assert pointer in shown and f'href="/cases/{y}"' in shown
    assert f'action="{page}/after-return"' not in shown and f'action="{page}/asylum"' not in shown
    token = _csrf(case_client, f"/cases/{y}")  # a form opened before the merge, sent after it
    for path, form in ((f"{page}/after-return", {**NEWS_FORM, "outcome": "kwanliso", "sentence_years": ""}),
                       (f"{page}/asylum", {**STEP, "step": "tic_issued"})):
        res = case_client.post(path, data={"csrf_token": token, **form})
        assert res.status_code == 422 and refused in _text(res), path
    case = case_client.get(f"/api/v1/cases/{x}", headers=tokens["caseworker"]).get_json()
    assert len(case["after_return"]) == len(case["asylum"]) == 1


def test_reporting_counts_the_person_once_with_the_records(reporting_client, tokens, settings, mongo, merged):
    x, y = merged["x"], merged["y"]
    wait_for(lambda: any(e["event_type"] == "case.asylum_recorded" for e in _events_of(settings, "case.events", {y})),
             timeout_s=20, what="the carried records on case.events")
    events = [e for topic in ("intake.events", "case.events") for e in _events_of(settings, topic, {x, y})
              if e["event_type"] in reporting_handlers.EVENT_TYPES]
    store = ReportingStore(mongo[settings.database_name("reporting")])
    for delivery in (events, list(reversed(events))):  # every event twice, the second time in another order
        for event in delivery:
            reporting_handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)

    checked = set()
    for measure in MEASURES:
        for as_of in AS_OF:
            res = reporting_client.get("/api/v1/statistics", headers=tokens["analyst"], query_string={
                "measure": measure, "as_of": as_of, "by": "province", "disclosure": "internal"})
            assert res.status_code == 200, res.get_json()
            ours = [c["count"] for c in res.get_json()["cells"] if c["province"] == merged["province"]]
            got = sum(ours)
            assert got == _expected(measure, as_of), (measure, as_of, ours)
            checked.add(got)
    assert checked == {0, 1}  # both outcomes are reached, so the count could have come out wrong

    register = reporting_client.get("/api/v1/evidence/supply-chain", headers=tokens["analyst"],
                                    query_string={"as_of": "2024-06-30", "disclosure": "internal"})
    assert register.status_code == 200, register.get_json()
    named = [p for p in register.get_json()["products"] if p["name"] == merged["product"]]
    assert [p["testimonies"] for p in named] == [1]
