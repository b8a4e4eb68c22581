"""Two reporting consumer instances (issue 13 point 3), against the real FerretDB: whatever
partitions each gets, and however often they move between them, every case's record ends exactly
as one consumer applying every event in order would make it, and a web process following the
journal shows the stored records.

Without conditional writes (store.save_many over the version a record was made from) this fails:
an instance that remembers a record another instance changed since writes its stale copy back,
and the events the other applied are lost."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from services.reporting import domain, handlers
from services.reporting.population import facts
from services.reporting.store import LivePopulation, ReportingStore
from shared.bus import RetryLater
from tests.integration.test_reporting_statistics import events_of, interleave, invent

UTC = dt.timezone.utc


def expected_records(events: list[dict]) -> dict[str, dict]:
    """Each case's record from its events in order, by the pure domain alone (no store)."""
    records: dict[str, dict] = {}
    for event in events:
        records[event["case_id"]] = domain.apply_event(records.get(event["case_id"]), event)
    return records


def without_bookkeeping(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("applied_event_ids", "rev")}


@pytest.fixture()
def db(mongo, settings):
    database = mongo[f"{settings.db_prefix}reporting_two"]
    yield database
    mongo.drop_database(database.name)


@pytest.mark.parametrize("seed", [13, 31])
def test_two_instances_moving_partitions_lose_no_event(db, seed):
    rng = random.Random(seed)
    clock = (dt.datetime(2024, 7, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    streams: dict[str, list[dict]] = {"intake": [], "case": [], "advocacy": []}
    for person in invent(rng, 150):
        for topic, evs in events_of(person, clock).items():
            streams[topic].extend(evs)
    # The order a partition keeps for each case: each topic's own order, the topics interleaved.
    events = interleave(rng, list(streams.values()))
    store = ReportingStore(db)
    reader = LivePopulation(db)
    reader.get()  # a web process that loaded before the first write and follows the journal
    instances = [handlers.RecordCache(track_ids=True), handlers.RecordCache(track_ids=True)]
    refusals = 0
    position = 0
    while position < len(events):
        # One poll's batch, to whichever instance the group gave the partitions to now; now and
        # then delivered again from an earlier offset (a commit lost in a rebalance).
        size = rng.randrange(5, 60)
        start = max(0, position - rng.randrange(0, 30)) if rng.random() < 0.2 else position
        batch = events[start:position + size]
        cache = rng.choice(instances)
        for _ in range(3):
            try:
                handlers.on_batch(batch, store=store, cache=cache)
                break
            except RetryLater:
                refusals += 1  # the consumer seeks back and the same instance applies the batch again
        else:
            pytest.fail("a batch was refused three times in a row")
        position += size
    stored = {r["_id"]: r for r in db["records"].find({})}
    wanted = expected_records(events)
    assert set(stored) == set(wanted)
    for case_id, record in wanted.items():
        assert without_bookkeeping(stored[case_id]) == without_bookkeeping(record), case_id
        assert sorted(stored[case_id]["applied_event_ids"]) == sorted(e["event_id"] for e in events
                                                                     if e["case_id"] == case_id)
    population = reader.get()
    assert population._facts == {case_id: facts(r) for case_id, r in stored.items()}
    assert refusals > 0, "the instances never met a record the other had changed: the test proves nothing"


def test_a_write_over_a_changed_record_is_refused_and_the_newer_one_kept(db):
    """The version check itself: a record made from rev 1 is refused once rev 2 is stored (and an
    insert of a record that exists is refused too), and a reader that read rev 2 keeps it when the
    refused copy comes after it in the journal."""
    store = ReportingStore(db)
    case_id = "7a1d0c55-0000-4000-8000-000000013001"
    assert store.save_many([{"_id": case_id, "sex": "female", "timeline": [], "rev": 1, "applied_event_ids": ["e1"]}],
                           new_ids={case_id}) == set()
    reader = LivePopulation(db)
    reader.get()
    assert store.save_many([{"_id": case_id, "sex": "male", "timeline": [], "rev": 2, "applied_event_ids": ["e1", "e2"]}]) == set()
    assert store.save_many([{"_id": case_id, "sex": "unknown", "timeline": [], "rev": 2, "applied_event_ids": ["e1", "e3"]}]) == {case_id}
    assert store.save_many([{"_id": case_id, "sex": "unknown", "timeline": [], "rev": 1, "applied_event_ids": ["e3"]}],
                           new_ids={case_id}) == {case_id}
    assert store.get(case_id)["applied_event_ids"] == ["e1", "e2"]
    assert reader.get()._facts[case_id] == facts(store.get(case_id))


def test_fences_let_the_instance_that_holds_a_partition_write_without_reading_revs_and_stop_a_dropped_one(db):
    """The fast path (issue 12: ingest): an instance that holds the fences of its partitions writes
    without reading each record's rev. Then the group drops it without its knowing (a zombie: it
    has not rejoined) and hands every partition to the other, which applies the rest; the zombie
    applies one more event from its stale memory of a case the other has since written. Its fence
    tells it: it forgets, reads what is stored, finds the event applied, writes nothing. Every
    record ends as one consumer would make it (with the zombie trusting its memory, the case
    would go back to the zombie's older version: tried)."""
    import zlib

    from services.reporting.store import PartitionFence
    from shared.bus import Batch

    rng = random.Random(7)
    clock = (dt.datetime(2024, 8, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    by_partition: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    everything = []
    for person in invent(rng, 120):
        for evs in events_of(person, clock).values():
            for event in evs:
                by_partition[zlib.crc32(event["case_id"].encode()) % 3].append(event)
                everything.append(event)
    store = ReportingStore(db)
    a = {"cache": handlers.RecordCache(track_ids=True), "fence": PartitionFence(store.meta, "instance-a"), "n": 1}
    b = {"cache": handlers.RecordCache(track_ids=True), "fence": PartitionFence(store.meta, "instance-b"), "n": 1}

    def apply(instance, partition, start, end):
        handlers.on_batch(by_partition[partition][start:end], store=store, cache=instance["cache"],
                          fence=instance["fence"], batch=Batch(frozenset({partition}), instance["n"], True))

    # k: an event of partition 0 whose case has events before it and after it.
    zero = [e["case_id"] for e in by_partition[0]]
    k = next(i for i in range(len(zero) // 2, len(zero) - 1) if zero[i] in zero[:i] and zero[i] in zero[i + 1:])
    half = {p: len(evs) // 2 for p, evs in by_partition.items()}
    half[0] = k
    for p in (0, 1, 2):  # a holds every partition
        apply(a, p, 0, half[p])
    assert a["fence"].claimed == {0, 1, 2} and not a["fence"].lost
    b["n"] += 1  # the group hands every partition to b; a is not told
    for p in (0, 1, 2):
        apply(b, p, half[p], len(by_partition[p]))
    assert b["fence"].claimed == {0, 1, 2}
    apply(a, 0, k, k + 1)  # the zombie's next event, of a case b has written to its end since
    assert a["fence"].lost == {0}, "the dropped instance did not see that its partition was taken"
    stored = {r["_id"]: r for r in db["records"].find({})}
    wanted = expected_records(everything)
    assert set(stored) == set(wanted)
    for case_id, record in wanted.items():
        assert without_bookkeeping(stored[case_id]) == without_bookkeeping(record), case_id
    a["n"] += 1  # a rejoins and is handed partition 0 again: it claims it and trusts its fence
    assert a["fence"].holds(Batch(frozenset({0}), a["n"], True), lambda: None) is True and not a["fence"].lost
    assert b["fence"].holds(Batch(frozenset({0}), b["n"], True), lambda: None) is False  # and b sees it
    # Topics whose partition counts differ: no fence is trusted, each rev is read.
    assert PartitionFence(store.meta, "instance-c").holds(Batch(frozenset({0}), 1, False), lambda: None) is False


def test_while_a_rebuild_catches_up_the_consumers_read_revs(db):
    """A rebuild moves the pointer to its records and writes the events that came meanwhile into
    them while the live consumer writes there too: until it says it caught up, a pinned store is
    `shared` (each rev read before a replace), and after, not; a pointer whose rebuild died says
    so only until its time is up."""
    import time

    store = ReportingStore(db)
    assert store.pinned().shared is False
    store.point_to("records_new", catching_up_s=600)
    pinned = store.pinned()
    assert (pinned.records_name, pinned.shared) == ("records_new", True)
    store.caught_up("records_new")
    assert (store.pinned().records_name, store.pinned().shared) == ("records_new", False)
    store.meta.replace_one({"_id": "records"}, {"collection": "records_new", "catching_up_until": time.time() - 1})
    assert store.pinned().shared is False


def test_a_consumer_back_from_sharing_its_records_with_a_rebuild_reads_them_again(db):
    """While a rebuild catches up into the records in use, the live consumer reads revs (the
    rebuild writes there too); when the rebuild is done, the consumer writes without reading revs
    again, and must not trust what it remembered from before: the rebuild may have written those
    records since (without dropping them, the case would go back to the consumer's older copy)."""
    import zlib

    from services.reporting.store import PartitionFence
    from shared.bus import Batch

    rng = random.Random(11)
    clock = (dt.datetime(2024, 9, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    events = [e for person in invent(rng, 40) for evs in events_of(person, clock).values() for e in evs]
    cases = [e["case_id"] for e in events]
    # k: an event whose case has events before it and after it
    k = next(i for i in range(len(events) // 2, len(events) - 1) if cases[i] in cases[:i] and cases[i] in cases[i + 1:])
    later = next(i for i in range(k + 1, len(events)) if cases[i] == cases[k])
    store = ReportingStore(db)
    live_cache, fence = handlers.RecordCache(track_ids=True), PartitionFence(store.meta, "live")
    one = Batch(frozenset({0}), 1, True)  # every case in one partition here, held by the live consumer
    assert {zlib.crc32(c.encode()) % 1 for c in cases} == {0}
    store.point_to("records_fresh", catching_up_s=600)  # the rebuild moved the pointer and catches up
    handlers.on_batch(events[:k], store=store, cache=live_cache, fence=fence, batch=one)
    assert live_cache.trusted is False  # checked while the rebuild writes too
    rebuild_cache = handlers.RecordCache(track_ids=True)  # the rebuild applies what it had not yet
    handlers.on_batch(events[k:later], store=store, cache=rebuild_cache)
    store.caught_up("records_fresh")
    handlers.on_batch(events[later:], store=store, cache=live_cache, fence=fence, batch=one)
    assert live_cache.trusted is True
    stored = {r["_id"]: r for r in db["records_fresh"].find({})}
    for case_id, record in expected_records(events).items():
        assert without_bookkeeping(stored[case_id]) == without_bookkeeping(record), case_id
