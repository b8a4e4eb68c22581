"""The only module that talks to the advocacy service's MongoDB database."""

from __future__ import annotations

import datetime as dt
import math

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.aggregates import VersionedStore
from shared.listindex import Column, ListIndex, read_in_order, shared_index

from services.advocacy.domain import DEFAULT_RECIPIENTS, FINAL_OUTCOMES, awaited_follow_up

NO_DUE_TIME = dt.datetime.max.replace(tzinfo=dt.timezone.utc)  # a draft without due_by: after every dated one


def _urgency(appeal: dict) -> dt.datetime | float:
    """Where an appeal goes in the appeal list: drafts by due time (those without one last among
    drafts), then every other appeal (infinity)."""
    if appeal.get("status") != "draft":
        return math.inf
    return appeal.get("due_by") or NO_DUE_TIME


def _recency(appeal: dict) -> float:
    """Minus the time an appeal last changed (smallest: the most recently changed)."""
    changed = appeal.get("updated_at") or appeal.get("created_at")
    if changed is None:
        return math.inf
    return -(changed if changed.tzinfo else changed.replace(tzinfo=dt.timezone.utc)).timestamp()


def _follow_up_day(access_request: dict) -> float:
    """The day number of an awaited follow-up (infinity when none is awaited: never overdue)."""
    follow_up = awaited_follow_up(access_request)
    return dt.date.fromisoformat(follow_up).toordinal() if follow_up else math.inf


APPEAL_COLUMNS = {
    "status": Column("code", lambda appeal: appeal.get("status")),
    "case_ids": Column("multi", lambda appeal: appeal.get("case_ids")),
    "urgency": Column("number", _urgency),
    "recency": Column("number", _recency),
    "created_at": Column("number", lambda appeal: appeal.get("created_at")),
}
REQUEST_COLUMNS = {
    "status": Column("code", lambda access_request: access_request.get("status")),
    "case_ids": Column("multi", lambda access_request: access_request.get("case_ids")),
    "follow_up": Column("number", _follow_up_day),
    "created_at": Column("number", lambda access_request: access_request.get("created_at")),
}


class AdvocacyStore:
    """Appeals and UNHCR-access requests as immutable versions with their outbox (see
    shared/aggregates.py), advocacy's own copy of each case's non-identifying attributes (built
    from case events; the consent check reads it), and the maintained list of recipients."""

    LIST_LIMIT = 500  # list_appeals / list_requests: the newest this many
    PAGE_SIZE = 50

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

    # The lists are asked of columns each process keeps in memory (shared/listindex.py: FerretDB
    # on SQLite would read every appeal per request), then the rows shown are read by _id.

    def appeal_index(self) -> ListIndex:
        """This process's columns of the appeal list."""
        return self._index(self.appeals, APPEAL_COLUMNS,
                           {"status": 1, "case_ids": 1, "due_by": 1, "created_at": 1, "updated_at": 1})

    def request_index(self) -> ListIndex:
        """This process's columns of the UNHCR-access request list."""
        return self._index(self.requests, REQUEST_COLUMNS,
                           {"status": 1, "case_ids": 1, "follow_up_on": 1, "created_at": 1})

    def _index(self, store: VersionedStore, columns: dict, projection: dict) -> ListIndex:
        db = store.current.database
        return shared_index((store.current.name, id(db.client), db.name), lambda: ListIndex(
            store.current, columns, order="created_at", projection=projection, journal=store.journal))

    def start_lists(self) -> None:
        """Load both lists' columns in threads (at a process's first use of the database)."""
        self.appeal_index().start()
        self.request_index().start()

    @staticmethod
    def _filters(case_id: str | None, status: str | None) -> dict:
        return {"equal": {"status": status} if status else None, "holding": {"case_ids": case_id} if case_id else None}

    def list_appeals(self, *, case_id: str | None = None, status: str | None = None) -> list[dict]:
        """The LIST_LIMIT newest appeals, filtered by case and status (newest state of each)."""
        ids, _ = self.appeal_index().current().select(**self._filters(case_id, status), limit=self.LIST_LIMIT)
        return read_in_order(self.appeals.current, ids)

    def list_requests(self, *, case_id: str | None = None, status: str | None = None) -> list[dict]:
        """The LIST_LIMIT newest UNHCR-access requests, filtered by case and status."""
        ids, _ = self.request_index().current().select(**self._filters(case_id, status), limit=self.LIST_LIMIT)
        return read_in_order(self.requests.current, ids)

    def page_appeals(self, *, case_id: str | None = None, status: str | None = None,
                     page: int = 1) -> tuple[list[dict], int]:
        """One page of appeals (drafts by due time first, those without one last among drafts; then
        the rest newest first) and how many match."""
        ids, total = self.appeal_index().current().select(**self._filters(case_id, status), ascending="urgency",
                                                          offset=(page - 1) * self.PAGE_SIZE, limit=self.PAGE_SIZE)
        return read_in_order(self.appeals.current, ids), total

    def urgent_drafts(self, limit: int) -> tuple[list[dict], int]:
        """The `limit` drafts due soonest (those without a due time last), and how many drafts there are."""
        ids, total = self.appeal_index().current().select(equal={"status": "draft"}, ascending="urgency", limit=limit)
        return read_in_order(self.appeals.current, ids), total

    def recently_changed_appeals(self, limit: int) -> list[dict]:
        """The `limit` appeals other than drafts changed last (issued, answered), the latest first."""
        ids, _ = self.appeal_index().current().select(not_among={"status": ["draft"]}, ascending="recency",
                                                      limit=limit)
        return read_in_order(self.appeals.current, ids)

    def awaited_requests(self, limit: int) -> tuple[list[dict], int]:
        """The `limit` requests awaiting an answer whose follow-up comes first (so the overdue ones
        first; those without a follow-up date last), and how many await one."""
        ids, total = self.request_index().current().select(not_among={"status": list(FINAL_OUTCOMES)},
                                                           ascending="follow_up", limit=limit)
        return read_in_order(self.requests.current, ids), total

    def page_requests(self, *, today: dt.date, case_id: str | None = None, status: str | None = None,
                      overdue: bool | None = None, page: int = 1) -> tuple[list[dict], int]:
        """One page of UNHCR-access requests, newest first, and how many match; `overdue`: only
        those whose follow-up date has passed by `today` without a final answer (or only the others)."""
        bound = {} if overdue is None else {"below" if overdue else "not_below": {"follow_up": today.toordinal()}}
        ids, total = self.request_index().current().select(**self._filters(case_id, status), **bound,
                                                           offset=(page - 1) * self.PAGE_SIZE, limit=self.PAGE_SIZE)
        return read_in_order(self.requests.current, ids), total

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
