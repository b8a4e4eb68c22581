"""The only module that talks to intake's MongoDB database."""

from __future__ import annotations

import datetime as dt

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.bus import insert_with_outbox


class IntakeStore:
    """Reports (identifying fields encrypted), the person match index, and the audit trail."""

    PAGE_SIZE = 50

    def __init__(self, db: Database):
        self.db = db
        self.reports = db["reports"]
        self.persons = db["persons"]
        self.audit = db["audit"]

    def ensure_indexes(self) -> None:
        """Indexes the queries below rely on (idempotent)."""
        self.reports.create_index([("case_id", ASCENDING)])
        self.reports.create_index([("created_at", DESCENDING)])
        self.audit.create_index([("report_id", ASCENDING)])

    def claim_person(self, person_key: str, new_case_id: str, now: dt.datetime) -> tuple[str, bool]:
        """The case of the person with this blind index: theirs if known, else new_case_id.

        Returns (case_id, matched_existing_case). Safe under concurrent first reports: the
        person index is keyed by the blind index, so only one case id can win.
        """
        try:
            self.persons.insert_one({"_id": person_key, "case_id": new_case_id, "created_at": now})
            return new_case_id, False
        except DuplicateKeyError:
            return self.persons.find_one({"_id": person_key})["case_id"], True

    def insert_report(self, doc: dict) -> None:
        """Store a report together with its outbox: one document write."""
        insert_with_outbox(self.reports, doc)

    def get_report(self, report_id: str) -> dict | None:
        """A stored report, or None."""
        return self.reports.find_one({"_id": report_id})

    def page(self, *, case_id: str | None, province: str | None, page: int) -> tuple[list[dict], int]:
        """One page of reports (stored fields only: identifying ones stay sealed), newest first."""
        query = {k: v for k, v in (("case_id", case_id), ("detention.province", province)) if v}
        projection = {"sealed": 0, "outbox": 0, "person_key": 0}
        total = self.reports.count_documents(query)
        items = list(self.reports.find(query, projection).sort("created_at", DESCENDING)
                     .skip((page - 1) * self.PAGE_SIZE).limit(self.PAGE_SIZE))
        return items, total

    def audit_page(self, *, case_id: str | None, user_id: str | None, page: int) -> tuple[list[dict], int]:
        """One page of the audit trail, newest first."""
        query = {k: v for k, v in (("case_id", case_id), ("user_id", user_id)) if v}
        total = self.audit.count_documents(query)
        items = list(self.audit.find(query, {"_id": 0}).sort("at", DESCENDING).skip((page - 1) * self.PAGE_SIZE)
                     .limit(self.PAGE_SIZE))
        return items, total

    def record_access(self, entry: dict) -> None:
        """Append to the audit trail of identifying-data reads."""
        self.audit.insert_one(entry)
