"""The only module that talks to the reporting service's MongoDB database."""

from __future__ import annotations

import logging
import threading
import time

from pymongo import DESCENDING, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.bus import insert_with_outbox

from services.reporting.population import Population

log = logging.getLogger(__name__)

RECORDS = "records"
POINTER = {"_id": "records"}
JOURNAL = "journal"  # what changed, batch by batch: how every web process keeps its columns current
JOURNAL_META = {"_id": "journal"}
JOURNAL_RECORDS_PER_ENTRY = 250  # an entry stays far below the 16 MiB document limit
JOURNAL_KEPT = 4000  # entries kept; a reader further behind loads every record again
# Replacements per bulk write: FerretDB 1.24 on SQLite writes a few dozen by _id in well under a
# millisecond each, but a bulk of hundreds goes far slower than that (measured: bench/scale.py).
WRITE_CHUNK = 50


def previous_rev(record: dict) -> int | None:
    """The rev of the version a record was made from (None: a record stored before revs, or none)."""
    rev = record.get("rev")
    return rev - 1 if isinstance(rev, int) and rev > 1 else None


def entry_id(seq: int) -> str:
    """A journal entry's _id: its number as fixed-width text (FerretDB on SQLite finds a document
    by a text _id from its index, but reads the whole collection for a number)."""
    return f"{seq:012d}"


class PartitionFence:
    """Which consumer instance writes the records of a partition's cases now.

    The topics share one partition count and the case id as key, and the group hands out partitions
    by number (shared/bus.py: Batch), so each case's events go to one instance at a time. When an
    instance is handed partitions, it writes its token into each one's fence (`meta`, _id
    `fence-<n>`) before its first batch from it, and forgets the records it remembered (another
    instance may have changed them). Before each batch it reads the fences of the batch's
    partitions (a few reads by _id, where the alternative is one read per record): all its own,
    it writes without reading each record's stored rev; one taken by an instance handed that
    partition since (this one was dropped from the group and has not yet rejoined, or a partition
    count differs), it goes back to reading the revs (ReportingStore.save_many checked) and
    claims nothing until it is handed partitions again. Like the rev check itself (a read, then a
    write: FerretDB has no conditional replace that is not a scan), the read of the fence and the
    write are two steps: a write can still land in the moment between them."""

    def __init__(self, meta, token: str):
        self.meta, self.token = meta, token
        self.rebalances: int | None = None
        self.claimed: set[int] = set()
        self.lost: set[int] = set()

    @staticmethod
    def _id(partition: int) -> dict:
        return {"_id": f"fence-{partition}"}

    def holds(self, batch, forget) -> bool:
        """True if this instance alone writes the cases of this batch's partitions (claiming
        those handed to it since it last looked); `forget` empties its remembered records."""
        if batch is None or not batch.copartitioned:
            return False
        if batch.rebalances != self.rebalances:
            self.rebalances, self.claimed, self.lost = batch.rebalances, set(), set()
            forget()
        for partition in sorted(batch.partitions - self.claimed - self.lost):
            self.meta.replace_one(self._id(partition), {"owner": self.token}, upsert=True)
            self.claimed.add(partition)
        for partition in sorted(batch.partitions & self.claimed):
            fence = self.meta.find_one(self._id(partition))
            if fence is None or fence.get("owner") != self.token:
                log.warning("reporting: partition %d is written by another consumer instance now; "
                            "reading each record's rev until partitions are handed out again", partition)
                self.claimed.discard(partition)
                self.lost.add(partition)
                forget()
        return not self.lost and batch.partitions <= self.claimed


