"""The only module that talks to the case service's MongoDB database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError


class Conflict(Exception):
    """Someone else changed the document since it was read; read again and retry."""


class CaseStore:
    """Cases, each one document holding its state, history, applied events and outbox."""

    PAGE_SIZE = 50

    def __init__(self, db: Database):
        self.cases = db["cases"]

    def ensure_indexes(self) -> None:
        """Indexes the queries below rely on (idempotent)."""
        self.cases.create_index([("outbox_pending", ASCENDING), ("updated_at", ASCENDING)])
        self.cases.create_index([("status", ASCENDING)])
        self.cases.create_index([("province", ASCENDING)])
        self.cases.create_index([("created_at", DESCENDING)])

    def get(self, case_id: str) -> dict | None:
        """One case, or None."""
        return self.cases.find_one({"_id": case_id})

    def insert(self, case: dict) -> None:
        """Store a new case; Conflict if it exists already."""
        try:
            self.cases.insert_one(case)
        except DuplicateKeyError:
            raise Conflict(case["_id"]) from None

    def replace(self, case: dict, expected_rev: int) -> None:
        """Store a changed case if nobody changed it since it was read at expected_rev; else Conflict."""
        result = self.cases.replace_one({"_id": case["_id"], "rev": expected_rev}, case)
        if result.matched_count != 1:
            raise Conflict(case["_id"])

    def page(self, *, status: str | None, province: str | None, page: int) -> tuple[list[dict], int]:
        """One page of cases, newest first, and the total matching."""
        query = {k: v for k, v in (("status", status), ("province", province)) if v}
        total = self.cases.count_documents(query)
        items = list(self.cases.find(query).sort("created_at", DESCENDING).skip((page - 1) * self.PAGE_SIZE)
                     .limit(self.PAGE_SIZE))
        return items, total
