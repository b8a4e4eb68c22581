"""The case list's columns at 10,000, 30,000 and 100,000 cases, in one process, against the real
FerretDB: what a list request costs with shared/listindex.py beside what it cost before (a count
and a sorted page asked of the database) and beside a read by `_id`.

    python -m bench.columns [--sizes 10000,30000,100000] [--requests 40]   (`make bench`; --help)

Why in one process: building 100,000 cases through the case consumer takes about 18 minutes
(bench.lists measures that consumer and the lists over HTTP at 10,000 and 30,000 cases); here the
cases' projections are inserted straight into the case database (the shape the case service
writes), and the list is asked the way `CaseStore.page` asks it: the columns filter, count and
page, then the page's 50 cases are read by `_id`. Measured at each size:

- the first load of the columns (once per web process) and the memory it takes;
- a list request: random filters (status, province, imminent) and random pages, and the last page
  unfiltered, p50/p95/max in milliseconds;
- following the journal: a request after 100 cases changed (each change appended to the journal
  as the case service does);
- baselines: one case read by `_id`; the old way (count_documents, then find().sort().skip()
  .limit()) on the same data, fewer times, as it takes seconds.

It starts its own FerretDB (port 46017, var/bench-columns), writes bench/results/columns-<UTC
time>.json and bench/results/columns-latest.md. A measurement, not a test: exit status 0 whatever
the figures, 1 only when FerretDB does not work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
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
AIM_MS = 300  # issue 12: every list page p95 under 300 ms
T0 = dt.datetime(2023, 1, 1)


def case_doc(i: int, rng: random.Random) -> dict:
    """A case projection as the case service stores it (synthetic; the list's fields and a history)."""
    status = rng.choice(STATUSES)
    created = T0 + dt.timedelta(seconds=rng.randrange(0, 3 * 365 * 86400))
    return {"_id": f"case-{i:08d}", "case_id": f"case-{i:08d}", "status": status, "province": rng.choice(PROVINCES),
            "deportation_imminent": status == "deportation_imminent", "created_at": created, "updated_at": created,
            "risk_level": rng.choice(["low", "medium", "high"]), "rev": 1,
            "history": [{"status": "reported", "at": created, "by": "bench"}]}


def timed(call, n: int) -> dict:
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"n": n, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, math.ceil(n * 0.95) - 1)], 1), "max_ms": round(times[-1], 1)}


