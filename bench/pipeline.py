"""Pipeline latency: from intake's 201 to the case service's `case.opened` event on the broker, against
a bare Kafka produce-then-consume round trip on the same broker; and form-to-case latency: from a report
posted through the web form (as a caseworker's browser does) until its case.opened arrives and until
its case page answers 200.

    python -m bench.pipeline [--reports N] [--rate R] [--form-reports N] ...   (`make bench`; --help: every option)
    python -m bench.pipeline --brokers 3 --instances 2 ...   the same on a three-broker cluster

The case service publishes `case.opened` only after the case and its projection are stored, so the
event's arrival means the case can be read. During the timed phase the benchmark only posts reports
and listens to case.events, so that it loads the system measured no more than real clients would;
that every case can be read is confirmed afterwards with one untimed GET each. The form phase, last,
does poll the case page, since that wait is what it measures (bench/form.py is its browser).

It starts a stack of its own (its own ports and var/bench, so it never meets `make run` or the
tests), measures, prints a table, writes bench/results/pipeline-<UTC time>.json and
bench/results/latest.md, and stops the stack. The aims are shown with pass/fail marks, but the
exit status is 0 whatever the figures are: it is a measurement, not a test. It is 1 only when the
stack does not start, its ports are taken, or the pipeline does not work at all (the warm-up fails).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kafka
import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError
from tqdm import tqdm

from bench.form import FormClient
from infra.stack import Stack, cluster_env, port_open, scaled_procfile, service_urls
from tests.support import ADMIN_PASSWORD, synthetic_report, tier_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench"

# Ports of the benchmark's own stack: tests use 18xxx/19xxx/27117, `make run` 8xxx/9092/27017.
BENCH_ENV = {
    "NRW_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "NRW_KAFKA_CONTROLLER_PORT": "29093",
    "NRW_FERRETDB_LISTEN": "127.0.0.1:27217",
    "NRW_MONGO_URI": "mongodb://127.0.0.1:27217/",
    "NRW_INTAKE_PORT": "28001",
    "NRW_CASE_PORT": "28002",
    "NRW_ADVOCACY_PORT": "28003",
    "NRW_REPORTING_PORT": "28004",
    "NRW_VAR": str(VAR),
    "NRW_ACCESS_LOG": "0",
    # The form benchmark opens the report page of each of its hundreds of reports as one
    # caseworker within minutes: far past a person's hourly limit of identifying reads.
    "NRW_IDENTIFYING_READS_PER_HOUR": "1000000",
    # The benchmark logs in through the API with a password alone; the second factor is measured
    # by nothing here and tested in the test tiers.
    "NRW_2FA_ROLES": "",
}

ROUNDTRIP_TOPIC = "bench.roundtrip"
ROUNDTRIP_PARTITIONS = 3
CASE_TOPIC = "case.events"
HTTP_TIMEOUT_S = 10
WARMUP_CAP_S = 60

PARAMETERS = ("reports", "rate", "warmup", "workers", "cap_s", "form_reports", "form_rate", "form_poll_ms", "brokers",
              "instances")
CLUSTER_FIRST_PORT = 29112  # --brokers N: node i on 29112 + 2(i-1), its controller on the next port

AIM_P50_MS = 100
AIM_P99_MS = 500
AIM_RATIO = 5
AIMS_TEXT = (f"p50 under {AIM_P50_MS} ms, p99 under {AIM_P99_MS} ms, and the pipeline within {AIM_RATIO}x "
             "of the bare round trip")


# --- set-up -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every option is described by --help."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description="Measure how long a report takes from intake's 201 answer until the case service's "
                    "case.opened event for it reaches a consumer (intake -> Kafka -> case consumer -> FerretDB "
                    "-> case.events; the event is published only once the case is stored, so it can be read), "
                    "and compare it with a bare kafka-python produce-then-consume round trip on the same "
                    "broker, at the same steady rate. During the timed phase the benchmark only posts reports "
                    "and listens to case.events; afterwards it reads every case once (untimed) to confirm it "
                    "can be read. Then, unless --form-reports is 0, the form phase: a client that logs in through "
                    "the login page posts reports through the new-report form (CSRF token from the page, synthetic "
                    "data) at its own steady rate, follows the redirect to the report page and opens the case it "
                    "links to until it answers 200; each is timed from the form post being sent until (a) its "
                    "case.opened reaches the benchmark's consumer and (b) its case page answers 200, and compared "
                    "with the same run's bare round trip. Starts its own stack (Kafka 127.0.0.1:29092/29093, "
                    "FerretDB :27217, services :28001-28004, data in var/bench, wiped at start; logs in "
                    "var/bench/logs) and stops it at the end. Prints a table and writes "
                    f"bench/results/pipeline-<UTC time>.json and bench/results/latest.md. Aims: {AIMS_TEXT}. "
                    "Exits 0 whether the aims are met or not; 1 if its ports are taken, the stack does not start "
                    "or the warm-up fails.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--reports", type=int, default=500,
                        help="timed reports posted to intake, and timed messages in the bare round trip (N)")
    parser.add_argument("--rate", type=float, default=5.0,
                        help="steady rate, per second, of reports posted and of round-trip messages sent")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed reports (and round-trip messages) sent one by one before each timed "
                             "phase, so that connections, producers and consumer groups are set up")
    parser.add_argument("--workers", type=int, default=32,
                        help="threads posting reports (each its own HTTP session; in the form phase, its own "
                             "browser), enough that the rate is kept while earlier reports still wait for intake's "
                             "answer; when all are busy, reports wait their turn and the rate reached (reported) "
                             "falls")
    parser.add_argument("--cap-s", type=float, default=60.0,
                        help="after the last round-trip message is sent, or the last report is answered, wait "
                             "this long at most for the messages or case.opened events still missing; those are "
                             "counted as timeouts and enter the figures at this value, so that they stay lower "
                             "bounds rather than flattering; in the form phase, a case page still not there this "
                             "long after its post was sent is a timeout too")
    parser.add_argument("--form-reports", type=int, default=200,
                        help="timed reports posted through the web form after the pipeline phase (0: no form phase)")
    parser.add_argument("--form-rate", type=float, default=5.0,
                        help="steady rate, per second, of reports posted through the form")
    parser.add_argument("--form-poll-ms", type=float, default=100.0,
                        help="how often the form phase opens a case page that still answers 404 (not here yet); "
                             "the case-page figure is up to this much late (every 20 ms from 32 browsers is itself "
                             "a load test of the case service)")
    parser.add_argument("--brokers", type=int, default=1,
                        help="Kafka nodes: 1, or a cluster (KRaft, each broker and controller, on ports from "
                             f"{CLUSTER_FIRST_PORT}) whose topics, the round trip's too, have min(3, N) replicas and "
                             "min.insync.replicas 2 when 3; results then go to pipeline-cluster-<time>.json and "
                             "latest-cluster.md")
    parser.add_argument("--instances", type=int, default=1, help="processes of every consumer and relay")
    parser.add_argument("--ready-timeout", type=float, default=180.0,
                        help="seconds to wait for the stack to be ready")
    args = parser.parse_args(argv)
    if (args.reports < 1 or args.rate <= 0 or args.workers < 1 or args.warmup < 0 or args.cap_s <= 0
            or args.form_reports < 0 or args.form_rate <= 0 or args.form_poll_ms <= 0 or args.brokers < 1
            or args.instances < 1):
        parser.error("--reports and --workers must be at least 1, --rate, --form-rate, --form-poll-ms and --cap-s "
                     "positive, --warmup and --form-reports not negative")
    return args


def bench_env(brokers: int = 1) -> dict[str, str]:
    """The test tier's settings with the benchmark's own ports and var/ folder (and a cluster's)."""
    return {**tier_env("bench"), **BENCH_ENV, **(cluster_env(brokers, first_port=CLUSTER_FIRST_PORT) if brokers > 1 else {})}


def busy_addresses(env: dict[str, str]) -> list[str]:
    """The benchmark stack's addresses where something already listens."""
    addresses = [*env["NRW_KAFKA_BOOTSTRAP"].split(","), f"127.0.0.1:{env['NRW_KAFKA_CONTROLLER_PORT']}",
                 env["NRW_FERRETDB_LISTEN"], *service_urls(env).values()]
    return [a for a in addresses if port_open(a)]


def machine_info() -> dict:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(), "kafka_python": kafka.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def git_revision() -> dict:
    """The commit measured, and whether the working tree had changes."""
    def git(*args: str) -> str:
        """One git command's output."""
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def raise_interrupt(_signum, _frame) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so the stack is stopped the same way as on Ctrl-C."""
    raise KeyboardInterrupt


# --- measuring helpers --------------------------------------------------------------------------


def paced(n: int, rate: float):
    """Yield 0..n-1, each at its own slot of a steady schedule (start + i/rate)."""
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def summarize(seconds: list[float]) -> dict:
    """p50, p95, p99, max and mean in milliseconds (inclusive percentiles)."""
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2),
            "max": round(ms[-1], 2), "mean": round(statistics.fmean(ms), 2)}


def paced_pool(task: Callable[[], dict], n: int, rate: float, workers: int, name: str) -> list[dict]:
    """Run task() n times, started at the steady rate by a pool of `workers` threads; the results in order.
    When every thread is busy, starts wait their turn (and the rate reached falls)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(task) for _ in paced(n, rate)]
        results = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def error_counts(results: list[dict]) -> dict[str, int]:
    """How often each error occurred among the results."""
    errors: dict[str, int] = {}
    for r in results:
        if "error" in r:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return errors


