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
        self.merges = db["merges"]
        self.distinct = db["distinct_pairs"]
        # Near-match buckets, one document per birth year ("y:1991") and per province ("p:Jilin"),
        # each listing its reports' hashed name pairs: a review reads two documents by _id
        # (FerretDB v1 scans a whole collection for any other filter: ~250 ms per 1,000 reports).
        # Only intake's consumer writes them, one event at a time, so appends never race.
        self.near = db["near_buckets"]

    def ensure_indexes(self) -> None:
        """Indexes the queries below rely on (idempotent)."""
        self.reports.create_index([("case_id", ASCENDING)])
        self.reports.create_index([("created_at", DESCENDING)])
        self.audit.create_index([("report_id", ASCENDING)])

    def claim_person(self, person_key: str, new_case_id: str, now: dt.datetime,
                     report_id: str | None = None) -> tuple[str, bool]:
        """The case of the person with this blind index: theirs if known, else new_case_id.

        Returns (case_id, matched_existing_case). Safe under concurrent first reports: the
        person index is keyed by the blind index, so only one case id can win. A report sent again
        under its submission key (same report_id) after its first sending claimed the person but
        was not stored finds its own claim: not a match with an existing case.
        """
        try:
            self.persons.insert_one({"_id": person_key, "case_id": new_case_id, "created_at": now,
                                     "claimed_by": report_id})
            return new_case_id, False
        except DuplicateKeyError:
            known = self.persons.find_one({"_id": person_key})
            return known["case_id"], not (report_id and known.get("claimed_by") == report_id)

    def insert_report(self, doc: dict) -> None:
        """Store a report together with its outbox: one document write."""
        insert_with_outbox(self.reports, doc)

    def get_report(self, report_id: str) -> dict | None:
        """A stored report, or None."""
        return self.reports.find_one({"_id": report_id})

    LIST_FIELDS = {"case_id": 1, "created_at": 1, "detention.province": 1}

    def page(self, *, case_id: str | None, province: str | None, page: int) -> tuple[list[dict], int]:
        """One page of reports, newest first: report and case ids, when and the province, nothing
        that could point to a person (lists are open to every caseworker, assigned or not)."""
        query = {k: v for k, v in (("case_id", case_id), ("detention.province", province)) if v}
        projection = self.LIST_FIELDS
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

    @staticmethod
    def near_bucket_ids(birth_year: int | None, province: str | None) -> list[str]:
        """The buckets a report with this birth year and province belongs to."""
        ids = [f"y:{birth_year}"] if birth_year is not None else []
        return ids + ([f"p:{province}"] if province else [])

    def add_to_near_buckets(self, report: dict) -> None:
        """File a stored report in its near-match buckets (idempotent: the same entry once)."""
        entry = {"r": report["_id"], "c": report["case_id"], "y": report["person"].get("birth_year"),
                 "p": report["detention"].get("province"), "g": report.get("name_grams") or []}
        for bucket in self.near_bucket_ids(entry["y"], entry["p"]):
            self.near.update_one({"_id": bucket}, {"$addToSet": {"entries": entry}}, upsert=True)

    def near_entries(self, birth_year: int | None, province: str | None) -> list[dict]:
        """Every entry of the buckets of this birth year and this province (read by _id)."""
        entries = []
        for bucket in self.near_bucket_ids(birth_year, province):
            doc = self.near.find_one({"_id": bucket})
            entries.extend(doc["entries"] if doc else [])
        return entries

    def current_case(self, case_id: str) -> str:
        """The case a case id stands for now: itself, or the case it was merged into."""
        seen = set()
        while case_id not in seen:
            seen.add(case_id)
            merge = self.get_merge(case_id)
            if merge is None:
                return case_id
            case_id = merge["into_case_id"]
        return case_id

    def reports_of_case(self, case_id: str) -> list[dict]:
        """The reports filed about a case (without their sealed fields)."""
        return list(self.reports.find({"case_id": case_id}, {"sealed": 0, "outbox": 0}))

    def latest_report_of_case(self, case_id: str) -> dict | None:
        """The newest report filed under a case (sealed fields included), or None."""
        return next(iter(self.reports.find({"case_id": case_id}).sort("created_at", DESCENDING).limit(1)), None)

    def case_known(self, case_id: str) -> bool:
        """True if any report belongs to this case."""
        return self.reports.find_one({"case_id": case_id}, {"_id": 1}) is not None

    def get_merge(self, case_id: str) -> dict | None:
        """The merge that closed this case, if any."""
        return self.merges.find_one({"_id": case_id})

    def insert_merge(self, doc: dict) -> None:
        """Record a merge with its case.merged event (one write); DuplicateKeyError if the case
        was merged already."""
        insert_with_outbox(self.merges, doc)

    def move_reports(self, case_id: str, into_case_id: str) -> int:
        """Re-file a merged case's reports, and its people in the match index, under the case it
        was merged into. Idempotent: running it again after a crash finishes the move."""
        moved = self.reports_of_case(case_id)
        for report in moved:
            self.reports.update_one({"_id": report["_id"]},
                                    {"$set": {"case_id": into_case_id, "moved_from_case_id": case_id}})
            if report.get("person_key"):
                self.persons.update_one({"_id": report["person_key"]}, {"$set": {"case_id": into_case_id}})
        return len(moved)

    def mark_distinct(self, case_a: str, case_b: str, *, actor: str, now: dt.datetime) -> None:
        """Record a caseworker's finding that two cases are different people."""
        pair = sorted((case_a, case_b))
        self.distinct.replace_one({"_id": "|".join(pair)}, {"cases": pair, "by": actor, "at": now}, upsert=True)

    def is_distinct(self, case_a: str, case_b: str) -> bool:
        """True if a caseworker has said these two cases are not the same person (one lookup by
        _id: FerretDB finds it without scanning)."""
        return self.distinct.find_one({"_id": "|".join(sorted((case_a, case_b)))}, {"_id": 1}) is not None

    def record_access(self, entry: dict) -> None:
        """Append to the audit trail of identifying-data reads."""
        self.audit.insert_one(entry)

    def record_accesses(self, entries: list[dict]) -> None:
        """Append several reads to the audit trail in one write."""
        if entries:
            self.audit.insert_many(entries)