def rss_mib() -> float:
    """This process's resident memory now, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(db, size: int, have: int, rng: random.Random, n: int, old_n: int) -> dict:
    store = CaseStore(db)
    with tqdm(total=size - have, desc=f"cases to {size:,}", unit="case", file=sys.stderr) as bar:
        for start in range(have, size, 1000):
            docs = [case_doc(i, rng) for i in range(start, min(size, start + 1000))]
            store.current.insert_many(docs, ordered=False)
            bar.update(len(docs))
    from shared.listindex import ListIndex
    from services.case.store import LIST_COLUMNS
    rss_before = rss_mib()
    began = time.perf_counter()
    index = ListIndex(store.current, LIST_COLUMNS, order="created_at", journal=store.journal,
                      projection={"status": 1, "province": 1, "deportation_imminent": 1, "created_at": 1}).current()
    load_s = time.perf_counter() - began
    pages = math.ceil(size / store.PAGE_SIZE)

    def ask(equal: dict, page: int):
        ids, total = index.current().select(equal=equal, offset=(page - 1) * store.PAGE_SIZE, limit=store.PAGE_SIZE)
        return [store.current.find_one({"_id": i}) for i in ids], total

    def random_filters() -> dict:
        equal = {}
        if rng.random() < 0.5:
            equal["status"] = rng.choice(STATUSES)
        if rng.random() < 0.5:
            equal["province"] = rng.choice(PROVINCES)
        if rng.random() < 0.2:
            equal["imminent"] = True
        return equal

    def random_request(_i):
        equal = random_filters()
        _, total = index.select(equal=equal, limit=0)
        ask(equal, rng.randint(1, max(1, math.ceil(total / store.PAGE_SIZE))))

    for i in range(3):  # warm up (FerretDB just took the inserts)
        random_request(i)
    result = {"cases": size, "load_s": round(load_s, 2), "rss_grew_mib": round(rss_mib() - rss_before, 1),
              "list": timed(random_request, n), "last_page": timed(lambda _i: ask({}, pages), max(5, n // 4))}
    changed = [f"case-{rng.randrange(size):08d}" for _ in range(100)]
    for case_id in changed:
        store.current.update_one({"_id": case_id}, {"$set": {"status": "released", "deportation_imminent": False}})
        store.journal.append(case_id)
    began = time.perf_counter()
    index.current()
    result["follow_100_changes_ms"] = round((time.perf_counter() - began) * 1000, 1)
    result["read_by_id"] = timed(lambda _i: store.current.find_one({"_id": f"case-{rng.randrange(size):08d}"}), n)

    def old_way(_i):
        equal = {k: v for k, v in random_filters().items() if k != "imminent"}
        total = store.current.count_documents(equal)
        list(store.current.find(equal).sort("created_at", DESCENDING)
             .skip(rng.randrange(max(1, math.ceil(total / store.PAGE_SIZE))) * store.PAGE_SIZE).limit(store.PAGE_SIZE))
    result["database_count_and_sort"] = timed(old_way, old_n)
    return result


def markdown(results: dict) -> str:
    lines = ["# The case list's columns at scale (bench.columns)", "",
             f"{results['date']}, {results['machine']}, commit {results['git']}. Milliseconds, p50 / p95 "
             f"(requests); **over**: p95 above issue 12's {AIM_MS} ms.", "",
             "| cases | list request: columns + 50 reads by _id | last page | read by _id | before: count + sorted page in the database | columns' first load | memory it took | follow 100 changes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def cell(q):
        over = " **over**" if q["p95_ms"] > AIM_MS else ""
        return f"{q['p50_ms']:,} / {q['p95_ms']:,}{over} ({q['n']})"
    for s in results["sizes"]:
        lines.append(f"| {s['cases']:,} | {cell(s['list'])} | {cell(s['last_page'])} | {cell(s['read_by_id'])} | "
                     f"{cell(s['database_count_and_sort'])} | {s['load_s']} s | {s['rss_grew_mib']} MiB | "
                     f"{s['follow_100_changes_ms']} ms |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.columns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000", help="case counts, growing (default 10000,30000,100000)")
    parser.add_argument("--requests", type=int, default=40, help="list requests per size (default 40)")
    parser.add_argument("--old-requests", type=int, default=3,
                        help="requests the old way (count and sorted page in the database) per size (default 3)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] <= 0:
        parser.error("--sizes must be positive and growing")
    made = own_stack("columns", {**tier_env("bench-columns"), **COLUMNS_ENV}, VAR)
    if made is None:
        return 1
    stack, results = made
    results["sizes"] = []
    rng = random.Random(12)
    try:
        subprocess.run([sys.executable, "-m", "shared.keys", "init"], cwd=ROOT, env=stack.env, check=True,
                       stdout=subprocess.DEVNULL)
        stack.start("ferretdb")
        wait_until(lambda: port_open(stack.env["NRW_MONGO_URI"]), 120, "FerretDB")
        from shared.config import Settings
        from shared.mongo import connect
        settings = Settings.from_env()
        db = connect(settings, "operator", timeout_ms=120000)[settings.database_name("case")]
        have = 0
        for size in sizes:
            results["sizes"].append(measure(db, size, have, rng, args.requests, args.old_requests))
            print(json.dumps(results["sizes"][-1]), file=sys.stderr)
            have = size
    except (RuntimeError, TimeoutError, PyMongoError, subprocess.CalledProcessError) as exc:
        print(f"bench.columns: FerretDB does not work: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        shutil.rmtree(VAR, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(results["date"]).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"columns-{stamp}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "columns-latest.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