def achieved_rate(starts: list[float]) -> float | None:
    """Sends per second actually reached, from the first start to the last."""
    if len(starts) < 2 or max(starts) == min(starts):
        return None
    return round((len(starts) - 1) / (max(starts) - min(starts)), 2)


# --- listening to a topic -----------------------------------------------------------------------


class Listener(threading.Thread):
    """Reads every partition of a topic from its end, noting when each key of interest first arrives."""

    def __init__(self, bootstrap: str, topic: str, key_of: Callable[[ConsumerRecord], Hashable | None]):
        """Connect, take every partition and move to its end; key_of names a record's key, or None to skip it."""
        super().__init__(name=f"{topic}-listener", daemon=True)
        self.key_of = key_of
        self.consumer = KafkaConsumer(**kafka_login(bootstrap), client_id=f"nrw-bench-{topic}", group_id=None,
                                      enable_auto_commit=False, bootstrap_timeout_ms=5000)
        partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))]
        if not partitions:
            self.consumer.close()
            raise RuntimeError(f"topic {topic} has no partitions")
        self.consumer.assign(partitions)
        self.consumer.seek_to_end(*partitions)
        for tp in partitions:
            self.consumer.position(tp)  # resolve the end offsets now, before anything is sent
        self.arrived: dict[Hashable, float] = {}
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.bar: tqdm | None = None

    def run(self) -> None:
        """Poll continuously until stopped, stamping each new key with the time its poll returned."""
        try:
            while not self.stopping.is_set():
                batch = self.consumer.poll(timeout_ms=100)
                now = time.perf_counter()
                keys = [key for records in batch.values() for r in records if (key := self.key_of(r)) is not None]
                if not keys:
                    continue
                with self.changed:
                    known = len(self.arrived)
                    for key in keys:
                        self.arrived.setdefault(key, now)  # a redelivered event keeps its first receipt
                    added = len(self.arrived) - known
                    self.changed.notify_all()
                if self.bar is not None:
                    self.bar.update(added)
        finally:
            self.consumer.close()

    def wait_for(self, keys, timeout_s: float) -> dict[Hashable, float]:
        """Wait until every key has arrived or timeout_s has passed; the arrival times so far."""
        with self.changed:
            self.changed.wait_for(lambda: all(k in self.arrived for k in keys), max(timeout_s, 0.0))
            return dict(self.arrived)

    def stop(self) -> None:
        """Stop polling and close the consumer."""
        self.stopping.set()
        self.join(timeout=5)


