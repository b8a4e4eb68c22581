"""A caseworker's requests with the broker paused (issue 13 point 5): filing a report and changing a
case's status, first with Kafka up, then with Kafka stopped by SIGSTOP (a broker that hangs: the
worst case, where nothing refuses a connection), in one run on one stack; then how long after
SIGCONT every case filed during the pause is open.

    python -m bench.outage [--requests N]      (part of `make bench`)

It starts a stack of its own (ports 36xxx/36092/27717, var/bench-outage), prints a table and writes
bench/results/outage-<UTC time>.json and bench/results/outage-latest.md. A measurement, not a
test: the exit status is 0 whatever the figures are, 1 only when the stack does not start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.pipeline import HTTP_TIMEOUT_S, cpu_snapshot, cpu_used, create_caseworker, login, summarize, table
from bench.scale import own_stack
from infra.stack import service_urls
from tests.support import ADMIN_PASSWORD, synthetic_report, tier_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench-outage"
# Ports of its own: tests 18xxx/19xxx/27117 (+ offsets), bench.pipeline 28xxx/29092/27217,
# bench.lists 48xxx/49092/47017, bench.scale 58xxx/59092/27517, `make run` 8xxx/9092/27017.
OUTAGE_ENV = {
    "NRW_KAFKA_BOOTSTRAP": "127.0.0.1:36092",
    "NRW_KAFKA_CONTROLLER_PORT": "36093",
    "NRW_FERRETDB_LISTEN": "127.0.0.1:27717",
    "NRW_MONGO_URI": "mongodb://127.0.0.1:27717/",
    "NRW_INTAKE_PORT": "36001",
    "NRW_CASE_PORT": "36002",
    "NRW_ADVOCACY_PORT": "36003",
    "NRW_REPORTING_PORT": "36004",
    "NRW_VAR": str(VAR),
    "NRW_ACCESS_LOG": "0",
    "NRW_2FA_ROLES": "",
}


def timed(call) -> float:
    """Seconds one request took; it must succeed."""
    started = time.perf_counter()
    res = call()
    took = time.perf_counter() - started
    if res.status_code not in (200, 201):
        raise RuntimeError(f"bench.outage: {res.request.method} {res.request.path_url} answered {res.status_code}")
    return took


def case_open(http: requests.Session, urls: dict, headers: dict, case_id: str) -> bool:
    """True once the case service has the case."""
    return http.get(f"{urls['case']}/api/v1/cases/{case_id}", headers=headers, timeout=HTTP_TIMEOUT_S).status_code == 200


def file_reports(http: requests.Session, urls: dict, headers: dict, n: int) -> tuple[list[float], list[str]]:
    """File n reports one after the other; each one's seconds and the cases they made."""
    seconds, cases = [], []
    for _ in range(n):
        started = time.perf_counter()
        res = http.post(f"{urls['intake']}/api/v1/reports", json=synthetic_report(), headers=headers,
                        timeout=HTTP_TIMEOUT_S)
        seconds.append(time.perf_counter() - started)
        res.raise_for_status()
        cases.append(res.json()["case_id"])
    return seconds, cases


def move(http: requests.Session, urls: dict, headers: dict, cases: list[str]) -> list[float]:
    """Move each case from reported to detained; each request's seconds."""
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return [timed(lambda c=c: http.post(f"{urls['case']}/api/v1/cases/{c}/transitions", headers=headers,
                                        timeout=HTTP_TIMEOUT_S, json={"to": "detained", "effective_on": today}))
            for c in cases]


def wait_open(http: requests.Session, urls: dict, headers: dict, cases: list[str], timeout_s: float) -> float | None:
    """Seconds until every case is open (None if not within timeout_s)."""
    started, todo = time.perf_counter(), list(cases)
    while todo and time.perf_counter() - started < timeout_s:
        todo = [c for c in todo if not case_open(http, urls, headers, c)]
        if todo:
            time.sleep(0.2)
    return None if todo else round(time.perf_counter() - started, 2)


