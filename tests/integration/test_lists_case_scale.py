"""The case list at a size that fits CI (issue 12 point 1 and its acceptance): 5,000 cases stored
as the case service stores them (each case's version and projection, built by the case's own
domain rules), then the real case app asked through its API and its page with every filter and
the first, middle and last pages. After a process's first request (which loads the list's
columns), each request reads at most a page of cases and a few more documents, counted with
pymongo's command monitoring on apps made for this test, and shows exactly what an independent
filter and sort of the stored cases gives (newest `created_at` first, the same instant by `_id`,
larger first). Cases changed through the real paths (status changes through the API, a new case
from intake's report through Kafka and the case consumer) show at the next request, in the app
that wrote them and in a second app that follows the journal, as another process would."""

from __future__ import annotations

import datetime as dt
import random
import re
import statistics
import threading
import time
import uuid
from collections import deque

import pytest
from pymongo import monitoring

from services.case import domain
from services.case.store import CaseStore
from shared.aggregates import version_id
from tests.integration.conftest import PASSWORD
from tests.integration.test_reporting_scale import DocumentsRead
from tests.integration import test_event_flow
from tests.support import page_login, synthetic_report, wait_for

CASES = 5000
case_consumer = test_event_flow.case_consumer  # the case service's consumer in a thread, as a fixture here too
FEW = 120  # documents a request may read: the page's 50 cases, the journal's next entry, ...
PAGE = CaseStore.PAGE_SIZE
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
PROVINCES = ("Jilin", "Liaoning", "Yunnan", "Heilongjiang", "Guangxi", "Inner Mongolia", "Shandong")
# How often each status is met (every status at least sometimes).
STATUS_WEIGHTS = {"reported": 30, "detained": 25, "deportation_imminent": 8, "repatriated": 10, "released": 6,
                  "in_third_country": 5, "whereabouts_unknown": 5, "resettled": 4, "deceased": 1,
                  "closed_duplicate": 3, "closed_unfounded": 3}
# (status, province, imminent): the filters asked, the API's and the page's.
FILTERS = [(None, None, None), ("detained", None, None), ("reported", None, None), ("deceased", None, None),
           (None, "Jilin", None), (None, None, True), (None, None, False), ("detained", "Liaoning", None),
           ("reported", "Jilin", True), (None, "Nowhere", None)]


class ServerReads(DocumentsRead):
    """The documents the database reads for each thread's requests (a request), on the given
    databases. FerretDB 1.24 on SQLite finds a document by a plain `_id` from its index and reads
    the whole collection for any other query (a filter, a sort, a count, an aggregation), so a read
    by `_id` counts the documents it returns and any other query counts the whole collection (as
    big as `sizes` says, else a million): a list that filters or counts in the database cannot
    pass for a cheap one by returning only a page."""

    QUERIES = ("find", "aggregate", "count", "distinct", "getMore")

    def __init__(self, databases: set[str], sizes: dict[str, int]):
        super().__init__(database="")
        self.databases, self.sizes = databases, sizes
        self.scans: dict[int, list[str]] = {}

    def started(self, event):
        if not (self.on and event.database_name in self.databases and event.command_name in self.QUERIES):
            return
        command = event.command
        found = command.get("filter") or {}
        by_id = (event.command_name == "getMore"
                 or (event.command_name == "find" and list(found) == ["_id"] and not isinstance(found["_id"], dict)
                     and not command.get("sort") and not command.get("skip")))
        self._names[event.request_id] = (event.command_name, str(command.get(event.command_name)), by_id)

    def succeeded(self, event):
        asked = self._names.pop(event.request_id, None)
        if asked is None:
            return
        name, collection, by_id = asked
        key = threading.get_ident()
        if by_id:
            cursor = event.reply.get("cursor", {})
            read = len(cursor.get("firstBatch", cursor.get("nextBatch", [])))
        else:
            read = self.sizes.get(collection, 1_000_000)
            self.scans.setdefault(key, []).append(f"{name} {collection}")
        self.counts[key] = self.counts.get(key, 0) + read

    def reading(self, call):
        """(documents the database read for `call()`, its result)."""
        self.scans[threading.get_ident()] = []
        return super().reading(call)


def _path_to(status: str) -> list[str]:
    """The moves from `reported` to `status` the transition table allows (shortest)."""
    paths, todo = {"reported": []}, deque(["reported"])
    while todo:
        here = todo.popleft()
        for there in domain.TRANSITIONS[here]:
            if there not in paths:
                paths[there] = paths[here] + [there]
                todo.append(there)
    return paths[status]


