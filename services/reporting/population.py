"""Every case record held as columns, so that a statistic costs array operations over compact
numbers instead of a read and a Python pass over every record (pure: no I/O, numpy only).

`Population.count` gives exactly what `domain.count` gives for the same records (the unit tests
compare the two on random populations): the rules stay in `domain`; this module only precomputes,
once per record, what those rules look at, as business days (YYYYMMDD integers, so comparing them
is comparing ISO dates):

- each record's fixed categories (sex, nationality, province, birth year), whether it counts as a
  person at all, its report date and the first day of each asylum step;
- its status moves in the order `domain.status_on` reads them, so "the status on day D" is the
  last move of a prefix: one mask and one bincount over every move of every case;
- the days of its event measures (returns, requests sent, access granted, appeals issued);
- its after-return records in the order `domain.latest_after_return` picks the latest, each with
  one bit per after-return test.

A query then masks these arrays: a few milliseconds at 100,000 cases. The arrays are rebuilt
from the per-record facts after records change (`put`), at the next query.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

from shared.events import SEXES
from shared.people import AGE_GROUPS, age_group

from services.reporting import domain

NEVER = 99_999_999  # a day after every business day: "no such date"
BEFORE_ALL = -1  # a `since` before every business day: "no since"
EVENT_MEASURES = ("repatriated", "unhcr_access_requested", "unhcr_access_granted", "appeals_issued")
AR_BITS = {name: 1 << i for i, name in enumerate(domain.AFTER_RETURN_TESTS)}
STATUS_DIM_NONE = "unknown"


def day_number(value: str | None) -> int:
    """An ISO business date as YYYYMMDD (NEVER for none)."""
    if not value:
        return NEVER
    return int(value[:4]) * 10000 + int(value[5:7]) * 100 + int(value[8:10])


def facts(record: dict) -> tuple:
    """What the counting rules read of one record, computed once (see the module doc)."""
    timeline = record.get("timeline") or []
    moves = sorted(timeline, key=lambda e: (e["effective_on"], e["recorded_at"]))
    events = {
        "repatriated": [e["effective_on"] for e in timeline if e["status"] == "repatriated"],
        "unhcr_access_requested": [r.get("sent_on") for r in (record.get("requests") or {}).values()],
        "unhcr_access_granted": [o["received_on"] for r in (record.get("requests") or {}).values()
                                 for o in r.get("outcomes", []) if o["outcome"] == "granted"],
        "appeals_issued": [a.get("issued_on") for a in (record.get("appeals") or {}).values()],
    }
    after = sorted(((domain.after_return_on(e), e.get("learned_on") or "", rid, e)
                    for rid, e in (record.get("after_return") or {}).items() if domain.after_return_on(e) is not None),
                   key=lambda t: t[:3])
    return (
        record["_id"],
        domain.counts_as_person(record),
        tuple(domain.dimension_value(record, dim, "") for dim in ("sex", "nationality", "province")),
        record.get("birth_year"),
        day_number(record.get("reported_on")),
        tuple((day_number(e["effective_on"]), e["status"]) for e in moves),
        {m: tuple(day_number(d) for d in days if d) for m, days in events.items()},
        tuple(day_number(domain.step_reached_on(record, m)) for m in domain.ASYLUM_MEASURES),
        tuple((day_number(on), sum(bit for name, bit in AR_BITS.items() if domain.AFTER_RETURN_TESTS[name](e)))
              for on, _, _, e in after),
    )


class _Vocabulary:
    """Strings numbered in the order first seen."""

    def __init__(self):
        self.words: list = []
        self.codes: dict = {}

    def code(self, word) -> int:
        found = self.codes.get(word)
        if found is None:
            found = self.codes[word] = len(self.words)
            self.words.append(word)
        return found


class _Columns:
    """The arrays built from every record's facts at one moment."""

    def __init__(self, rows: list[tuple]):
        n = len(rows)
        self.n = n
        self.ids = np.array([r[0] for r in rows], dtype=object)
        self.person = np.fromiter((r[1] for r in rows), dtype=bool, count=n)
        self.vocab = {dim: _Vocabulary() for dim in ("sex", "nationality", "province", "status")}
        for dim, i in (("sex", 0), ("nationality", 1), ("province", 2)):
            code = self.vocab[dim].code
            setattr(self, dim, np.fromiter((code(r[2][i]) for r in rows), dtype=np.int32, count=n))
        self.birth_year = np.fromiter((-10**6 if r[3] is None else r[3] for r in rows), dtype=np.int64, count=n)
        self.reported = np.fromiter((r[4] for r in rows), dtype=np.int64, count=n)
        status = self.vocab["status"].code
        status(None)  # code 0: no status on that day
        status("reported")  # what a record with a report and no move has
        self.mv_case, self.mv_day, self.mv_status, self.mv_start = self._flat(
            rows, lambda r: r[5], lambda move: (move[0], status(move[1])))
        self.events = {}
        for measure in EVENT_MEASURES:
            case, days, _, _ = self._flat(rows, lambda r, m=measure: [(d, 0) for d in r[6][m]], lambda x: x)
            self.events[measure] = (case, days)
        self.asylum = {m: np.fromiter((r[7][i] for r in rows), dtype=np.int64, count=n)
                       for i, m in enumerate(domain.ASYLUM_MEASURES)}
        self.ar_case, self.ar_day, self.ar_bits, self.ar_start = self._flat(rows, lambda r: r[8], lambda x: x)
        self._status_on: dict[int, np.ndarray] = {}
        self._keys: tuple = (None, None)

    def _flat(self, rows, items, pair):
        """Every record's list of (day, value) flattened, in record order: (case index, day,
        value, index of each record's first item)."""
        case, days, values, start = [], [], [], np.zeros(self.n, dtype=np.int64)
        for i, row in enumerate(rows):
            start[i] = len(days)
            for item in items(row):
                day, value = pair(item)
                case.append(i)
                days.append(day)
                values.append(value)
        return (np.array(case, dtype=np.int64), np.array(days, dtype=np.int64), np.array(values, dtype=np.int64),
                start)

    def _last_on_or_before(self, case, days, start, day: int):
        """For each record, the index of its last item dated on or before `day` (its items are in
        date order), and whether it has one."""
        on = days <= day
        got = np.bincount(case[on], minlength=self.n) if len(case) else np.zeros(self.n, dtype=np.int64)
        return start + got - 1, got > 0

    def status_on(self, day: int) -> np.ndarray:
        """Each record's status code on a day (domain.status_on; 0 for none)."""
        found = self._status_on.get(day)
        if found is None:
            last, has = self._last_on_or_before(self.mv_case, self.mv_day, self.mv_start, day)
            moved = self.mv_status[np.where(has, last, 0)] if len(self.mv_status) else np.zeros(self.n, dtype=np.int64)
            reported = self.vocab["status"].codes["reported"]
            found = np.where(has, moved, np.where(self.reported <= day, reported, 0))
            if len(self._status_on) > 64:
                self._status_on.clear()
            self._status_on[day] = found
        return found

    def _codes(self, *statuses: str) -> list[int]:
        return [self.vocab["status"].codes[s] for s in statuses if s in self.vocab["status"].codes]

    def in_measure(self, measure: str, as_of: int, since: int) -> np.ndarray:
        """domain.in_measure for every record at once."""
        if measure == "detained":
            return np.isin(self.status_on(as_of), self._codes(*domain.DETAINED))
        if measure == "deportation_imminent":
            return np.isin(self.status_on(as_of), self._codes("deportation_imminent"))
        if measure == "reported":
            return (self.reported > since) & (self.reported <= as_of)
        if measure in self.events:
            case, days = self.events[measure]
            out = np.zeros(self.n, dtype=bool)
            out[case[(days > since) & (days <= as_of)]] = True
            return out
        if measure in AR_BITS:
            last, has = self._last_on_or_before(self.ar_case, self.ar_day, self.ar_start, as_of)
            if not len(self.ar_day):
                return np.zeros(self.n, dtype=bool)
            at = np.where(has, last, 0)
            return has & (self.ar_day[at] > since) & ((self.ar_bits[at] & AR_BITS[measure]) != 0)
        if measure in self.asylum:
            days = self.asylum[measure]
            return (days > since) & (days <= as_of)
        raise ValueError(f"unknown measure {measure!r}")

    def dimension(self, dim: str, as_of: str) -> tuple[list[str], np.ndarray]:
        """(each record's category as a word list, each record's index into it) for a dimension."""
        if dim == "age_group":
            year = int(as_of[:4])
            born, index = np.unique(self.birth_year, return_inverse=True)
            words = [age_group(None if b == -10**6 else int(b), year) for b in born]
            return words, index.reshape(-1)
        if dim == "status":
            vocab = [STATUS_DIM_NONE if w is None else w for w in self.vocab["status"].words]
            return vocab, self.status_on(day_number(as_of))
        return self.vocab[dim].words, getattr(self, dim)

    def record_keys(self, record_key) -> np.ndarray:
        """Each record's secret key (domain.count's `record_key`), worked out once per function."""
        if self._keys[0] is not record_key:
            self._keys = (record_key, np.fromiter((record_key(i) for i in self.ids), dtype=np.int64, count=self.n))
        return self._keys[1]

    def count(self, measure: str, as_of: str, since: str | None, by: list[str], with_ids: bool = True,
              record_key=None) -> dict:
        """domain.count, from the arrays."""
        day, start = day_number(as_of), (BEFORE_ALL if since is None else day_number(since))
        counted = self.in_measure(measure, day, start) & self.person
        cells = []
        if by:
            axes, index, valid = [], np.zeros(self.n, dtype=np.int64), np.ones(self.n, dtype=bool)
            for dim in by:
                words, codes = self.dimension(dim, as_of)
                if dim == "sex":
                    axis = list(SEXES)
                elif dim == "age_group":
                    axis = list(AGE_GROUPS)
                else:
                    present = np.unique(codes[self.person]) if self.n else np.array([], dtype=np.int64)
                    axis = sorted({words[c] for c in present})
                place = {w: i for i, w in enumerate(axis)}
                lookup = np.array([place.get(w, -1) for w in words] or [-1], dtype=np.int64)
                at = lookup[codes] if self.n else index
                valid &= at >= 0  # a category outside the table's (a sex not in SEXES): in the total only
                index = index * len(axis) + at
                axes.append(axis)
            size = 1
            for axis in axes:
                size *= len(axis)
            tally = np.bincount(index[counted & valid], minlength=size) if size else np.zeros(0, dtype=np.int64)
            cells = [{**dict(zip(by, key)), "count": int(tally[i])}
                     for i, key in enumerate(itertools.product(*axes))]
            if record_key is not None:
                taken = counted & valid
                sums = np.bincount(index[taken], weights=self.record_keys(record_key)[taken], minlength=size) \
                    if size else np.zeros(0)
                for cell, total in zip(cells, sums):
                    cell["key"] = int(total) % 256
        out = {"total": int(counted.sum()), "cells": cells}
        out["case_ids"] = sorted(self.ids[counted].tolist()) if with_ids else None
        if record_key is not None:
            out["total_key"] = int(self.record_keys(record_key)[counted].sum()) % 256
        return out


