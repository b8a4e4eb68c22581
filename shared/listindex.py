"""Lists that do not grow with the data (issue 12): the case list, the reports, the audit trail,
appeals and UNHCR-access requests, filtered, counted and paged without a scan per request.

Why: FerretDB 1.24 on SQLite pushes no filter other than a plain `_id`, and no sort, down to
SQLite, so a list asked of the database (`count_documents`, then `find().sort().skip().limit()`)
reads the whole collection twice: 4 s per page at 10,000 cases, past the 10 s socket timeout at
30,000. A read by `_id` costs under a millisecond at any size.

So each web process keeps, for each list, the few fields it filters and sorts on as numpy columns
(a `ListIndex`): loaded once from the collection, then kept current from a `ChangeJournal`, an
append-only collection every writer adds the `_id` of each changed document to, read by `_id`.
A page is a filter over the columns (milliseconds at 100,000 rows), then one read by `_id` per row
shown, so it shows the stored documents as they are at that moment.

A writer appends to the journal after its change is stored, so a reader that sees the entry reads
the change (or a newer one). Entries are never removed: the positions held are 1..tail without a
gap (a writer claims n only after seeing n - 1), so the tail is found by probing `_id`s.
An append-only collection whose `_id`s are such positions already (the audit trail) is its own
journal: `ListIndex(..., journal=None)` follows the collection itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 1000


def position_id(n: int) -> str:
    """The `_id` of position n: fixed-width text (FerretDB on SQLite finds a text `_id` from its
    index, a numeric one only by reading the whole collection)."""
    return f"{n:012d}"


_SEEN: dict[Any, int] = {}  # journal collection -> the last position this process saw held


class ChangeJournal:
    """The ids of changed documents, in the order they were stored, shared by every writer.

    What one learns of the tail serves every ChangeJournal of the same collection in the process:
    a web process makes a store, so a journal, per request, and one starting from nothing probes
    about 2 log2(n) positions (36 reads at 300,000 entries) before each write."""

    def __init__(self, collection: Collection):
        self.collection = collection

    @property
    def _hint(self) -> int:
        """A position this process saw held (or 0)."""
        return _SEEN.get(self.collection, 0)

    @_hint.setter
    def _hint(self, n: int) -> None:
        _SEEN[self.collection] = n

    def _held(self, n: int) -> bool:
        return n <= 0 or self.collection.find_one({"_id": position_id(n)}, {"_id": 1}) is not None

    def tail(self) -> int:
        """The last position held (0 when empty): probes from the last one this process saw,
        doubling the step, then halving (a few reads by `_id` however far others wrote)."""
        low, step = self._hint, 1
        if low and not self._held(low):  # the journal was emptied since (its database made again)
            low = 0
        while self._held(low + step):
            low, step = low + step, step * 2
        high = low + step
        while high - low > 1:
            middle = (low + high) // 2
            if self._held(middle):
                low = middle
            else:
                high = middle
        self._hint = low
        return low

    def append(self, doc_id: Any) -> int:
        """Add one changed document's id at the next position; returns the position."""
        n = self.tail() + 1
        for _ in range(MAX_ATTEMPTS):
            try:
                self.collection.insert_one({"_id": position_id(n), "id": doc_id})
            except DuplicateKeyError:  # another writer took it: go on from the new tail
                n = self.tail() + 1
                continue
            self._hint = n
            return n
        raise RuntimeError(f"{self.collection.name}: no free position after {MAX_ATTEMPTS} attempts")


@dataclass
class Column:
    """How one field of a document becomes a column.

    kind: "code" (any hashable value, stored as a small integer; None is a value too),
    "bool" (missing counts as False), "number" (a float: datetimes as POSIX seconds; missing
    sorts last), "multi" (a list of values: a row matches a value it holds).
    """

    kind: str
    get: Callable[[dict], Any]


@dataclass
class _Codes:
    by_value: dict = field(default_factory=dict)

    def code(self, value: Any) -> int:
        found = self.by_value.get(value)
        if found is None:
            found = self.by_value[value] = len(self.by_value)
        return found

    def known(self, value: Any) -> int | None:
        return self.by_value.get(value)


