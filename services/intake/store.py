"""The only module that talks to intake's MongoDB database."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.aggregates import Conflict, VersionedStore
from shared.audit import HEAD_ID, AuditTrail, audit_trail
from shared.audit_events import WRITE_ACTIONS
from shared.bus import insert_with_outbox
from shared.listindex import ChangeJournal, Column, ListIndex, read_in_order, shared_index


def _code(value):
    """A value as a column code: text and None as they are, anything else (only in an entry edited
    by hand) a value of its own that no filter equals."""
    return value if value is None or isinstance(value, str) else ("other", repr(value))


def _codes(value) -> list:
    """The values of a field a filter matches as an array (one value on its own counts as one)."""
    if value is None:
        return []
    return [_code(v) for v in value] if isinstance(value, (list, tuple)) else [_code(value)]


def _when(value):
    """A date column's value (anything but a date sorts last, as a missing one does)."""
    return value if isinstance(value, dt.datetime) else None


# The report list's columns: its two filters and its order (newest first).
REPORT_COLUMNS = {
    "case_id": Column("code", lambda r: _code(r.get("case_id"))),
    "province": Column("code", lambda r: _code((r.get("detention") or {}).get("province"))),
    "created_at": Column("number", lambda r: _when(r.get("created_at"))),
}
# The audit trail's: who, what kind of action (none recorded: a read), the case an entry is about
# or the cases a write touched, reads out of assignment, and when.
AUDIT_COLUMNS = {
    "user_id": Column("code", lambda e: _code(e.get("user_id"))),
    "action": Column("code", lambda e: _code(e.get("action"))),
    "case_id": Column("code", lambda e: _code(e.get("case_id"))),
    "case_ids": Column("multi", lambda e: _codes(e.get("case_ids"))),
    "out_of_assignment": Column("bool", lambda e: e.get("out_of_assignment") is True),
    "at": Column("number", lambda e: _when(e.get("at"))),
}


NEAR_LOCK_STALE_S = 10.0  # a near-match bucket's lock held longer was left by a process that died
PROCESS = uuid.uuid4().hex  # who holds a lock: this process (and the thread, below)


