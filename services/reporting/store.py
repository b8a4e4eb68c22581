"""The only module that talks to the reporting service's MongoDB database."""

from __future__ import annotations

from pymongo import DESCENDING
from pymongo.database import Database

from shared.bus import insert_with_outbox

RECORDS = "records"
POINTER = {"_id": "records"}


class ReportingStore:
    """The records: one document per case, built from events only (never another service's
    database), in the collection `meta` points at (a rebuild fills a new one, then moves the
    pointer: one write, so readers see the old records or the new, never a half-built set);
    `snapshots`: frozen figures for a submission, each with its outbox."""

    def __init__(self, db: Database, records: str | None = None):
        self.db = db
        self._fixed = records
        self.meta = db["meta"]
        self.snapshots = db["snapshots"]

    @property
    def records_name(self) -> str:
        """The collection holding the records now."""
        if self._fixed:
            return self._fixed
        pointer = self.meta.find_one(POINTER)
        return pointer["collection"] if pointer else RECORDS

    @property
    def records(self):
        """The records collection in use."""
        return self.db[self.records_name]

    def pinned(self) -> "ReportingStore":
        """This store fixed to the records in use now: one pointer read for several operations."""
        return ReportingStore(self.db, records=self.records_name)

    def point_to(self, collection: str) -> None:
        """Make `collection` the records in use."""
        self.meta.replace_one(POINTER, {"collection": collection}, upsert=True)

    def counts(self) -> int:
        """How many case records there are."""
        return self.records.count_documents({})

    def get(self, case_id: str) -> dict | None:
        """A case's record, or None."""
        return self.records.find_one({"_id": case_id})

    def save(self, record: dict) -> None:
        """Store a case's record (the consumer is its only writer, one event at a time)."""
        self.records.replace_one({"_id": record["_id"]}, record, upsert=True)

    def all_records(self) -> list[dict]:
        """Every case's record, without the bookkeeping of applied events."""
        return list(self.records.find({}, {"applied_event_ids": 0}))

    def insert_snapshot(self, doc: dict) -> None:
        """A snapshot and its upr.snapshot_taken events: one write."""
        insert_with_outbox(self.snapshots, doc)

    def get_snapshot(self, snapshot_id: str) -> dict | None:
        """A snapshot, or None."""
        return self.snapshots.find_one({"_id": snapshot_id}, {"outbox": 0})

    def list_snapshots(self) -> list[dict]:
        """Snapshots, newest first, without their figures."""
        return list(self.snapshots.find({}, {"snapshot_id": 1, "cycle": 1, "as_of": 1, "since": 1, "title": 1,
                                             "taken_at": 1, "taken_by": 1, "case_count": 1})
                    .sort("taken_at", DESCENDING))
