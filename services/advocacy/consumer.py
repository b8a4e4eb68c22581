"""The advocacy service's event consumer: keeps advocacy's copy of each case from case events and
runs the deportation clock (a draft urgent appeal the moment a case is at imminent risk)."""

from __future__ import annotations

from shared.config import CONSUMES, Settings
from shared.mongo import utcnow
from shared.processes import run_consumer

from services.advocacy import handlers
from services.advocacy.store import AdvocacyStore

TOPICS = CONSUMES["advocacy"]  # the broker lets this service read these only (shared/kafka_auth.py)
CASE_EVENTS = ("case.opened", "case.status_changed", "case.facts_updated")


def make_handlers(db, publisher, settings: Settings | None = None) -> dict:
    """Event type -> handler, wired to this process's store and producer."""
    store = AdvocacyStore(db)
    settings = settings or Settings.from_env()

    def handle(event: dict) -> None:
        handlers.on_case_event(event, store=store, publisher=publisher, settings=settings, now=utcnow())

    return {event_type: handle for event_type in CASE_EVENTS}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("advocacy", TOPICS, make_handlers, prepare=lambda db: AdvocacyStore(db).ensure_indexes(), argv=argv)


if __name__ == "__main__":
    main()
