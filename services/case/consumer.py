"""The case service's event consumer: opens and updates cases from intake's events, and keeps each
case's UNHCR-access requests and appeals from advocacy's, and the UPR snapshots that counted it
from reporting's."""

from __future__ import annotations

from shared.config import CONSUMES
from shared.mongo import utcnow
from shared.processes import run_consumer

from services.case import domain, handlers
from services.case.store import CaseStore


TOPICS = CONSUMES["case"]  # the broker lets this service read these only (shared/kafka_auth.py)


def make_handlers(db, publisher) -> dict:
    """Event type -> handler, wired to this process's store and producer."""
    store = CaseStore(db)

    def advocacy(event: dict) -> None:
        handlers.on_advocacy_event(event, store=store, publisher=publisher, now=utcnow())

    return {
        "case.reported": lambda event: handlers.on_case_reported(event, store=store, publisher=publisher, now=utcnow()),
        "case.merged": lambda event: handlers.on_case_merged(event, store=store, publisher=publisher, now=utcnow()),
        "consent.changed": lambda event: handlers.on_consent_changed(event, store=store, publisher=publisher,
                                                                    now=utcnow()),
        "upr.snapshot_taken": lambda event: handlers.on_snapshot_taken(event, store=store, publisher=publisher,
                                                                      now=utcnow()),
        "person.erased": lambda event: handlers.on_person_erased(event, store=store),
        **{event_type: advocacy for event_type in domain.ADVOCACY_EVENTS},
    }


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("case", TOPICS, make_handlers, prepare=lambda db: CaseStore(db).ensure_indexes(), argv=argv)


if __name__ == "__main__":
    main()
