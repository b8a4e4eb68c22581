"""shared/listindex.py: the journal's positions, and a ListIndex's pages against a plain filter and
sort of the same documents (an independent reading of what a list must show), over random
writes, deletions and readers that load at any moment."""

from __future__ import annotations

import datetime as dt
import random
import sys
import threading

import numpy as np
from hypothesis import example, given, settings, strategies as st
from pymongo.errors import DuplicateKeyError

from shared import listindex
from shared.listindex import ChangeJournal, Column, ListIndex, position_id


class FakeCollection:
    """The few calls a ListIndex makes, on a dict (unit tests only; the integration tests use
    FerretDB)."""

    def __init__(self, name="things"):
        self.name = name
        self.docs: dict = {}
        self.reads = 0
        self._lock = threading.Lock()

    @staticmethod
    def _project(doc, projection):
        if not projection:
            return dict(doc)
        return {k: v for k, v in doc.items() if k == "_id" or projection.get(k)}

    def find(self, query, projection=None, batch_size=None):
        assert query == {}
        self.reads += len(self.docs)
        return [self._project(d, projection) for d in list(self.docs.values())]

    def find_one(self, query, projection=None):
        self.reads += 1
        doc = self.docs.get(query["_id"])
        return None if doc is None else self._project(doc, projection)

    def insert_one(self, doc):
        with self._lock:
            if doc["_id"] in self.docs:
                raise DuplicateKeyError("dup")
            self.docs[doc["_id"]] = dict(doc)


COLUMNS = {
    "status": Column("code", lambda d: d.get("status")),
    "urgent": Column("bool", lambda d: d.get("urgent")),
    "created_at": Column("number", lambda d: d.get("created_at")),
    "case_ids": Column("multi", lambda d: d.get("case_ids")),
}
PROJECTION = {"status": 1, "urgent": 1, "created_at": 1, "case_ids": 1}
T0 = dt.datetime(2026, 1, 1)


def make_index(things, journal):
    return ListIndex(things, COLUMNS, order="created_at", projection=PROJECTION, journal=ChangeJournal(journal.collection))


def expected(things, status=None, urgent=None, case=None):
    docs = [d for d in things.docs.values()
            if (status is None or d.get("status") == status)
            and (urgent is None or bool(d.get("urgent")) == urgent)
            and (case is None or case in (d.get("case_ids") or []))]
    docs.sort(key=lambda d: (d["created_at"], d["_id"]), reverse=True)  # newest first, then by id
    return [d["_id"] for d in docs]


def test_the_journal_numbers_without_gap_and_finds_its_tail_from_anywhere():
    journal = ChangeJournal(FakeCollection("journal"))
    assert journal.tail() == 0
    positions = [journal.append(f"d{i}") for i in range(37)]
    assert positions == list(range(1, 38))
    assert set(journal.collection.docs) == {position_id(n) for n in range(1, 38)}
    seen_here = dict(listindex._SEEN)
    listindex._SEEN.clear()  # another process, with no hint
    other = ChangeJournal(journal.collection)
    assert other.tail() == 37
    assert other.append("x") == 38
    listindex._SEEN.update(seen_here)  # back in the first process, its hint behind
    assert journal.append("y") == 39  # it takes the next free position
    listindex._SEEN.clear()
    journal.collection.reads = 0
    fresh = ChangeJournal(journal.collection)
    assert fresh.tail() == 39 and 4 < fresh.collection.reads < 20  # probes, not a read per entry


def test_a_journal_made_per_request_starts_from_what_the_process_saw():
    """A web process makes a store (so a ChangeJournal) per request: its append probes from the
    tail the process last saw, not from the start of a long journal."""
    collection = FakeCollection("journal")
    for i in range(5000):
        ChangeJournal(collection).append(f"d{i}")
    collection.reads = 0
    assert ChangeJournal(collection).append("x") == 5001
    assert collection.reads <= 2  # the position last seen is still held, the next one is free
    listindex._SEEN.clear()  # another process
    collection.reads = 0
    assert ChangeJournal(collection).append("y") == 5002
    assert collection.reads > 20  # from nothing: about 2 log2(5000) probes, once


def test_a_journal_emptied_since_starts_again_from_the_first_position():
    collection = FakeCollection("journal")
    for i in range(10):
        ChangeJournal(collection).append(f"d{i}")
    collection.docs.clear()  # its database dropped and made again (tests do)
    assert ChangeJournal(collection).append("x") == 1
    assert set(collection.docs) == {position_id(1)}


def test_racing_writers_take_every_position_once():
    collection = FakeCollection("journal")
    journals = [ChangeJournal(collection) for _ in range(4)]
    taken: list[int] = []

    def write(journal, k):
        for i in range(50):
            taken.append(journal.append(f"{k}-{i}"))

    threads = [threading.Thread(target=write, args=(j, k)) for k, j in enumerate(journals)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 201))


