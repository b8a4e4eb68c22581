"""The local stack: install what is missing, start every process of infra/Procfile, wait until it
is ready, stop it cleanly.

    python -m infra.stack run      start everything with honcho in the foreground (Ctrl-C stops)
    python -m infra.stack stop     stop a stack left running by `run`
    python -m infra.stack install  fetch Kafka and build FerretDB only
    python -m infra.stack run --brokers 3 --instances 2
                                   a three-broker cluster (replication 3), two of every consumer and relay

`Stack` is also what the end-to-end tests use: the same Procfile lines, each its own process
group, so that a test can stop, kill or restart any one of them.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from shared.config import DEFAULT_PORTS, SERVICES

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "infra" / "Procfile"
VENV_BIN = ROOT / ".venv" / "bin"


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """Process name -> shell command, in file order."""
    procs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, command = line.partition(":")
        procs[name.strip()] = command.strip()
    return procs


CONSUMERS_AND_RELAYS = re.compile(r"-(consumer|relay)$")


def cluster_env(brokers: int, host: str = "127.0.0.1", first_port: int = 9092) -> dict[str, str]:
    """The settings of a cluster of `brokers` combined broker+controller nodes on one machine: node
    i's client port is first_port + 2(i-1), its controller's the next; every client is given
    every node, and topics get min(3, brokers) replicas."""
    ports = [first_port + 2 * i for i in range(brokers)]
    return {"NRW_KAFKA_BOOTSTRAP": ",".join(f"{host}:{p}" for p in ports),
            "NRW_KAFKA_QUORUM": ",".join(f"{i + 1}@{host}:{p + 1}" for i, p in enumerate(ports)),
            "NRW_TOPIC_REPLICATION": str(min(3, brokers))}


def scaled_procfile(target: Path, env: dict[str, str], instances: int = 1, source: Path = PROCFILE) -> Path:
    """A Procfile like `source`, with one Kafka line per node of NRW_KAFKA_QUORUM (kafka-1, ...)
    and `instances` of every consumer and relay (case-consumer-1, case-consumer-2, ...): the same
    commands, so the same processes as one node runs, only more of them."""
    lines = ["# Written by infra/stack.py (scaled_procfile) from infra/Procfile."]
    quorum = [v for v in env.get("NRW_KAFKA_QUORUM", "").split(",") if v]
    addresses = env.get("NRW_KAFKA_BOOTSTRAP", "").split(",")
    for name, command in read_procfile(source).items():
        if name == "kafka" and quorum:
            for voter, address in zip(quorum, addresses):
                node, _, controller = voter.partition("@")
                lines.append(f"kafka-{node}: env NRW_KAFKA_NODE_ID={node} NRW_KAFKA_NODE_ADDRESS={address} "
                             f"NRW_KAFKA_CONTROLLER_PORT={controller.rpartition(':')[2]} {command}")
        elif instances > 1 and CONSUMERS_AND_RELAYS.search(name):
            lines += [f"{name}-{i}: {command}" for i in range(1, instances + 1)]
        else:
            lines.append(f"{name}: {command}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    return target


def stack_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every process gets: the caller's, the venv first on PATH, and overrides."""
    env = dict(os.environ)
    env.update(overrides or {})
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def prepare_var(env: dict[str, str]) -> Path:
    """The var/ folder, private to its owner: every file the stack's processes make there is 0600
    in 0700 folders (umask 077, inherited by Kafka, FerretDB and the services), and the key files
    exist before any process needs them (shared/keys.py)."""
    os.umask(0o077)
    var = Path(env.get("NRW_VAR", ROOT / "var"))
    for folder in (var, var / "logs", var / "run"):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
    subprocess.run([sys.executable, "-m", "shared.keys", "init"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return var


def install(env: dict[str, str]) -> None:
    """Fetch the Kafka jars and build FerretDB if they are not cached yet (each says what it does)."""
    subprocess.run([str(ROOT / "infra/kafka/fetch.sh")], check=True, env=env)
    subprocess.run([str(ROOT / "infra/ferretdb/build.sh")], check=True, env=env)


def _host_port(address: str) -> tuple[str, int]:
    address = re.sub(r"^[a-z]+://", "", address).split("/")[0].rpartition("@")[2].split(",")[0]
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_open(address: str) -> bool:
    """True if something accepts TCP connections at host:port."""
    try:
        with socket.create_connection(_host_port(address), timeout=0.5):
            return True
    except OSError:
        return False


def service_urls(env: dict[str, str]) -> dict[str, str]:
    """Where each web service listens, by the same rules as shared.config."""
    return {s: env.get(f"NRW_{s.upper()}_URL", f"http://127.0.0.1:{env.get(f'NRW_{s.upper()}_PORT', DEFAULT_PORTS[s])}")
            for s in SERVICES}


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.3) -> None:
    """Poll predicate() until true; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def ready(url: str) -> bool:
    """True if the service's /readyz answers 200."""
    try:
        return requests.get(f"{url}/readyz", timeout=3).status_code == 200
    except requests.RequestException:
        return False


class StackStopped(Exception):
    """The stack's processes ended while it was still starting."""


class Stack:
    """The Procfile's processes, each started on its own, logs in <var>/logs/<name>.log."""

    def __init__(self, env_overrides: dict[str, str] | None = None, procfile: Path = PROCFILE):
        self.env = stack_env(env_overrides)
        self.commands = read_procfile(procfile)
        self.var = Path(self.env.get("NRW_VAR", ROOT / "var"))
        self.logs = self.var / "logs"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> None:
        """Start the named processes (all if none named) that are not running."""
        prepare_var(self.env)
        for name in names or tuple(self.commands):
            if name in self.procs and self.procs[name].poll() is None:
                continue
            log = open(self.logs / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(["/bin/sh", "-c", f"exec {self.commands[name]}"], cwd=ROOT,
                                                env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
            log.close()

    def signal(self, name: str, sig: int) -> None:
        """Send a signal to one process's whole group."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)

    def stop(self, *names: str, timeout_s: float = 20) -> None:
        """Stop processes with SIGTERM (SIGKILL after timeout_s), the given ones or all, in reverse order."""
        for name in reversed(names or tuple(self.procs)):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            self.signal(name, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
                proc.wait()

    def kill(self, name: str) -> None:
        """SIGKILL one process, as a crash would."""
        self.signal(name, signal.SIGKILL)
        self.procs[name].wait()

    def wait_stopped(self, name: str, timeout_s: float = 10) -> None:
        """Wait until the process has ended (after a kill), and collect it."""
        proc = self.procs.get(name)
        if proc is not None:
            proc.wait(timeout=timeout_s)

    def running(self, name: str) -> bool:
        """True if the process is alive."""
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def wait_ready(self, timeout_s: float = 120, alive=None) -> None:
        """Wait for Kafka, the database, the topics and every web service's /readyz; StackStopped
        at once if `alive()` says the processes have stopped meanwhile (make stop, a crash)."""
        def unless_stopped(predicate):
            def check():
                if alive is not None and not alive():
                    raise StackStopped("the processes stopped before the stack was ready")
                return predicate()
            return check

        for address in self.env.get("NRW_KAFKA_BOOTSTRAP", "127.0.0.1:9092").split(","):
            wait_until(unless_stopped(lambda address=address: port_open(address)), timeout_s, f"Kafka at {address}")
        wait_until(unless_stopped(lambda: port_open(self.env.get("NRW_MONGO_URI", "127.0.0.1:27017"))),
                   timeout_s, "FerretDB")
        subprocess.run([sys.executable, "-m", "shared.topics"], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        for service, url in service_urls(self.env).items():
            wait_until(unless_stopped(lambda url=url: ready(url)), timeout_s, f"the {service} service")


def _bootstrap_admin(env: dict[str, str]) -> str | None:
    """Create the admin user if there are no users; the generated password, if one was made."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("NRW_")})
    from shared import identity
    from shared.config import Settings
    from shared.mongo import connect

    settings = Settings.from_env()
    client = connect(settings, "operator")
    try:
        return identity.bootstrap_admin(client[settings.database_name("identity")], settings.admin_password, announce=False)
    finally:
        client.close()


def run(args) -> int:
    """`make run`: install, start everything under honcho, print where to go, stop on Ctrl-C."""
    env = stack_env(cluster_env(args.brokers) if args.brokers > 1 else None)
    install(env)
    var = prepare_var(env)
    procfile = PROCFILE
    if args.brokers > 1 or args.instances > 1:
        procfile = scaled_procfile(var / "run" / "Procfile", env, args.instances)
    pidfile = var / "run" / "stack.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), 0)
            print("nrw: a stack is already running (make stop stops it)", file=sys.stderr)
            return 1
        except (OSError, ValueError):
            pidfile.unlink()
    print("nrw: starting Kafka, FerretDB, four web services, their consumers and relays...")
    started = time.monotonic()
    style = "--no-prefix" if args.quiet else "--no-colour"
    honcho = subprocess.Popen([str(VENV_BIN / "honcho"), "start", "-f", str(procfile), "-d", str(ROOT), style],
                              cwd=ROOT, env=env)
    pidfile.write_text(str(honcho.pid))
    try:
        try:
            Stack(env, procfile).wait_ready(timeout_s=args.timeout, alive=lambda: honcho.poll() is None)
        except StackStopped:
            print("nrw: stopped before it was ready", file=sys.stderr)
            return honcho.wait()
        except (TimeoutError, subprocess.CalledProcessError) as exc:
            print(f"nrw: the stack did not come up: {exc}. Its output above says why.", file=sys.stderr)
            honcho.send_signal(signal.SIGTERM)
            honcho.wait()
            return 1
        generated = _bootstrap_admin(env)
        urls = service_urls(env)
        print("\n" + "=" * 72)
        print(f"Non-Refoulement Watch is running (ready {time.monotonic() - started:.0f} s after the start):")
        for service, url in urls.items():
            print(f"  {service:<10} {url}   (API {url}/api/v1/, OpenAPI {url}/openapi.json)")
        print(f"  Kafka      {env.get('NRW_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}")
        mongo = _host_port(env.get("NRW_MONGO_URI", "mongodb://127.0.0.1:27017"))  # never a password
        print(f"  MongoDB    mongodb://{mongo[0]}:{mongo[1]}/ (FerretDB; the operator's URI: var/secrets/mongo-operator.uri)")
        if generated:
            print(f"Log in as 'admin' with the generated password: {generated}")
        elif env.get("NRW_ADMIN_PASSWORD"):
            print("Log in as 'admin' with the password in NRW_ADMIN_PASSWORD.")
        else:
            print("Log in as 'admin' with the password printed on the first start (or set NRW_ADMIN_PASSWORD "
                  "on a fresh var/).")
        print("Ctrl-C stops everything; data stays in var/.")
        print("=" * 72 + "\n", flush=True)
        return honcho.wait()
    except KeyboardInterrupt:
        return honcho.wait()
    finally:
        pidfile.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """True while the process exists and has not ended (an ended child its parent has not yet
    collected is a zombie: it still answers signal 0, but it is stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stop(args) -> int:
    """`make stop`: stop a stack left running."""
    pidfile = Path(os.environ.get("NRW_VAR", ROOT / "var")) / "run" / "stack.pid"
    if not pidfile.exists():
        print("nrw: no stack is running")
        return 0
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pidfile.unlink(missing_ok=True)
        print("nrw: no stack is running")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _running(pid):
            print("nrw: stopped")
            return 0
        time.sleep(0.3)
    print(f"nrw: the stack (pid {pid}) did not stop within {args.timeout:.0f} s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m infra.stack", description="Run the local stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="install what is missing, start everything, wait until ready")
    p_run.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness (default 180)")
    p_run.add_argument("--quiet", action="store_true", help="no process-name prefixes in the output")
    p_run.add_argument("--brokers", type=int, default=1,
                       help="Kafka nodes (KRaft, each broker and controller; 3: replication 3, min.insync.replicas 2)")
    p_run.add_argument("--instances", type=int, default=1, help="processes of every consumer and relay (default 1)")
    p_run.set_defaults(func=run)
    p_stop = sub.add_parser("stop", help="stop a stack started by `run`")
    p_stop.add_argument("--timeout", type=float, default=30, help="seconds to wait (default 30)")
    p_stop.set_defaults(func=stop)
    p_install = sub.add_parser("install", help="fetch Kafka and build FerretDB only")
    p_install.set_defaults(func=lambda a: install(stack_env()) or 0)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
