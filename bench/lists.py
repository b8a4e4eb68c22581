"""Lists at scale: the case, intake and advocacy services' list pages and APIs, and their consumers'
ingest, at 10,000 and 30,000 synthetic cases.

    python -m bench.lists [--sizes 10000,30000] [--requests 20] ...   (`make bench`; --help: every option)

For each size it writes the new cases' `case.reported` events (bench/scale.py's case_events, as
intake publishes them; one case in twenty at imminent risk of deportation) to intake.events, and
lets the real consumers do the rest, one at a time so that each one's rate is its own: the case
consumer opens the cases (and publishes case.opened), advocacy's consumer keeps its copy of each
case (and drafts an urgent appeal for each case at imminent risk), intake's consumer files the
reports and the audit events. Each consumer's ingest (events per second until its group has
committed every new record) is measured beside a bare kafka-python consume of the same records.

Then it does what staff do, through the APIs: status changes (each audited in intake's trail),
UNHCR-access requests and issued appeals, from four clients, and files reports through intake and
reads each once (the synthetic cases never passed through intake's own database, so its report list
holds only these), then measures p50/p95 of, each beside a read of one
document by _id from the same database and /healthz of the same service:

- the case list, API (GET /api/v1/cases) and page (/cases), random filters (status, province,
  imminent) and random pages, and its deepest page (the last one unfiltered);
- intake's report list page (/reports; it has no list API) and audit trail, API (GET /api/v1/audit)
  and page (/audit), random filters and pages, and the deepest page of each;
- advocacy's appeals and UNHCR-access requests, API and page, random filters, their first page
  (until issue 12 these lists had no pages: the 500 newest);

and the resident memory of each web service and consumer.

It starts its own Kafka, FerretDB, the intake, case and advocacy web services, consumers and relays
on ports and a var/ folder of its own (var/bench-lists); writes bench/results/lists-<UTC time>.json
and bench/results/lists-latest.md. A measurement, not a test: exit status 0 whatever the figures,
1 only when the stack does not work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pymongo.errors import PyMongoError
from tqdm import tqdm

from bench.form import FormClient
from bench.scale import bare_consume, case_events, end_offsets, own_stack, rss_mb
from infra.stack import Stack, port_open, ready, service_urls, wait_until
from shared.events import encode
from tests.support import ADMIN_PASSWORD, register_kafka, synthetic_report, tier_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench-lists"
# Ports of its own: tests 18xxx/19xxx/27117 (+ offsets), bench.pipeline 28xxx/29092/27217,
# bench.scale 38xxx/39092/27317, `make run` 8xxx/9092/27017.
LISTS_ENV = {
    "NRW_KAFKA_BOOTSTRAP": "127.0.0.1:49092",
    "NRW_KAFKA_CONTROLLER_PORT": "49093",
    "NRW_KAFKA_HEAP": "1g",
    "NRW_FERRETDB_LISTEN": "127.0.0.1:47017",
    "NRW_MONGO_URI": "mongodb://127.0.0.1:47017/",
    "NRW_INTAKE_PORT": "48001",
    "NRW_CASE_PORT": "48002",
    "NRW_ADVOCACY_PORT": "48003",
    "NRW_REPORTING_PORT": "48004",
    "NRW_VAR": str(VAR),
    "NRW_ACCESS_LOG": "0",
    "NRW_2FA_ROLES": "",
    "NRW_WEB_WORKERS": "2",
    # the benchmark reads the reports it files (audited reads) as one admin within minutes
    "NRW_IDENTIFYING_READS_PER_HOUR": "1000000",
}
TOPICS = ("intake.events", "case.events", "advocacy.events")
WEBS = ("intake-web", "case-web", "advocacy-web")
RELAYS = ("intake-relay", "case-relay", "advocacy-relay")
# Each consumer, in the order they run (each one's output is the next one's input), and the topics
# whose new records it is measured on (its group's committed offsets, from shared.config.CONSUMES).
CONSUMERS = {"case": ("intake.events",), "advocacy": ("case.events",),
             "intake": ("intake.events", "case.events", "advocacy.events")}
IMMINENT_SHARE = 0.05
PROVINCES = ("Jilin", "Liaoning", "Yunnan", "Heilongjiang", "Shandong", "Beijing")
CASE_STATUSES = ("reported", "detained", "deportation_imminent", "repatriated", "released", "in_third_country",
                 "whereabouts_unknown", "closed_unfounded")
MOVES = ("detained", "deportation_imminent", "released", "whereabouts_unknown", "repatriated")
AUDIT_ACTIONS = ("read", "write", "status_changed")
APPEAL_STATUSES = ("draft", "issued", "response_received", "no_response")
REQUEST_STATUSES = ("sent", "acknowledged", "granted", "denied", "no_response")
AIM_MS = 300  # issue 12: every list and search page and API p95 under 300 ms at any page


# --- the stack's data -----------------------------------------------------------------------------


def kafka_options(env: dict) -> dict:
    from shared.config import Settings
    from shared.kafka_auth import client_options

    return client_options(Settings(kafka_bootstrap=env["NRW_KAFKA_BOOTSTRAP"], secrets_dir=VAR / "secrets"), "admin")


def partitions(options: dict, topics=TOPICS) -> list[TopicPartition]:
    probe = KafkaConsumer(**options)
    try:
        return [TopicPartition(t, p) for t in topics for p in sorted(probe.partitions_for_topic(t) or [])]
    finally:
        probe.close()


def produce_reported(options: dict, n: int, seed: int) -> list[str]:
    """Invent n cases and write each one's case.reported to intake.events, as intake would; one in
    twenty at imminent risk. Returns the case ids."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=seed % 300)
    clock = (start + dt.timedelta(milliseconds=i) for i in range(10**9))
    producer = KafkaProducer(**options, linger_ms=20, batch_size=256 * 1024, acks="all")
    ids = []
    try:
        for _ in tqdm(range(n), desc=f"producing {n} case.reported", unit="case", file=sys.stderr):
            for event in case_events(rng, clock)["intake.events"]:
                if rng.random() < IMMINENT_SHARE:
                    event["payload"]["deportation_imminent"] = True
                producer.send("intake.events", key=event["case_id"].encode(), value=encode(event))
                ids.append(event["case_id"])
        producer.flush()
    finally:
        producer.close()
    return ids


