"""Every list's columns at 10,000, 30,000 and 100,000 cases, in one process and over HTTP through
the real web services, against the real FerretDB: what a list request costs with shared/listindex.py
beside what it cost before (a count and a sorted page asked of the database) and beside a read by `_id`.

    python -m bench.columns [--sizes 10000,30000,100000] [--requests 40] [--no-http]   (`make bench`; --help)

Why in one process: building 100,000 cases through the case consumer takes about 18 minutes
(bench.lists measures that consumer and the lists over HTTP at 10,000 and 30,000 cases); here the
documents are inserted straight into each service's database in the shape its store writes (per
case: one case, one report, three audit entries; per ten cases one appeal and one UNHCR-access
request), and each list is asked through its store's own method, as the API and pages ask it
(`CaseStore.page`, `IntakeStore.page` and `audit_page`, `AdvocacyStore.page_appeals` and
`page_requests`): the columns filter, count and page, then the page's rows are read by `_id`.
Measured for each list at each size:

- the first load of its columns (once per web process) and the memory it took;
- a list request: random filters and random pages, and the last page unfiltered, p50/p95/max in
  milliseconds;
- following the journal: a request after 100 changes (appended as the services do), and after a
  backlog (a tenth of the rows changed at once, 1,000 to 5,000: a consumer catching up), with the
  seconds until the list held every change;
- baselines: one document read by `_id`; the old way (count_documents, then find().sort().skip()
  .limit()) on the same data, fewer times, as it takes seconds.

Then, unless --no-http, over HTTP through the real web services on the same database: at each size
it (re)starts the intake, case and advocacy web services (gunicorn, as `make run` starts them; a
Kafka of its own too, which their /readyz asks for), logs in as an admin (a token for the APIs, the
login form's session for the pages) and times, with random filters (as bench.lists asks them) and
random pages, p50/p95/max: GET /api/v1/cases and /cases and their last page; /reports and its last
page; GET /api/v1/audit and /audit and their last page; GET /api/v1/appeals, /appeals,
GET /api/v1/unhcr-access-requests and /requests; each service's /healthz beside. The columns'
load at a web process's start is kept out of the timings and reported: seconds until each list first
answered, and until every worker answered every list within 2 s. Also: each list's unfiltered total
as answered against the documents inserted, and the resident memory of each web service.

It starts its own FerretDB (port 46017), Kafka (46092) and web services (46001-46003), in
var/bench-columns; writes bench/results/columns-<UTC time>.json and bench/results/columns-latest.md
(after each size). A measurement, not a test: exit status 0 whatever the figures, 1 only when
FerretDB or Kafka does not work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pymongo import DESCENDING
from pymongo.errors import PyMongoError
from tqdm import tqdm

from bench.scale import own_stack
from infra.stack import port_open, wait_until
from services.case.store import CaseStore
from tests.support import tier_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench-columns"
COLUMNS_ENV = {"NRW_FERRETDB_LISTEN": "127.0.0.1:46017", "NRW_MONGO_URI": "mongodb://127.0.0.1:46017/",
               "NRW_KAFKA_BOOTSTRAP": "127.0.0.1:46092", "NRW_KAFKA_CONTROLLER_PORT": "46093",
               "NRW_INTAKE_PORT": "46001", "NRW_CASE_PORT": "46002", "NRW_ADVOCACY_PORT": "46003",
               "NRW_REPORTING_PORT": "46004", "NRW_VAR": str(VAR)}
STATUSES = ("reported", "detained", "deportation_imminent", "repatriated", "released", "whereabouts_unknown")
PROVINCES = ("Jilin", "Liaoning", "Yunnan", "Heilongjiang", "Shandong", "Beijing")
ACTIONS = ("read", "status_changed", "write", "consent_changed", "merge")
USERS = [f"user-{i:03d}" for i in range(40)]
ACTOR = "0c0ffee0-0000-4000-8000-00000000a001"  # a synthetic user id
AIM_MS = 300  # issue 12: every list page p95 under 300 ms
T0 = dt.datetime(2023, 1, 1)
PAGE = 50


def instant(rng: random.Random) -> dt.datetime:
    return T0 + dt.timedelta(milliseconds=rng.randrange(0, 3 * 365 * 86_400_000))


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Lists:
    """The five lists' data, stores and questions (synthetic: random choices, no person)."""

    def __init__(self, dbs: dict, rng: random.Random):
        from services.advocacy.store import AdvocacyStore
        from services.intake.store import IntakeStore
        self.dbs, self.rng = dbs, rng
        self.case, self.intake, self.advocacy = (CaseStore(dbs["case"]), IntakeStore(dbs["intake"]),
                                                 AdvocacyStore(dbs["advocacy"]))
        self.case_ids: list[str] = []
        self.report_ids: list[str] = []
        self.appeal_ids: list[str] = []
        self.request_ids: list[str] = []
        self.audit_n = 0

    # --- data --------------------------------------------------------------------------------

    def grow(self, cases: int) -> None:
        """Add cases (with a report and three audit entries each, an appeal and a request per ten)."""
        from services.advocacy import domain as advocacy
        from shared.audit import HEAD_ID
        rng = self.rng
        with tqdm(total=cases, desc="cases", unit="case", file=sys.stderr) as bar:
            for _ in range(0, cases, 1000):
                batch = min(1000, cases)
                cases -= batch
                new, reports, audit, appeals, requests = [], [], [], [], []
                for _i in range(batch):
                    status, created = rng.choice(STATUSES), instant(rng)
                    case_id = uid(rng)
                    new.append({"_id": case_id, "case_id": case_id, "status": status, "province": rng.choice(PROVINCES),
                                "deportation_imminent": status == "deportation_imminent", "created_at": created,
                                "updated_at": created, "rev": 1, "history": [{"status": "reported", "at": created}]})
                    reports.append({"_id": uid(rng), "case_id": case_id, "created_at": created,
                                    "detention": {"province": rng.choice(PROVINCES)},
                                    "sealed": rng.randbytes(1500)})  # a report's sealed fields weigh about this
                    for _k in range(3):
                        self.audit_n += 1
                        audit.append({"_id": f"{self.audit_n:012d}", "seq": self.audit_n, "at": instant(rng),
                                      "user_id": rng.choice(USERS), "action": rng.choice(ACTIONS),
                                      "case_id": case_id, "out_of_assignment": rng.random() < 0.05})
                    if rng.random() < 0.1:
                        appeal = advocacy.new_appeal(uid(rng), {
                            "case_ids": [case_id], "kind": rng.choice(advocacy.APPEAL_KINDS), "recipients": [],
                            "issued_on": None, "due_by": created + dt.timedelta(hours=rng.randrange(1, 100))},
                            actor=ACTOR, now=created)
                        if rng.random() < 0.6:
                            appeal = advocacy.issue(appeal, issued_on=created.date(), recipients=["SR DPRK"],
                                                    actor=ACTOR, now=created)
                        appeals.append({**appeal, "rev": 1})
                    if rng.random() < 0.1:
                        requests.append({**advocacy.new_request(uid(rng), {
                            "case_ids": [case_id], "office": "beijing", "channel": "email",
                            "sent_on": created.date()}, follow_up_days=7, actor=ACTOR, now=created), "rev": 1})
                self.case.current.insert_many(new, ordered=False)
                self.intake.reports.insert_many(reports, ordered=False)
                self.intake.audit.insert_many(audit, ordered=False)
                self.dbs["intake"]["audit_head"].update_one({"_id": HEAD_ID}, {"$max": {"seq": self.audit_n}},
                                                            upsert=True)
                if appeals:
                    self.advocacy.appeals.current.insert_many(appeals, ordered=False)
                if requests:
                    self.advocacy.requests.current.insert_many(requests, ordered=False)
                self.case_ids += [c["_id"] for c in new]
                self.report_ids += [r["_id"] for r in reports]
                self.appeal_ids += [a["_id"] for a in appeals]
                self.request_ids += [r["_id"] for r in requests]
                bar.update(batch)

    def change(self, name: str, n: int) -> None:
        """n changes to one list, stored and journalled as its service does."""
        rng = self.rng
        for _ in range(n):
            if name == "cases":
                case_id = rng.choice(self.case_ids)
                self.case.current.update_one({"_id": case_id}, {"$set": {"status": "released"}})
                self.case.journal.append(case_id)
            elif name == "reports":
                report_id = rng.choice(self.report_ids)
                self.intake.reports.update_one({"_id": report_id}, {"$set": {"detention.province": "Jilin"}})
                self.intake.reports_journal.append(report_id)
            elif name == "audit":
                self.audit_n += 1
                self.intake.audit.insert_one({"_id": f"{self.audit_n:012d}", "seq": self.audit_n,
                                              "at": dt.datetime.now(dt.timezone.utc), "user_id": USERS[0],
                                              "action": "read", "case_id": rng.choice(self.case_ids)})
            else:
                store = self.advocacy.appeals if name == "appeals" else self.advocacy.requests
                doc_id = rng.choice(self.appeal_ids if name == "appeals" else self.request_ids)
                store.current.update_one({"_id": doc_id}, {"$set": {"updated_at": dt.datetime.now(dt.timezone.utc)}})
                store.journal.append(doc_id)

    # --- questions ---------------------------------------------------------------------------

    def index(self, name: str):
        return {"cases": self.case.list_index, "reports": self.intake.report_index, "audit": self.intake.audit_index,
                "appeals": self.advocacy.appeal_index, "requests": self.advocacy.request_index}[name]()

    def ask(self, name: str, filters: dict, page: int) -> tuple[list[dict], int]:
        """The list's page as its API asks it of its store."""
        if name == "cases":
            return self.case.page(page=page, **{"status": None, "province": None, **filters})
        if name == "reports":
            return self.intake.page(page=page, **{"case_id": None, "province": None, **filters})
        if name == "audit":
            return self.intake.audit_page(page=page, **{"case_id": None, "user_id": None, **filters})
        if name == "appeals":
            return self.advocacy.page_appeals(page=page, **filters)
        return self.advocacy.page_requests(today=dt.date.today(), page=page, **filters)

    def filters(self, name: str) -> dict:
        rng, maybe = self.rng, (lambda p: self.rng.random() < p)
        if name == "cases":
            return {k: v for k, v in (("status", rng.choice(STATUSES)), ("province", rng.choice(PROVINCES)),
                                      ("imminent", True)) if maybe(0.4)}
        if name == "reports":
            return {k: v for k, v in (("province", rng.choice(PROVINCES)),
                                      ("case_id", rng.choice(self.case_ids))) if maybe(0.3)}
        if name == "audit":
            return {k: v for k, v in (("user_id", rng.choice(USERS)), ("action", rng.choice(("read", "write"))),
                                      ("case_id", rng.choice(self.case_ids))) if maybe(0.3)}
        if name == "appeals":
            return {k: v for k, v in (("status", rng.choice(("draft", "issued"))),) if maybe(0.5)}
        return {k: v for k, v in (("status", "sent"), ("overdue", rng.choice((True, False)))) if maybe(0.4)}

    def old_way(self, name: str) -> None:
        """The list as it was asked before: a count, then a sorted page, in the database."""
        collection, order = {"cases": (self.case.current, "created_at"), "reports": (self.intake.reports, "created_at"),
                             "audit": (self.intake.audit, "at"), "appeals": (self.advocacy.appeals.current, "created_at"),
                             "requests": (self.advocacy.requests.current, "created_at")}[name]
        total = collection.count_documents({})
        list(collection.find({}).sort(order, DESCENDING).skip(self.rng.randrange(max(1, total // PAGE)) * PAGE)
             .limit(PAGE))

    def by_id(self, name: str) -> None:
        collection, ids = {"cases": (self.case.current, self.case_ids), "reports": (self.intake.reports, self.report_ids),
                           "audit": (self.intake.audit, None), "appeals": (self.advocacy.appeals.current, self.appeal_ids),
                           "requests": (self.advocacy.requests.current, self.request_ids)}[name]
        collection.find_one({"_id": f"{self.rng.randint(1, self.audit_n):012d}" if ids is None else self.rng.choice(ids)})


LISTS = ("cases", "reports", "audit", "appeals", "requests")


def timed(call, n: int, budget_s: float | None = None) -> dict:
    """n calls (fewer once budget_s has passed, one at least), p50/p95/max in milliseconds."""
    times, began = [], time.perf_counter()
    for i in range(n):
        if budget_s is not None and times and time.perf_counter() - began > budget_s:
            break
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    n = len(times)
    times.sort()
    return {"n": n, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, math.ceil(n * 0.95) - 1)], 1), "max_ms": round(times[-1], 1)}


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