def invent(rng: random.Random, n: int) -> list[dict]:
    """n cases (states), opened and moved by the case's own rules, at instants spread over 500 days,
    a quarter of them sharing an instant with another."""
    instants = [T0 + dt.timedelta(minutes=rng.randrange(500 * 24 * 60)) for _ in range(n * 3 // 4)]
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    cases = []
    for _ in range(n):
        case_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = rng.choice(instants)
        on = created.date().isoformat()
        state = domain.open_case(case_id, {
            "sex": rng.choice(["female", "male", "unknown"]), "birth_year": rng.randint(1950, 2010),
            "nationality": "KP", "province": rng.choice(PROVINCES), "detained_on": on,
            "deportation_imminent": rng.random() < 0.15, "expected_deportation_on": None, "vulnerabilities": [],
            "consent_advocacy": rng.choice(["named", "anonymous", "none"]), "consent_statistics": True,
            "report_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "received_on": on}, created)
        for step in _path_to(rng.choices(statuses, weights)[0]):
            state, _ = domain.transition(state, step, created.date(), None, created)
        cases.append({**state, "updated_at": created})
    return cases


@pytest.fixture(scope="module")
def seeded(settings, mongo):
    """5,000 cases stored straight into the case database as the case service stores them: version 1
    of each (its events already sent: an empty outbox) and its projection."""
    db = mongo[settings.database_name("case")]
    CaseStore(db).ensure_indexes()
    cases = invent(random.Random(12), CASES)
    for i in range(0, CASES, 1000):
        batch = cases[i:i + 1000]
        db["cases_versions"].insert_many([{"_id": version_id(c["_id"], 1), "aggregate_id": c["_id"], "rev": 1,
                                           "state": c, "outbox": [], "updated_at": c["updated_at"]} for c in batch])
        db["cases"].insert_many([{**c, "rev": 1} for c in batch])
    return db


@pytest.fixture(scope="module")
def watched(settings, seeded):
    """Two case apps of this test's own, each with its own database client (so its own list columns,
    as two processes have), made after the listener so that their reads are counted."""
    db = seeded
    sizes = {name: db[name].estimated_document_count() for name in ("cases", "cases_versions", "cases_journal")}
    listener = ServerReads({settings.database_name("case"), settings.database_name("identity")}, sizes)
    monitoring.register(listener)
    from services.case.app import create_app

    apps = [create_app(settings), create_app(settings)]
    for app in apps:
        app.testing = True
    return apps, listener


def stored(db) -> list[dict]:
    """Every stored case's listed fields, read here (not by the app)."""
    return list(db["cases"].find({}, {"status": 1, "province": 1, "deportation_imminent": 1, "created_at": 1}))


def expected(cases: list[dict], status=None, province=None, imminent=None) -> list[str]:
    """The ids the list must show, in order: the stored cases filtered and sorted here."""
    cases = [c for c in cases
             if (status is None or c.get("status") == status) and (province is None or c.get("province") == province)
             and (imminent is None or bool(c.get("deportation_imminent")) == imminent)]
    cases.sort(key=lambda c: (c["created_at"], c["_id"]), reverse=True)
    return [c["_id"] for c in cases]


def pages_of(total: int) -> list[int]:
    """The first, a middle and the last page (and the one after the last, empty)."""
    last = max(1, -(-total // PAGE))
    return sorted({1, (last + 1) // 2, last, last + 1})


class Lister:
    """Asks one app's list (API or page) and counts what each request reads and how long it takes."""

    def __init__(self, app, listener, headers: dict, username: str):
        self.api = app.test_client()
        self.web = app.test_client()
        page_login(self.web, username, PASSWORD, next_path="/cases")
        self.listener, self.headers = listener, headers
        self.times: dict[str, list[float]] = {"api": [], "page": []}

    def _timed(self, kind: str, call):
        began = time.perf_counter()
        read, result = self.listener.reading(call)
        self.times[kind].append(time.perf_counter() - began)
        return read, result

    def api_list(self, status, province, imminent, page) -> tuple[int, list[str], int]:
        """(documents read, the ids shown in order, total) through GET /api/v1/cases."""
        query = {k: v for k, v in (("status", status), ("province", province), ("page", page)) if v}
        if imminent is not None:
            query["imminent"] = "true" if imminent else "false"
        read, res = self._timed("api", lambda: self.api.get("/api/v1/cases", headers=self.headers, query_string=query))
        assert res.status_code == 200, res.get_json()
        body = res.get_json()
        assert body["page"] == page and body["page_size"] == PAGE
        return read, [c["case_id"] for c in body["items"]], body["total"]

    def page_list(self, status, province, imminent, page) -> tuple[int, list[str], int]:
        """(documents read, the ids shown in order, total) through the /cases page (which filters on
        imminence only when asked for imminent cases)."""
        assert imminent in (None, True)
        query = {k: v for k, v in (("status", status), ("province", province), ("page", page)) if v}
        if imminent:
            query["imminent"] = "1"
        read, res = self._timed("page", lambda: self.web.get("/cases", query_string=query))
        assert res.status_code == 200
        html = res.get_data(as_text=True)
        total = int(re.search(r"<p>(\d+) cases</p>", html).group(1))
        return read, re.findall(r'<a href="/cases/([^"/?]+)">', html), total

    def check(self, cases, status=None, province=None, imminent=None, pages=None, web=True) -> list[str]:
        """Every page asked (default: first, middle, last) equals the independent filter and sort, each
        request reading fewer than FEW documents; returns the ids expected."""
        want = expected(cases, status, province, imminent)
        for page in pages or pages_of(len(want)):
            asked = [self.api_list] + ([self.page_list] if web and imminent is not False else [])
            for ask in asked:
                read, ids, total = ask(status, province, imminent, page)
                where = (ask.__name__, status, province, imminent, page)
                assert read < FEW, (where, read, self.listener.scans.get(threading.get_ident()))
                assert total == len(want), (where, total, len(want))
                assert ids == want[(page - 1) * PAGE:page * PAGE], where
        return want


def _report(listers: list[Lister]) -> str:
    parts = []
    for kind in ("api", "page"):
        times = sorted(t * 1000 for lister in listers for t in lister.times[kind])
        if times:
            parts.append(f"{kind}: {len(times)} requests, median {statistics.median(times):.0f} ms, "
                         f"p95 {times[int(len(times) * 0.95) - 1]:.0f} ms, max {times[-1]:.0f} ms")
    return "; ".join(parts)


def test_the_case_list_answers_every_filter_and_page_without_reading_every_case(watched, seeded, tokens, users,
                                                                                 client, case_consumer):
    (first_app, second_app), listener = watched
    headers, caseworker = tokens["caseworker"], users["caseworker"]
    first, second = Lister(first_app, listener, headers, caseworker), Lister(second_app, listener, headers, caseworker)

    for lister in (first, second):  # a process's first request loads the columns once
        _, ids, total = lister.api_list(None, None, None, 1)
        assert total >= CASES and len(ids) == PAGE
        lister.times = {"api": [], "page": []}

    cases = stored(seeded)
    for status, province, imminent in FILTERS:
        first.check(cases, status, province, imminent)
    print(f"\ncase list at {CASES} cases: {_report([first])}")

    # Status changes through the API show at once, in the app that made them and in the other.
    reported = expected(cases, status="reported")
    for case_id in (reported[0], reported[len(reported) // 2], reported[-1]):  # first, middle and last page
        res = first.api.post(f"/api/v1/cases/{case_id}/transitions", headers=headers,
                             json={"to": "detained", "effective_on": "2025-06-01"})
        assert res.status_code == 200, res.get_json()
        cases = stored(seeded)
        where = expected(cases, status="detained").index(case_id) // PAGE + 1
        for lister in (first, second):
            lister.check(cases, "reported")
            lister.check(cases, "detained", pages=[1, where])
    for lister in (first, second):
        lister.check(cases)
        lister.check(cases, "reported", "Jilin", True)

    # A new case, reported to intake and opened by the case consumer from Kafka: first, at once.
    created = client.post("/api/v1/reports", json=synthetic_report(detention={"province": "Jilin"}), headers=headers)
    assert created.status_code == 201, created.get_json()
    case_id = created.get_json()["case_id"]
    wait_for(lambda: seeded["cases_journal"].find_one({"id": case_id}), timeout_s=30,
             what="the case opened and its projection journaled")
    cases = stored(seeded)
    for lister in (second, first):
        assert lister.check(cases)[0] == case_id
        assert lister.check(cases, "reported", "Jilin", pages=[1])[0] == case_id

    print(f"case list at {CASES} cases, both apps, after the changes too: {_report([first, second])}")
