"""Back to the case: advocacy's events on the real broker reach the case service's consumer, and the
case API and page show the case's UNHCR-access requests and appeals, in English and Korean."""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid

import pytest
from babel.dates import format_datetime

from services.case import consumer as case_consumer_module
from services.case.store import CaseStore
from shared.bus import EventConsumer, Publisher
from shared.events import new_event
from tests.integration.test_intake_pages import page_login
from tests.support import start_group_at_end, synthetic_report, wait_for

DUE_BY = dt.datetime(2024, 1, 10, 18, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def case_consumer(settings, mongo):
    """The case service's consumer (its topics and handlers) in a thread, with a group of its own
    that starts at the topics' ends."""
    db = mongo[settings.database_name("case")]
    CaseStore(db).ensure_indexes()
    group_id = f"it-case-adv-{uuid.uuid4().hex[:6]}"
    start_group_at_end(settings.kafka_bootstrap, group_id, case_consumer_module.TOPICS)
    publisher = Publisher(settings, principal="admin", client_id="it-case-advocacy-consumer")
    consumer = EventConsumer(settings, principal="admin", group_id=group_id, topics=case_consumer_module.TOPICS,
                             handlers=case_consumer_module.make_handlers(db, publisher), publisher=publisher,
                             retry_backoff_s=0.2)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    yield CaseStore(db)
    consumer.stop.set()
    thread.join(timeout=15)
    publisher.close()


@pytest.fixture
def advocacy_publisher(settings):
    """A real producer, as the advocacy service's outbox uses."""
    publisher = Publisher(settings, principal="admin", client_id="it-advocacy")
    yield publisher
    publisher.close()


def _advocacy(case_id: str, event_type: str, payload: dict) -> dict:
    return new_event(event_type, producer="advocacy", case_id=case_id, payload=payload, actor="it-advocate")


def _events_for(case_id: str) -> list[dict]:
    """A request granted after an acknowledgement, a request still waiting, an appeal issued before
    its draft event arrived and then answered, and a draft due soon."""
    return [
        _advocacy(case_id, "unhcr_access.requested", {"request_id": "q-1", "office": "UNHCR Beijing",
                                                      "channel": "email", "sent_on": "2024-01-02"}),
        _advocacy(case_id, "unhcr_access.responded", {"request_id": "q-1", "outcome": "acknowledged",
                                                      "received_on": "2024-01-04"}),
        _advocacy(case_id, "unhcr_access.responded", {"request_id": "q-1", "outcome": "granted",
                                                      "received_on": "2024-01-08"}),
        _advocacy(case_id, "unhcr_access.requested", {"request_id": "q-2", "office": "UNHCR Bangkok",
                                                      "channel": "fax", "sent_on": "2024-01-05"}),
        _advocacy(case_id, "appeal.issued", {"appeal_id": "a-1", "kind": "urgent_appeal",
                                             "recipients": ["UN WGEID", "SR DPRK"], "issued_on": "2024-01-03"}),
        _advocacy(case_id, "appeal.drafted", {"appeal_id": "a-1", "kind": "urgent_appeal",
                                              "due_by": "2024-01-02T12:00:00+00:00"}),
        _advocacy(case_id, "appeal.answered", {"appeal_id": "a-1", "outcome": "response_received",
                                               "received_on": "2024-01-20"}),
        _advocacy(case_id, "appeal.drafted", {"appeal_id": "a-2", "kind": "urgent_appeal",
                                              "due_by": DUE_BY.isoformat()}),
    ]


def _all_applied(store: CaseStore, case_id: str, events: list[dict]):
    case = store.get(case_id)
    return case if case and {e["event_id"] for e in events} <= set(case.get("applied_event_ids", [])) else None


def _spaced(text: str) -> str:
    """Any run of white space (the narrow no-break space in times too) as one space."""
    return re.sub(r"\s+", " ", text)


def _table(html: str, table_id: str) -> list[str]:
    """The rows of one table of the page, as HTML with white space collapsed."""
    body = html.split(f'<table id="{table_id}">', 1)[1].split("</table>", 1)[0]
    return [_spaced(row) for row in re.findall(r"<tr><td>.*?</tr>", body, flags=re.S)]


def test_advocacy_events_show_on_the_case_api_and_page(client, case_client, tokens, users, case_consumer,
                                                       advocacy_publisher):
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    case_id = created["case_id"]
    wait_for(lambda: case_consumer.get(case_id), what="the case to open")
    before = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["advocate"]).get_json()
    assert before["advocacy"] == {"requests": [], "appeals": [], "open_requests": 0, "appeals_issued": 0, "drafts": 0}

    events = _events_for(case_id)
    advocacy_publisher.publish("advocacy.events", events)
    advocacy_publisher.publish("advocacy.events", events[:2])  # redelivered, as a relay may
    wait_for(lambda: _all_applied(case_consumer, case_id, events), what="the advocacy events to be applied")

    res = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["analyst"])
    assert res.status_code == 200
    case = res.get_json()
    assert case["status"] == "reported" and len(case["history"]) == 1  # advocacy does not move the status
    summary = case["advocacy"]
    assert (summary["open_requests"], summary["appeals_issued"], summary["drafts"]) == (1, 1, 1)
    q1, q2 = summary["requests"]
    assert {k: q1[k] for k in ("request_id", "office", "channel", "sent_on", "status")} == \
        {"request_id": "q-1", "office": "beijing", "channel": "email", "sent_on": "2024-01-02",
         "status": "granted"}  # the office as its code: an event carries the list's code, never typed text
    assert q1["responses"] == [{"outcome": "acknowledged", "received_on": "2024-01-04"},
                               {"outcome": "granted", "received_on": "2024-01-08"}]
    assert (q2["request_id"], q2["status"], q2["responses"]) == ("q-2", "sent", [])
    a1, a2 = summary["appeals"]
    assert {k: a1[k] for k in ("appeal_id", "kind", "status", "issued_on", "recipients", "outcome", "received_on")} == \
        {"appeal_id": "a-1", "kind": "urgent_appeal", "status": "answered", "issued_on": "2024-01-03",
         "recipients": ["UN WGEID", "SR DPRK"], "outcome": "response_received", "received_on": "2024-01-20"}
    assert (a2["appeal_id"], a2["status"], a2["due_by"], a2["issued_on"]) == \
        ("a-2", "draft", DUE_BY.isoformat(), None)
    versions = case_consumer.versions.count_documents({"aggregate_id": case_id})
    assert versions == 1 + len(events)  # the case's opening and one version per event, none for redeliveries

    assert page_login(case_client, users["advocate"], next_path=f"/cases/{case_id}").status_code == 302
    html = case_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "<h2>Advocacy</h2>" in html and "Requests awaiting a final answer: 1" in html
    requests = _table(html, "access-requests")
    assert requests == [
        "<tr><td>UNHCR Beijing</td><td>January 2, 2024</td><td>granted</td> <td>January 8, 2024</td></tr>",
        "<tr><td>UNHCR Bangkok</td><td>January 5, 2024</td><td>sent</td> <td>—</td></tr>"]
    appeals = _table(html, "appeals")
    assert "<td>urgent appeal</td><td>answered</td>" in appeals[0] and "January 3, 2024" in appeals[0]
    assert "UN WGEID, SR DPRK" in appeals[0] and "response received (January 20, 2024)" in appeals[0]
    assert "<td>draft</td>" in appeals[1] and _spaced(format_datetime(DUE_BY, "short", locale="en")) in appeals[1]

    page_login(case_client, users["advocate"], lang="ko", next_path=f"/cases/{case_id}")
    html = case_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "<h2>옹호 활동</h2>" in html and "UNHCR 접견 요청" in html and "<h3>호소문</h3>" in html
    requests = _table(html, "access-requests")
    assert "2024년 1월 2일" in requests[0] and "<td>허가됨</td>" in requests[0]
    assert "2024년 1월 8일" in requests[0]
    appeals = _table(html, "appeals")
    assert "<td>긴급 호소</td>" in appeals[0] and "<td>답변 받음</td>" in appeals[0]
    assert "<td>초안</td>" in appeals[1] and _spaced(format_datetime(DUE_BY, "short", locale="ko")) in appeals[1]