class IntakeStore:
    """Reports (identifying fields encrypted), the person match index, the audit trail, and who
    may read what: the assigned caseworkers of each case and the hourly read counts."""

    PAGE_SIZE = 50

    def __init__(self, db: Database):
        self.db = db
        self.reports = db["reports"]
        # Each report stored or changed, by _id, after the write: the report list's columns follow it.
        self.reports_journal = ChangeJournal(db["reports_journal"])
        self.persons = db["persons"]
        self.audit = db["audit"]
        self.merges = db["merges"]
        self.distinct = db["distinct_pairs"]
        # Near-match buckets, one document per birth year ("y:1991") and per province ("p:Jilin"),
        # each listing its reports' hashed name pairs: a review reads two documents by _id
        # (FerretDB v1 scans a whole collection for any other filter: ~250 ms per 1,000 reports).
        # Intake's consumers write them (two instances may, each with its partitions) under a lock
        # per bucket (`_bucket_locked`).
        self.near = db["near_buckets"]
        self.near_locks = db["near_bucket_locks"]
        # Need to know. The caseworkers assigned to a case: numbered versions of one list per case
        # (shared/aggregates.py: on FerretDB v1 an insert with a unique _id is atomic and an update
        # is not), every lookup by _id.
        self.assignments = VersionedStore(db, "assignments")
        # The hourly limit of identifying reads: one document per read granted, numbered 1..limit
        # within the user's hour ("<user_id>|<yyyymmddhh>|00001"). Inserts with a unique _id only,
        # so readers in any number of threads and processes never get past the limit together.
        # "<user_id>|<yyyymmddhh>" holds the next number to try: a hint, whose lost updates only
        # cost a few more inserts.
        self.read_slots = db["read_slots"]
        # A user who reached the limit: one alert per user and hour (the hint of its refusals), and
        # each refused read numbered in read_refusals the same way.
        self.read_alerts = db["read_limit_alerts"]
        self.read_refusals = db["read_refusals"]

    def ensure_indexes(self) -> None:
        """Indexes the queries below rely on (idempotent)."""
        self.reports.create_index([("case_id", ASCENDING)])
        self.reports.create_index([("created_at", DESCENDING)])
        self.audit.create_index([("report_id", ASCENDING)])
        self.assignments.ensure_indexes()

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
        """Store a report together with its outbox: one document write (then its journal entry)."""
        insert_with_outbox(self.reports, doc)
        self._changed(doc["_id"])

    def journal_report(self, report_id: str) -> None:
        """Journal a stored report again (a repeat of a sending that may have lost its entry)."""
        self._changed(report_id)

    def _changed(self, report_id: str) -> None:
        """Journal a report written, after the write: a list that reads the entry reads this
        state or a newer one. (Re-sealing under a key of its own, datakeys.migrate, changes no
        field a list shows, so it is not journalled.)"""
        self.reports_journal.append(report_id)

    def report_index(self) -> ListIndex:
        """This process's columns of the report list (filtered and counted in memory, rows read by _id)."""
        return shared_index(("reports", id(self.db.client), self.db.name), lambda: ListIndex(
            self.reports, REPORT_COLUMNS, order="created_at", journal=self.reports_journal,
            projection={"case_id": 1, "detention.province": 1, "created_at": 1}))

    def audit_index(self) -> ListIndex:
        """This process's columns of the audit trail: entries are numbered (_id = position), so the
        collection is its own journal; older entries without a position come from the load. An
        entry deleted before this process followed it is passed over (the head says what was written)."""
        return shared_index(("audit", id(self.db.client), self.db.name), lambda: ListIndex(
            self.audit, AUDIT_COLUMNS, order="at", journal=None, written=self.audit_written,
            projection={"user_id": 1, "action": 1, "case_id": 1, "case_ids": 1, "out_of_assignment": 1, "at": 1}))

    def audit_written(self) -> int:
        """The last position of the audit trail known written (its hint `audit_head`; 0 if none)."""
        seq = (self.db["audit_head"].find_one({"_id": HEAD_ID}, {"seq": 1}) or {}).get("seq")
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0

    def get_report(self, report_id: str) -> dict | None:
        """A stored report, or None."""
        return self.reports.find_one({"_id": report_id})

    LIST_FIELDS = {"case_id": 1, "created_at": 1, "detention.province": 1}

    def page(self, *, case_id: str | None, province: str | None, page: int) -> tuple[list[dict], int]:
        """One page of reports, newest first (then by _id, larger first): report and case ids, when
        and the province, nothing that could point to a person (lists are open to every caseworker,
        assigned or not). Filtered and counted from the columns; the page's reports read by _id."""
        equal = {k: v for k, v in (("case_id", case_id), ("province", province)) if v}
        ids, total = self.report_index().current().select(equal=equal, offset=(page - 1) * self.PAGE_SIZE,
                                                          limit=self.PAGE_SIZE)
        return read_in_order(self.reports, ids, self.LIST_FIELDS), total

    def audit_page(self, *, case_id: str | None, user_id: str | None, page: int, action: str | None = None,
                   out_of_assignment: bool = False) -> tuple[list[dict], int]:
        """One page of the audit trail, newest first. `action`: "read" (entries from before
        `action` was recorded are reads), "write" (any write: WRITE_ACTIONS), or one action."""
        equal: dict = {"user_id": user_id} if user_id else {}
        among, not_among, holding = {}, {}, {}
        if case_id:  # the case an entry is about, or one of the cases a write touched (a merge: both)
            holding[("case_id", "case_ids")] = case_id
        if action == "read":  # no action recorded is a read too
            not_among["action"] = WRITE_ACTIONS
        elif action == "write":
            among["action"] = WRITE_ACTIONS
        elif action:
            equal["action"] = action
        if out_of_assignment:
            equal["out_of_assignment"] = True
        ids, total = self.audit_index().current().select(
            equal=equal, among=among, not_among=not_among, holding=holding, offset=(page - 1) * self.PAGE_SIZE,
            limit=self.PAGE_SIZE)
        return read_in_order(self.audit, ids, {"_id": 0, "prev": 0, "mac": 0}), total

    @staticmethod
    def near_bucket_ids(birth_year: int | None, province: str | None) -> list[str]:
        """The buckets a report with this birth year and province belongs to."""
        ids = [f"y:{birth_year}"] if birth_year is not None else []
        return ids + ([f"p:{province}"] if province else [])

    @contextlib.contextmanager
    def _bucket_locked(self, bucket: str):
        """Hold one near-match bucket's lock while changing it. FerretDB 1.24 applies an update as a
        read and then a write, so two consumer instances adding to one bucket at the same moment
        could each write back the list without the other's entry (measured: two threads, 100
        $addToSet each, 22 entries lost); an insert of a unique _id is atomic, so the lock is one.
        A lock older than NEAR_LOCK_STALE_S was left by a process that died holding it; one this
        thread holds was left by its own attempt that failed (the database went away before the
        lock could be given back: a thread does one thing at a time), so it goes on at once."""
        key, owner = f"lock|{bucket}", f"{PROCESS}:{threading.get_ident()}"
        while True:
            try:
                self.near_locks.insert_one({"_id": key, "at": time.time(), "owner": owner})
                break
            except DuplicateKeyError:
                held = self.near_locks.find_one({"_id": key})
                if held is not None and held.get("owner") == owner:
                    break
                if held is not None and time.time() - held["at"] > NEAR_LOCK_STALE_S:
                    self.near_locks.delete_one({"_id": key, "at": held["at"]})
                time.sleep(0.002)
        try:
            yield
        finally:  # only this holder's lock: one slower than NEAR_LOCK_STALE_S may have been taken over
            self.near_locks.delete_one({"_id": key, "owner": owner})

    def add_to_near_buckets(self, report: dict) -> None:
        """File a stored report in its near-match buckets (idempotent: the same entry once)."""
        entry = {"r": report["_id"], "c": report["case_id"], "y": report["person"].get("birth_year"),
                 "p": report["detention"].get("province"), "g": report.get("name_grams") or []}
        for bucket in self.near_bucket_ids(entry["y"], entry["p"]):
            with self._bucket_locked(bucket):
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
            self._changed(report["_id"])
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

    def audit_trail(self) -> AuditTrail:
        """The audit trail as a hash chain, sealed with intake's audit key (shared/audit.py)."""
        return audit_trail(self.db)

    def record_access(self, entry: dict) -> None:
        """Append to the audit trail (numbered, chained to the entry before, sealed)."""
        self.audit_trail().append(entry)

    def record_accesses(self, entries: list[dict]) -> None:
        """Append several reads to the audit trail, in order, each at a position of its own."""
        if entries:
            self.audit_trail().append_many(entries)

    # --- need to know: assignments -------------------------------------------------------------

    def assignees(self, case_id: str) -> list[dict] | None:
        """The users assigned to a case, in the order assigned; None if the case has no assignment
        record (cases reported before assignments were kept: assigned to nobody)."""
        state = self.assignments.get(case_id)
        return None if state is None else list(state["assignees"])

    def is_assigned(self, case_id: str, user_id: str) -> bool:
        """True if the user is among the case's assignees."""
        return any(a["user_id"] == user_id for a in self.assignees(case_id) or [])

    def assign_first(self, case_id: str, entry: dict, now: dt.datetime) -> None:
        """Record who filed a new case's first report as its first assignee: one insert (a case
        that already has assignees, e.g. a report sent again, gets the entry added once)."""
        try:
            self.assignments.append(case_id, 1, {"case_id": case_id, "assignees": [entry]}, [], now)
        except Conflict:
            self.add_assignees(case_id, [entry], now)

    def add_assignees(self, case_id: str, entries: list[dict], now: dt.datetime) -> list[dict]:
        """Add users (by user_id) to a case's assignees, each once; returns the entries that were
        not there yet. Concurrent writers each store a new version: none is lost."""
        added: list[dict] = []

        def decide(current: dict | None):
            assigned = list((current or {}).get("assignees", []))
            have = {a["user_id"] for a in assigned}
            added.clear()
            for entry in entries:
                if entry["user_id"] not in have:
                    have.add(entry["user_id"])
                    added.append(entry)
            if not added:
                return None
            return {"case_id": case_id, "assignees": assigned + added}, []

        self.assignments.save(case_id, decide, publisher=None, topic="", now=now)
        return list(added)

    def case_exists(self, case_id: str) -> bool:
        """True if intake knows this case: by its assignees or its merge (read by _id), else by a
        report filed under it (a scan; only cases from before assignments were kept get there)."""
        return self.assignments.latest_version(case_id) is not None or self.get_merge(case_id) is not None \
            or self.case_known(case_id)

    # --- consent: what the person agreed to, as caseworkers recorded it -------------------------

    @property
    def consent_commands(self) -> Collection:
        """Each consent a caseworker recorded for a case (append only, the newest counts), with its
        consent.changed event in the outbox and its reason sealed."""
        return self.db["consent_commands"]

    def insert_consent_command(self, doc: dict) -> None:
        """Store a recorded consent with its event (one write)."""
        insert_with_outbox(self.consent_commands, doc)

    def latest_consent_command(self, case_id: str) -> dict | None:
        """The newest consent recorded for a case (without its sealed reason), or None."""
        return next(iter(self.consent_commands.find({"case_id": case_id}, {"reason_sealed": 0, "outbox": 0})
                         .sort("at", DESCENDING).limit(1)), None)

    # --- erasure: a person's identifying data destroyed on request -------------------------------

    @property
    def erasures(self) -> Collection:
        """One record per erased case (_id = case id: a case is erased once), with its events in
        the outbox and the admin's reason sealed under the master key (it outlives the erasure)."""
        return self.db["erasures"]

    def insert_erasure(self, doc: dict) -> None:
        """Store an erasure with its events (one write); DuplicateKeyError if the case was erased."""
        insert_with_outbox(self.erasures, doc)

    def get_erasure(self, case_id: str) -> dict | None:
        """The erasure of a case (without its sealed reason and outbox), or None."""
        return self.erasures.find_one({"_id": case_id}, {"reason_sealed": 0, "outbox": 0})

    def cases_merged_into(self, case_id: str) -> list[str]:
        """Every case merged into this one, directly or through another (their records are the
        same person's)."""
        found, todo = [], [case_id]
        while todo:
            for merge in self.merges.find({"into_case_id": todo.pop()}, {"_id": 1}):
                if merge["_id"] not in found and merge["_id"] != case_id:
                    found.append(merge["_id"])
                    todo.append(merge["_id"])
        return found

    def consent_command_ids(self, case_ids: list[str]) -> list[str]:
        """The ids of the consents recorded for these cases."""
        return [d["_id"] for d in self.consent_commands.find({"case_id": {"$in": case_ids}}, {"_id": 1})]

    def forget_report(self, report_id: str, now: dt.datetime) -> None:
        """Overwrite a report's sealed fields and drop its keyed hashes of the name (the blind
        index, the name's letter pairs, the submission fingerprint): each could confirm a guess."""
        self.reports.update_one({"_id": report_id}, {"$set": {"sealed": None, "erased_at": now},
                                                     "$unset": {"person_key": "", "name_grams": "", "submission": ""}})
        self._changed(report_id)

    def forget_persons(self, case_ids: list[str], person_keys: list[str]) -> None:
        """Drop the person index entries of these cases and these blind-index values."""
        self.persons.delete_many({"_id": {"$in": person_keys}})
        self.persons.delete_many({"case_id": {"$in": case_ids}})

    def forget_consent_reasons(self, command_ids: list[str]) -> None:
        """Overwrite the sealed reasons of these recorded consents."""
        if command_ids:
            self.consent_commands.update_many({"_id": {"$in": command_ids}},
                                              {"$set": {"reason_sealed": None, "reason_erased": True}})

    def drop_from_near_buckets(self, report_ids: list[str], buckets: list[str]) -> None:
        """Take these reports' entries (their hashed name pairs) out of these near-match buckets.
        Under the bucket's lock, so an append by another consumer instance is never lost."""
        gone = set(report_ids)
        for bucket in buckets:
            with self._bucket_locked(bucket):
                doc = self.near.find_one({"_id": bucket})
                if doc and any(e.get("r") in gone for e in doc["entries"]):
                    self.near.update_one({"_id": bucket},
                                         {"$set": {"entries": [e for e in doc["entries"] if e.get("r") not in gone]}})

    # --- need to know: the hourly read limit ---------------------------------------------------

    @staticmethod
    def hour_key(user_id: str, hour: dt.datetime) -> str:
        """The _id prefix of a user's reads in one clock hour."""
        return f"{user_id}|{hour:%Y%m%d%H}"

    @staticmethod
    def _numbered(key: str, number: int) -> str:
        return f"{key}|{number:05d}"

    def _claim_number(self, numbered: Collection, hints: Collection, key: str, limit: int | None,
                      doc: dict) -> int | None:
        """Insert the first free numbered document under `key` (`<key>|00001`, ...) up to `limit`
        (None: no limit) and return its number, or None if every number to the limit is taken.
        Each number is one insert with a unique _id, so concurrent claimants never share one."""
        hint = hints.find_one({"_id": key}, {"next": 1}) or {}
        number = hinted = max(1, hint.get("next", 1))
        while limit is None or number <= limit:
            try:
                numbered.insert_one({"_id": self._numbered(key, number), **doc})
            except DuplicateKeyError:
                number += 1
                continue
            self._hint(hints, key, number + 1)
            return number
        if number > hinted:
            self._hint(hints, key, number)  # the next reader of this hour is refused at once
        return None

    @staticmethod
    def _hint(hints: Collection, key: str, number: int, on_insert: dict | None = None) -> None:
        """Raise a key's next-number hint (upsert). A lost update leaves it lower, which only costs
        the next claimant a few more inserts."""
        update: dict = {"$max": {"next": number}}
        if on_insert:
            update["$setOnInsert"] = on_insert
        try:
            hints.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            pass  # a concurrent first upsert of the same key made it

    def _count_numbered(self, numbered: Collection, key: str, start: int) -> int:
        """How many numbered documents a key has: they are contiguous from 1 (each claim takes the
        first free number from a hint never above it), so probe from the hint to the first gap."""
        number = max(1, start)
        while numbered.find_one({"_id": self._numbered(key, number)}, {"_id": 1}) is not None:
            number += 1
        return number - 1

    def take_read(self, user_id: str, hour: dt.datetime, limit: int, doc: dict) -> bool:
        """Count one identifying read of this user in this hour, if the limit allows; False if not."""
        return self._claim_number(self.read_slots, self.read_slots, self.hour_key(user_id, hour), limit,
                                  {"user_id": user_id, **doc}) is not None

    def reads_taken(self, user_id: str, hour: dt.datetime) -> int:
        """The identifying reads counted for this user in this hour."""
        key = self.hour_key(user_id, hour)
        hint = self.read_slots.find_one({"_id": key}, {"next": 1}) or {}
        return self._count_numbered(self.read_slots, key, hint.get("next", 1))

    def record_refusal(self, *, user_id: str, username: str | None, hour: dt.datetime, limit: int,
                       now: dt.datetime, doc: dict) -> int:
        """A read refused for the limit: the user's alert for this hour (made by the first refusal)
        and the refusal, numbered; returns its number."""
        key = self.hour_key(user_id, hour)
        self._hint(self.read_alerts, key, 1, on_insert={"user_id": user_id, "username": username, "hour": hour,
                                                        "limit": limit, "first_refused_at": now})
        return self._claim_number(self.read_refusals, self.read_alerts, key, None,
                                  {"user_id": user_id, "at": now, **doc})

    def read_limit_alerts(self, *, since: dt.datetime | None = None, limit: int = 100) -> list[dict]:
        """Users who reached the hourly limit, newest hour first: who, which hour, the limit then,
        how many reads were refused, the first and last refusal."""
        query = {"hour": {"$gte": since}} if since else {}
        alerts = list(self.read_alerts.find(query).sort("hour", DESCENDING).limit(limit))
        for alert in alerts:
            refused = self._count_numbered(self.read_refusals, alert["_id"], alert.get("next", 1))
            last = self.read_refusals.find_one({"_id": self._numbered(alert["_id"], refused)}, {"at": 1}) \
                if refused else None
            alert.update(reads_refused=refused, last_refused_at=last["at"] if last else alert["first_refused_at"])
            del alert["_id"]
            alert.pop("next", None)
        return alerts


def find_account(accounts: Collection, username: str) -> dict | None:
    """A user of the identity database by username (its _id): user id, roles and whether active."""
    return accounts.find_one({"_id": username}, {"user_id": 1, "roles": 1, "active": 1})
