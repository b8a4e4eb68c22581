"""The case service's event consumer: opens and updates cases from intake's events."""

from __future__ import annotations

from shared.mongo import utcnow
from shared.processes import run_consumer

from services.case import handlers
from services.case.store import CaseStore


def make_handlers(db, publisher) -> dict:
    """Event type -> handler, wired to this process's store and producer."""
    store = CaseStore(db)
    return {
        "case.reported": lambda event: handlers.on_case_reported(event, store=store, publisher=publisher, now=utcnow()),
        "case.merged": lambda event: handlers.on_case_merged(event, store=store, publisher=publisher, now=utcnow()),
    }


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("case", ["intake.events"], make_handlers, prepare=lambda db: CaseStore(db).ensure_indexes(), argv=argv)


if __name__ == "__main__":
    main()