def committed(options: dict, group: str) -> dict | None:
    """The consumer group's committed offsets, or None before it has a coordinator (not joined yet)."""
    admin = KafkaAdminClient(**options)
    try:
        return admin.list_group_offsets(group).get(group, {})
    except KafkaError:
        return None
    finally:
        admin.close()


def caught_up(done: dict | None, end: dict, start: dict | None = None) -> bool:
    """Whether committed offsets `done` reach `end` on every partition that has records past `start`."""
    return done is not None and all(done.get(tp) is not None and done[tp].offset >= end[tp]
                                    for tp in end if end[tp] > (start or {}).get(tp, 0))


def only(offsets: dict, topics) -> dict:
    return {tp: o for tp, o in offsets.items() if tp.topic in topics}


def ingest(stack: Stack, options: dict, parts, group: str, start: dict, cap_s: float) -> dict:
    """One consumer (stopped while its input was written) started now, until its group has
    committed every new record of its topics; beside a bare consume of the same records."""
    end = only(end_offsets(options, parts), CONSUMERS[group])
    done = committed(options, group) or {}  # where the group stopped (else where the topics ended then)
    begin = {tp: done[tp].offset if done.get(tp) is not None and done[tp].offset >= 0 else start.get(tp, 0)
             for tp in end}
    events = sum(end[tp] - begin[tp] for tp in end)
    bare = bare_consume(options, begin, end)
    began = time.perf_counter()
    stack.start(f"{group}-consumer")
    with tqdm(total=events, desc=f"{group} consumer", unit="ev", file=sys.stderr) as bar:
        def progress():
            done = committed(options, group)
            bar.n = sum(min(end[tp], done[tp].offset) - begin[tp] for tp in end
                        if done and done.get(tp) is not None and done[tp].offset >= begin[tp])
            bar.refresh()
            return caught_up(done, end, begin)
        wait_until(progress, cap_s, f"the {group} consumer", interval_s=0.5)
    seconds = time.perf_counter() - began
    return {"records": events, "seconds": round(seconds, 2), "per_second": round(events / seconds, 1) if seconds else None,
            "bare_consume": bare,
            "ratio_to_bare": round(seconds / bare["seconds"], 1) if bare["seconds"] else None}


