"""Intake throughput: reports per second that gunicorn's intake service accepts with 1, 4 and 16
concurrent clients, beside the same clients calling a bare /healthz as the baseline.

    python -m bench.throughput [--seconds S] [--clients 1,4,16]      (part of `make bench`)

It starts a stack of its own (the same ports and var/bench as bench.pipeline, so the two run one
after the other), prints a table and writes bench/results/throughput-<UTC time>.json and
bench/results/throughput-latest.md. A measurement, not a test: the exit status is 0 whatever the
figures are, 1 only when the stack does not start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time

import requests

from bench.pipeline import (HTTP_TIMEOUT_S, RESULTS, VAR, bench_env, busy_addresses, create_caseworker, login,
                            machine_info, session, table)
from infra.stack import Stack, service_urls
from tests.support import ADMIN_PASSWORD, synthetic_report


def hammer(call, clients: int, seconds: float) -> dict:
    """Run `call` from `clients` threads for `seconds`; requests per second, and failures."""
    done, failed = [0] * clients, [0] * clients
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            try:
                ok = call()
            except requests.RequestException:
                ok = False
            done[i] += ok
            failed[i] += not ok

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"per_second": round(sum(done) / elapsed, 1), "requests": sum(done), "failed": sum(failed)}


def measure(urls: dict[str, str], clients: list[int], seconds: float) -> list[dict]:
    """Reports/s and /healthz/s for each number of clients."""
    admin = login(urls["intake"], "admin", ADMIN_PASSWORD)
    token = login(urls["intake"], *create_caseworker(urls["intake"], admin))
    headers = {"Authorization": f"Bearer {token}"}

    def post() -> bool:
        return session().post(f"{urls['intake']}/api/v1/reports", json=synthetic_report(), headers=headers,
                              timeout=HTTP_TIMEOUT_S).status_code == 201

    def health() -> bool:
        return session().get(f"{urls['intake']}/healthz", timeout=HTTP_TIMEOUT_S).status_code == 200

    hammer(post, 2, 2)  # warm-up: connections, first use of keys and indexes
    rows = []
    for n in clients:
        baseline, reports = hammer(health, n, seconds), hammer(post, n, seconds)
        rows.append({"clients": n, "reports_per_second": reports["per_second"], "report_failures": reports["failed"],
                     "healthz_per_second": baseline["per_second"], "healthz_failures": baseline["failed"],
                     "ratio": round(reports["per_second"] / baseline["per_second"], 3) if baseline["per_second"] else None})
        print(f"throughput: {n} client(s): {reports['per_second']} reports/s, {baseline['per_second']} /healthz/s",
              file=sys.stderr)
    return rows


def markdown(result: dict) -> str:
    """The results as Markdown."""
    rows = [[r["clients"], r["reports_per_second"], r["healthz_per_second"], r["ratio"],
             r["report_failures"] + r["healthz_failures"]] for r in result["rows"]]
    best = max(r["reports_per_second"] for r in result["rows"])
    return "\n".join([
        "# Intake throughput benchmark", "",
        f"Measured {result['measured_at']} with `python -m bench.throughput` on {result['machine']['nproc']} CPUs; "
        f"{result['seconds']} s per cell; everything (Kafka, FerretDB, the four services, the clients) on this machine.",
        "", table(["clients", "reports/s (POST /api/v1/reports)", "baseline /healthz/s", "reports / baseline",
                   "failed requests"], rows), "",
        f"Aim (issue 3): at least 200 reports/s. Best measured: {best} reports/s "
        f"({'PASS' if best >= 200 else 'FAIL'}).", ""])


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, report, and always stop the stack."""
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each cell runs (default 10)")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated numbers of concurrent clients")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    env = bench_env()
    if busy_addresses(env):
        print("bench: the benchmark's ports are taken; is another benchmark running?", file=sys.stderr)
        return 1
    shutil.rmtree(VAR, ignore_errors=True)
    stack = Stack({**env, "NRW_ACCESS_LOG": "0"})
    try:
        stack.start()
        try:
            stack.wait_ready(timeout_s=180)
        except (TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"bench: the stack did not start: {exc}. See {stack.logs}.", file=sys.stderr)
            return 1
        rows = measure(service_urls(stack.env), clients, args.seconds)
    finally:
        stack.stop()
    stamp = dt.datetime.now(dt.timezone.utc)
    result = {"measured_at": stamp.isoformat(timespec="seconds"), "machine": machine_info(), "seconds": args.seconds,
              "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"throughput-{stamp:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "throughput-latest.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