def measure(stack, n: int) -> dict:
    """The two requests, n of each, with the broker up then paused; the recovery after SIGCONT."""
    urls = service_urls(stack.env)
    http = requests.Session()
    admin = login(urls["intake"], "admin", ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {login(urls['intake'], *create_caseworker(urls['intake'], admin))}"}
    _, warm = file_reports(http, urls, headers, 5)  # connections, keys, each web worker's producer
    _, to_move = file_reports(http, urls, headers, 2 * n)  # cases to move, up then paused
    if wait_open(http, urls, headers, warm + to_move, 180) is None:
        raise RuntimeError("bench.outage: the cases to move did not open")
    before = cpu_snapshot(stack)
    up_reports, _ = file_reports(http, urls, headers, n)
    up_moves = move(http, urls, headers, to_move[:n])
    cpu_up = cpu_used(before, cpu_snapshot(stack))
    stack.signal("kafka", signal.SIGSTOP)
    paused_at, before = time.perf_counter(), cpu_snapshot(stack)
    try:
        paused_reports, paused_cases = file_reports(http, urls, headers, n)
        paused_moves = move(http, urls, headers, to_move[n:])
    finally:
        stack.signal("kafka", signal.SIGCONT)
    cpu_paused = cpu_used(before, cpu_snapshot(stack))
    pause_s = round(time.perf_counter() - paused_at, 2)
    recovery = wait_open(http, urls, headers, paused_cases, 300)
    return {"requests": n, "pause_seconds": pause_s, "cases_open_after_resume_seconds": recovery,
            "up": {"report": summarize(up_reports), "status_change": summarize(up_moves), "cpu": cpu_up},
            "paused": {"report": summarize(paused_reports), "status_change": summarize(paused_moves),
                       "cpu": cpu_paused}}


def markdown(result: dict) -> str:
    """The results as Markdown."""
    rows = []
    for kind, label in (("report", "file a report (`POST /api/v1/reports`)"),
                        ("status_change", "change a case's status (`POST .../transitions`)")):
        for phase in ("up", "paused"):
            s = result[phase][kind]
            rows.append([label, "Kafka up" if phase == "up" else "Kafka paused (SIGSTOP)", s["p50"], s["p95"],
                         s["p99"], s["max"]])
    return "\n".join([
        "# Requests with the broker paused", "",
        f"Measured {result['date']} with `python -m bench.outage` ({result['git']}, {result['machine']}); "
        f"{result['requests']} requests of each kind one after the other, first with Kafka up, then with Kafka "
        f"stopped by SIGSTOP for {result['pause_seconds']} s; everything on this machine.", "",
        table(["request", "broker", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows), "",
        f"Every case filed during the pause was open {result['cases_open_after_resume_seconds']} s after SIGCONT.", "",
        *[f"CPU, Kafka {phase}: machine {result[phase]['cpu']['machine_busy_pct']} % busy over "
          f"{result[phase]['cpu']['wall_s']} s; stack processes (s): "
          + ", ".join(f"{k} {v}" for k, v in list(result[phase]['cpu']['stack_cpu_s'].items())[:6])
          + f"; outside this benchmark {result[phase]['cpu']['other_cpu_s']} s" for phase in ("up", "paused")], ""])


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, report, and always stop the stack."""
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="requests of each kind in each phase (default 100)")
    args = parser.parse_args(argv)
    made = own_stack("outage", {**tier_env("bench-outage"), **OUTAGE_ENV}, VAR)
    if made is None:
        return 1
    stack, result = made
    try:
        print(f"bench.outage: starting a stack of its own (logs in {stack.logs})", file=sys.stderr)
        stack.start()
        try:
            stack.wait_ready(timeout_s=180)
        except (TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"bench.outage: the stack did not start: {exc}. See {stack.logs}.", file=sys.stderr)
            return 1
        result.update(measure(stack, args.requests))
    finally:
        stack.signal("kafka", signal.SIGCONT)  # never leave a stopped broker behind
        stack.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc)
    (RESULTS / f"outage-{stamp:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "outage-latest.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