class ReportingStore:
    """The records: one document per case, built from events only (never another service's
    database), in the collection `meta` points at (a rebuild fills a new one, then moves the
    pointer: one write, so readers see the old records or the new, never a half-built set);
    `snapshots`: frozen figures for a submission, each with its outbox."""

    def __init__(self, db: Database, records: str | None = None, journal: bool = True, shared: bool = True):
        self.db = db
        self._fixed = records
        # False only in a store pinned while no rebuild was catching up into the records in use
        # (pinned()): a consumer instance that holds its partitions may then write without reading
        # each record's stored rev first (PartitionFence).
        self.shared = shared
        self.meta = db["meta"]
        self.snapshot_parts = db["snapshot_parts"]  # a snapshot's counted cases and their events (snapshots.py)
        self.snapshots = db["snapshots"]
        self.journal = db[JOURNAL]
        self.journaling = journal  # False while a rebuild fills records no reader uses yet

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
        """This store fixed to the records in use now: one pointer read for several operations
        (which also says whether a rebuild is catching up into them: `shared`)."""
        if self._fixed:
            return ReportingStore(self.db, records=self._fixed, journal=self.journaling)
        pointer = self.meta.find_one(POINTER) or {}
        catching_up = pointer.get("catching_up_until", 0) > time.time()
        return ReportingStore(self.db, records=pointer.get("collection", RECORDS), journal=self.journaling,
                              shared=catching_up)

    def point_to(self, collection: str, catching_up_s: float = 0) -> None:
        """Make `collection` the records in use (readers then load them afresh); with catching_up_s,
        say that a rebuild writes into them too for that long at most (caught_up() ends it sooner),
        so that consumers read each record's rev before replacing it meanwhile."""
        pointer = {"collection": collection, **({"catching_up_until": time.time() + catching_up_s}
                                                 if catching_up_s else {})}
        self.meta.replace_one(POINTER, pointer, upsert=True)
        self._write_journal(collection, [], reset=True)

    def caught_up(self, collection: str) -> None:
        """A rebuild is no longer writing into `collection` (no new journal entry: readers keep what they have)."""
        self.meta.replace_one(POINTER, {"collection": collection}, upsert=True)

    def clear_records(self) -> None:
        """Delete every record (tests; readers load afresh)."""
        self.records.delete_many({})
        self._write_journal(self.records_name, [], reset=True)

    def get(self, case_id: str) -> dict | None:
        """A case's record, or None."""
        return self.records.find_one({"_id": case_id})

    def ids(self) -> set[str]:
        """Every case id that has a record (one read of the collection)."""
        return {doc["_id"] for doc in self.records.find({}, {"_id": 1})}

    def get_many(self, case_ids) -> dict[str, dict]:
        """The records of these cases that exist, by case id: one read by _id each (FerretDB on
        SQLite answers those from its index; a query with $in reads the whole collection)."""
        found = {}
        for case_id in case_ids:
            record = self.records.find_one({"_id": case_id})
            if record is not None:
                found[case_id] = record
        return found

    def save_many(self, records: list[dict], new_ids: set[str] | frozenset = frozenset(),
                  checked: bool = True) -> set[str]:
        """Store changed records, each only over the version it was made from, and return the ids
        of those that were not stored because another writer stored a newer version first (two
        consumer instances: a partition moved between them, or a record remembered by one was
        changed by the other). A record's `rev` counts its versions: one made from version n is
        rev n+1 and replaces the stored record only where that is still rev n (a record stored
        before revs has none: rev None); one of `new_ids` (known to have none stored yet) is
        inserted, many at a time (FerretDB inserts ten times faster than it replaces), and
        refused if one exists. The caller applies the events of refused records again from what
        is stored (handlers.on_batch: RetryLater).

        checked=False: the caller is the records' only writer (a consumer instance holding the
        fences of its partitions, or a rebuild filling records nobody else uses yet), so the
        stored revs are not read first (they were nearly half the time of a batch: one read each).

        First the journal entry readers follow, then the records. A crash between the two leaves
        an entry for records not written; the events are delivered again, so the records follow
        and the entry was only early. Refused records were journalled too: the versions stored
        are journalled again after them (a reader keeps the highest rev it has read of a record,
        so that entry cannot undo a newer one)."""
        if not records:
            return set()
        if self.journaling:
            self._write_journal(self.records_name, records)
        fresh = [r for r in records if r["_id"] in new_ids]
        known = [r for r in records if r["_id"] not in new_ids]
        refused: set[str] = set()
        if fresh:
            refused |= self._refused(fresh, lambda: self.records.insert_many(fresh, ordered=False))
        for i in range(0, len(known), WRITE_CHUNK):
            refused |= self._replace(known[i:i + WRITE_CHUNK], checked)
        if refused and self.journaling:
            self._write_journal(self.records_name, list(self.get_many(sorted(refused)).values()))
        return refused

    def _replace(self, chunk: list[dict], checked: bool = True) -> set[str]:
        """Replace each record whose stored version is the one it was made from, insert those with
        none stored; the ids refused. The stored rev is read by _id first, and the replace is by
        _id alone: FerretDB 1.24 on SQLite finds a document by _id from its index but reads the
        whole collection for a filter with any other field (50 replaces filtered on _id and rev
        took 11 s at 5,000 records, 0.7 s on _id alone; 50 reads of the rev by _id 33 ms).
        Unchecked (the only writer), each is replaced, or inserted where none is stored (upsert)."""
        if not checked:
            self.records.bulk_write([ReplaceOne({"_id": r["_id"]}, r, upsert=True) for r in chunk], ordered=False)
            return set()
        refused, replace, insert = set(), [], []
        for record in chunk:
            stored = self.records.find_one({"_id": record["_id"]}, {"rev": 1})
            if stored is None:
                insert.append(record)
            elif stored.get("rev") != previous_rev(record):
                refused.add(record["_id"])
            else:
                replace.append(record)
        if replace:
            self.records.bulk_write([ReplaceOne({"_id": r["_id"]}, r) for r in replace], ordered=False)
        if insert:
            refused |= self._refused(insert, lambda: self.records.insert_many(insert, ordered=False))
        return refused

    @staticmethod
    def _refused(batch: list[dict], write) -> set[str]:
        """The ids of `batch` that write() refused as duplicates (any other error is raised)."""
        try:
            write()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            taken = {batch[e["index"]]["_id"] for e in errors if e.get("code") == 11000}
            if len(taken) != len(errors):
                raise
            return taken
        return set()

    def _write_journal(self, collection: str, records: list[dict], reset: bool = False) -> None:
        """Journal entries numbered 1, 2, ... (the last number in `meta`; entry_id), each with the changed
        records without their applied event ids; the entry JOURNAL_KEPT back is dropped."""
        slim = [{k: v for k, v in r.items() if k != "applied_event_ids"} for r in records]
        parts = [slim[i:i + JOURNAL_RECORDS_PER_ENTRY] for i in range(0, len(slim), JOURNAL_RECORDS_PER_ENTRY)] or [[]]
        meta = self.meta.find_one(JOURNAL_META)
        seq = meta["seq"] if meta else 0
        for part in parts:
            while True:
                seq += 1
                try:
                    self.journal.insert_one({"_id": entry_id(seq), "seq": seq, "collection": collection,
                                             "reset": reset, "records": part})
                    break
                except DuplicateKeyError:
                    continue  # an entry whose number was not yet in meta (a crash between the two)
            if seq > JOURNAL_KEPT:
                self.journal.delete_one({"_id": entry_id(seq - JOURNAL_KEPT)})
        self.meta.replace_one(JOURNAL_META, {"seq": seq}, upsert=True)

    def all_records(self) -> list[dict]:
        """Every case's record, without the bookkeeping of applied events (a full read: for a
        rebuild's checks and tests; pages and the API count from `LivePopulation`)."""
        return list(self.records.find({}, {"applied_event_ids": 0, "rev": 0}))

    def insert_snapshot(self, doc: dict) -> None:
        """A snapshot and its upr.snapshot_taken events: one write."""
        insert_with_outbox(self.snapshots, doc)

    def get_snapshot(self, snapshot_id: str) -> dict | None:
        """A snapshot, or None."""
        return self.snapshots.find_one({"_id": snapshot_id}, {"outbox": 0})

    def insert_snapshot_part(self, part: dict) -> None:
        """A part of a snapshot's counted cases, with its outbox (DuplicateKeyError if its _id exists)."""
        insert_with_outbox(self.snapshot_parts, part)

    def has_snapshot_part(self, part_id: str) -> bool:
        return self.snapshot_parts.find_one({"_id": part_id}, {"_id": 1}) is not None

    def get_snapshot_part(self, part_id: str) -> dict | None:
        """A snapshot part's case ids (without its outbox), or None."""
        return self.snapshot_parts.find_one({"_id": part_id}, {"outbox": 0})

    def list_snapshots(self) -> list[dict]:
        """Snapshots, newest first, without their figures."""
        return list(self.snapshots.find({}, {"snapshot_id": 1, "cycle": 1, "as_of": 1, "since": 1, "title": 1,
                                             "taken_at": 1, "taken_by": 1, "case_count": 1})
                    .sort("taken_at", DESCENDING))


