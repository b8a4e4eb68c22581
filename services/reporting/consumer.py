"""The reporting service's event consumer: builds each case's record from intake, case and
advocacy events (the statistics are counted from these records only)."""

from __future__ import annotations

from shared.config import CONSUMES
from shared.processes import run_consumer

from services.reporting import handlers
from services.reporting.store import ReportingStore

TOPICS = CONSUMES["reporting"]  # the broker lets this service read these only (shared/kafka_auth.py)


def make_handlers(db, publisher) -> dict:
    """Event type -> handler, wired to this process's store."""
    store = ReportingStore(db)

    def handle(event: dict) -> None:
        handlers.on_event(event, store=store)

    return {event_type: handle for event_type in handlers.EVENT_TYPES}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("reporting", TOPICS, make_handlers, argv=argv)


if __name__ == "__main__":
    main()
