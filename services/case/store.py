"""The only module that talks to the case service's MongoDB database."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from shared.aggregates import VersionedStore, version_id
from shared.listindex import Column, ListIndex, read_in_order, shared_index

LIST_COLUMNS = {
    "status": Column("code", lambda case: case.get("status")),
    "province": Column("code", lambda case: case.get("province")),
    "imminent": Column("bool", lambda case: case.get("deportation_imminent")),
    "created_at": Column("number", lambda case: case.get("created_at")),
}


class CaseStore(VersionedStore):
    """Cases as immutable versions (`cases_versions`, with their outbox) and the newest state of
    each (`cases`) for lists and filters."""

    PAGE_SIZE = 50

    def __init__(self, db: Database):
        super().__init__(db, "cases")

    def ensure_indexes(self) -> None:
        """Indexes the queries below rely on (idempotent)."""
        super().ensure_indexes()
        self.current.create_index([("status", ASCENDING)])
        self.current.create_index([("province", ASCENDING)])
        self.current.create_index([("created_at", DESCENDING)])

    def list_index(self) -> ListIndex:
        """This process's columns of the case list (filtered and counted in memory, rows read by _id)."""
        db = self.current.database
        return shared_index(("cases", id(db.client), db.name), lambda: ListIndex(
            self.current, LIST_COLUMNS, order="created_at", journal=self.journal,
            projection={"status": 1, "province": 1, "deportation_imminent": 1, "created_at": 1}))

    def page(self, *, status: str | None, province: str | None, page: int,
             imminent: bool | None = None) -> tuple[list[dict], int]:
        """One page of cases, newest first, and the total matching."""
        equal = {k: v for k, v in (("status", status), ("province", province)) if v}
        if imminent is not None:
            equal["imminent"] = imminent
        ids, total = self.list_index().current().select(equal=equal, offset=(page - 1) * self.PAGE_SIZE,
                                                        limit=self.PAGE_SIZE)
        return read_in_order(self.current, ids), total

    def forget_sealed_reasons(self, case_id: str) -> int:
        """Drop the sealed free text (status reasons) from every stored version of a case, and
        from its projection: its person was erased. Versions are otherwise never changed; this is
        the one exception. Each version is read by _id, up to the newest (one appended meanwhile
        is scrubbed too). Returns how many versions held any; repeating it changes nothing."""
        changed, rev = 0, 1
        while (version := self.versions.find_one({"_id": version_id(case_id, rev)}, {"state.history": 1})) is not None:
            history = version.get("state", {}).get("history", [])
            if any("reason_sealed" in entry for entry in history):
                scrubbed = [{k: v for k, v in entry.items() if k != "reason_sealed"} for entry in history]
                self.versions.update_one({"_id": version["_id"]}, {"$set": {"state.history": scrubbed}})
                changed += 1
            rev += 1
        if rev > 1:
            self.project(case_id)
        return changed