# --- the bare Kafka round trip ------------------------------------------------------------------


def kafka_login(bootstrap: str) -> dict:
    """The bench's own Kafka clients log in as the stack's admin (its topic, any group), over the
    same SASL listener the services use, so the baseline pays the same login and framing."""
    from shared.config import Settings
    from shared.kafka_auth import client_options

    return client_options(Settings(kafka_bootstrap=bootstrap, secrets_dir=VAR / "secrets"), "admin")


def create_roundtrip_topic(bootstrap: str, replication: int = 1) -> None:
    """Create bench.roundtrip (3 partitions, the system topics' replication and min.insync.replicas)
    unless it exists."""
    admin = KafkaAdminClient(**kafka_login(bootstrap), client_id="nrw-bench-admin", request_timeout_ms=10000,
                             bootstrap_timeout_ms=5000)
    try:
        admin.create_topics({ROUNDTRIP_TOPIC: {"num_partitions": ROUNDTRIP_PARTITIONS, "replication_factor": replication,
                                               "configs": {"min.insync.replicas": "2" if replication >= 3 else "1"}}},
                            wait_for_metadata=True)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def message_index(record: ConsumerRecord) -> int:
    """A round-trip message's index (its value)."""
    return int(record.value)


def run_baseline(bootstrap: str, args: argparse.Namespace) -> dict:
    """Send N messages at the steady rate and time each from send() to its arrival at the consumer."""
    create_roundtrip_topic(bootstrap, min(3, args.brokers))
    receiver = Listener(bootstrap, ROUNDTRIP_TOPIC, message_index)
    producer = KafkaProducer(**kafka_login(bootstrap), client_id="nrw-bench-producer", acks="all",
                             enable_idempotence=True, linger_ms=2, bootstrap_timeout_ms=5000)
    receiver.start()

    def send(index: int) -> float:
        """Send one message whose key and value are its index; the time just before sending."""
        data = str(index).encode()
        sent_at = time.perf_counter()
        producer.send(ROUNDTRIP_TOPIC, key=data, value=data)
        return sent_at

    try:
        for i in range(1, args.warmup + 1):
            send(-i)
            if -i not in receiver.wait_for([-i], WARMUP_CAP_S):
                raise RuntimeError(f"a warm-up message did not come back within {WARMUP_CAP_S} s")
        sent: dict[int, float] = {}
        with tqdm(total=args.reports, desc="bare round trip", unit="msg", disable=None) as bar:
            receiver.bar = bar
            for i in paced(args.reports, args.rate):
                sent[i] = send(i)
            producer.flush()
            arrived = receiver.wait_for(range(args.reports), args.cap_s)
            receiver.bar = None
    finally:
        producer.close(timeout=5)
        receiver.stop()
    latencies = [arrived[i] - sent[i] if i in arrived else args.cap_s for i in sent]
    timeouts = sum(1 for i in sent if i not in arrived)
    return {"count": len(sent), "timeouts": timeouts, "achieved_rate_per_s": achieved_rate(list(sent.values())),
            "latency_ms": summarize(latencies), "samples_ms": [round(s * 1000, 2) for s in latencies]}


# --- the pipeline -------------------------------------------------------------------------------


_local = threading.local()


