"""The only module that talks to the advocacy service's MongoDB database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.aggregates import VersionedStore

from services.advocacy.domain import DEFAULT_RECIPIENTS


class AdvocacyStore:
    """Appeals and UNHCR-access requests as immutable versions with their outbox (see
    shared/aggregates.py), advocacy's own copy of each case's non-identifying attributes (built
    from case events; the consent check reads it), and the maintained list of recipients."""

    LIST_LIMIT = 500

    def __init__(self, db: Database):
        self.db = db
        self.appeals = VersionedStore(db, "appeals")
        self.requests = VersionedStore(db, "requests")
        self.cases = db["cases"]
        self.recipients = db["recipients"]

    def ensure_indexes(self) -> None:
        """Indexes the lists rely on, and the starting list of recipients (idempotent)."""
        self.appeals.ensure_indexes()
        self.requests.ensure_indexes()
        self.appeals.current.create_index([("case_ids", ASCENDING)])
        self.requests.current.create_index([("case_ids", ASCENDING)])
        for recipient in DEFAULT_RECIPIENTS:
            try:
                self.recipients.insert_one({"_id": recipient["name"], **recipient})
            except DuplicateKeyError:
                pass

    # --- cases ------------------------------------------------------------------------------

    def get_case(self, case_id: str) -> dict | None:
        """Advocacy's copy of a case, or None if no case event about it has arrived."""
        return self.cases.find_one({"_id": case_id})

    def known_cases(self, case_ids: list[str]) -> dict[str, dict]:
        """The cases of these ids that advocacy knows (one lookup by _id each)."""
        found = {}
        for case_id in case_ids:
            case = self.get_case(case_id)
            if case is not None:
                found[case_id] = case
        return found

    def save_case(self, case: dict) -> None:
        """Store advocacy's copy of a case (only the consumer writes these, one event at a time)."""
        self.cases.replace_one({"_id": case["_id"]}, case, upsert=True)

    # --- appeals and requests ---------------------------------------------------------------

    def list_appeals(self, *, case_id: str | None = None, status: str | None = None) -> list[dict]:
        """Appeals filtered by case and status (newest state of each)."""
        query = {k: v for k, v in (("case_ids", case_id), ("status", status)) if v}
        return list(self.appeals.current.find(query).sort("created_at", DESCENDING).limit(self.LIST_LIMIT))

    def list_requests(self, *, case_id: str | None = None, status: str | None = None) -> list[dict]:
        """UNHCR-access requests filtered by case and status, newest first."""
        query = {k: v for k, v in (("case_ids", case_id), ("status", status)) if v}
        return list(self.requests.current.find(query).sort("created_at", DESCENDING).limit(self.LIST_LIMIT))

    # --- recipients -------------------------------------------------------------------------

    def list_recipients(self) -> list[dict]:
        """Every recipient, by name."""
        return list(self.recipients.find({}, {"_id": 0}).sort("name", ASCENDING))

    def recipient_names(self) -> set[str]:
        """The names appeals may be sent to."""
        return {r["name"] for r in self.recipients.find({}, {"name": 1})}

    def add_recipient(self, recipient: dict) -> bool:
        """Add a recipient; False if one of that name exists."""
        try:
            self.recipients.insert_one({"_id": recipient["name"], **recipient})
        except DuplicateKeyError:
            return False
        return True