class LivePopulation:
    """One process's columns of every record (population.py), kept current from the journal:
    loaded once from the records, then, at each use (or at most every `refresh_s`), the journal
    entries written since (reads by _id, under a millisecond each: a page reflects every batch
    the consumer stored before it was asked for). A reader that fell behind the entries kept, or
    meets a reset (a rebuild moved to new records; records cleared), loads everything again."""

    def __init__(self, db: Database, refresh_s: float = 0.0):
        self.store = ReportingStore(db)
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._population: Population | None = None
        self._collection: str | None = None
        self._seq = 0
        self._checked = 0.0
        self._revs: dict[str, int] = {}  # each record's highest rev read (save_many)

    def _load(self) -> None:
        began = time.monotonic()
        meta = self.store.meta.find_one(JOURNAL_META)
        self._seq = meta["seq"] if meta else 0
        self._collection = self.store.records_name
        self._revs = {}
        self._population = Population(self._noting_revs(self.store.db[self._collection].find({}, {"applied_event_ids": 0})))
        log.info("reporting records: %d loaded from %s in %.1f s (journal at %d)", len(self._population),
                 self._collection, time.monotonic() - began, self._seq)

    def _noting_revs(self, records):
        for record in records:
            if isinstance(record.get("rev"), int):
                self._revs[record["_id"]] = record["rev"]
            yield record

    def _put(self, record: dict) -> None:
        """A record from the journal, unless a newer version of it was read already (an entry of
        a writer that lost a race, or the stored version journalled after it while a newer one was
        on its way)."""
        rev = record.get("rev")
        if isinstance(rev, int):
            if rev < self._revs.get(record["_id"], 0):
                return
            self._revs[record["_id"]] = rev
        self._population.put(record)

    def _follow(self) -> None:
        while True:
            entry = self.store.journal.find_one({"_id": entry_id(self._seq + 1)})
            if entry is None:
                # Entries are written before their number is, so one missing below the number
                # written was dropped: this reader fell too far behind.
                meta = self.store.meta.find_one(JOURNAL_META)
                if meta and meta["seq"] > self._seq and \
                        self.store.journal.find_one({"_id": entry_id(self._seq + 1)}, {"_id": 1}) is None:
                    self._load()
                    continue
                return
            if entry.get("reset") or entry["collection"] != self._collection:
                self._load()
                continue
            for record in entry["records"]:
                self._put(record)
            self._seq = entry["seq"]

    def get(self) -> Population:
        """The columns, as current as the journal was at most `refresh_s` ago."""
        with self._lock:
            if self._population is None:
                self._load()
            if time.monotonic() - self._checked >= self.refresh_s:
                self._follow()
                self._checked = time.monotonic()
            return self._population


_LIVE: dict[tuple[int, str], LivePopulation] = {}
_LIVE_LOCK = threading.Lock()


def live_population(db: Database) -> Population:
    """This process's current columns of the records of `db` (one LivePopulation per database)."""
    key = (id(db.client), db.name)
    with _LIVE_LOCK:
        live = _LIVE.get(key)
        if live is None:
            live = _LIVE[key] = LivePopulation(db)
    return live.get()