def session() -> requests.Session:
    """This thread's own HTTP session (its connections are kept alive between calls)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def login(url: str, username: str, password: str) -> str:
    """A bearer token for the user."""
    resp = session().post(f"{url}/api/v1/auth/token", json={"username": username, "password": password},
                          timeout=HTTP_TIMEOUT_S)
    resp.raise_for_status()
    return resp.json()["access_token"]


def create_caseworker(url: str, admin_token: str) -> tuple[str, str]:
    """Create a caseworker user as admin; its username and password."""
    username, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    resp = session().post(f"{url}/api/v1/users", json={"username": username, "password": password,
                                                       "roles": ["caseworker"]},
                          headers={"Authorization": f"Bearer {admin_token}"}, timeout=HTTP_TIMEOUT_S)
    resp.raise_for_status()
    return username, password


def opened_case(record: ConsumerRecord) -> str | None:
    """The case_id of a case.opened event; None for the topic's other events."""
    event = json.loads(record.value)
    return event["case_id"] if event["event_type"] == "case.opened" else None


def post_report(urls: dict[str, str], token: str) -> dict:
    """Post one synthetic report: when it was sent and answered (perf_counter seconds), and its case_id or an error."""
    started = time.perf_counter()
    try:
        resp = session().post(f"{urls['intake']}/api/v1/reports", json=synthetic_report(),
                              headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        return {"started": started, "error": type(exc).__name__}
    answered = time.perf_counter()
    if resp.status_code != 201:
        return {"started": started, "answered": answered, "error": f"POST /api/v1/reports answered {resp.status_code}"}
    return {"started": started, "answered": answered, "case_id": resp.json()["case_id"]}


def read_case(urls: dict[str, str], token: str, case_id: str) -> tuple[str, float | None]:
    """GET a case once: the status code (or the request's error) and the seconds it took (None on error)."""
    asked = time.perf_counter()
    try:
        resp = session().get(f"{urls['case']}/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {token}"},
                             timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        return type(exc).__name__, None
    return str(resp.status_code), time.perf_counter() - asked


def warm_up(urls: dict[str, str], token: str, listener: Listener, count: int) -> None:
    """Post reports one by one, each waited for on case.events and then read once; RuntimeError if one fails."""
    for _ in range(count):
        posted = post_report(urls, token)
        if "error" in posted:
            raise RuntimeError(f"a warm-up report failed: {posted['error']}")
        if posted["case_id"] not in listener.wait_for([posted["case_id"]], WARMUP_CAP_S):
            raise RuntimeError(f"a warm-up report's case.opened did not arrive within {WARMUP_CAP_S} s")
        status, _ = read_case(urls, token, posted["case_id"])
        if status != "200":
            raise RuntimeError(f"a warm-up report's case answered {status} after its case.opened")


def run_pipeline(bootstrap: str, urls: dict[str, str], token: str, args: argparse.Namespace) -> tuple[dict, list[str]]:
    """Post N reports at the steady rate and time each from its 201 to its case.opened; the figures and case ids."""
    listener = Listener(bootstrap, CASE_TOPIC, opened_case)
    listener.start()
    try:
        warm_up(urls, token, listener, args.warmup)
        with tqdm(total=args.reports, desc="pipeline", unit="case", disable=None) as bar:
            listener.bar = bar
            results = paced_pool(lambda: post_report(urls, token), args.reports, args.rate, args.workers, "report")
            posted = [r for r in results if "case_id" in r]
            last_answer = max((r["answered"] for r in posted), default=time.perf_counter())
            arrived = listener.wait_for([r["case_id"] for r in posted], last_answer + args.cap_s - time.perf_counter())
            listener.bar = None
    finally:
        listener.stop()

    received = [r for r in posted if r["case_id"] in arrived]
    latencies = [arrived[r["case_id"]] - r["answered"] for r in received] + [args.cap_s] * (len(posted) - len(received))
    return {"count": len(posted), "timeouts": len(posted) - len(received), "errors": error_counts(results),
            "event_before_201": sum(1 for s in latencies if s < 0),
            "achieved_rate_per_s": achieved_rate([r["started"] for r in results]),
            "latency_ms": summarize(latencies),
            "intake_post_ms": summarize([r["answered"] - r["started"] for r in results if "answered" in r]),
            "end_to_end_ms": summarize([arrived.get(r["case_id"], r["answered"] + args.cap_s) - r["started"]
                                        for r in posted]),
            "samples_ms": [round(s * 1000, 2) for s in latencies]}, [r["case_id"] for r in posted]


def confirm_readable(urls: dict[str, str], token: str, case_ids: list[str]) -> dict:
    """GET each case once, one after another: how many did not answer 200, and how long the GETs took."""
    answers: dict[str, int] = {}
    seconds = []
    for case_id in tqdm(case_ids, desc="readable?", unit="case", disable=None):
        status, took = read_case(urls, token, case_id)
        answers[status] = answers.get(status, 0) + 1
        if took is not None:
            seconds.append(took)
    return {"checked": len(case_ids), "not_readable": len(case_ids) - answers.get("200", 0), "answers": answers,
            "get_ms": summarize(seconds)}


# --- the form ----------------------------------------------------------------------------------


def form_browsers(intake_url: str, user: tuple[str, str], count: int) -> queue.Queue:
    """`count` browsers (bench.form.FormClient) holding one login made through the login page."""
    first = FormClient(intake_url, HTTP_TIMEOUT_S)
    first.login(*user)
    browsers: queue.Queue = queue.Queue()
    browsers.put(first)
    for _ in range(count - 1):
        browsers.put(first.clone())
    return browsers


def submit_form(browsers: queue.Queue, cap_s: float, poll_s: float) -> dict:
    """Post one synthetic report through the form with a free browser (FormClient.submit tells what is timed)."""
    browser = browsers.get()
    try:
        return browser.submit(synthetic_report(), cap_s, poll_s)
    finally:
        browsers.put(browser)


def form_warm_up(browsers: queue.Queue, listener: Listener, count: int, poll_s: float) -> None:
    """Post reports through the form one by one, each waited for on its case page and on case.events;
    RuntimeError if one fails."""
    for _ in range(count):
        done = submit_form(browsers, WARMUP_CAP_S, poll_s)
        if "error" in done:
            raise RuntimeError(f"a warm-up report through the form failed: {done['error']}")
        if "readable" not in done:
            raise RuntimeError(f"a warm-up form report's case page did not answer 200 within {WARMUP_CAP_S} s")
        if done["case_id"] not in listener.wait_for([done["case_id"]], WARMUP_CAP_S):
            raise RuntimeError(f"a warm-up form report's case.opened did not arrive within {WARMUP_CAP_S} s")


def run_form(bootstrap: str, urls: dict[str, str], user: tuple[str, str], args: argparse.Namespace) -> dict:
    """Post N reports through the web form at the steady rate and time each from the post being sent until
    (a) its case.opened reaches the benchmark's consumer and (b) its case page answers 200."""
    poll_s = args.form_poll_ms / 1000
    listener = Listener(bootstrap, CASE_TOPIC, opened_case)
    listener.start()
    try:
        browsers = form_browsers(urls["intake"], user, args.workers)
        form_warm_up(browsers, listener, args.warmup, poll_s)
        with tqdm(total=args.form_reports, desc="form", unit="case", disable=None) as bar:
            listener.bar = bar
            results = paced_pool(lambda: submit_form(browsers, args.cap_s, poll_s), args.form_reports,
                                 args.form_rate, args.workers, "form")
            posted = [r for r in results if "case_id" in r]
            last_answer = max((r["answered"] for r in posted), default=time.perf_counter())
            arrived = listener.wait_for([r["case_id"] for r in posted], last_answer + args.cap_s - time.perf_counter())
            listener.bar = None
    finally:
        listener.stop()

    opened = [arrived[r["case_id"]] - r["started"] if r["case_id"] in arrived else args.cap_s for r in posted]
    page = [r["readable"] - r["started"] if "readable" in r else args.cap_s for r in posted]
    polls = [r["polls"] for r in posted if "readable" in r]
    return {"count": len(posted), "errors": error_counts(results),
            "opened_timeouts": sum(1 for r in posted if r["case_id"] not in arrived),
            "page_timeouts": sum(1 for r in posted if "readable" not in r and "error" not in r),
            "opened_before_redirect": sum(1 for r in posted if arrived.get(r["case_id"], float("inf")) < r["answered"]),
            "achieved_rate_per_s": achieved_rate([r["started"] for r in results if "started" in r]),
            "poll_ms": args.form_poll_ms,
            "to_case_opened_ms": summarize(opened),
            "to_case_page_ms": summarize(page),
            "form_get_ms": summarize([r["form_get_s"] for r in results if "form_get_s" in r]),
            "form_post_ms": summarize([r["answered"] - r["started"] for r in results if "answered" in r]),
            "report_page_ms": summarize([r["shown"] - r["answered"] for r in results if "shown" in r]),
            "case_page_polls": {"first_look_200": sum(1 for n in polls if n == 1),
                                "mean": round(statistics.fmean(polls), 2) if polls else None,
                                "max": max(polls, default=None)},
            "to_case_opened_samples_ms": [round(s * 1000, 2) for s in opened],
            "to_case_page_samples_ms": [round(s * 1000, 2) for s in page]}


# --- where the CPU went -------------------------------------------------------------------------


def cpu_snapshot(stack: Stack) -> dict:
    """CPU seconds used so far by each stack process (with its children), this benchmark, and the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    group_of = {proc.pid: name for name, proc in stack.procs.items()}  # each was started as its own group
    used = dict.fromkeys(group_of.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) in group_of:
            used[group_of[int(fields[2])]] += (int(fields[11]) + int(fields[12])) / tick
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return {"at": time.perf_counter(), "processes": used, "benchmark": time.process_time(),
            "machine_busy": (sum(ticks) - ticks[3] - ticks[4]) / tick, "machine_all": sum(ticks) / tick}


def cpu_used(before: dict, after: dict) -> dict:
    """CPU seconds between two snapshots: per stack process, the benchmark, other work, and how busy the machine was."""
    processes = {name: round(after["processes"][name] - before["processes"].get(name, 0.0), 2)
                 for name in after["processes"]}
    benchmark = after["benchmark"] - before["benchmark"]
    busy = after["machine_busy"] - before["machine_busy"]
    return {"wall_s": round(after["at"] - before["at"], 1),
            "machine_busy_pct": round(100 * busy / max(after["machine_all"] - before["machine_all"], 1e-9), 1),
            "stack_cpu_s": dict(sorted(processes.items(), key=lambda kv: -kv[1])),
            "benchmark_cpu_s": round(benchmark, 2),
            "other_cpu_s": round(max(busy - sum(processes.values()) - benchmark, 0.0), 2)}


# --- reporting ----------------------------------------------------------------------------------


def aims(baseline: dict, pipeline: dict) -> tuple[dict, list[dict]]:
    """The pipeline/baseline ratios, and each aim with its measured value and whether it is met."""
    pipe, bare = pipeline["latency_ms"], baseline["latency_ms"]
    ratios = {q: round(pipe[q] / bare[q], 2) if pipe[q] is not None and bare[q] else None for q in ("p50", "p99")}
    checks = [(f"pipeline p50 under {AIM_P50_MS} ms", pipe["p50"], AIM_P50_MS, "ms"),
              (f"pipeline p99 under {AIM_P99_MS} ms", pipe["p99"], AIM_P99_MS, "ms"),
              (f"pipeline p50 within {AIM_RATIO}x of the bare round trip's p50", ratios["p50"], AIM_RATIO, "x"),
              (f"pipeline p99 within {AIM_RATIO}x of the bare round trip's p99", ratios["p99"], AIM_RATIO, "x")]
    return ratios, [{"aim": text, "value": value, "limit": limit, "unit": unit,
                     "met": value is not None and value < limit} for text, value, limit, unit in checks]


def form_ratios(baseline: dict, form: dict) -> dict:
    """The form phase's two latencies over the same run's bare round trip, at p50, p95 and p99."""
    bare = baseline["latency_ms"]
    return {name: {q: round(form[key][q] / bare[q], 2) if form[key][q] is not None and bare[q] else None
                   for q in ("p50", "p95", "p99")}
            for name, key in (("case_opened", "to_case_opened_ms"), ("case_page", "to_case_page_ms"))}


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table with padded columns, readable as plain text too."""
    cells = [header] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def caveats(machine: dict, baseline: dict, pipeline: dict, form: dict | None, args: argparse.Namespace) -> list[str]:
    """Conditions of the run that make its figures less trustworthy, in words."""
    notes = []
    phases = [("bare round trip", baseline, args.rate), ("pipeline", pipeline, args.rate)]
    if form is not None:
        phases.append(("form", form, args.form_rate))
    for name, phase, rate in phases:
        outside = phase["cpu"]["other_cpu_s"] / (machine["nproc"] * phase["cpu"]["wall_s"])
        if outside > 0.1:
            notes.append(f"Work outside this benchmark took {outside:.0%} of the machine's CPU time during the "
                         f"{name} phase: it competed with the stack.")
        reached = phase["achieved_rate_per_s"]
        if reached is not None and reached < 0.95 * rate:
            notes.append(f"The {name} phase reached only {reached}/s of the {rate}/s asked"
                         + (": every posting thread was waiting for intake's answer (or, in the form phase, for a "
                            "case page), so reports queued in the benchmark (that wait is in no figure) and the "
                            "system got less load than asked." if phase is not baseline else "."))
    readable = pipeline["readable"]
    if readable["not_readable"]:
        notes.append(f"{readable['not_readable']} of the {readable['checked']} cases could not be read after the "
                     "timed phase: a case.opened event does not always mean a readable case, or the cases were "
                     "lost.")
    if form is not None and (form["errors"] or form["page_timeouts"] or form["opened_timeouts"]):
        notes.append("Some reports posted through the form failed or timed out (see the form section); they "
                     "enter its figures at the cap or not at all.")
    return notes


def cpu_line(name: str, cpu: dict) -> str:
    """One phase's CPU use in a sentence: how busy the machine was and who used it."""
    top = ", ".join(f"{n} {s}" for n, s in list(cpu["stack_cpu_s"].items())[:6])
    return (f"CPU during the {name} phase ({cpu['wall_s']} s, warm-up included): machine {cpu['machine_busy_pct']}% "
            f"busy; CPU seconds: {top}, ..., the benchmark itself {cpu['benchmark_cpu_s']}, work outside this "
            f"benchmark {cpu['other_cpu_s']}.")


def form_markdown(results: dict) -> list[str]:
    """The form phase's section of latest.md (nothing when the run had no form phase)."""
    form, b, p = results.get("form"), results["baseline"], results["parameters"]
    if form is None:
        return []
    stats = ("p50", "p95", "p99", "max", "mean")
    rows = [
        ["bare Kafka round trip (send -> consumer), this run's baseline", *(b["latency_ms"][s] for s in stats)],
        ["(a) form POST sent -> case.opened at consumer", *(form["to_case_opened_ms"][s] for s in stats)],
        ["(b) form POST sent -> case page 200", *(form["to_case_page_ms"][s] for s in stats)],
        ["GET /reports/new before the post, untimed (context)", *(form["form_get_ms"][s] for s in stats)],
        ["form POST -> its redirect (context)", *(form["form_post_ms"][s] for s in stats)],
        ["report page after the redirect (context)", *(form["report_page_ms"][s] for s in stats)],
        ["API: POST sent -> case.opened, pipeline phase (context)",
         *(results["pipeline"]["end_to_end_ms"][s] for s in stats)],
    ]
    ratios = results["form_ratios"]
    ratio_rows = [["(a) form POST sent -> case.opened", *(ratios["case_opened"][q] for q in ("p50", "p95", "p99"))],
                  ["(b) form POST sent -> case page 200", *(ratios["case_page"][q] for q in ("p50", "p95", "p99"))]]
    errors = ", ".join(f"{k}: {v}" for k, v in form["errors"].items()) or "none"
    polls = form["case_page_polls"]
    return [
        "## Form to case",
        "",
        f"N = {p['form_reports']} reports posted through the web form at {p['form_rate']}/s (reached: "
        f"{form['achieved_rate_per_s']}/s), after the pipeline phase and {p['warmup']} untimed warm-up reports; "
        f"{p['workers']} browsers sharing one login made through the login page. Load average after the form phase: "
        f"{results['machine'].get('load_average_after_form')}.",
        "",
        "How it is timed: each browser fetches /reports/new (untimed) for its CSRF token, then the clock starts as "
        "it sends the form's POST of a synthetic report. It follows the redirect to the report page, takes the "
        "case link from it and opens that case page (the case service, with the same session cookie) every "
        f"{form['poll_ms']} ms while it answers 404 (\"not here yet\"). (a) ends when the benchmark's consumer of "
        f"{CASE_TOPIC} receives the case.opened for that case, as in the pipeline phase; (b) ends when the case "
        "page answers 200, what a caseworker sees (late by up to the poll interval). Unlike the pipeline phase, "
        "this one loads the case service with those page views. case.opened arrived before the form's redirect "
        f"for {form['opened_before_redirect']} of {form['count']}; the case page answered 200 at the first look "
        f"for {polls['first_look_200']} (looks per case: mean {polls['mean']}, max {polls['max']}).",
        "",
        "Latency in milliseconds:",
        "",
        table(["", *stats], rows),
        "",
        f"Timeouts (counted at {p['cap_s']} s in the figures): case.opened {form['opened_timeouts']}, case page "
        f"{form['page_timeouts']}. Failed requests: {errors}.",
        "",
        cpu_line("form", form["cpu"]),
        "",
        "Form / bare round trip (same run), in times:",
        "",
        table(["", "p50", "p95", "p99"], ratio_rows),
        "",
    ]


def markdown(results: dict) -> str:
    """The results as the Markdown that bench/results/latest.md holds (and stdout shows)."""
    m, p, b, pipe = results["machine"], results["parameters"], results["baseline"], results["pipeline"]
    readable = pipe["readable"]
    stats = ("p50", "p95", "p99", "max", "mean")
    latency_rows = [
        ["bare Kafka round trip (send -> consumer)", *(b["latency_ms"][s] for s in stats)],
        ["pipeline (intake 201 -> case.opened at consumer)", *(pipe["latency_ms"][s] for s in stats)],
        ["intake POST /api/v1/reports (context)", *(pipe["intake_post_ms"][s] for s in stats)],
        ["POST sent -> case.opened at consumer (context)", *(pipe["end_to_end_ms"][s] for s in stats)],
        ["case GET after the timed phase (context)", *(readable["get_ms"][s] for s in stats)],
    ]
    aim_rows = [[a["aim"], f"{a['value']} {a['unit']}" if a["value"] is not None else None,
                 f"< {a['limit']} {a['unit']}", "PASS" if a["met"] else "FAIL"] for a in results["aims"]]
    errors = ", ".join(f"{k}: {v}" for k, v in pipe["errors"].items()) or "none"
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(readable["answers"].items()))
    return "\n".join([
        "# Pipeline latency benchmark" + (f" on a {p['brokers']}-broker cluster ({p['instances']} of every consumer "
                                          "and relay)" if p.get("brokers", 1) > 1 else ""),
        "",
        f"Measured {results['date']} with `make bench` (`python -m bench.pipeline`), commit "
        f"{results['git']['commit']}{' (with local changes)' if results['git']['dirty'] else ''}.",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Python {m['python']}, "
        f"kafka-python {m['kafka_python']}; load average {m['load_average_at_start']} at the start, "
        f"{m['load_average_at_end']} at the end. Everything (Kafka, FerretDB, 4 services, the benchmark) "
        "ran on this one machine.",
        "",
        f"N = {p['reports']} at {p['rate']}/s (reached: round trip {b['achieved_rate_per_s']}/s, pipeline "
        f"{pipe['achieved_rate_per_s']}/s), after {p['warmup']} untimed warm-up sends each; {p['workers']} "
        f"threads posting reports; what is still missing {p['cap_s']} s after the last send (the last 201 for "
        "the pipeline) is a timeout.",
        "",
        "How the pipeline is timed: from the moment intake's 201 reaches the benchmark to the moment the "
        f"benchmark's own consumer of {CASE_TOPIC} (every partition, polled continuously) receives the case "
        "service's case.opened for that case. The case service publishes case.opened only after storing the case "
        "and its projection, so by then the case can be read; the benchmark does not poll the case service "
        "during the timed phase. The event can arrive before the 201 does (intake publishes case.reported "
        f"before it answers); such latencies are negative and kept as measured: {pipe['event_before_201']} of "
        f"{pipe['count']}.",
        "",
        "Latency in milliseconds:",
        "",
        table(["", *stats], latency_rows),
        "",
        f"Timeouts (counted at {p['cap_s']} s in the figures): round trip {b['timeouts']}, pipeline "
        f"{pipe['timeouts']}. Failed requests: {errors}.",
        "",
        f"Readable: after the timed phase (outside its CPU figures), each of the {readable['checked']} cases was read "
        f"once with GET /api/v1/cases/<id>, one after the other; not readable (not 200): "
        f"{readable['not_readable']} (answers: {answers or 'none'}).",
        "",
        cpu_line("bare round trip", b["cpu"]),
        "",
        cpu_line("pipeline", pipe["cpu"]),
        "",
        f"Pipeline / round trip: p50 {results['ratios']['p50']}x, p99 {results['ratios']['p99']}x.",
        "",
        f"Aims (from the issue): {AIMS_TEXT}.",
        "",
        table(["aim", "measured", "target", ""], aim_rows),
        "",
        *form_markdown(results),
        *(["Caveats:", "", *(f"- {c}" for c in results["caveats"]), ""] if results["caveats"] else []),
    ])