BACKLOG_MAX = 5000


def backlog(lists: Lists, name: str, changes: int) -> dict:
    """A consumer catching up: `changes` written at once to a list a process has loaded. The first
    request after them (it follows at most listindex.FOLLOW_IN_REQUEST and leaves the rest to a
    load in a thread), and the seconds until the list holds every change."""
    from shared import listindex

    lists.change(name, changes)
    index = lists.index(name)
    began = time.perf_counter()
    index.current()
    first_ms = (time.perf_counter() - began) * 1000
    reload = index._reloading
    if reload is not None:
        reload.join()
    return {"changes": changes, "first_request_ms": round(first_ms, 1), "reloaded": reload is not None,
            "caught_up_s": round(time.perf_counter() - began, 2), "follow_in_request": listindex.FOLLOW_IN_REQUEST}


def measure(lists: Lists, name: str, n: int, old_n: int) -> dict:
    from shared import listindex
    listindex._INDEXES.clear()  # a process's first load, as at a start
    rss_before, began = rss_mib(), time.perf_counter()
    rows = lists.index(name).current().select(limit=0)[1]
    load_s = time.perf_counter() - began
    totals: dict = {}

    def random_request(_i):
        filters = lists.filters(name)
        key = tuple(sorted(filters.items()))
        if key not in totals:
            totals[key] = lists.ask(name, filters, 1)[1]
        lists.ask(name, filters, lists.rng.randint(1, max(1, math.ceil(totals[key] / PAGE))))

    for i in range(3):  # warm up (FerretDB just took the inserts)
        random_request(i)
    result = {"rows": rows, "load_s": round(load_s, 2), "rss_grew_mib": round(rss_mib() - rss_before, 1),
              "list": timed(random_request, n),
              "last_page": timed(lambda _i: lists.ask(name, {}, max(1, math.ceil(rows / PAGE))), max(5, n // 4))}
    lists.change(name, 100)
    began = time.perf_counter()
    lists.index(name).current()
    result["follow_100_changes_ms"] = round((time.perf_counter() - began) * 1000, 1)
    result["backlog"] = backlog(lists, name, min(BACKLOG_MAX, max(1000, rows // 10)))
    result["read_by_id"] = timed(lambda _i: lists.by_id(name), n)
    result["database_count_and_sort"] = timed(lambda _i: lists.old_way(name), old_n, budget_s=60)
    return result


# --- over HTTP: the real web services against the same database ----------------------------------

WEBS = ("intake-web", "case-web", "advocacy-web")
HTTP_ENV = {"NRW_2FA_ROLES": "", "NRW_ACCESS_LOG": "0", "NRW_WEB_WORKERS": "2"}
HTTP_BUDGET_S = 60  # per row and size: past it (and 3 requests) a row stops short of --requests
# (row, service, path, via the browser's page, list whose store gives the totals, last page only)
HTTP_ROWS = (("cases_api", "case", "/api/v1/cases", False, "cases", False),
             ("cases_page", "case", "/cases", True, "cases", False),
             ("cases_api_last", "case", "/api/v1/cases", False, "cases", True),
             ("cases_page_last", "case", "/cases", True, "cases", True),
             ("reports_page", "intake", "/reports", True, "reports", False),
             ("reports_page_last", "intake", "/reports", True, "reports", True),
             ("audit_api", "intake", "/api/v1/audit", False, "audit", False),
             ("audit_page", "intake", "/audit", True, "audit", False),
             ("audit_api_last", "intake", "/api/v1/audit", False, "audit", True),
             ("audit_page_last", "intake", "/audit", True, "audit", True),
             ("appeals_api", "advocacy", "/api/v1/appeals", False, "appeals", False),
             ("appeals_page", "advocacy", "/appeals", True, "appeals", False),
             ("requests_api", "advocacy", "/api/v1/unhcr-access-requests", False, "requests", False),
             ("requests_page", "advocacy", "/requests", True, "requests", False))
# the first request of each list after the start (the columns' load), and what its total must be
FIRST = (("cases", "case", "/api/v1/cases"), ("reports", "intake", "/reports"), ("audit", "intake", "/api/v1/audit"),
         ("appeals", "advocacy", "/api/v1/appeals"), ("requests", "advocacy", "/api/v1/unhcr-access-requests"))


def http_filters(lists: Lists, name: str, via_page: bool) -> tuple[dict, dict]:
    """Random filters of a list as bench.lists asks them: (query parameters, the store's arguments)."""
    from bench.lists import APPEAL_STATUSES, AUDIT_ACTIONS, REQUEST_STATUSES, case_filters
    rng = lists.rng
    params: dict = {}
    if name == "cases":
        params = case_filters(rng)
        return params, {**{k: params[k] for k in ("status", "province") if k in params},
                        **({"imminent": True} if "imminent" in params else {})}
    if name == "reports":
        params = {"province": rng.choice(PROVINCES)} if rng.random() < 0.5 else {}
        return params, dict(params)
    if name == "audit":
        if rng.random() < 0.3:
            params["case_id"] = rng.choice(lists.case_ids)
        if rng.random() < 0.3:
            params["user"] = rng.choice(USERS)
        if not via_page and rng.random() < 0.4:
            params["action"] = rng.choice(AUDIT_ACTIONS)
        return params, {"case_id" if k == "case_id" else "user_id" if k == "user" else k: v for k, v in params.items()}
    if rng.random() < 0.5:
        params["status"] = rng.choice(APPEAL_STATUSES if name == "appeals" else REQUEST_STATUSES)
    if rng.random() < 0.2:
        params["case_id"] = rng.choice(lists.case_ids)
    if name == "requests" and rng.random() < 0.2:
        params["overdue"] = rng.choice(("true", "false"))
    return params, {k: (v == "true") if k == "overdue" else v for k, v in params.items()}


def log_in(urls: dict):
    """An admin's API session (a bearer token) and browser session (the login form's cookie)."""
    import requests
    from bench.form import FormClient
    from tests.support import ADMIN_PASSWORD
    answer = requests.post(f"{urls['intake']}/api/v1/auth/token", timeout=120,
                           json={"username": "admin", "password": ADMIN_PASSWORD})
    answer.raise_for_status()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    web = FormClient(urls["intake"], timeout_s=900)
    web.login("admin", ADMIN_PASSWORD)
    return api, web.http


def page_total(answer) -> int:
    """The total a list answered: the API's `total`, or the page's "N reports" / "N views" / count."""
    import re
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        return answer.json()["total"]
    found = re.search(r"([\d,]+) (?:reports|views|cases|appeals|requests)", answer.text)
    return int(found.group(1).replace(",", "")) if found else -1


def warm_up(targets: list, cap_s: float = 600) -> float:
    """Ask every list on fresh connections (so that both of a service's workers answer) until a
    whole round answers within 2 s each: the columns are loaded in every worker. Seconds it took."""
    import requests
    began = time.perf_counter()
    while time.perf_counter() - began < cap_s:
        slowest = 0.0
        for url, session in targets:
            for _ in range(4):
                with requests.Session() as fresh:
                    fresh.headers.update(session.headers)
                    fresh.cookies.update(session.cookies)
                    start = time.perf_counter()
                    fresh.get(url, timeout=900)
                    slowest = max(slowest, time.perf_counter() - start)
        if slowest < 2.0:
            break
    return round(time.perf_counter() - began, 1)


def over_http(stack, lists: Lists, n: int) -> dict:
    """(Re)start the intake, case and advocacy web services on this size's data (a running one would
    not see documents inserted without a journal entry), time how long until each list first answers,
    warm every worker up, then time every list's API and page with random filters and pages, its last
    page, and /healthz of the same service; resident memory of each service; totals checked."""
    from bench.lists import timed_within
    from bench.scale import rss_mb
    from infra.stack import ready, service_urls
    stack.stop(*WEBS)
    began = time.perf_counter()
    stack.start(*WEBS)
    urls = service_urls(stack.env)
    for service in ("intake", "case", "advocacy"):
        wait_until(lambda s=service: ready(urls[s]), 300, f"the {service} service")
    out: dict = {"ready_s": round(time.perf_counter() - began, 1), "first_answer_s": {}, "totals": {}}
    api, browser = log_in(urls)
    expected = {"cases": len(lists.case_ids), "reports": len(lists.report_ids), "audit": lists.audit_n,
                "appeals": len(lists.appeal_ids), "requests": len(lists.request_ids)}
    for name, service, path in FIRST:
        answer = (browser if path == "/reports" else api).get(f"{urls[service]}{path}", timeout=900)
        out["first_answer_s"][name] = round(time.perf_counter() - began, 1)
        answered = page_total(answer) if answer.status_code == 200 else f"HTTP {answer.status_code}"
        out["totals"][name] = {"inserted": expected[name], "answered": answered}
        if answer.status_code == 200 and path.startswith("/api/"):  # a whole first page of well-formed rows
            items = answer.json()["items"]
            out["totals"][name]["first_page_rows"] = f"{len(items)} of {min(PAGE, expected[name])}"
            out["totals"][name]["row_fields"] = sorted(items[0]) if items else []
        if answered != expected[name]:
            print(f"bench.columns: {path} answered total {answered}, {expected[name]} inserted", file=sys.stderr)
    out["warm_up_s"] = warm_up([(f"{urls[service]}{path}", browser if page else api)
                                for _row, service, path, page, _name, last in HTTP_ROWS if not last])
    totals: dict = {}

    def total(name: str, kwargs: dict) -> int:
        key = (name, tuple(sorted(kwargs.items())))
        if key not in totals:
            totals[key] = lists.ask(name, kwargs, 1)[1]
        return totals[key]

    def request(service, path, page, name, last):
        session, url = (browser if page else api), f"{urls[service]}{path}"

        def call(_i):
            params, kwargs = ({}, {}) if last else http_filters(lists, name, page)
            pages = max(1, math.ceil(total(name, kwargs) / PAGE))
            return session.get(url, params={**params, "page": pages if last else lists.rng.randint(1, pages)},
                               timeout=900)
        return call

    rows = [(row, service, request(service, path, page, name, last), max(5, n // 4) if last else n)
            for row, service, path, page, name, last in HTTP_ROWS]
    rows += [(f"{service}_healthz", service, lambda _i, s=service: api.get(f"{urls[s]}/healthz", timeout=60), n)
             for service in ("case", "intake", "advocacy")]
    out["requests"] = {}
    for row, _service, call, count in tqdm(rows, desc="over HTTP", unit="list", file=sys.stderr):
        out["requests"][row] = timed_within(call, count, HTTP_BUDGET_S)
    out["memory_mib"] = {name: rss_mb(stack.procs[name].pid) for name in WEBS if stack.running(name)}
    return out


def markdown(results: dict) -> str:
    lines = ["# Every list's columns at scale (bench.columns)", "",
             f"{results['date']}, {results['machine']}, commit {results['git']}. Milliseconds, p50 / p95 "
             f"(requests), in one process against FerretDB; **over**: p95 above issue 12's {AIM_MS} ms.", "",
             "| cases | list | rows | list request: columns + reads by _id | last page | read by _id | before: count + sorted page in the database | columns' first load | memory it took | follow 100 changes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(q):
        over = " **over**" if q["p95_ms"] > AIM_MS else ""
        return f"{q['p50_ms']:,} / {q['p95_ms']:,}{over} ({q['n']})"
    for size in results["sizes"]:
        for name, s in size["lists"].items():
            lines.append(f"| {size['cases']:,} | {name} | {s['rows']:,} | {cell(s['list'])} | {cell(s['last_page'])} | "
                         f"{cell(s['read_by_id'])} | {cell(s['database_count_and_sort'])} | {s['load_s']} s | "
                         f"{s['rss_grew_mib']} MiB | {s['follow_100_changes_ms']} ms |")
    backlogs = [(size["cases"], name, s["backlog"]) for size in results["sizes"] for name, s in size["lists"].items()
                if "backlog" in s]
    if backlogs:
        lines += ["", "A backlog (a consumer catching up): changes written at once to a list a process has loaded; the "
                  f"first request after them follows at most {backlogs[0][2]['follow_in_request']} and leaves the "
                  "rest to a load in a thread; then the seconds until the list held every change:", "",
                  "| cases | list | changes | first request | loaded again in a thread | every change held after |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {cases:,} | {name} | {b['changes']:,} | {b['first_request_ms']:,} ms | "
                  f"{'yes' if b['reloaded'] else 'no'} | {b['caught_up_s']} s |" for cases, name, b in backlogs]
    if any("http" in size for size in results["sizes"]):
        lines += http_markdown(results)
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


HTTP_LABELS = {"cases_api": "cases API `GET /api/v1/cases` (filters, random pages)",
               "cases_page": "cases page `/cases` (filters, random pages)",
               "cases_api_last": "cases API, last page", "cases_page_last": "cases page, last page",
               "case_healthz": "case `/healthz`",
               "reports_page": "reports page `/reports` (province, random pages)",
               "reports_page_last": "reports page, last page",
               "audit_api": "audit API `GET /api/v1/audit` (case, user, action; random pages)",
               "audit_page": "audit page `/audit` (case, user; random pages)",
               "audit_api_last": "audit API, last page", "audit_page_last": "audit page, last page",
               "intake_healthz": "intake `/healthz`",
               "appeals_api": "appeals API `GET /api/v1/appeals` (status, case; random pages)",
               "appeals_page": "appeals page `/appeals`",
               "requests_api": "requests API `GET /api/v1/unhcr-access-requests` (status, case, overdue)",
               "requests_page": "requests page `/requests`", "advocacy_healthz": "advocacy `/healthz`"}
# the in-process measurement beside each HTTP row: (list, "list" or "last_page")
IN_PROCESS = {row: (name, "last_page" if last else "list") for row, _s, _p, _v, name, last in HTTP_ROWS}


def http_markdown(results: dict) -> list[str]:
    """The tables of the HTTP measurements: each request beside the store's method in-process."""
    sizes = [size for size in results["sizes"] if "http" in size]

    def cell(q):
        if "p95_ms" not in q:
            return "—"
        over = " **over**" if q["p95_ms"] > AIM_MS else ""
        failed = f", {sum(q['failed'].values())} not 200 {q['failed']}" if q.get("failed") else ""
        return f"{q['p50_ms']:,} / {q['p95_ms']:,}{over} ({q['n']}{failed})"

    head = " | ".join(f"{s['cases']:,} cases: over HTTP | in-process" for s in sizes)
    lines = ["", "## Over HTTP: the real web services (gunicorn, 2 workers each) on the same data", "",
             "Milliseconds, p50 / p95 (requests), with an admin's token (API) or browser session (pages); beside "
             "each, the same list asked of its store in this process (table above).", "",
             f"| request | {head} |", "| --- |" + " --- | --- |" * len(sizes)]
    for row, label in HTTP_LABELS.items():
        cells = []
        for size in sizes:
            http = size["http"]
            if "error" in http:
                cells.append(f"failed: {http['error'][:60]} | —")
                continue
            name, which = IN_PROCESS.get(row, (None, None))
            beside = cell(size["lists"][name][which]) if name else "—"
            cells.append(f"{cell(http['requests'].get(row, {}))} | {beside}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Each start of the web services: seconds from the start until /readyz answered, until each list "
              "first answered (its columns loaded: the cases, reports, audit, appeals, requests, in that order), "
              "until every worker answered every list within 2 s (warm-up, kept out of the timings); totals "
              "answered against those inserted; resident memory after the measurements, MiB (largest process / "
              "gunicorn's master and workers together):", "",
              "| cases | ready | first answer: cases / reports / audit / appeals / requests | warm-up | totals as inserted | intake | case | advocacy |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for size in sizes:
        http = size["http"]
        if "error" in http:
            continue
        first = " / ".join(f"{http['first_answer_s'][name]} s" for name, _s, _p in FIRST)
        right = all(t["answered"] == t["inserted"] for t in http["totals"].values())
        totals = "yes" if right else "; ".join(f"{k}: {t['answered']} of {t['inserted']}"
                                               for k, t in http["totals"].items() if t["answered"] != t["inserted"])
        memory = " | ".join(f"{http['memory_mib'][w]['max_mb']} / {http['memory_mib'][w]['total_mb']}"
                            if w in http["memory_mib"] else "—" for w in WEBS)
        lines.append(f"| {size['cases']:,} | {http['ready_s']} s | {first} | {http['warm_up_s']} s | {totals} | {memory} |")
    return lines


def interrupted(_signum, _frame):
    raise KeyboardInterrupt


def write_results(results: dict, partial: bool = False) -> None:
    """bench/results/columns-<start time>.json and columns-latest.md (rewritten after each size)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(results["date"]).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"columns-{stamp}.json").write_text(json.dumps({**results, "partial": partial}, indent=2))
    (RESULTS / "columns-latest.md").write_text(markdown(results))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.columns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000", help="case counts, growing (default 10000,30000,100000)")
    parser.add_argument("--requests", type=int, default=40,
                        help="list requests per list and size, in-process and over HTTP each (default 40; a quarter "
                             "as many, 5 at least, of last pages)")
    parser.add_argument("--old-requests", type=int, default=3,
                        help="requests the old way (count and sorted page in the database) per list and size, fewer "
                             "once they took a minute (default 3)")
    parser.add_argument("--no-http", action="store_true",
                        help="only in-process: do not start Kafka and the intake, case and advocacy web services "
                             "to ask every list over HTTP")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] <= 0:
        parser.error("--sizes must be positive and growing")
    made = own_stack("columns", {**tier_env("bench-columns"), **COLUMNS_ENV, **HTTP_ENV}, VAR)
    if made is None:
        return 1
    stack, results = made
    signal.signal(signal.SIGTERM, interrupted)  # `timeout` or a kill stops the stack too
    results.update({"requests": args.requests, "http": not args.no_http, "sizes": [], "notes": []})
    try:
        subprocess.run([sys.executable, "-m", "shared.keys", "init"], cwd=ROOT, env=stack.env, check=True,
                       stdout=subprocess.DEVNULL)
        stack.start("ferretdb", *(() if args.no_http else ("kafka",)))  # Kafka starts while the cases go in
        wait_until(lambda: port_open(stack.env["NRW_MONGO_URI"]), 120, "FerretDB")
        from shared.config import Settings
        from shared.mongo import connect
        settings = Settings.from_env()
        client = connect(settings, "operator", timeout_ms=300000)
        lists = Lists({service: client[settings.database_name(service)] for service in ("case", "intake", "advocacy")},
                      random.Random(12))
        have = 0
        for size in sizes:
            lists.grow(size - have)
            have = size
            measured = {"cases": size, "lists": {}}
            for name in LISTS:
                measured["lists"][name] = measure(lists, name, args.requests, args.old_requests)
                print(f"{size:,} {name}: {json.dumps(measured['lists'][name])}", file=sys.stderr)
            if not args.no_http:
                if not port_open(stack.env["NRW_KAFKA_BOOTSTRAP"]):
                    wait_until(lambda: port_open(stack.env["NRW_KAFKA_BOOTSTRAP"]), 180, "Kafka")
                subprocess.run([sys.executable, "-m", "shared.topics"], cwd=ROOT, env=stack.env, check=True,
                               stdout=subprocess.DEVNULL)
                try:
                    measured["http"] = over_http(stack, lists, args.requests)
                except (RuntimeError, TimeoutError, OSError, KeyError, ValueError) as exc:  # a finding, not a crash
                    measured["http"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                print(f"{size:,} over HTTP: {json.dumps(measured['http'])}", file=sys.stderr)
            results["sizes"].append(measured)
            write_results(results, partial=True)  # what was measured survives a stop at a larger size
    except KeyboardInterrupt:
        print("bench.columns: interrupted (the sizes measured are in bench/results/)", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, PyMongoError, subprocess.CalledProcessError) as exc:
        print(f"bench.columns: FerretDB or Kafka does not work: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        shutil.rmtree(VAR, ignore_errors=True)
    write_results(results)
    print(markdown(results))
    return 0

if __name__ == "__main__":
    sys.exit(main())