class Population:
    """The case records as columns (see the module doc): `put` a record as it changes, `count`
    as `domain.count` does. Safe to share between a process's threads.

    After a change the columns are built again from every record's facts (0.6-0.8 s at 100,000
    records on the 2-core machine). Up to SYNC_REBUILD_MAX records that happens at the next
    query, which then sees every change; above it, in a thread of its own while queries go on
    with the columns built last (behind by the changes of the last second or so), so a steady
    trickle of events never makes every page wait for a rebuild."""

    SYNC_REBUILD_MAX = 20000

    def __init__(self, records=()):
        self._facts: dict[str, tuple] = {}
        self._after_return: dict[str, dict] = {}
        self._columns: _Columns | None = None
        self._version = self._built = 0
        self._building = False
        self._lock = threading.Lock()
        for record in records:
            self.put(record)

    def put(self, record: dict) -> None:
        """Add or replace one record."""
        row = facts(record)
        with self._lock:
            self._facts[record["_id"]] = row
            if record.get("after_return"):
                self._after_return[record["_id"]] = record
            else:
                self._after_return.pop(record["_id"], None)
            self._version += 1

    def __len__(self) -> int:
        return len(self._facts)

    def columns(self) -> _Columns:
        """The arrays of the records (see the class doc for when they are built)."""
        with self._lock:
            if self._columns is not None and self._built == self._version:
                return self._columns
            if self._columns is None or len(self._facts) <= self.SYNC_REBUILD_MAX:
                self._columns, self._built = _Columns(list(self._facts.values())), self._version
                return self._columns
            if not self._building:
                self._building = True
                threading.Thread(target=self._rebuild, name="population-rebuild", daemon=True).start()
            return self._columns

    def _rebuild(self) -> None:
        try:
            with self._lock:
                rows, version = list(self._facts.values()), self._version
            columns = _Columns(rows)
            with self._lock:
                self._columns, self._built = columns, version
        finally:
            self._building = False

    def count(self, measure: str, as_of: str, since: str | None, by: list[str], with_ids: bool = True,
              record_key=None) -> dict:
        """Exactly `domain.count(records, measure, as_of, since, by, record_key)` of the records
        put here (case_ids None unless `with_ids`)."""
        return self.columns().count(measure, as_of, since, list(by), with_ids=with_ids, record_key=record_key)

    def with_after_return(self) -> list[dict]:
        """The records that hold after-return records (what the evidence register and the
        after-return facts read; every other record adds nothing to them)."""
        with self._lock:
            return list(self._after_return.values())

    def categories(self, dim: str, as_of: str) -> list[str]:
        """domain.categories of the records (those of the countable ones)."""
        return [cell[dim] for cell in self.count("reported", as_of, None, [dim], with_ids=False)["cells"]]
