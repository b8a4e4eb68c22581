"""The event backbone on the real broker and database: the case consumer opens cases exactly once,
dead-letters poison and goes on, and the relay sends what the fast path could not."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from kafka import KafkaProducer

from services.case.consumer import make_handlers
from services.case.store import CaseStore
from shared.kafka_auth import client_options
from shared.bus import (EventConsumer, Publisher, insert_with_outbox, outbox_pending, relay_once, run_relay,
                        with_outbox)
from shared.events import encode, new_event
from shared.mongo import utcnow
from tests.support import read_topic, start_group_at_end, synthetic_report, wait_for


@pytest.fixture
def case_consumer(settings, mongo):
    """The case service's consumer, running in a thread with a group of this test's own."""
    db = mongo[settings.database_name("case")]
    CaseStore(db).ensure_indexes()
    publisher = Publisher(settings, principal="admin", client_id="it-case-consumer")
    group = f"it-case-{uuid.uuid4().hex[:6]}"
    # From the topic's end: a group reading the whole session's intake.events first would apply
    # every earlier test's reports before this test's (tens of seconds late in a full run).
    start_group_at_end(settings.kafka_bootstrap, group, ["intake.events"])
    consumer = EventConsumer(settings, principal="admin", group_id=group, topics=["intake.events"],
                             handlers=make_handlers(db, publisher), publisher=publisher)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    # Intake's relay too, as the stack runs it: on a broker that has only just started, the web's
    # own publish may time out, and then the relay sends the event.
    relay_publisher = Publisher(settings, principal="admin", client_id="it-intake-relay")
    relay_stop = threading.Event()
    relay = threading.Thread(target=run_relay, daemon=True,
                             args=([mongo[settings.database_name("intake")]["reports"]], "intake.events",
                                   relay_publisher, settings, relay_stop))
    relay.start()
    yield CaseStore(db)
    consumer.stop.set()
    relay_stop.set()
    thread.join(timeout=15)
    relay.join(timeout=15)
    publisher.close()
    relay_publisher.close()


@pytest.fixture
def raw_producer(settings):
    producer = KafkaProducer(**client_options(settings, "admin"), acks="all")
    yield producer
    producer.close()


def _post(client, tokens, body=None):
    res = client.post("/api/v1/reports", json=body or synthetic_report(), headers=tokens["caseworker"])
    assert res.status_code == 201
    return res.get_json()


def test_a_report_opens_a_case_that_the_case_api_shows(client, case_client, tokens, case_consumer):
    body = synthetic_report(risk={"deportation_imminent": True, "vulnerabilities": ["pregnant"]})
    created = _post(client, tokens, body)
    wait_for(lambda: case_consumer.get(created["case_id"]), what="the case to open")
    res = case_client.get(f"/api/v1/cases/{created['case_id']}", headers=tokens["advocate"])
    assert res.status_code == 200
    case = res.get_json()
    assert case["status"] == "reported" and case["report_count"] == 1
    assert case["sex"] == body["person"]["sex"] and case["birth_year"] == body["person"]["birth_year"]
    assert case["province"] == body["detention"]["province"] and case["deportation_imminent"] is True
    assert case["history"][0]["status"] == "reported" and case["history"][0]["effective_on"] == "2023-04-20"
    assert "full_name" not in case and "Synthmark" not in res.get_data(as_text=True)


def test_the_same_event_delivered_twice_is_applied_once(settings, client, tokens, case_consumer, raw_producer):
    body = synthetic_report()
    created = _post(client, tokens, body)
    [record] = [r for r in read_topic(settings.kafka_bootstrap, "intake.events")
                if r.key == created["case_id"].encode()]
    raw_producer.send("intake.events", key=record.key, value=record.value).get(timeout=10)  # a redelivery
    # A later report about the same person has the same key, so it is behind the duplicate.
    later = _post(client, tokens, synthetic_report(person=body["person"]))
    assert later["case_id"] == created["case_id"]
    case = wait_for(lambda: (c := case_consumer.get(created["case_id"])) and len(c["applied_event_ids"]) == 2 and c,
                    what="both reports to be applied")
    assert case["report_count"] == 2
    assert case_consumer.versions.count_documents({"aggregate_id": created["case_id"]}) == 2


def test_a_later_report_updates_the_case_and_emits_facts_updated(settings, client, tokens, case_consumer):
    first = synthetic_report()
    a = _post(client, tokens, first)
    wait_for(lambda: case_consumer.get(a["case_id"]), what="the case to open")
    later = synthetic_report(person=first["person"], risk={"deportation_imminent": True})
    b = _post(client, tokens, later)
    assert b["case_id"] == a["case_id"]
    case = wait_for(lambda: (c := case_consumer.get(a["case_id"])) and c["report_count"] == 2 and c,
                    what="the second report")
    assert case["deportation_imminent"] is True
    types = wait_for(lambda: [r for r in read_topic(settings.kafka_bootstrap, "case.events")
                              if r.key == a["case_id"].encode() and b"case.facts_updated" in r.value],
                     what="case.facts_updated")
    assert len(types) == 1


def test_poison_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(settings, client, tokens,
                                                                           case_consumer, raw_producer):
    key = f"poison-{uuid.uuid4().hex[:6]}".encode()
    bad_envelope = encode({"event_type": "case.reported", "case_id": key.decode(), "payload": {}})
    raw_producer.send("intake.events", key=key, value=b"{this is not json").get(timeout=10)
    raw_producer.send("intake.events", key=key, value=bad_envelope).get(timeout=10)
    after = _post(client, tokens)
    wait_for(lambda: case_consumer.get(after["case_id"]), what="the next good event to be applied")
    dead = wait_for(lambda: [r for r in read_topic(settings.kafka_bootstrap, "intake.events.dlq") if r.key == key],
                    what="dead letters")
    assert [r.value for r in dead] == [b"{this is not json", bad_envelope]
    reasons = [dict(r.headers)["nrw.dlq.reason"].decode() for r in dead]
    assert "not JSON" in reasons[0] and "envelope invalid" in reasons[1]
    for record in dead:
        headers = dict(record.headers)
        assert headers["nrw.dlq.source.topic"] == b"intake.events"
        assert int(headers["nrw.dlq.source.offset"]) >= 0 and headers["nrw.dlq.source.partition"].isdigit()


def test_the_relay_publishes_what_the_fast_path_left_and_clears_it(settings, mongo):
    coll = mongo[settings.database_name("intake")]["relay_probe"]
    case_id = f"relay-{uuid.uuid4().hex[:8]}"
    event = new_event("case.merged", producer="intake", case_id=case_id, payload={"into_case_id": "other"})
    old = utcnow() - dt.timedelta(seconds=30)
    insert_with_outbox(coll, with_outbox({"_id": case_id}, [event], old))  # as if the writer died right here
    young = new_event("case.merged", producer="intake", case_id=f"{case_id}-young", payload={"into_case_id": "x"})
    # A writer's own publish of this one may still be under way: even with no grace, it is left alone.
    insert_with_outbox(coll, with_outbox({"_id": f"{case_id}-young"}, [young], utcnow() - dt.timedelta(seconds=1)))
    publisher = Publisher(settings, principal="admin", client_id="it-relay")
    try:
        assert relay_once([coll], "intake.events", publisher, grace_s=0) == 1
        assert relay_once([coll], "intake.events", publisher, grace_s=1) == 0
    finally:
        publisher.close()
    doc = coll.find_one({"_id": case_id})
    assert not outbox_pending(coll, case_id) and doc["outbox"] == [event]  # kept as the record of what was sent
    assert mongo[settings.database_name("intake")]["relay_probe_outbox"].find_one({"_id": case_id}) is None
    records = [r for r in read_topic(settings.kafka_bootstrap, "intake.events") if r.key == case_id.encode()]
    assert len(records) == 1 and event["event_id"].encode() in records[0].value
    assert outbox_pending(coll, f"{case_id}-young")


def test_the_relay_drops_markers_whose_document_never_arrived(settings, mongo):
    coll = mongo[settings.database_name("intake")]["relay_orphans"]
    markers = mongo[settings.database_name("intake")]["relay_orphans_outbox"]
    markers.insert_many([{"_id": "gone", "at": utcnow() - dt.timedelta(minutes=10)},
                         {"_id": "in-flight", "at": utcnow() - dt.timedelta(seconds=5)}])
    publisher = Publisher(settings, principal="admin", client_id="it-relay-orphans")
    try:
        assert relay_once([coll], "intake.events", publisher, grace_s=1) == 0
    finally:
        publisher.close()
    assert {m["_id"] for m in markers.find()} == {"in-flight"}  # a writer may still be inserting it


def test_concurrent_writers_never_lose_a_change(settings, mongo):
    """FerretDB v1 does not isolate conditional updates; versioned inserts must not lose any write."""
    from shared.aggregates import VersionedStore

    store = VersionedStore(mongo[settings.database_name("case")], f"race{uuid.uuid4().hex[:6]}")
    store.ensure_indexes()
    publisher = Publisher(settings, principal="admin", client_id="it-race")

    def bump(_):
        for _ in range(25):
            store.save("agg-1", lambda s: ({**(s or {"_id": "agg-1", "n": 0}), "n": (s or {"n": 0})["n"] + 1}, []),
                       publisher=publisher, topic="case.events", now=utcnow())

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    publisher.close()
    assert store.get("agg-1")["n"] == 100
    assert store.versions.count_documents({"aggregate_id": "agg-1"}) == 100
    assert store.current.find_one({"_id": "agg-1"})["n"] == 100  # the projection ends on the newest


def test_a_version_stored_but_not_projected_is_projected_when_the_event_comes_again(settings, mongo):
    """A consumer killed between storing a version and projecting it: the redelivered event
    changes nothing (already applied) and brings the projection, which lists read, up to date."""
    from shared.aggregates import VersionedStore

    store = VersionedStore(mongo[settings.database_name("case")], f"crash{uuid.uuid4().hex[:6]}")
    store.append("agg-1", 1, {"_id": "agg-1", "applied": ["e-1"]}, [], utcnow())  # killed before project()
    assert store.current.find_one({"_id": "agg-1"}) is None
    publisher = Publisher(settings, principal="admin", client_id="it-crash")
    try:
        def decide(state):  # what a consumer's idempotent handler decides for event e-1
            return None if state and "e-1" in state["applied"] else ({"_id": "agg-1", "applied": ["e-1"]}, [])

        assert store.save("agg-1", decide, publisher=publisher, topic="case.events", now=utcnow())["applied"] == ["e-1"]
    finally:
        publisher.close()
    assert store.current.find_one({"_id": "agg-1"})["rev"] == 1
    assert store.versions.count_documents({"aggregate_id": "agg-1"}) == 1
