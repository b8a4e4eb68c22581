"""The reporting service's event consumer: builds each case's record from intake, case and
advocacy events (the statistics are counted from these records only)."""

from __future__ import annotations

import uuid

from shared.bus import Batch
from shared.config import CONSUMES
from shared.processes import run_consumer

from services.reporting import handlers
from services.reporting.store import PartitionFence, ReportingStore

TOPICS = CONSUMES["reporting"]  # the broker lets this service read these only (shared/kafka_auth.py)
MAX_POLL = 2000  # events per batch


def make_handlers(db, publisher) -> dict:
    """Event type -> handler, wired to this process's store."""
    store = ReportingStore(db)

    def handle(event: dict) -> None:
        handlers.on_event(event, store=store)

    return {event_type: handle for event_type in handlers.EVENT_TYPES}


def make_batch_handler(db, publisher):
    """A poll's events at once (handlers.on_batch), with the records written last kept in memory,
    and the fences of this instance's partitions (store.PartitionFence)."""
    store, cache = ReportingStore(db), handlers.RecordCache(track_ids=True)
    fence = PartitionFence(store.meta, token=uuid.uuid4().hex)

    def handle(events: list[dict], batch: Batch | None = None) -> None:
        handlers.on_batch(events, store=store, cache=cache, fence=fence, batch=batch)

    return handle


def main(argv=None) -> None:
    """Run the consumer until stopped: up to MAX_POLL events per batch."""
    run_consumer("reporting", TOPICS, make_handlers, argv=argv, make_batch_handler=make_batch_handler,
                 max_poll_records=MAX_POLL)


if __name__ == "__main__":
    main()