put = st.tuples(st.just("put"), st.integers(0, 30), st.sampled_from(["open", "closed", None, "merged"]),
                st.booleans(), st.integers(0, 5), st.lists(st.sampled_from("abcd"), max_size=3))
operations = st.tuples(
    st.lists(put, min_size=1, max_size=40),
    st.lists(st.one_of(put, put, st.tuples(st.just("delete"), st.integers(0, 30)), st.tuples(st.just("reader"),),
                       st.tuples(st.just("ask"), st.sampled_from(["open", "closed", None, "merged", "never"]),
                                 st.sampled_from([None, True, False]), st.sampled_from([None, "a", "b", "z"]),
                                 st.integers(0, 12), st.integers(1, 6))), max_size=60))
EVERY_QUESTION = [("ask", status, urgent, case, 0, 100) for status in ["open", "closed", None, "merged", "never"]
                  for urgent in [None, True, False] for case in [None, "a", "z"]]


def _ask(things, readers, op):
    _, status, urgent, case, offset, limit = op
    want = expected(things, status, urgent, case)
    equal = {k: v for k, v in (("status", status), ("urgent", urgent)) if v is not None}
    for reader in readers:
        got, total = reader.current().select(equal=equal, holding={"case_ids": case} if case else None,
                                             offset=offset, limit=limit)
        assert total == len(want)
        assert got == want[offset:offset + limit]
    return len(want)


@settings(max_examples=300, deadline=None)
@given(operations)
@example(([("put", 2, "open", False, 0, []), ("put", 1, "open", False, 0, []), ("put", 3, "open", False, 0, [])],
          [("delete", 1), ("put", 1, "open", False, 0, [])]))  # back after a deletion, maybe unseen
def test_pages_equal_a_plain_filter_and_sort_after_any_writes(ops):
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    readers = [make_index(things, journal).current()]  # loaded empty: follows every write
    first, rest = ops
    for op in [*first[:len(first) // 2], ("reader",), *first[len(first) // 2:], *rest, *EVERY_QUESTION]:
        if op[0] == "put":
            _, n, status, urgent, day, cases = op
            things.docs[f"t{n}"] = {"_id": f"t{n}", "status": status, "urgent": urgent, "case_ids": cases,
                                    "created_at": T0 + dt.timedelta(days=day)}
            journal.append(f"t{n}")
        elif op[0] == "delete":
            if things.docs.pop(f"t{op[1]}", None) is not None:
                journal.append(f"t{op[1]}")
        elif op[0] == "reader":
            readers.append(make_index(things, journal).current())
        else:
            _ask(things, readers, op)


def test_a_status_that_is_none_is_a_value_of_its_own():
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    for i, status in enumerate(["open", None, "open"]):
        things.docs[f"t{i}"] = {"_id": f"t{i}", "status": status, "created_at": T0 + dt.timedelta(days=i)}
        journal.append(f"t{i}")
    index = make_index(things, journal).current()
    assert index.select(equal={"status": None}) == (["t1"], 1)
    assert index.select(equal={"status": "open"}) == (["t2", "t0"], 2)
    assert index.select(among={"status": ["open", "gone"]})[1] == 2
    assert index.select(not_among={"status": ["open"]}) == (["t1"], 1)


def test_following_costs_one_read_when_nothing_changed_and_a_few_per_change():
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    for i in range(500):
        things.docs[f"t{i}"] = {"_id": f"t{i}", "status": "open", "created_at": T0 + dt.timedelta(minutes=i)}
    index = make_index(things, journal).current()
    things.reads = journal.collection.reads = 0
    index.current()
    assert things.reads + journal.collection.reads == 1
    things.docs["t3"]["status"] = "closed"
    journal.append("t3")
    things.reads = journal.collection.reads = 0
    index.current()
    assert things.reads + journal.collection.reads <= 3
    assert index.select(equal={"status": "closed"}) == (["t3"], 1)


def test_a_collection_of_positions_is_its_own_journal():
    entries = FakeCollection("audit")
    for n in range(1, 6):
        entries.docs[position_id(n)] = {"_id": position_id(n), "user": "u1" if n % 2 else "u2", "seq": n}
    columns = {"user": Column("code", lambda d: d.get("user")), "seq": Column("number", lambda d: d.get("seq"))}
    index = ListIndex(entries, columns, order="seq", projection={"user": 1, "seq": 1}, journal=None).current()
    assert index.select(equal={"user": "u1"}) == ([position_id(5), position_id(3), position_id(1)], 3)
    entries.docs[position_id(6)] = {"_id": position_id(6), "user": "u1", "seq": 6}
    assert index.current().select(equal={"user": "u1"}, limit=1) == ([position_id(6)], 4)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["open", "closed"]), st.integers(0, 4),
                          st.one_of(st.none(), st.integers(0, 6))), max_size=40),
       st.integers(0, 7), st.integers(0, 10), st.integers(1, 8))
