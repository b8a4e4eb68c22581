"""`make run` and `make stop`: the launcher starts every Procfile process under honcho, prints
where to go, and stops everything cleanly on Ctrl-C or on `stop`. Runs on ports of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from infra.stack import port_open, service_urls
from tests.support import ROOT, tier_env

LAUNCHER_PORTS = {"NRW_KAFKA_BOOTSTRAP": "127.0.0.1:39092", "NRW_KAFKA_CONTROLLER_PORT": "39093",
                  "NRW_FERRETDB_LISTEN": "127.0.0.1:27317", "NRW_MONGO_URI": "mongodb://127.0.0.1:27317/",
                  "NRW_INTAKE_PORT": "38001", "NRW_CASE_PORT": "38002", "NRW_ADVOCACY_PORT": "38003",
                  "NRW_REPORTING_PORT": "38004"}


@pytest.fixture
def launcher_env():
    env = {**os.environ, **tier_env("launcher"), **LAUNCHER_PORTS}
    env.pop("NRW_ADMIN_PASSWORD")  # a fresh start without one: the launcher must print a generated password
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    return env


def _start(env):
    proc = subprocess.Popen([sys.executable, "-m", "infra.stack", "run", "--timeout", "180"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            return proc, "".join(lines)
    _stop(proc)
    raise AssertionError("the launcher did not report a ready stack:\n" + "".join(lines[-40:]))


def _stop(proc):
    """Stop the launcher the way a person would (Ctrl-C), so honcho stops what it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _all_down(env):
    addresses = [env["NRW_KAFKA_BOOTSTRAP"], env["NRW_FERRETDB_LISTEN"],
                 *[f"127.0.0.1:{env[f'NRW_{s.upper()}_PORT']}" for s in ("intake", "case", "advocacy", "reporting")]]
    return not any(port_open(a) for a in addresses)


def _make_stop(env):
    """`make stop` from another shell; it must say it stopped the stack."""
    stopped = subprocess.run([sys.executable, "-m", "infra.stack", "stop"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr


def _assert_everything_stopped(env):
    """No process of the stack listens any more (given 30 s to let go), and the pid file is gone."""
    deadline = time.monotonic() + 30
    while not _all_down(env) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _all_down(env), "a process of the stack is still listening"
    assert not (ROOT / env["NRW_VAR"] / "run" / "stack.pid").exists()


@pytest.mark.parametrize("how", ["ctrl-c", "make stop"])
def test_run_prints_where_to_go_and_stops_cleanly(launcher_env, how):
    proc, output = _start(launcher_env)
    try:
        urls = service_urls(launcher_env)
        for name, url in urls.items():
            assert url in output
            assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        assert re.search(r"Non-Refoulement Watch is running \(ready \d+ s after the start\):", output)
        assert "Log in as 'admin' with the generated password:" in output
        password = output.split("generated password:", 1)[1].split()[0]
        token = requests.post(f"{urls['intake']}/api/v1/auth/token", timeout=5,
                              json={"username": "admin", "password": password})
        assert token.status_code == 200
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends the foreground group
        else:
            _make_stop(launcher_env)
        proc.wait(timeout=60)
    finally:
        _stop(proc)
    _assert_everything_stopped(launcher_env)


def test_make_stop_while_the_stack_is_still_starting_stops_it(launcher_env):
    proc = subprocess.Popen([sys.executable, "-m", "infra.stack", "run", "--timeout", "180"], cwd=ROOT,
                            env=launcher_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:  # honcho has started its processes; Kafka is not ready yet
            lines.append(line)
            if "started (pid=" in line:
                break
        pidfile = ROOT / launcher_env["NRW_VAR"] / "run" / "stack.pid"
        assert pidfile.exists(), "".join(lines)
        _make_stop(launcher_env)
        rest = proc.communicate(timeout=60)[0]
        assert "stopped before it was ready" in rest
    finally:
        _stop(proc)
    _assert_everything_stopped(launcher_env)