def settle(options: dict, parts, at_least: dict, quiet_s: float = 2.0, cap_s: float = 600) -> dict:
    """Wait until each topic named in at_least ends at or past that many records (summed over its
    partitions) and no topic's end has moved for quiet_s (the relays have published what was stored)."""
    last, since = None, time.perf_counter()
    deadline = time.perf_counter() + cap_s
    while time.perf_counter() < deadline:
        now = end_offsets(options, parts)
        totals = {t: sum(o for tp, o in now.items() if tp.topic == t) for t in TOPICS}
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s and all(totals[t] >= n for t, n in at_least.items()):
            return now
        time.sleep(0.3)
    raise RuntimeError(f"the topics did not settle: {last}")


# --- what staff do ----------------------------------------------------------------------------------


def staff_activity(urls: dict, api: requests.Session, rng: random.Random, case_ids: list[str], n: int,
                   reports: int, clients: int = 4) -> dict:
    """n status changes (each audited), n/2 UNHCR-access requests and n/4 issued appeals through the
    APIs, and reports filed through intake whose identifying data is then read once (an audited
    read); from `clients` threads, as several members of staff at once."""
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    recipients = [r["name"] for r in api.get(f"{urls['advocacy']}/api/v1/recipients", timeout=30).json()["items"]]
    offices = [o["code"] for o in api.get(f"{urls['advocacy']}/api/v1/unhcr-offices", timeout=30).json()["items"]]
    jobs = [("status_changes", case_id, f"{urls['case']}/api/v1/cases/{case_id}/transitions",
             {"to": rng.choice(MOVES), "effective_on": today}) for case_id in rng.sample(case_ids, min(n, len(case_ids)))]
    jobs += [("requests", None, f"{urls['advocacy']}/api/v1/unhcr-access-requests",
              {"case_ids": rng.sample(case_ids, rng.randint(1, 3)), "office": rng.choice(offices), "sent_on": today,
               "channel": "email"}) for _ in range(n // 2)]
    jobs += [("appeals", None, f"{urls['advocacy']}/api/v1/appeals",
              {"case_ids": rng.sample(case_ids, rng.randint(1, 2)), "kind": "urgent_appeal",
               "recipients": rng.sample(recipients, min(2, len(recipients))), "issued_on": today}) for _ in range(n // 4)]
    jobs += [("reports", None, f"{urls['intake']}/api/v1/reports", synthetic_report()) for _ in range(reports)]
    rng.shuffle(jobs)
    sessions = queue.Queue()
    for _ in range(clients):
        session = requests.Session()
        session.headers.update(api.headers)
        sessions.put(session)

    def run(job) -> tuple[str, str | None, int]:
        kind, case_id, url, body = job
        session = sessions.get()
        try:
            res = session.post(url, json=body, timeout=120)
            if kind == "reports" and res.status_code == 201:  # read it once: an audited read
                read = session.get(f"{urls['intake']}/api/v1/reports/{res.json()['report_id']}", timeout=120)
                return kind, case_id, 201 if read.status_code == 200 else read.status_code
            return kind, case_id, res.status_code
        finally:
            sessions.put(session)

    done: dict = {"status_changes": 0, "requests": 0, "appeals": 0, "reports": 0, "refused": 0, "failed": 0,
                  "changed": []}
    with ThreadPoolExecutor(clients) as pool:
        for kind, case_id, status in tqdm(pool.map(run, jobs), total=len(jobs), desc="staff's changes", unit="req",
                                          file=sys.stderr):
            if status in (200, 201):
                done[kind] += 1
                if case_id:
                    done["changed"].append(case_id)
            else:  # 409/422: a move the table refuses for that case; anything else is counted too
                done["refused" if status in (409, 422) else "failed"] += 1
    return done


# --- measuring --------------------------------------------------------------------------------------


def timed_within(call, n: int, budget_s: float) -> dict:
    """Call up to n times, stopping once budget_s has passed (after 3 calls at least: a list that
    takes seconds would otherwise outlast the run); p50, p95 and max in milliseconds over every
    call, with the answers that were not 200 counted by status (a timeout counts as 0)."""
    times, failed, began = [], {}, time.perf_counter()
    for i in range(n):
        if i >= 3 and time.perf_counter() - began > budget_s:
            break
        start = time.perf_counter()
        try:
            status = call(i).status_code
        except requests.RequestException:
            status = 0
        times.append((time.perf_counter() - start) * 1000)
        if status != 200:
            failed[str(status)] = failed.get(str(status), 0) + 1
    times.sort()
    out = {"n": len(times), "p50_ms": round(statistics.median(times), 1),
           "p95_ms": round(times[max(0, math.ceil(len(times) * 0.95) - 1)], 1), "max_ms": round(times[-1], 1)}
    return {**out, "failed": failed} if failed else out


def case_filters(rng: random.Random) -> dict:
    """Random filters of the case list, as its API and page take them (status, province, imminent)."""
    params = {}
    if rng.random() < 0.5:
        params["status"] = rng.choice(CASE_STATUSES)
    if rng.random() < 0.5:
        params["province"] = rng.choice(PROVINCES)
    if rng.random() < 0.15:
        params["imminent"] = "1"
    return params


def cached(total):
    """total(params) computed once per set of filters."""
    kept: dict = {}

    def once(params: dict) -> int:
        key = tuple(sorted(params.items()))
        if key not in kept:
            kept[key] = total(params)
        return kept[key]
    return once


class Lists:
    """Random filters and pages of the lists, through their APIs and their pages."""

    def __init__(self, api: requests.Session, web: FormClient, rng: random.Random, budget_s: float):
        self.api, self.web, self.rng, self.budget_s = api, web, rng, budget_s

    def paged(self, url: str, filters, total_of, page_size: int, n: int, via_page: bool, deepest: bool = False) -> dict:
        """Up to n requests, each with random filters (`filters()` -> params) on a random page of
        the list (its last page from total_of(params), untimed), through the API or its page
        (via_page: the logged-in browser's session); deepest: the last page."""
        session = self.web.http if via_page else self.api

        def call(_i):
            params = filters()
            last = max(1, math.ceil(total_of(params) / page_size))
            page = last if deepest else self.rng.randint(1, last)
            return session.get(url, params={**params, "page": page}, timeout=600)

        return timed_within(call, n, self.budget_s)

    def flat(self, url: str, filters, n: int, via_page: bool) -> dict:
        """Up to n requests of an unpaged list, random filters."""
        session = self.web.http if via_page else self.api
        return timed_within(lambda _i: session.get(url, params=filters(), timeout=600), n, self.budget_s)


def case_totals(collection):
    """How many cases each filter of the case list matches, from one read of every case's status,
    province and imminence (untimed): asking the API for each filter's total would cost a list
    request per filter."""
    seen = Counter((c.get("status"), c.get("province"), bool(c.get("deportation_imminent")))
                   for c in collection.find({}, {"status": 1, "province": 1, "deportation_imminent": 1}))

    def total(params: dict) -> int:
        return sum(k for (status, province, imminent), k in seen.items()
                   if params.get("status", status) == status and params.get("province", province) == province
                   and (imminent or "imminent" not in params))
    return total


def answered(_result) -> object:
    """A stand-in for an HTTP answer, for what is timed in this process."""
    return type("Answered", (), {"status_code": 200})()


def baselines(api: requests.Session, url: str, collection, n: int) -> dict:
    """A read of one document by _id from the service's database, and the service's /healthz."""
    def by_id(_i):
        return answered(collection.find_one({"_id": some["_id"]} if some else {"_id": ""}))

    some = collection.find_one({}, {"_id": 1})
    return {"read_by_id": lambda: timed_within(by_id, n, 60),
            "healthz": lambda: timed_within(lambda _i: api.get(f"{url}/healthz", timeout=30), n, 60)}


def queries(urls: dict, api, web, dbs: dict, rng: random.Random, n: int, budget_s: float, case_ids: list[str],
            changed: list[str]) -> dict:
    """Every list of the case, intake and advocacy services, each beside its service's baselines."""
    from services.advocacy.store import AdvocacyStore
    from services.case.store import CaseStore
    from services.intake.store import IntakeStore

    lists = Lists(api, web, rng, budget_s)
    deep = max(3, n // 4)
    case_url, intake_url, advocacy_url = urls["case"], urls["intake"], urls["advocacy"]
    cases, intake = CaseStore(dbs["case"]), IntakeStore(dbs["intake"])
    case_total = case_totals(cases.current)

    def report_total(params: dict) -> int:
        return intake.reports.count_documents({"detention.province": params["province"]} if params else {})

    def audit_total(params: dict) -> int:
        res = api.get(f"{intake_url}/api/v1/audit", params=params, timeout=600)
        res.raise_for_status()
        return res.json()["total"]

    report_total, audit_total = cached(report_total), cached(audit_total)

    def report_filters():
        return {"province": rng.choice(PROVINCES)} if rng.random() < 0.5 else {}

    def audit_filters(for_page: bool):
        def filters():
            params = {}
            if rng.random() < 0.3 and changed:
                params["case_id"] = rng.choice(changed)
            if rng.random() < 0.3:
                params["user"] = "admin"
            if not for_page and rng.random() < 0.4:
                params["action"] = rng.choice(AUDIT_ACTIONS)
            return params
        return filters

    def advocacy_filters(statuses):
        def filters():
            params = {}
            if rng.random() < 0.5:
                params["status"] = rng.choice(statuses)
            if rng.random() < 0.2:
                params["case_id"] = rng.choice(case_ids)
            return params
        return filters

    cases_api, cases_page = f"{case_url}/api/v1/cases", f"{case_url}/cases"
    audit_api, audit_page, reports = f"{intake_url}/api/v1/audit", f"{intake_url}/audit", f"{intake_url}/reports"
    size = CaseStore.PAGE_SIZE
    steps = {
        "case": {
            **baselines(api, case_url, cases.current, n),
            "list_api": lambda: lists.paged(cases_api, lambda: case_filters(rng), case_total, size, n, via_page=False),
            "list_page": lambda: lists.paged(cases_page, lambda: case_filters(rng), case_total, size, n, via_page=True),
            "deepest_api": lambda: lists.paged(cases_api, dict, case_total, size, deep, via_page=False, deepest=True),
            "deepest_page": lambda: lists.paged(cases_page, dict, case_total, size, deep, via_page=True, deepest=True),
            # where the time goes: the store's two queries of the last page, in this process
            "db_count": lambda: timed_within(lambda _i: answered(cases.current.count_documents({})), deep, budget_s),
            "db_last_page": lambda: timed_within(lambda _i: answered(cases.page(
                status=None, province=None, page=max(1, math.ceil(case_total({}) / size)))), deep, budget_s)},
        "intake": {
            **baselines(api, intake_url, intake.reports, n),
            "report_list_page": lambda: lists.paged(reports, report_filters, report_total, intake.PAGE_SIZE, n,
                                                    via_page=True),
            "report_list_deepest_page": lambda: lists.paged(reports, dict, report_total, intake.PAGE_SIZE, deep,
                                                            via_page=True, deepest=True),
            "audit_api": lambda: lists.paged(audit_api, audit_filters(False), audit_total, intake.PAGE_SIZE, n,
                                             via_page=False),
            "audit_page": lambda: lists.paged(audit_page, audit_filters(True), audit_total, intake.PAGE_SIZE, n,
                                              via_page=True),
            "audit_deepest_api": lambda: lists.paged(audit_api, dict, audit_total, intake.PAGE_SIZE, deep,
                                                     via_page=False, deepest=True),
            "audit_deepest_page": lambda: lists.paged(audit_page, dict, audit_total, intake.PAGE_SIZE, deep,
                                                      via_page=True, deepest=True)},
        "advocacy": {
            **baselines(api, advocacy_url, AdvocacyStore(dbs["advocacy"]).appeals.current, n),
            "appeals_api": lambda: lists.flat(f"{advocacy_url}/api/v1/appeals", advocacy_filters(APPEAL_STATUSES), n,
                                              False),
            "appeals_page": lambda: lists.flat(f"{advocacy_url}/appeals", advocacy_filters(APPEAL_STATUSES), n, True),
            "requests_api": lambda: lists.flat(f"{advocacy_url}/api/v1/unhcr-access-requests",
                                               advocacy_filters(REQUEST_STATUSES), n, False),
            "requests_page": lambda: lists.flat(f"{advocacy_url}/requests", advocacy_filters(REQUEST_STATUSES), n,
                                                True)},
    }
    out: dict = {}
    with tqdm(total=sum(map(len, steps.values())), desc="lists", unit="list", file=sys.stderr) as bar:
        for service, measures in steps.items():
            for name, measure in measures.items():
                out.setdefault(service, {})[name] = recorded(measure)
                bar.update()
    return out


def recorded(measure) -> dict:
    """A measurement, or what made it fail (a timeout or an error answer is a finding, not a crash)."""
    try:
        return measure()
    except (RuntimeError, requests.RequestException) as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def counts(dbs: dict) -> dict:
    """How many documents each list holds (read untimed, after the measurements)."""
    from services.advocacy.store import AdvocacyStore
    from services.case.store import CaseStore
    from services.intake.store import IntakeStore

    intake, advocacy = IntakeStore(dbs["intake"]), AdvocacyStore(dbs["advocacy"])
    return {"cases": CaseStore(dbs["case"]).current.count_documents({}), "reports": intake.reports.count_documents({}),
            "audit_entries": intake.audit.count_documents({}),
            "appeals": advocacy.appeals.current.count_documents({}),
            "requests": advocacy.requests.current.count_documents({})}


def measure_size(stack, options, parts, urls, api, web, dbs, target: int, have: int, known: list[str],
                 changed: list[str], args) -> dict:
    """Grow to `target` cases through the consumers, then measure every list at that size."""
    for group in reversed(CONSUMERS):
        stack.stop(f"{group}-consumer")
    mark = end_offsets(options, parts)
    new = produce_reported(options, target - have, seed=target)
    known.extend(new)
    result: dict = {"cases": target, "new_cases": len(new), "ingest": {}}
    for group in CONSUMERS:
        if group == "advocacy":  # every case.opened published (inline or by the relay) before advocacy starts
            before = sum(o for tp, o in mark.items() if tp.topic == "case.events")
            settle(options, parts, {"case.events": before + len(new)})
        result["ingest"][group] = ingest(stack, options, parts, group, mark, args.ingest_cap_minutes * 60)
        print(f"bench.lists: {group} consumer {result['ingest'][group]}", file=sys.stderr)
    rng = random.Random(target)
    result["activity"] = staff_activity(urls, api, rng, new, args.activity, args.reports)
    settled = settle(options, parts, {})
    wait_until(lambda: all(caught_up(committed(options, g), only(settled, CONSUMERS[g])) for g in CONSUMERS), 600,
               "the consumers after the staff's changes", interval_s=0.5)
    changed.extend(result["activity"].pop("changed"))
    result["queries"] = queries(urls, api, web, dbs, rng, args.requests, args.budget, known, changed)
    result["memory"] = {name: rss_mb(stack.procs[name].pid)
                        for name in (*WEBS, *(f"{g}-consumer" for g in CONSUMERS)) if stack.running(name)}
    result["documents"] = counts(dbs)
    return result


# --- report -------------------------------------------------------------------------------------------


def _cell(q: dict) -> str:
    if "error" in q:
        return f"failed: {q['error'][:80]}"
    mark = "" if q["p95_ms"] < AIM_MS else " **over**"
    failed = f", {sum(q['failed'].values())} not 200 ({q['failed']})" if q.get("failed") else ""
    return f"{q['p50_ms']:,} / {q['p95_ms']:,}{mark} ({q['n']}{failed})"


ROWS = (("case", "list_api", "cases API `GET /api/v1/cases` (filters, random pages)"),
        ("case", "list_page", "cases page `/cases` (filters, random pages)"),
        ("case", "deepest_api", "cases API, last page"),
        ("case", "deepest_page", "cases page, last page"),
        ("case", "db_count", "case database: `count_documents({})` of the cases, in-process"),
        ("case", "db_last_page", "case database: the store's last page (count, then sort, skip, limit), in-process"),
        ("case", "read_by_id", "case database: one case by _id (baseline)"),
        ("case", "healthz", "case `/healthz` (baseline)"),
        ("intake", "report_list_page", "reports page `/reports` (province, random pages)"),
        ("intake", "report_list_deepest_page", "reports page, last page"),
        ("intake", "audit_api", "audit API `GET /api/v1/audit` (filters, random pages)"),
        ("intake", "audit_page", "audit page `/audit` (filters, random pages)"),
        ("intake", "audit_deepest_api", "audit API, last page"),
        ("intake", "audit_deepest_page", "audit page, last page"),
        ("intake", "read_by_id", "intake database: one report by _id (baseline)"),
        ("intake", "healthz", "intake `/healthz` (baseline)"),
        ("advocacy", "appeals_api", "appeals API `GET /api/v1/appeals` (status, case)"),
        ("advocacy", "appeals_page", "appeals page `/appeals`"),
        ("advocacy", "requests_api", "requests API `GET /api/v1/unhcr-access-requests`"),
        ("advocacy", "requests_page", "requests page `/requests`"),
        ("advocacy", "read_by_id", "advocacy database: one appeal by _id (baseline)"),
        ("advocacy", "healthz", "advocacy `/healthz` (baseline)"))


def markdown(results: dict) -> str:
    sizes = results["sizes"]
    head = " | ".join(f"{r['cases']:,} cases" for r in sizes)
    lines = ["# Lists at scale (case, intake, advocacy)", "",
             f"{results['date']}, {results['machine']}, commit {results['git']}. Milliseconds, p50 / p95 "
             f"(requests: up to {results['requests']} per row, a quarter of that for last pages, fewer when a row "
             f"passed {results['budget']:g} s); **over**: p95 above issue 12's aim of {AIM_MS} ms at any page.", "",
             f"| list | {head} |", "| --- |" + " --- |" * len(sizes)]
    for service, key, label in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(r["queries"][service][key]) for r in sizes) + " |")
    lines += ["", "What the lists held:", "", "| cases | reports | audit entries | appeals | UNHCR-access requests |",
              "| --- | --- | --- | --- | --- |"]
    for r in sizes:
        d = r["documents"]
        lines.append(f"| {d['cases']:,} | {d['reports']:,} | {d['audit_entries']:,} | {d['appeals']:,} | {d['requests']:,} |")
    lines += ["", "Ingest of each consumer (run alone) beside a bare kafka-python consume of the same records:", "",
              "| size | consumer | records | seconds | events/s | bare consume records/s | x bare |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sizes:
        for group, ing in r["ingest"].items():
            lines.append(f"| {r['cases']:,} | {group} | {ing['records']:,} | {ing['seconds']} | {ing['per_second']:,} | "
                         f"{ing['bare_consume']['per_second']:,} | {ing['ratio_to_bare']} |")
    lines += ["", "Resident memory, MiB (largest process / all processes of it: gunicorn's master and workers):", "",
              "| size | " + " | ".join(sizes[0]["memory"]) + " |", "| --- |" + " --- |" * len(sizes[0]["memory"])]
    for r in sizes:
        lines.append(f"| {r['cases']:,} | " + " | ".join(f"{m['max_mb']} / {m['total_mb']}" for m in r["memory"].values())
                     + " |")
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.lists", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000", help="comma-separated case counts, growing (default: 10000,30000)")
    parser.add_argument("--requests", type=int, default=20, help="requests per list and baseline per size (default 20)")
    parser.add_argument("--budget", type=float, default=120,
                        help="seconds each list may take per size: past it (and 3 requests) it stops short of "
                             "--requests (default 120)")
    parser.add_argument("--activity", type=int, default=1000,
                        help="status changes per size, with half as many UNHCR-access requests and a quarter as many "
                             "issued appeals, from 4 clients (default 1000)")
    parser.add_argument("--reports", type=int, default=200,
                        help="reports filed through intake (and each read once) per size (default 200)")
    parser.add_argument("--ingest-cap-minutes", type=float, default=20,
                        help="a larger size is skipped when the consumers' measured rates say its ingest would take "
                             "longer than this (default 20)")
    parser.add_argument("--keep", action="store_true", help="leave var/bench-lists after the run")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.sizes != sorted(args.sizes) or args.sizes[0] <= 0:
        parser.error("--sizes must be positive and growing")
    return args


def projected_minutes(last: dict, new_cases: int) -> float:
    """How long the consumers would take for new_cases more, at the rates just measured."""
    per_case = sum(i["seconds"] / max(1, last["new_cases"]) for i in last["ingest"].values())
    return per_case * new_cases / 60


def interrupted(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    made = own_stack("lists", {**tier_env("bench-lists"), **LISTS_ENV}, VAR)
    if made is None:
        return 1
    stack, results = made
    env = stack.env
    signal.signal(signal.SIGTERM, interrupted)  # `timeout` or a kill stops the stack too
    results.update({"requests": args.requests, "budget": args.budget, "sizes": [], "notes": []})
    try:
        print(f"bench.lists: starting a stack of its own (logs in {stack.logs})", file=sys.stderr)
        stack.start("kafka", "ferretdb")
        wait_until(lambda: port_open(env["NRW_MONGO_URI"]), 120, "FerretDB")
        wait_until(lambda: port_open(env["NRW_KAFKA_BOOTSTRAP"]), 120, "Kafka")
        subprocess.run([sys.executable, "-m", "shared.topics"], cwd=ROOT, env=stack.env, check=True,
                       stdout=subprocess.DEVNULL)
        register_kafka(env["NRW_KAFKA_BOOTSTRAP"], VAR / "secrets")
        stack.start(*WEBS, *RELAYS)
        urls = service_urls(env)
        for service in ("intake", "case", "advocacy"):
            wait_until(lambda s=service: ready(urls[s]), 180, service)
        token = requests.post(f"{urls['intake']}/api/v1/auth/token", timeout=30,
                              json={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        web = FormClient(urls["intake"], timeout_s=600)
        web.login("admin", ADMIN_PASSWORD)
        from shared.config import Settings
        from shared.mongo import connect

        settings = Settings.from_env()
        client = connect(settings, "operator", timeout_ms=60000)
        dbs = {s: client[settings.database_name(s)] for s in ("intake", "case", "advocacy")}
        options = kafka_options(env)
        parts = partitions(options)
        have, known, changed = 0, [], []
        for size in args.sizes:
            if results["sizes"] and (minutes := projected_minutes(results["sizes"][-1], size - have)) > args.ingest_cap_minutes:
                results["notes"].append(f"{size:,} cases not measured: at the rates measured the consumers would "
                                        f"take about {minutes:.0f} minutes to ingest them (cap "
                                        f"{args.ingest_cap_minutes:g}).")
                print(f"bench.lists: {results['notes'][-1]}", file=sys.stderr)
                break
            print(f"bench.lists: {size:,} cases", file=sys.stderr)
            results["sizes"].append(measure_size(stack, options, parts, urls, api, web, dbs, size, have, known,
                                                 changed, args))
            print(json.dumps(results["sizes"][-1], indent=1), file=sys.stderr)
            write_results(results, partial=True)  # what was measured survives a failure at a larger size
            have = size
    except KeyboardInterrupt:
        print("bench.lists: interrupted (the sizes measured are in bench/results/)", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, requests.RequestException, KafkaError, PyMongoError) as exc:
        print(f"bench.lists: the stack does not work: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(VAR, ignore_errors=True)
    write_results(results)
    print(markdown(results))
    return 0


def write_results(results: dict, partial: bool = False) -> None:
    """bench/results/lists-<start time>.json and lists-latest.md (rewritten after each size)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(results["date"]).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"lists-{stamp}.json").write_text(json.dumps({**results, "partial": partial}, indent=2))
    (RESULTS / "lists-latest.md").write_text(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