def test_an_advocacy_event_before_its_case_opens_waits_for_it(case_client, tokens, case_consumer, caplog,
                                                              advocacy_publisher):
    case_id = f"early-{uuid.uuid4().hex[:8]}"
    issued = _advocacy(case_id, "appeal.issued", {"appeal_id": "a-9", "kind": "urgent_appeal",
                                                  "recipients": ["SR DPRK"], "issued_on": "2024-02-01"})
    advocacy_publisher.publish("advocacy.events", [issued])
    wait_for(lambda: any(f"case {case_id} has not been opened yet" in r.getMessage() for r in caplog.records),
             what="the consumer to put the event off until its case opens")
    assert case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["advocate"]).status_code == 404

    report = synthetic_report()
    reported = new_event("case.reported", producer="intake", case_id=case_id, payload={
        "report_id": f"r-{uuid.uuid4().hex[:8]}", "matched_existing_case": False, "sex": "female", "birth_year": 1990,
        "nationality": "KP", "province": report["detention"]["province"], "detained_on": "2024-01-20",
        "deportation_imminent": True, "expected_deportation_on": None, "vulnerabilities": [],
        "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
        "received_on": "2024-01-21", "consent_advocacy": "named", "consent_statistics": True})
    advocacy_publisher.publish("intake.events", [reported])
    case = wait_for(lambda: _all_applied(case_consumer, case_id, [reported, issued]),
                    what="the case to open and then take the appeal")
    assert case["advocacy"]["appeals"][0]["status"] == "issued"
    summary = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["advocate"]).get_json()["advocacy"]
    assert (summary["appeals_issued"], summary["drafts"], summary["open_requests"]) == (1, 0, 0)