def test_number_bounds_and_an_ascending_column_equal_a_plain_filter_and_stable_sort(puts, bound, offset, limit):
    """`below` / `not_below` split the rows at a value (a missing number is below everything);
    `ascending` puts the matching rows smallest first, in the list's order among equal values."""
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    columns = {**COLUMNS, "due": Column("number", lambda d: d.get("due"))}
    index = ListIndex(things, columns, order="created_at", projection={**PROJECTION, "due": 1},
                      journal=ChangeJournal(journal.collection)).current()
    for n, status, day, due in puts:
        things.docs[f"t{n}"] = {"_id": f"t{n}", "status": status, "created_at": T0 + dt.timedelta(days=day), "due": due}
        journal.append(f"t{n}")
    newest_first = expected(things)
    due = {i: things.docs[i]["due"] for i in newest_first}
    missing_first = [i for i in newest_first if due[i] is None] + sorted(
        (i for i in newest_first if due[i] is not None), key=lambda i: due[i])  # sorted() is stable
    open_ones = [i for i in missing_first if things.docs[i]["status"] == "open"]
    under = [i for i in newest_first if due[i] is None or due[i] < bound]
    index.current()
    assert index.select(below={"due": bound}) == (under, len(under))
    assert index.select(not_below={"due": bound}) == ([i for i in newest_first if i not in under],
                                                       len(newest_first) - len(under))
    assert index.select(ascending="due") == (missing_first, len(missing_first))
    assert index.select(equal={"status": "open"}, ascending="due", offset=offset, limit=limit) == (
        open_ones[offset:offset + limit], len(open_ones))


