"""Scale: the reporting service at 10,000, 30,000 and 100,000 synthetic cases.

    python -m bench.scale [--sizes 10000,30000,100000] [--queries 60] ...   (`make bench`; --help: every option)

For each size it adds the synthetic cases' events straight to intake.events, case.events and
advocacy.events (what those services would have published), then measures, each beside its
baseline in the same run:

- ingest: the real reporting consumer applying the new events, beside a bare kafka-python
  consume of the same records;
- statistics (random measures, dates, periods and breakdowns), the dashboard, the UPR questions
  and the evidence register through the real web service over HTTP, beside a read of one
  record by _id from the same database and beside /healthz;
- a snapshot (POST, then its largest stored document);
- a rebuild of every record from the topics (`python -m services.reporting.rebuild`), beside a
  bare consume of every topic from the beginning;
- the resident memory of the web workers and the consumer.

It starts its own Kafka, FerretDB, intake web (logins), reporting web and consumer on ports and a
var/ folder of its own; writes bench/results/scale-<UTC time>.json and bench/results/scale-latest.md.
A measurement, not a test: exit status 0 whatever the figures, 1 only when the stack does not work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from bson import BSON
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from tqdm import tqdm

from bench.form import FormClient
from bench.pipeline import busy_addresses
from infra.stack import Stack, port_open, ready, service_urls, wait_until
from shared.events import encode, new_event
from tests.support import ADMIN_PASSWORD, register_kafka, tier_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench-scale"
# Ports of its own: tests use 18xxx/19092/27117 (and the launcher test 38xxx/39092/27317), `make run`
# 8xxx/9092/27017, bench.pipeline 28xxx/29092/27217, bench.lists 48xxx/49092/47017.
SCALE_ENV = {
    "NRW_KAFKA_BOOTSTRAP": "127.0.0.1:59092",
    "NRW_KAFKA_CONTROLLER_PORT": "59093",
    "NRW_KAFKA_HEAP": "1g",
    "NRW_FERRETDB_LISTEN": "127.0.0.1:27517",
    "NRW_MONGO_URI": "mongodb://127.0.0.1:27517/",
    "NRW_INTAKE_PORT": "58001",
    "NRW_CASE_PORT": "58002",
    "NRW_ADVOCACY_PORT": "58003",
    "NRW_REPORTING_PORT": "58004",
    "NRW_VAR": str(VAR),
    "NRW_ACCESS_LOG": "0",
    "NRW_2FA_ROLES": "",
    "NRW_WEB_WORKERS": "2",
}
TOPICS = ("intake.events", "case.events", "advocacy.events")
MEASURES = ("detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued", "returned_fate_known", "sent_to_kyohwaso", "art46_applied")
BYS = ("", "sex", "sex,age_group", "province", "nationality", "province,status", "age_group,province,sex")
PROVINCES = ("Jilin", "Liaoning", "Yunnan", "Heilongjiang", "Shandong", "Beijing")
NEXT = {"reported": ("detained", "deportation_imminent", "whereabouts_unknown"),
        "detained": ("deportation_imminent", "repatriated", "released"),
        "deportation_imminent": ("repatriated", "detained"), "whereabouts_unknown": ("detained",),
        "released": ("in_third_country",), "repatriated": (), "in_third_country": ()}
FIRST_DAY = dt.date(2019, 1, 1)
AS_OF = dt.date(2025, 12, 31)


# --- synthetic cases ----------------------------------------------------------------------------


def case_events(rng: random.Random, clock) -> dict[str, list[dict]]:
    """One invented person's events per topic, as intake, the case service and advocacy publish
    them (validated by shared/events.py as every producer's are). Nothing real: random choices."""
    case_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def ev(kind, producer, payload):
        return new_event(kind, producer=producer, case_id=case_id, payload=payload, now=next(clock))

    reported = FIRST_DAY + dt.timedelta(days=rng.randrange(0, (AS_OF - FIRST_DAY).days))
    common = {"sex": rng.choice(("female", "female", "male", "unknown")),
              "birth_year": rng.choice((None,) + tuple(range(1950, 2020))),
              "nationality": rng.choice(("KP",) * 9 + ("CN",)), "province": rng.choice(PROVINCES)}
    intake = [ev("case.reported", "intake", {
        "report_id": str(uuid.uuid4()), "matched_existing_case": False, **common, "detained_on": None,
        "deportation_imminent": False, "expected_deportation_on": None, "vulnerabilities": [],
        "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
        "received_on": reported.isoformat(), "consent_advocacy": "anonymous", "consent_statistics": True})]
    case = [ev("case.opened", "case", {"status": "reported", **common, "detained_on": None,
                                       "deportation_imminent": False, "vulnerabilities": [],
                                       "consent_advocacy": "anonymous", "consent_statistics": True})]
    status, day, returned = "reported", reported, None
    for _ in range(rng.randrange(0, 3)):
        if not NEXT[status]:
            break
        previous, status = status, rng.choice(NEXT[status])
        day = min(day + dt.timedelta(days=rng.randrange(1, 120)), AS_OF)
        case.append(ev("case.status_changed", "case", {"from": previous, "to": status, "effective_on": day.isoformat()}))
        returned = day if status == "repatriated" else returned
    if returned and rng.random() < 0.3:
        learned = min(returned + dt.timedelta(days=rng.randrange(10, 400)), AS_OF)
        case.append(ev("case.after_return_recorded", "case", {
            "record_id": str(uuid.uuid4()), "learned_on": learned.isoformat(), "effective_on": None,
            "source_type": "family", "source_reliability": "probable",
            "custody": rng.choice(("mss", "mps", "unknown")),
            "outcome": rng.choice(("kyohwaso", "kwanliso", "labour_training_camp", "released", "unknown")),
            "forced_labour": rng.choice(("yes", "no", "unknown")), "work": [], "products": [], "facilities": [],
            "companies": [], "ill_treatment": []}))
    if rng.random() < 0.05:
        case.append(ev("case.asylum_recorded", "case", {
            "record_id": str(uuid.uuid4()), "procedure": "art46", "step": "applied",
            "effective_on": min(reported + dt.timedelta(days=rng.randrange(1, 90)), AS_OF).isoformat(),
            "source_type": "family", "source_reliability": "confirmed"}))
    advocacy = []
    if rng.random() < 0.15:
        sent = min(reported + dt.timedelta(days=rng.randrange(1, 200)), AS_OF)
        advocacy.append(ev("unhcr_access.requested", "advocacy", {"request_id": str(uuid.uuid4()),
                                                                  "office": "UNHCR Beijing", "channel": "email",
                                                                  "sent_on": sent.isoformat()}))
    return {"intake.events": intake, "case.events": case, "advocacy.events": advocacy}


def produce(options: dict, n: int, seed: int) -> int:
    """Invent n cases and write their events to the topics (keyed by case, as the services do)."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=seed)
    clock = (start + dt.timedelta(milliseconds=i) for i in range(10**9))
    producer = KafkaProducer(**options, linger_ms=20, batch_size=256 * 1024, acks="all")
    sent = 0
    try:
        for _ in tqdm(range(n), desc=f"producing {n} cases", unit="case", file=sys.stderr):
            for topic, events in case_events(rng, clock).items():
                for event in events:
                    producer.send(topic, key=event["case_id"].encode(), value=encode(event))
                    sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


# --- measuring ------------------------------------------------------------------------------------


def kafka_options(env: dict) -> dict:
    from shared.config import Settings
    from shared.kafka_auth import client_options

    return client_options(Settings(kafka_bootstrap=env["NRW_KAFKA_BOOTSTRAP"], secrets_dir=VAR / "secrets"), "admin")


def partitions(options: dict) -> list[TopicPartition]:
    probe = KafkaConsumer(**options)
    try:
        return [TopicPartition(t, p) for t in TOPICS for p in sorted(probe.partitions_for_topic(t) or [])]
    finally:
        probe.close()


def end_offsets(options: dict, parts: list[TopicPartition]) -> dict:
    probe = KafkaConsumer(**options)
    try:
        return probe.end_offsets(parts)
    finally:
        probe.close()


def bare_consume(options: dict, start: dict, end: dict) -> dict:
    """The baseline of ingest: read the records between two offsets and decode each, nothing more."""
    consumer = KafkaConsumer(**options, enable_auto_commit=False, max_poll_records=2000)
    parts = [tp for tp in end if end[tp] > start.get(tp, 0)]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, start.get(tp, 0))
    total, began = sum(end[tp] - start.get(tp, 0) for tp in parts), time.perf_counter()
    seen = 0
    try:
        while seen < total:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if record.offset < end[tp]:
                        json.loads(record.value)
                        seen += 1
    finally:
        consumer.close()
    seconds = time.perf_counter() - began
    return {"records": total, "seconds": round(seconds, 2), "per_second": round(total / seconds, 1) if seconds else None}


def group_caught_up(options: dict, end: dict) -> bool:
    admin = KafkaAdminClient(**options)
    try:
        done = admin.list_group_offsets("reporting").get("reporting", {})
    except KafkaError:
        return False  # the group has no coordinator yet: the consumer has not joined
    finally:
        admin.close()
    return all(done.get(tp) is not None and done[tp].offset >= end[tp] for tp in end if end[tp])


def ingest(stack: Stack, options: dict, start: dict, end: dict) -> dict:
    """The reporting consumer (started now, stopped before the events were written) until it has
    committed every new record."""
    events = sum(end[tp] - start.get(tp, 0) for tp in end)
    began = time.perf_counter()
    stack.start("reporting-consumer")
    wait_until(lambda: group_caught_up(options, end), 3600, "the reporting consumer", interval_s=0.5)
    seconds = time.perf_counter() - began
    return {"records": events, "seconds": round(seconds, 2), "per_second": round(events / seconds, 1)}


def timed(call, n: int) -> dict:
    """Call n times; p50, p95 and max in milliseconds."""
    times = []
    for i in range(n):
        began = time.perf_counter()
        response = call(i)
        times.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200 and response.status_code != 201:
            raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:200]}")
    times.sort()
    return {"n": n, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1), "max_ms": round(times[-1], 1)}


def rss_mb(root_pid: int) -> dict:
    """Resident memory of a process and its children (gunicorn's workers), in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))

    def rss(pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    out, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        out[pid] = rss(pid)
        todo.extend(children.get(pid, []))
    return {"processes": len(out), "max_mb": round(max(out.values()), 1), "total_mb": round(sum(out.values()), 1)}


def queries(urls: dict, token: str, web: FormClient, rng: random.Random, n: int, mongo_db) -> dict:
    """Every figure of the reporting service, each beside its baselines."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    base = urls["reporting"]
    from services.reporting.store import ReportingStore

    records = ReportingStore(mongo_db).records  # a rebuild moves them to a collection of its own
    some_id = records.find_one({}, {"_id": 1})["_id"]

    def stat(_i):
        as_of = AS_OF - dt.timedelta(days=rng.randrange(0, 2000))
        params = {"measure": rng.choice(MEASURES), "as_of": as_of.isoformat(), "by": rng.choice(BYS),
                  "disclosure": rng.choice(("public", "internal"))}
        if rng.random() < 0.5:
            params["since"] = (as_of - dt.timedelta(days=rng.randrange(1, 700))).isoformat()
        return api.get(f"{base}/api/v1/statistics", params=params, timeout=120)

    def by_id(_i):
        began = time.perf_counter()
        records.find_one({"_id": some_id})
        return type("R", (), {"status_code": 200, "elapsed": time.perf_counter() - began})()

    return {
        "read_by_id": timed(by_id, n),
        "healthz": timed(lambda _i: api.get(f"{base}/healthz", timeout=30), n),
        "statistics": timed(stat, n),
        "dashboard": timed(lambda _i: web.http.get(f"{base}/?as_of={AS_OF}", timeout=300), max(5, n // 6)),
        "upr_questions": timed(lambda _i: api.get(f"{base}/api/v1/upr/questions", timeout=300,
                                                  params={"as_of": AS_OF.isoformat(), "disclosure": "public"}),
                               max(5, n // 6)),
        "evidence": timed(lambda _i: api.get(f"{base}/api/v1/evidence/supply-chain", timeout=300,
                                             params={"as_of": AS_OF.isoformat(), "disclosure": "public"}),
                          max(5, n // 6)),
    }


def candidates(mongo_db) -> dict:
    """The read models side by side on the same records, in this process: every record read and
    counted in Python per request (what the service did before), and the numpy columns
    (population.py) built once and counted per request. One table: detained by sex and age."""
    from services.reporting import domain
    from services.reporting.population import Population
    from services.reporting.store import ReportingStore

    began = time.perf_counter()
    records = ReportingStore(mongo_db).all_records()
    full_read = time.perf_counter() - began
    began = time.perf_counter()
    exact = domain.count(records, "detained", AS_OF.isoformat(), None, ["sex", "age_group"], with_ids=False)
    python_count = time.perf_counter() - began
    began = time.perf_counter()
    population = Population(records)
    population.columns()
    build = time.perf_counter() - began
    times = []
    for _ in range(20):
        began = time.perf_counter()
        got = population.count("detained", AS_OF.isoformat(), None, ["sex", "age_group"], with_ids=False)
        times.append(time.perf_counter() - began)
    if got != exact:
        raise RuntimeError("the columns and the records' rules disagree")
    return {"records": len(records), "full_read_s": round(full_read, 2), "python_count_ms": round(python_count * 1000, 1),
            "records_per_request_ms": round((full_read + python_count) * 1000, 1),
            "columns_build_s": round(build, 2), "columns_count_ms": round(statistics.median(times) * 1000, 2)}


def snapshot(urls: dict, token: str, mongo_db) -> dict:
    began = time.perf_counter()
    res = requests.post(f"{urls['reporting']}/api/v1/upr/snapshots", timeout=900,
                        headers={"Authorization": f"Bearer {token}"},
                        json={"cycle": "CN-5", "as_of": AS_OF.isoformat(), "title": "scale benchmark"})
    seconds = time.perf_counter() - began
    out = {"status": res.status_code, "seconds": round(seconds, 2)}
    if res.status_code == 201:
        out["case_count"] = res.json()["case_count"]
    largest = 0
    for name in mongo_db.list_collection_names():
        if name.startswith("snapshot"):
            # One document at a time: FerretDB may answer a plain find with a batch larger than
            # the wire protocol's 48 MB message, which is what a snapshot used to be.
            for ref in list(mongo_db[name].find({}, {"_id": 1})):
                doc = mongo_db[name].find_one({"_id": ref["_id"]})
                largest = max(largest, len(BSON.encode(doc)) if doc else 0)
    out["largest_document_bytes"] = largest
    return out


def rebuild(stack: Stack, options: dict, parts: list[TopicPartition]) -> dict:
    """The rebuild command over every topic, beside a bare consume from the beginning."""
    end = end_offsets(options, parts)
    bare = bare_consume(options, {}, end)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "services.reporting.rebuild", "--quiet"], cwd=ROOT, env=stack.env,
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    events = sum(end.values())
    return {"records": events, "seconds": round(seconds, 2), "per_second": round(events / seconds, 1),
            "bare_consume": bare, "ratio_to_bare": round(seconds / bare["seconds"], 1) if bare["seconds"] else None}


def measure_size(stack, options, parts, urls, token, web, mongo_db, target: int, have: int, args) -> dict:
    """Grow to `target` cases and measure everything at that size."""
    stack.stop("reporting-consumer")
    before = end_offsets(options, parts)
    events = produce(options, target - have, seed=target)
    after = end_offsets(options, parts)
    bare = bare_consume(options, before, after)
    applied = ingest(stack, options, before, after)
    applied["ratio_to_bare"] = round(applied["seconds"] / bare["seconds"], 1) if bare["seconds"] else None
    began = time.perf_counter()
    first = requests.get(f"{urls['reporting']}/api/v1/statistics", timeout=600,
                         headers={"Authorization": f"Bearer {token}"},
                         params={"measure": "detained", "as_of": AS_OF.isoformat(), "disclosure": "internal"})
    warm = {"status": first.status_code, "seconds": round(time.perf_counter() - began, 2)}
    rng = random.Random(target)
    result = {"cases": target, "events_added": events, "ingest": applied, "bare_consume": bare,
              "first_request_after_ingest": warm, "queries": queries(urls, token, web, rng, args.queries, mongo_db)}
    result["memory"] = {"reporting_web": rss_mb(stack.procs["reporting-web"].pid),
                        "reporting_consumer": rss_mb(stack.procs["reporting-consumer"].pid)}
    result["candidates"] = candidates(mongo_db)
    result["snapshot"] = snapshot(urls, token, mongo_db)
    if not args.no_rebuild:
        result["rebuild"] = rebuild(stack, options, parts)
    return result


# --- report ---------------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    lines = ["# Scale benchmark (reporting)", "",
             f"{results['date']}, {results['machine']}, commit {results['git']}.", "",
             "Each figure beside its baseline in the same run: a read of one record by _id (FerretDB), "
             "/healthz of the same web service, a bare kafka-python consume of the same records.", "",
             "| cases | statistics p50 / p95 | dashboard p50 | UPR questions p50 | evidence p50 | read by _id p50 | "
             "/healthz p50 | snapshot | largest snapshot doc | ingest (x bare) | rebuild (x bare) | web RSS max / consumer RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["sizes"]:
        q = r["queries"]
        reb = r.get("rebuild")
        lines.append(
            f"| {r['cases']:,} | {q['statistics']['p50_ms']} / {q['statistics']['p95_ms']} ms | "
            f"{q['dashboard']['p50_ms']} ms | {q['upr_questions']['p50_ms']} ms | {q['evidence']['p50_ms']} ms | "
            f"{q['read_by_id']['p50_ms']} ms | {q['healthz']['p50_ms']} ms | "
            f"{r['snapshot']['status']} in {r['snapshot']['seconds']} s | {r['snapshot']['largest_document_bytes']:,} B | "
            f"{r['ingest']['per_second']:,} ev/s ({r['ingest']['ratio_to_bare']}x) | "
            + (f"{reb['per_second']:,} ev/s, {reb['seconds']} s ({reb['ratio_to_bare']}x) | " if reb else "not run | ")
            + f"{r['memory']['reporting_web']['max_mb']} / {r['memory']['reporting_consumer']['max_mb']} MiB |")
    lines += ["", "Read models side by side (one table, detained by sex and age, in one process on the same records):", "",
              "| cases | every record read per request (full read + count) | columns: built once | columns: per request |",
              "| --- | --- | --- | --- |"]
    for r in results["sizes"]:
        c = r["candidates"]
        lines.append(f"| {r['cases']:,} | {c['records_per_request_ms']:,} ms ({c['full_read_s']} s + {c['python_count_ms']} ms) "
                     f"| {c['columns_build_s']} s | {c['columns_count_ms']} ms |")
    lines += ["", "Bare consume: " + "; ".join(f"{r['cases']:,} cases: {r['bare_consume']['per_second']:,} records/s"
                                               for r in results["sizes"]),
              "", "First statistics request after each ingest (the web process catching up): "
              + "; ".join(f"{r['cases']:,}: {r['first_request_after_ingest']['seconds']} s" for r in results["sizes"])]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0] + (
        " Builds the synthetic cases through the topics and measures the reporting service at each size."))
    parser.add_argument("--sizes", default="10000,30000,100000",
                        help="comma-separated case counts, growing (default: 10000,30000,100000)")
    parser.add_argument("--queries", type=int, default=60, help="statistics requests per size (default 60)")
    parser.add_argument("--no-rebuild", action="store_true", help="skip the rebuild measurement")
    parser.add_argument("--keep", action="store_true", help="leave var/bench-scale after the run")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.sizes != sorted(args.sizes) or args.sizes[0] <= 0:
        parser.error("--sizes must be positive and growing")
    return args


def own_stack(name: str, env: dict, var: Path) -> tuple[Stack, dict] | None:
    """A benchmark's own stack (not started) and the head of its results, after checking that
    nothing listens on its ports (None then, said on stderr) and emptying its var/ folder."""
    busy = busy_addresses(env)
    if busy:
        print(f"bench.{name}: something already listens on {', '.join(busy)}", file=sys.stderr)
        return None
    shutil.rmtree(var, ignore_errors=True)
    os.environ.update(env)
    head = {"benchmark": name, "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "machine": f"{os.cpu_count()} cores", "git": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()}
    return Stack(env), head


def main(argv=None) -> int:
    args = parse_args(argv)
    made = own_stack("scale", {**tier_env("bench-scale"), **SCALE_ENV}, VAR)
    if made is None:
        return 1
    stack, results = made
    env = stack.env
    results["sizes"] = []
    try:
        print(f"bench.scale: starting a stack of its own (logs in {stack.logs})", file=sys.stderr)
        stack.start("kafka", "ferretdb")
        wait_until(lambda: port_open(env["NRW_MONGO_URI"]), 120, "FerretDB")
        wait_until(lambda: port_open(env["NRW_KAFKA_BOOTSTRAP"]), 120, "Kafka")
        subprocess.run([sys.executable, "-m", "shared.topics"], cwd=ROOT, env=stack.env, check=True,
                       stdout=subprocess.DEVNULL)
        register_kafka(env["NRW_KAFKA_BOOTSTRAP"], VAR / "secrets")
        stack.start("intake-web", "reporting-web")
        urls = service_urls(env)
        for service in ("intake", "reporting"):
            wait_until(lambda s=service: ready(urls[s]), 180, service)
        token = requests.post(f"{urls['intake']}/api/v1/auth/token", timeout=30,
                              json={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
        web = FormClient(urls["intake"], timeout_s=60)
        web.login("admin", ADMIN_PASSWORD)
        from shared.config import Settings
        from shared.mongo import connect

        settings = Settings.from_env()
        mongo_db = connect(settings, "operator")[settings.database_name("reporting")]
        options = kafka_options(env)
        parts = partitions(options)
        have = 0
        for size in args.sizes:
            print(f"bench.scale: {size:,} cases", file=sys.stderr)
            results["sizes"].append(measure_size(stack, options, parts, urls, token, web, mongo_db, size, have, args))
            print(json.dumps(results["sizes"][-1], indent=1), file=sys.stderr)
            write_results(results, partial=True)  # what was measured survives a failure at a larger size
            have = size
    except KeyboardInterrupt:
        print("bench.scale: interrupted", file=sys.stderr)
        return 130
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(VAR, ignore_errors=True)
    write_results(results)
    print(markdown(results))
    return 0


def write_results(results: dict, partial: bool = False) -> None:
    """bench/results/scale-<start time>.json and scale-latest.md (rewritten after each size)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = results["date"].replace("-", "").replace(":", "").replace("+0000", "Z")[:15] + "Z"
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps({**results, "partial": partial}, indent=2))
    (RESULTS / "scale-latest.md").write_text(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
