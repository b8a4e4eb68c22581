"""Intake's own consumer: files each new report in the near-match buckets that the review of
possible duplicates reads. One process, one event at a time, so the buckets have one writer."""

from __future__ import annotations

from shared.processes import run_consumer

from services.intake import erasure, handlers
from services.intake.store import IntakeStore

TOPICS = CONSUMES["intake"]  # the broker lets this service read these only (shared/kafka_auth.py)


def make_handlers(db, publisher) -> dict:
    """Event type -> handler, wired to this process's store."""
    store = IntakeStore(db)
    return {"case.reported": lambda event: handlers.on_case_reported(event, store=store),
            "person.erased": lambda event: erasure.on_person_erased(event, store=store)}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("intake", TOPICS, make_handlers, prepare=lambda db: IntakeStore(db).ensure_indexes(), argv=argv)


if __name__ == "__main__":
    main()