def test_rows_arriving_in_order_keep_the_order_without_sorting_again(monkeypatch):
    """The audit trail gains an entry at nearly every request, often several in one millisecond:
    each goes first without a sort of every row; an older one makes the next question sort."""
    entries = FakeCollection("audit")

    def write(n, minute):
        entries.docs[position_id(n)] = {"_id": position_id(n), "status": "open", "created_at": T0 + dt.timedelta(minutes=minute)}

    for n in range(1, 61):
        write(n, n // 3)  # three entries per minute: ties broken by the larger id
    index = ListIndex(entries, COLUMNS, order="created_at", projection=PROJECTION, journal=None).current()
    assert index.select(limit=3)[0] == [position_id(60), position_id(59), position_id(58)]
    sorts = []
    lexsort = np.lexsort
    monkeypatch.setattr(np, "lexsort", lambda *a, **k: sorts.append(1) or lexsort(*a, **k))
    for n in range(61, 91):
        write(n, n // 3)
        assert index.current().select(limit=60) == (expected(entries)[:60], n)
    assert sorts == []
    write(91, 0)  # dated before the newest (an entry from another service's event)
    assert index.current().select() == (expected(entries), 91)
    assert sorts == [1]


class ScannedWhileWritten(FakeCollection):
    """find() hands documents out one at a time, as a cursor does, and calls `during(i)` before
    the i-th: writes that land while a process loads its columns."""

    def __init__(self, during):
        super().__init__()
        self.during = during

    def find(self, query, projection=None, batch_size=None):
        for i, doc_id in enumerate(list(self.docs)):
            self.during(i)
            doc = self.docs.get(doc_id)
            if doc is not None:
                yield self._project(doc, projection)


def test_writes_that_land_while_a_process_loads_are_in_its_list():
    """A write stored during the load's scan is journaled after it, past the tail read before the
    scan, so the load follows it whether the scan met the document before or after the change."""
    journal = ChangeJournal(FakeCollection("journal"))

    def write(doc_id, status, day=0):
        things.docs[doc_id] = {"_id": doc_id, "status": status, "created_at": T0 + dt.timedelta(days=day)}
        journal.append(doc_id)

    def during(i):
        if i == 50:
            write("t10", "closed")  # already read by the scan
            write("t90", "closed")  # not read yet
            write("t200", "open", day=9)  # new
            del things.docs["t20"]  # gone (already read)
            journal.append("t20")

    things = ScannedWhileWritten(during)
    for i in range(100):
        things.docs[f"t{i}"] = {"_id": f"t{i}", "status": "open", "created_at": T0}
    index = make_index(things, journal).current()
    assert index.select(equal={"status": "closed"}) == (expected(things, "closed"), 2)
    assert index.select() == (expected(things), 100)
    assert index.select(limit=1) == (["t200"], 100)


def test_threads_asking_while_another_writes_get_whole_answers():
    """gunicorn's threads share their process's ListIndex: while a writer adds, changes and deletes,
    every answer is whole (as many ids as its count, each once, each a document stored at some
    point), and the last equals a plain filter and sort (without the lock this fails)."""
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    index = make_index(things, journal).current()
    done, answered, failures, ever, answers = threading.Event(), threading.Event(), [], set(), []

    def writer():
        rng = random.Random(7)
        for i in range(5000):
            if failures:
                break
            if i % 50 == 0:  # the readers ask between writes: wait for an answer now and then
                answered.wait(timeout=5)
                answered.clear()
            doc_id = f"t{rng.randrange(2000)}"
            if rng.random() < 0.1:
                things.docs.pop(doc_id, None)
            else:
                ever.add(doc_id)
                late = rng.random() < 0.5  # half arrive out of order: the order is made again
                things.docs[doc_id] = {"_id": doc_id, "status": rng.choice(["open", "closed"]),
                                       "created_at": T0 + dt.timedelta(seconds=rng.randrange(10 ** 6) if late else i)}
            journal.append(doc_id)
        done.set()

    def reader():
        while not done.is_set():
            try:
                ids, total = index.current().select(equal={"status": "open"})
                assert len(ids) == total == len(set(ids)) and set(ids) <= ever, (len(ids), total)
            except Exception as exc:  # reported below, from the test's own thread
                failures.append(repr(exc))
                return
            answers.append(total)
            answered.set()

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can, so that races show
    try:
        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    assert failures == [] and len(answers) >= 100
    assert index.current().select(equal={"status": "open"})[0] == expected(things, "open")


class PositionsCollection(FakeCollection):
    """A collection of positions that also answers `{"_id": {"$gt": ...}}` (a scan)."""

    def __init__(self):
        super().__init__("audit")
        self.scans = 0

    def find(self, query, projection=None, batch_size=None):
        if query == {}:
            return super().find(query, projection)
        self.scans += 1
        after = query["_id"]["$gt"]
        return [self._project(d, projection) for i, d in list(self.docs.items()) if isinstance(i, str) and i > after]


def test_a_deleted_position_is_passed_over_once_a_later_one_is_known_written():
    """An entry deleted before a process followed it (the audit trail tampered with) must not
    stop its list: the trail's head says a later position was written."""
    entries, head = PositionsCollection(), {"seq": 0}

    def write(n):
        entries.docs[position_id(n)] = {"_id": position_id(n), "status": "open", "created_at": T0 + dt.timedelta(minutes=n)}
        head["seq"] = max(head["seq"], n)

    for n in range(1, 4):
        write(n)
    index = ListIndex(entries, COLUMNS, order="created_at", projection=PROJECTION, journal=None,
                      written=lambda: head["seq"]).current()
    write(4)
    write(5)
    del entries.docs[position_id(4)]
    assert index.current().select() == (expected(entries), 4)
    write(6)
    entries.reads = 0
    assert index.current().select() == (expected(entries), 5)
    assert entries.scans == 1 and entries.reads == 2  # following on: one read per entry and one for the next
    entries.reads = 0
    index.current()
    assert entries.reads == 1 and entries.scans == 1

    head["seq"] = 10 ** 9  # a hint raised by hand: one scan, then the list follows on as before
    index.current()
    index.current()
    write(7)
    assert index.current().select() == (expected(entries), 6) and entries.scans == 2


def test_a_backlog_larger_than_a_request_follows_is_loaded_afresh_in_a_thread(monkeypatch):
    """A consumer catching up writes thousands of changes at once: a request follows at most
    FOLLOW_IN_REQUEST of them and answers; the list is loaded again in a thread and takes the
    place of the columns in use, with every change, the ones written during the load too."""
    monkeypatch.setattr(listindex, "FOLLOW_IN_REQUEST", 50)
    things, journal = FakeCollection(), ChangeJournal(FakeCollection("journal"))
    index = make_index(things, journal).current()

    def write(n):
        things.docs[f"t{n}"] = {"_id": f"t{n}", "status": "open", "created_at": T0 + dt.timedelta(minutes=n)}
        journal.append(f"t{n}")

    for n in range(30):  # within what a request follows: answered at once, in full
        write(n)
    assert index.current().select()[1] == 30 and index._reloading is None
    release = threading.Event()
    real_find = things.find

    def held_find(query, projection=None, batch_size=None):  # the reload's full read waits here
        release.wait(10)
        return real_find(query, projection, batch_size)

    monkeypatch.setattr(things, "find", held_find)
    for n in range(30, 300):
        write(n)
    answered = index.current().select()[1]
    assert answered == 80, "the request followed more than its share, or less"
    reload = index._reloading
    assert reload is not None
    assert index.current().select()[1] == 80  # while the load runs: the columns in use, no following
    write(300)  # written during the load: followed by it
    release.set()
    reload.join(10)
    assert index._reloading is None
    assert index.current().select() == (expected(things), 301)
    write(301)
    assert index.current().select()[1] == 302  # following again