def write_results(results: dict) -> tuple[Path, Path]:
    """Write the JSON and latest.md; their paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromisoformat(results["date"]).strftime("%Y%m%dT%H%M%SZ")
    cluster = results["parameters"].get("brokers", 1) > 1
    json_path = RESULTS / f"pipeline{'-cluster' if cluster else ''}-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = RESULTS / ("latest-cluster.md" if cluster else "latest.md")
    md_path.write_text(markdown(results))
    return json_path, md_path


# --- main ---------------------------------------------------------------------------------------


def measure(stack: Stack, args: argparse.Namespace) -> dict:
    """Log in, run the round-trip and pipeline phases on the ready stack, confirm the cases can be read, run the
    form phase (unless --form-reports is 0), and gather the results."""
    urls = service_urls(stack.env)
    bootstrap = stack.env["NRW_KAFKA_BOOTSTRAP"]
    admin_token = login(urls["intake"], "admin", ADMIN_PASSWORD)
    user = create_caseworker(urls["intake"], admin_token)
    token = login(urls["intake"], *user)
    date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    machine = machine_info()
    start = cpu_snapshot(stack)
    baseline = run_baseline(bootstrap, args)
    middle = cpu_snapshot(stack)
    pipeline, case_ids = run_pipeline(bootstrap, urls, token, args)
    end = cpu_snapshot(stack)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    pipeline["readable"] = confirm_readable(urls, token, case_ids)
    baseline["cpu"], pipeline["cpu"] = cpu_used(start, middle), cpu_used(middle, end)
    form = None
    if args.form_reports:
        before_form = cpu_snapshot(stack)
        form = run_form(bootstrap, urls, user, args)
        form["cpu"] = cpu_used(before_form, cpu_snapshot(stack))
        machine["load_average_after_form"] = [round(x, 2) for x in os.getloadavg()]
    ratios, checks = aims(baseline, pipeline)
    return {"benchmark": "pipeline", "date": date.isoformat(), "machine": machine, "git": git_revision(),
            "parameters": {k: getattr(args, k) for k in PARAMETERS}, "baseline": baseline, "pipeline": pipeline,
            "ratios": ratios, "aims": checks, "form": form,
            "form_ratios": form_ratios(baseline, form) if form is not None else None,
            "caveats": caveats(machine, baseline, pipeline, form, args)}


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, report, and always stop the stack."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    env = bench_env(args.brokers)
    busy = busy_addresses(env)
    if busy:
        print(f"bench: something already listens on {', '.join(busy)}; is another benchmark running?",
              file=sys.stderr)
        return 1
    shutil.rmtree(VAR, ignore_errors=True)
    procfile = None
    if args.brokers > 1 or args.instances > 1:
        procfile = scaled_procfile(VAR / "run" / "Procfile", env, args.instances)
    stack = Stack(env, procfile) if procfile else Stack(env)
    try:
        print(f"bench: starting a stack of its own (logs in {stack.logs})...", file=sys.stderr)
        stack.start()
        try:
            stack.wait_ready(timeout_s=args.ready_timeout)
        except (TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"bench: the stack did not start: {exc}. See {stack.logs}.", file=sys.stderr)
            return 1
        try:
            results = measure(stack, args)
        except (RuntimeError, requests.RequestException) as exc:
            print(f"bench: could not measure: {exc}. See {stack.logs}.", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("bench: interrupted; stopping the stack", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let nothing cut the stopping short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("bench: stopping the stack...", file=sys.stderr)
        stack.stop()
    json_path, md_path = write_results(results)
    print()
    print(markdown(results))
    print(f"bench: wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
