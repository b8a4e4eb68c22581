"""`python -m services.reporting.rebuild`: rebuild reporting's case records from every event on
the topics, from the beginning.

The new records are built in a collection of their own while the service keeps answering from
the old ones; then one write points the service at the new records, the events that arrived in
the meantime are applied to them (applying an event twice changes nothing), and the old
collection is dropped. The statistics afterwards are those of the events, whatever the old
records held.
"""

from __future__ import annotations

import argparse
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from tqdm import tqdm

from shared.config import Settings
from shared.events import EventError, decode, validate_event
from shared.kafka_auth import client_options
from shared.mongo import connect

from services.reporting import handlers
from services.reporting.consumer import TOPICS
from services.reporting.store import ReportingStore


def _partitions(consumer: KafkaConsumer) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in TOPICS for p in sorted(consumer.partitions_for_topic(topic) or [])]


def _end_offsets(settings: Settings, partitions: list[TopicPartition]) -> dict:
    """The partitions' current ends, asked by a consumer of its own (kafka-python 3.0 can fail to
    look up partitions its own consumer is not assigned to once it has an assignment)."""
    probe = KafkaConsumer(**client_options(settings, "reporting"), group_id=None, bootstrap_timeout_ms=10000)
    try:
        return probe.end_offsets(partitions)
    finally:
        probe.close()


CATCH_UP_S = 1800  # at most this long after the move, the live consumer checks revs (caught_up ends it)
REPLAY_BATCH = 20000  # events applied at once: a case's events from several topics meet in one batch


def replay(consumer: KafkaConsumer, store: ReportingStore, start: dict, end: dict, progress,
           cache: handlers.RecordCache | None = None, private: bool = False) -> tuple[int, int]:
    """Apply every record between `start` and `end` offsets, up to REPLAY_BATCH events at a time
    (handlers.on_batch: each record changed in a batch is written once, and most are new, so
    inserted); (applied, skipped as not events)."""
    partitions = [tp for tp in end if end[tp] > start.get(tp, 0)]
    if not partitions:
        return 0, 0
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, start.get(tp, 0))
    applied = skipped = 0
    remaining = set(partitions)
    events, seen = [], 0
    while remaining:
        for tp, records in consumer.poll(timeout_ms=1000, max_records=2000).items():
            for record in records:
                if record.offset >= end[tp]:
                    continue
                seen += 1
                try:
                    event = validate_event(decode(record.value))
                except EventError:
                    skipped += 1  # the live consumer dead-lettered it; it was never part of the records
                else:
                    if event["event_type"] in handlers.EVENT_TYPES:
                        events.append(event)
                    applied += 1
        remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
        if len(events) >= REPLAY_BATCH or not remaining:
            if events:
                handlers.on_batch(events, store=store, cache=cache, private=private)
            progress.update(seen)
            events, seen = [], 0
    return applied, skipped


def rebuild(settings: Settings, *, quiet: bool = False) -> dict:
    """Rebuild the records; returns what was done."""
    db = connect(settings, "reporting")[settings.database_name("reporting")]
    live = ReportingStore(db)
    old = live.records_name
    fresh = f"records_{time.strftime('%Y%m%d%H%M%S')}"
    target = ReportingStore(db, records=fresh, journal=False)  # no reader sees it before the move
    target.records.drop()
    cache = handlers.RecordCache(size=50000, track_ids=True)
    consumer = KafkaConsumer(**client_options(settings, "reporting"), group_id=None, enable_auto_commit=False,
                             bootstrap_timeout_ms=10000)
    try:
        partitions = _partitions(consumer)
        start = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        with tqdm(total=sum(end[tp] - start[tp] for tp in partitions), unit="event", desc="replaying",
                  disable=quiet, file=sys.stderr) as progress:
            # Nobody else writes these records yet: no rev is read before a replace.
            applied, skipped = replay(consumer, target, start, end, progress, cache, private=True)
            # Now the live consumer writes them too: it reads each record's rev before replacing it
            # until caught_up (or CATCH_UP_S, should this process die before).
            live.point_to(fresh, catching_up_s=CATCH_UP_S)
            target.journaling = True  # readers now follow these records
            # What arrived while replaying (the live consumer wrote it to the old records).
            later = _end_offsets(settings, partitions)
            progress.total += sum(later[tp] - end[tp] for tp in partitions)
            caught_up, skipped_later = replay(consumer, target, end, later, progress, cache)
            live.caught_up(fresh)
    finally:
        consumer.close()
    if old != fresh:
        db[old].drop()
    # The cache knows every case it wrote (count_documents reads the whole collection: 16 s at
    # 100,000 records on FerretDB/SQLite, past the 10 s socket timeout).
    return {"collection": fresh, "events": applied + caught_up, "not_events": skipped + skipped_later,
            "cases": len(cache.ids or ())}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m services.reporting.rebuild",
        description="Drop reporting's case records and rebuild them by replaying intake.events, case.events and "
                    "advocacy.events from the beginning (with a progress bar). The service keeps answering from "
                    "the old records until the new ones are complete. Settings come from NRW_* environment "
                    "variables.")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    done = rebuild(Settings.from_env(), quiet=args.quiet)
    print(f"rebuilt {done['cases']} case records from {done['events']} events into {done['collection']}"
          + (f" ({done['not_events']} unreadable records skipped, as the consumer dead-lettered them)"
             if done["not_events"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
