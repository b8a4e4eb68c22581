"""Intake's own consumer: files each new report in the near-match buckets that the review of
possible duplicates reads, and appends every service's audited writes (`audit.recorded`, on each
service's own topic) to intake's audit trail. Several instances may run (each with some of the
partitions): the buckets are changed under a lock each (IntakeStore._bucket_locked), the audit
trail claims each position by a unique insert."""

from __future__ import annotations

from shared import audit_events, identity
from shared.audit import audit_trail
from shared.bus import EventConsumer
from shared.config import CONSUMES, Settings
from shared.events import AUDIT_EVENT
from shared.mongo import utcnow
from shared.processes import run_consumer

from services.intake import erasure, handlers
from services.intake.store import IntakeStore

TOPICS = CONSUMES["intake"]  # the broker lets this service read these only (shared/kafka_auth.py)


class IntakeConsumer(EventConsumer):
    """The consume loop, refusing (dead-lettering) an audit event that is not on the topic of the
    service it names: only that service's principal may write there, so none can audit in another's name."""

    def apply(self, record) -> None:
        """Apply one record, or dead-letter it if it is an audit event from the wrong topic."""
        reason = audit_events.refusal(record)
        if reason is not None:
            self.dead_letter(record, reason)
            return
        super().apply(record)


def make_handlers(db, publisher, settings: Settings | None = None) -> dict:
    """Event type -> handler, wired to this process's store and audit trail."""
    store = IntakeStore(db)
    settings = settings or Settings.from_env()
    trail = audit_trail(db, settings)
    # the users database beside intake's (the same prefix), to name the account of an audit event
    identity_db = db.client[db.name.removesuffix("intake") + "identity"]

    def audited(event: dict) -> None:
        handlers.on_audit_recorded(event, trail=trail, claims=db[audit_events.CLAIMS],
                                   usernames=lambda ids: identity.usernames_of(identity_db, ids), now=utcnow())

    return {"case.reported": lambda event: handlers.on_case_reported(event, store=store), AUDIT_EVENT: audited,
            "person.erased": lambda event: erasure.on_person_erased(event, store=store)}


def main(argv=None) -> None:
    """Run the consumer until stopped."""
    run_consumer("intake", TOPICS, make_handlers, prepare=lambda db: IntakeStore(db).ensure_indexes(), argv=argv,
                 consumer_class=IntakeConsumer)


if __name__ == "__main__":
    main()
