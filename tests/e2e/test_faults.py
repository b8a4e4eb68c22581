"""Faults lose no event and no case: the broker down, a consumer killed mid-stream, poison on a
topic, the whole stack restarted."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from kafka import KafkaProducer

from infra.stack import port_open
from shared.config import CONSUMES, all_topics
from tests.support import kafka_options, read_topic, synthetic_report, topic_size, wait_for


def _case_events(bootstrap, case_id, event_type):
    return [r for r in read_topic(bootstrap, "case.events")
            if r.key == case_id.encode() and json.loads(r.value)["event_type"] == event_type]


def test_with_the_broker_down_reports_are_saved_and_their_cases_open_once_it_is_back(api, stack, bootstrap):
    stack.stop("kafka")
    assert not port_open(bootstrap)
    try:
        created = [api.post_report(synthetic_report()) for _ in range(3)]
        for c in created:  # stored, readable, and no case yet
            res = api.http.get(f"{api.urls['intake']}/api/v1/reports/{c['report_id']}", headers=api.caseworker,
                               timeout=10)
            assert res.status_code == 200
            assert api.case(c["case_id"]) is None
    finally:
        stack.start("kafka")
    for c in created:
        case = wait_for(lambda: api.case(c["case_id"]), timeout_s=90, interval_s=0.5, what="the case after recovery")
        assert case["report_count"] == 1
    for c in created:
        # Delivery is at least once (a publish that timed out may still have landed), so the same
        # event may be on the topic twice; the case is opened by exactly one event.
        opened = _case_events(bootstrap, c["case_id"], "case.opened")
        assert len({json.loads(r.value)["event_id"] for r in opened}) == 1
        reported = [r for r in read_topic(bootstrap, "intake.events") if r.key == c["case_id"].encode()]
        assert len({json.loads(r.value)["event_id"] for r in reported}) == 1


def test_a_consumer_killed_mid_stream_loses_nothing_and_duplicates_nothing(api, stack):
    total, kill_after = 200, 60
    posted: list[dict] = []
    lock = threading.Lock()
    killed = threading.Event()
    local = threading.local()

    def post(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        created = api.post_report(synthetic_report(), session=local.session)
        with lock:
            posted.append(created)
            if len(posted) == kill_after:
                stack.signal("case-consumer", signal.SIGKILL)
                killed.set()
        return created

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(post, range(total)))
    assert killed.is_set()
    stack.wait_stopped("case-consumer", timeout_s=10)
    stack.start("case-consumer")

    case_ids = {c["case_id"] for c in posted}
    assert len(case_ids) == total

    def all_open():
        missing = [cid for cid in case_ids if api.case(cid) is None]
        return not missing

    wait_for(all_open, timeout_s=120, interval_s=1, what="all 200 cases")
    for cid in case_ids:
        case = api.case(cid)
        assert case["report_count"] == 1, cid  # applied once, even if the record was delivered twice
    listed = api.http.get(f"{api.urls['case']}/api/v1/cases", headers=api.caseworker, timeout=10).json()
    assert listed["total"] >= total


def _cases_total(api) -> int:
    res = api.http.get(f"{api.urls['case']}/api/v1/cases", headers=api.caseworker, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()["total"]


def test_with_the_database_down_reports_are_refused_cleanly_and_nothing_is_lost(api, stack, bootstrap):
    """FerretDB stopped while four careful clients file reports (each sends a report with its
    Idempotency-Key until it gets an answer): every refusal is a JSON 503; once the database is
    back every report is filed exactly once, even one whose first sending was stored just as the
    database went away; its case opens once; the consumers wait instead of dead-lettering."""
    before = _cases_total(api)
    accepted, refused = [], []
    lock, stop_posting = threading.Lock(), threading.Event()

    def file_reports_until_told():
        session = requests.Session()
        while not stop_posting.is_set():
            body, headers = synthetic_report(), {**api.caseworker, "Idempotency-Key": str(uuid.uuid4())}
            while True:
                res = session.post(f"{api.urls['intake']}/api/v1/reports", json=body, headers=headers, timeout=60)
                with lock:
                    (accepted if res.status_code == 201 else refused).append(res)
                if res.status_code == 201:
                    break
                time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=4) as pool:
        clients = [pool.submit(file_reports_until_told) for _ in range(4)]
        try:
            wait_for(lambda: len(accepted) >= 10, timeout_s=60, what="reports flowing")
            stack.stop("ferretdb")
            wait_for(lambda: len(refused) >= 8, timeout_s=60, what="reports refused while the database is down")
            ready = requests.get(f"{api.urls['intake']}/readyz", timeout=10)
            assert ready.status_code == 503 and ready.json()["checks"]["mongo"].startswith("unavailable")
        finally:
            stack.start("ferretdb")
        at_restart = len(accepted)
        wait_for(lambda: len(accepted) >= at_restart + 10, timeout_s=120, what="reports accepted again")
        stop_posting.set()
        for filing in clients:
            filing.result()

    for res in refused:
        assert res.status_code == 503 and res.json()["error"]["code"] == "unavailable", res.text
    report_ids = [res.json()["report_id"] for res in accepted]
    case_ids = {res.json()["case_id"] for res in accepted}
    assert len(set(report_ids)) == len(report_ids) == len(case_ids)  # each report filed once, its own case
    wait_for(lambda: all(api.case(cid) for cid in case_ids), timeout_s=120, interval_s=1,
             what="a case for every report")
    for cid in case_ids:
        assert api.case(cid)["report_count"] == 1, cid
    # No report was stored behind a refusal without its client knowing: give the relay several sweeps.
    time.sleep(8)
    assert _cases_total(api) == before + len(case_ids)
    dead = [r for topic in ("intake.events.dlq", "case.events.dlq") for r in read_topic(bootstrap, topic)
            if r.key and r.key.decode() in case_ids]
    assert dead == [], "an event was dead-lettered instead of waiting for the database"


def test_poison_goes_to_the_dead_letter_topic_and_the_consumer_goes_on(api, bootstrap):
    producer = KafkaProducer(**kafka_options(bootstrap), acks="all")
    key = f"poison-{uuid.uuid4().hex[:8]}".encode()
    bad_envelope = json.dumps({"event_id": "nope", "event_type": "case.reported", "case_id": key.decode()}).encode()
    try:
        producer.send("intake.events", key=key, value=b"\x00not json at all").get(timeout=10)
        producer.send("intake.events", key=key, value=bad_envelope).get(timeout=10)
    finally:
        producer.close()
    created = api.post_report(synthetic_report())
    wait_for(lambda: api.case(created["case_id"]), timeout_s=20, what="the next case after the poison")
    def dead_letters(group):
        return [r for r in read_topic(bootstrap, "intake.events.dlq")
                if r.key == key and dict(r.headers)["nrw.dlq.consumer.group"] == group]

    # Every group reading the topic (case, reporting, intake) dead-letters the poison on its own;
    # waiting for all of them also keeps a late one from landing in the next test's counts.
    for group in sorted(s.encode() for s, topics in CONSUMES.items() if "intake.events" in topics):
        dead = wait_for(lambda: len(dead_letters(group)) == 2 and dead_letters(group), timeout_s=20,
                        what=f"dead letters of group {group.decode()}")
        assert [r.value for r in dead] == [b"\x00not json at all", bad_envelope]  # same partition: in order
        reasons = [dict(r.headers)["nrw.dlq.reason"].decode() for r in dead]
        assert "not JSON" in reasons[0] and "envelope invalid at: event_id" in reasons[1]
        assert all(dict(r.headers)["nrw.dlq.source.topic"] == b"intake.events" for r in dead)


@pytest.mark.slow
def test_a_restart_of_the_whole_stack_keeps_every_case_and_every_event(api, stack, bootstrap):
    created = api.post_report(synthetic_report())
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    before_case = api.case(created["case_id"])
    sizes = {t: topic_size(bootstrap, t) for t in all_topics()}
    stack.stop()
    stack.start()
    stack.wait_ready(timeout_s=180)
    after_case = api.case(created["case_id"])
    assert after_case == before_case
    assert {t: topic_size(bootstrap, t) for t in all_topics()} == sizes
    later = api.post_report(synthetic_report())
    wait_for(lambda: api.case(later["case_id"]), timeout_s=30, what="a case after the restart")
    assert len(_case_events(bootstrap, created["case_id"], "case.opened")) == 1
