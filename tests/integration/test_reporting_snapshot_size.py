"""Snapshots of any size (issue 12, point 3) against the real FerretDB and Kafka: a snapshot of
30,000 counted cases is stored with no document larger than a 3,000-case snapshot's (the same
bound, under 1 MB), every counted case's upr.snapshot_taken reaches reporting.events exactly once,
and a failed attempt (parts written, then a crash before the snapshot document) publishes nothing
and leaves nothing behind once the relay's orphan delay has passed. The records are synthetic:
3,000 invented cases' events applied by reporting's own domain, then copied under new ids."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import random
import time
import uuid

import bson
import pytest
from pymongo.errors import DocumentTooLarge

from services.reporting import domain, figures, handlers, snapshots
from services.reporting.store import ReportingStore
from shared.bus import MARKER_ORPHAN_AFTER, Publisher, insert_with_outbox, mark_applied, relay_once
from shared.events import validate_event
from shared.mongo import utcnow
from tests.integration.test_reporting_statistics import events_of, invent
from tests.support import read_topic

UTC = dt.timezone.utc
BOUND = 1024 * 1024  # the largest document of a snapshot, whatever its size
COPIES = 10


def _records(n: int) -> list[dict]:
    """n synthetic cases' records, as reporting's handler builds them from their events."""
    rng = random.Random(12)
    clock = (dt.datetime(2024, 7, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    records: dict[str, dict] = {}
    for person in invent(rng, n):
        for topic_events in events_of(person, clock).values():
            for event in topic_events:
                event = validate_event(json.loads(json.dumps(event)))
                records[event["case_id"]] = mark_applied(domain.apply_event(records.get(event["case_id"]), event),
                                                         event["event_id"])
    return list(records.values())


@pytest.fixture(scope="module")
def store(settings, mongo):
    store = ReportingStore(mongo[settings.database_name("reporting")])
    store.records.delete_many({})  # this module's cases only
    base = _records(3000)
    store.records.insert_many(copy.deepcopy(base), ordered=False)
    store.point_to(store.records_name)  # readers load the records afresh
    yield store, base
    store.records.delete_many({})
    store.point_to(store.records_name)


@pytest.fixture(scope="module")
def publisher(settings):
    publisher = Publisher(settings, principal="reporting", client_id="it-snapshot-size")
    yield publisher
    publisher.close()


def _largest(store: ReportingStore, snapshot: dict) -> int:
    sizes = [len(bson.encode(store.snapshots.find_one({"_id": snapshot["snapshot_id"]})))]
    for kind, count in snapshot["parts"].items():
        for i in range(count):
            sizes.append(len(bson.encode(store.snapshot_parts.find_one({"_id": snapshots.part_id(
                snapshot["snapshot_id"], kind, i)}))))
    return max(sizes)


def _take(store, publisher) -> dict:
    return handlers.take_snapshot({"cycle": "CN-4", "as_of": dt.date(2024, 6, 30)}, actor="it-analyst", store=store,
                                  publisher=publisher, now=utcnow())


def test_a_snapshot_of_thirty_thousand_cases_has_no_larger_document_and_announces_each_case_once(
        store, publisher, settings, reporting_client, tokens):
    store, base = store
    small = _take(store, publisher)
    assert 0 < small["case_count"] <= 3000
    # Nine more copies of the same cases under new ids: 30,000 records, ten times the counted cases.
    for copy_no in range(1, COPIES):
        batch = []
        for record in base:
            clone = copy.deepcopy(record)
            clone["_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"nrw-copy-{copy_no}-{record['_id']}"))
            batch.append(clone)
        store.records.insert_many(batch, ordered=False)
    store.point_to(store.records_name)
    big = _take(store, publisher)
    assert big["case_count"] == COPIES * small["case_count"] and len(big["case_ids"]) == big["case_count"]
    assert _largest(store, big) < BOUND and _largest(store, small) < BOUND
    head = len(bson.encode(store.snapshots.find_one({"_id": big["snapshot_id"]})))
    assert head < 2 * len(bson.encode(store.snapshots.find_one({"_id": small["snapshot_id"]})))
    # Readers: analysts get every counted case from the parts; the stored document has none.
    stored = store.get_snapshot(big["snapshot_id"])
    assert "case_ids" not in stored and sorted(snapshots.case_ids(store, stored)) == sorted(big["case_ids"])
    # Through the API: analysts get the cases counted from the parts, others none; the annex reads
    # the snapshot document alone (no per-case work), so it is made as fast as a small one's.
    path = f"/api/v1/upr/snapshots/{big['snapshot_id']}"
    shown = reporting_client.get(path, headers=tokens["analyst"]).get_json()
    assert sorted(shown["case_ids"]) == sorted(big["case_ids"]) and shown["case_count"] == big["case_count"]
    assert "case_ids" not in reporting_client.get(path, headers=tokens["advocate"]).get_json()
    for snapshot_id in (small["snapshot_id"], big["snapshot_id"]):
        started = time.monotonic()
        annex = reporting_client.get(f"/api/v1/upr/snapshots/{snapshot_id}/annex",
                                     headers=tokens["advocate"], query_string={"format": "csv"})
        assert annex.status_code == 200 and time.monotonic() - started < 10
        assert not any(c.encode() in annex.data for c in big["case_ids"][:100])
    # Every counted case hears of it exactly once, and nothing is left for the relay.
    announced = [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "reporting.events", timeout_s=60)
                 if big["snapshot_id"].encode() in r.value and b'"upr.snapshot_taken"' in r.value]
    assert sorted(e["case_id"] for e in announced) == sorted(big["case_ids"])
    assert store.db["snapshot_parts_outbox"].count_documents({}) == 0
    assert store.db["snapshots_outbox"].find_one({"_id": big["snapshot_id"]}) is None


def test_a_failed_attempt_publishes_nothing_and_the_relay_removes_its_parts(store, publisher, settings):
    store, _ = store
    records = store.all_records()
    as_of = dt.date(2024, 6, 30)
    crashed_at = utcnow() - MARKER_ORPHAN_AFTER - dt.timedelta(seconds=30)
    doc = figures.snapshot(records, snapshot_id=str(uuid.uuid4()), cycle="CN-4", as_of=as_of, since=None, title="",
                           actor="it-analyst", now=crashed_at)
    head, parts = snapshots.split(doc, actor="it-analyst", now=crashed_at)
    snapshots.write_parts(store, parts)  # ... and the writer dies before the snapshot document
    # A retry of the same parts changes nothing (deterministic ids and contents).
    snapshots.write_parts(store, parts)
    ids = [p["_id"] for p in parts]
    assert parts and store.snapshot_parts.count_documents({"snapshot_id": doc["snapshot_id"]}) == len(parts)
    while relay_once([store.snapshot_parts], "reporting.events", publisher, grace_s=0):
        pass
    assert all(not store.has_snapshot_part(i) for i in ids)
    assert all(store.db["snapshot_parts_outbox"].find_one({"_id": i}) is None for i in ids)
    sent = [r for r in read_topic(settings.kafka_bootstrap, "reporting.events", timeout_s=60)
            if doc["snapshot_id"].encode() in r.value]
    assert sent == [] and store.get_snapshot(doc["snapshot_id"]) is None


def test_parts_are_published_by_the_relay_only_once_their_snapshot_exists(store, publisher, settings):
    store, _ = store
    earlier = utcnow() - dt.timedelta(seconds=20)  # past the relay's grace, not its orphan delay
    doc = figures.snapshot(store.all_records(), snapshot_id=str(uuid.uuid4()), cycle="CN-4", as_of=dt.date(2024, 6, 30),
                           since=None, title="", actor="it-analyst", now=earlier)
    head, parts = snapshots.split(doc, actor="it-analyst", now=earlier)
    snapshots.write_parts(store, parts)
    while relay_once([store.snapshot_parts], "reporting.events", publisher, grace_s=0):
        pass
    assert all(store.has_snapshot_part(p["_id"]) for p in parts)  # kept: the writer may still be at it
    snapshots.write_head(store, head, parts, actor="it-analyst", now=earlier)  # then it dies before releasing
    relayed = 0
    while (n := relay_once([store.snapshots, store.snapshot_parts], "reporting.events", publisher, grace_s=0)):
        relayed += n
    assert relayed == len(parts) + 1  # every part (those without events only lose their marker) and the snapshot
    assert all(store.db["snapshot_parts_outbox"].find_one({"_id": p["_id"]}) is None for p in parts)
    announced = [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "reporting.events", timeout_s=60)
                 if doc["snapshot_id"].encode() in r.value and b'"upr.snapshot_taken"' in r.value]
    assert sorted(e["case_id"] for e in announced) == doc["case_ids"]


def test_a_document_the_database_refuses_leaves_no_outbox_marker(store):
    store, _ = store
    huge = {"_id": str(uuid.uuid4()), "blob": "x" * (17 * 1024 * 1024), "outbox": [{"event_id": "e"}],
            "updated_at": utcnow()}
    with pytest.raises(DocumentTooLarge):
        insert_with_outbox(store.snapshots, huge)
    assert store.db["snapshots_outbox"].find_one({"_id": huge["_id"]}) is None