def _number(value: Any) -> float:
    if value is None:
        return -np.inf
    if hasattr(value, "timestamp"):
        if getattr(value, "tzinfo", None) is None:  # pymongo gives naive UTC datetimes
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    return float(value)


FOLLOW_IN_REQUEST = 500  # changes a request reads itself (two reads by _id each); a larger backlog: loaded afresh in a thread


class ListIndex:
    """One process's columns of a list (see the module's text).

    `columns`: the fields to filter or sort on; `order`: the "number" column the list is sorted
    on, newest (largest) first, the same value by `_id`, larger first (the same order in every
    process); `projection`: the fields to read when loading or following (enough for every
    column's `get`); `journal`: the ChangeJournal of the collection, or None for a collection whose
    `_id`s are positions (followed as its own journal); `written` (with no journal): the last
    position known written, read when the next is missing: one missing below it was deleted (the
    audit trail tampered with) and is passed over, else the list would stop there."""

    def __init__(self, collection: Collection, columns: dict[str, Column], *, order: str,
                 projection: dict, journal: ChangeJournal | None, written: Callable[[], int] | None = None):
        self.collection = collection
        self.columns = columns
        self.order = order
        self.projection = projection
        self.journal = journal
        self.written = written
        self._lock = threading.RLock()
        self._loaded = False
        self._position = 0
        self._passed = 0  # the last written position a gap was passed for
        self._reloading: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        self._rows: dict[Any, int] = {}
        self._ids: list[Any] = []
        self._size = 0
        capacity = 1024
        self._alive = np.zeros(capacity, dtype=bool)
        self._codes = {name: _Codes() for name, c in self.columns.items() if c.kind in ("code", "multi")}
        self._data: dict[str, np.ndarray] = {}
        self._multi: dict[str, dict[int, set[int]]] = {}
        self._held: dict[str, dict[int, set[int]]] = {}  # multi column -> row -> codes it holds
        for name, column in self.columns.items():
            if column.kind == "multi":
                self._multi[name], self._held[name] = {}, {}
            else:
                dtype = {"code": np.int32, "bool": bool, "number": np.float64}[column.kind]
                self._data[name] = np.zeros(capacity, dtype=dtype)
        self._sorted: np.ndarray | None = None
        self._top: tuple = (-np.inf, "")  # the first row's (sort value, id) in the order made
        self._newest: list[int] = []  # rows added since the order was made, each at least as new as all before

    # --- keeping the columns -----------------------------------------------------------------

    def _grow(self) -> None:
        capacity = len(self._alive) * 2
        self._alive = np.resize(self._alive, capacity)
        self._alive[self._size:] = False
        for name, values in self._data.items():
            self._data[name] = np.resize(values, capacity)

    def _put(self, doc_id: Any, doc: dict | None) -> None:
        row = self._rows.get(doc_id)
        if row is not None:
            for name, held in self._held.items():  # forget what the row held
                for code in held.pop(row, ()):
                    self._multi[name][code].discard(row)
        if doc is None:
            if row is not None and self._alive[row]:
                self._alive[row] = False
                self._sorted = None
            return
        added = row is None or not self._alive[row]  # back after a deletion: a new row, placed as new
        if added:
            if self._size == len(self._alive):
                self._grow()
            row = self._rows[doc_id] = self._size
            self._ids.append(doc_id)
            self._size += 1
        before = None if added else self._data[self.order][row]
        self._alive[row] = True
        for name, column in self.columns.items():
            value = column.get(doc)
            if column.kind == "code":
                self._data[name][row] = self._codes[name].code(value)
            elif column.kind == "bool":
                self._data[name][row] = bool(value)
            elif column.kind == "number":
                self._data[name][row] = _number(value)
            else:
                codes = self._held[name][row] = {self._codes[name].code(item) for item in (value or ())}
                for code in codes:
                    self._multi[name].setdefault(code, set()).add(row)
        self._reorder(row, added, before)

    def _reorder(self, row: int, added: bool, before: float | None) -> None:
        """Keep the order made (sorting 100,000 rows at every change would cost more than the
        page): a new row newer than every other goes first (the same sort value as the newest and
        a larger id, e.g. entries written in the same millisecond, too); a row whose sort field did
        not change stays; anything else sorts again at the next question."""
        if self._sorted is None:
            return
        key = self._data[self.order][row]
        if added and (key, str(self._ids[row])) > self._top:
            self._newest.append(row)
            self._top = (key, str(self._ids[row]))
        elif added or key != before:
            self._sorted = None

    def _load(self) -> None:
        began = time.monotonic()
        self._reset()
        # The journal's tail first: whatever is stored after it is followed afterwards (read again).
        self._position = self.journal.tail() if self.journal is not None else 0
        for doc in self.collection.find({}, self.projection, batch_size=1000):
            self._put(doc["_id"], doc)
            if self.journal is None and isinstance(doc["_id"], str) and doc["_id"].isdigit():
                self._position = max(self._position, int(doc["_id"]))
        self._loaded = True
        log.info("%s: %d rows loaded in %.1f s", self.collection.name, len(self._rows), time.monotonic() - began)

    def _follow(self, limit: int | None = None) -> bool:
        """Read what was stored since, up to `limit` changes; True once nothing more is stored."""
        for _ in itertools.count() if limit is None else range(limit):
            following = position_id(self._position + 1)
            if self.journal is None:
                doc = self.collection.find_one({"_id": following}, self.projection)
                if doc is None:
                    if self._past_gap():
                        continue
                    return True
                self._put(doc["_id"], doc)
            else:
                entry = self.journal.collection.find_one({"_id": following})
                if entry is None:
                    return True
                self._put(entry["id"], self.collection.find_one({"_id": entry["id"]}, self.projection))
            self._position += 1
        return False

    def _past_gap(self) -> bool:
        """With no journal: the next position is missing; if one after it was written before (so
        the next was deleted), read every position stored after ours (a scan, once per last
        written position seen: only after a deletion). True if the list went on past the gap."""
        last = self.written() if self.written is not None else 0
        if last <= self._position or last == self._passed:
            return False
        if self.collection.find_one({"_id": position_id(self._position + 1)}, {"_id": 1}) is not None:
            return True  # stored between the two reads: no gap
        self._passed = last
        log.warning("%s: position %d is missing below %d; reading past it", self.collection.name,
                    self._position + 1, last)
        before = self._position
        for doc in self.collection.find({"_id": {"$gt": position_id(self._position)}}, self.projection):
            if isinstance(doc["_id"], str) and doc["_id"].isdigit():
                self._put(doc["_id"], doc)
                self._position = max(self._position, int(doc["_id"]))
        return self._position > before

    def current(self) -> "ListIndex":
        """Load once, then follow what was stored since (one read by `_id` when nothing was).

        A request follows at most FOLLOW_IN_REQUEST changes (two reads by `_id` each). Past that a
        backlog came in at once (a consumer catching up after an outage or a restore: 70,000 new
        cases made a request follow for 135 s in bench.lists), so the list is loaded again in a
        thread, a whole load being far cheaper per row, and requests answer from the columns they
        have until it is done: for that while, a list can lack what the backlog brings."""
        with self._lock:
            if not self._loaded:
                self._load()
            if self._reloading is None and not self._follow(FOLLOW_IN_REQUEST):
                self._reloading = threading.Thread(target=self._reload, name=f"reload-{self.collection.name}",
                                                   daemon=True)
                self._reloading.start()
        return self

    def _reload(self) -> None:
        """Load the list afresh beside the columns in use, then put it in their place."""
        try:
            fresh = ListIndex(self.collection, self.columns, order=self.order, projection=self.projection,
                              journal=self.journal, written=self.written)
            fresh._load()
            fresh._follow()
            with self._lock:
                state = {k: v for k, v in fresh.__dict__.items() if k not in ("_lock", "_reloading")}
                self.__dict__.update(state)
        except Exception:  # the next request follows on and tries again
            log.exception("%s: loading the list again failed", self.collection.name)
        finally:
            with self._lock:
                self._reloading = None

    def start(self) -> None:
        """Load in a thread (at a process's start), so the first request need not wait for it."""
        def load():
            try:
                self.current()
            except Exception:  # the first request loads again and reports what fails
                log.exception("%s: loading the list failed", self.collection.name)
        threading.Thread(target=load, name=f"list-{self.collection.name}", daemon=True).start()

    # --- asking ------------------------------------------------------------------------------

    def _order(self) -> np.ndarray:
        if self._sorted is None:
            rows = np.flatnonzero(self._alive[:self._size])
            key = self._data[self.order][rows]
            ids = np.array([str(self._ids[row]) for row in rows])
            self._sorted = rows[np.lexsort((ids, key))[::-1]] if len(rows) else rows  # newest first, then by id
            first = self._sorted[0] if len(rows) else None
            self._top = (-np.inf, "") if first is None else (self._data[self.order][first], str(self._ids[first]))
            self._newest = []
        elif self._newest:
            self._sorted = np.concatenate([np.array(self._newest[::-1], dtype=np.int64), self._sorted])
            self._newest = []
        return self._sorted

    def _mask(self, rows: np.ndarray, equal: dict, among: dict, not_among: dict, holding: dict,
              below: dict, not_below: dict) -> np.ndarray:
        keep = np.ones(len(rows), dtype=bool)
        for name, value in below.items():
            keep &= self._data[name][rows] < _number(value)
        for name, value in not_below.items():
            keep &= self._data[name][rows] >= _number(value)
        for name, value in equal.items():
            column = self.columns[name]
            if column.kind == "code":
                code = self._codes[name].known(value)
                if code is None:
                    return np.zeros(len(rows), dtype=bool)
                keep &= self._data[name][rows] == code
            elif column.kind == "bool":
                keep &= self._data[name][rows] == bool(value)
            else:
                keep &= self._data[name][rows] == _number(value)
        for name, values in among.items():
            codes = [c for c in (self._codes[name].known(v) for v in values) if c is not None]
            keep &= np.isin(self._data[name][rows], codes)
        for name, values in not_among.items():
            codes = [c for c in (self._codes[name].known(v) for v in values) if c is not None]
            keep &= ~np.isin(self._data[name][rows], codes)
        for names, value in holding.items():  # ("case_id", "case_ids"): a row equal to or holding value
            names = names if isinstance(names, tuple) else (names,)
            any_of = np.zeros(len(rows), dtype=bool)
            for name in names:
                code = self._codes[name].known(value)
                if code is None:
                    continue
                if self.columns[name].kind == "multi":
                    held = self._multi[name].get(code, set())
                    any_of |= np.isin(rows, np.fromiter(held, dtype=np.int64, count=len(held)))
                else:
                    any_of |= self._data[name][rows] == code
            keep &= any_of
        return keep

    def select(self, *, equal: dict | None = None, among: dict | None = None, not_among: dict | None = None,
               holding: dict | None = None, below: dict | None = None, not_below: dict | None = None,
               ascending: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list, int]:
        """(the ids of the matching rows from `offset`, at most `limit` of them, in the list's
        order; how many match). `equal`: column -> value; `among` / `not_among`: column -> values
        (code columns); `holding`: column or tuple of columns -> a value one of them equals or
        (multi) holds; `below` / `not_below`: number column -> a value it is under / not under;
        `ascending`: a number column the matching rows are put in, smallest first (the list's order
        among equal values)."""
        with self._lock:
            rows = self._order()
            keep = self._mask(rows, equal or {}, among or {}, not_among or {}, holding or {}, below or {},
                              not_below or {})
            matching = rows[keep]
            if ascending is not None:
                matching = matching[np.argsort(self._data[ascending][matching], kind="stable")]
            end = None if limit is None else offset + limit
            return [self._ids[row] for row in matching[offset:end]], int(len(matching))


def read_in_order(collection: Collection, ids: Iterable[Any], projection: dict | None = None) -> list[dict]:
    """The documents of these ids in this order, each read by `_id` (one gone meanwhile is left
    out)."""
    docs = (collection.find_one({"_id": doc_id}, projection) for doc_id in ids)
    return [doc for doc in docs if doc is not None]


_INDEXES: dict[tuple, ListIndex] = {}
_INDEXES_LOCK = threading.Lock()


def shared_index(key: tuple, make: Callable[[], ListIndex]) -> ListIndex:
    """This process's one ListIndex for `key` (made by `make` on first use; `current()` it to ask)."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = make()
    return index
