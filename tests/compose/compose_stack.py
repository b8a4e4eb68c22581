"""The compose stack behind the same handle as infra.stack.Stack, so that the end-to-end tests that
stop the broker, kill a consumer or restart everything run unchanged against docker compose."""

from __future__ import annotations

import signal
import subprocess
import time

from infra.stack import port_open, ready, wait_until

# Procfile process -> compose service, where the names differ (MongoDB stands in for FerretDB).
COMPOSE_SERVICE = {"ferretdb": "mongo"}


class ComposeStack:
    """start / stop / signal / kill / running / wait_stopped / wait_ready over `docker compose`.

    `compose` runs one compose subcommand (pytest-docker's DockerComposeExecutor: the project's
    files and project name already given) and returns its standard output."""

    def __init__(self, compose, urls: dict[str, str], bootstrap: str):
        self.compose = compose
        self.urls = urls
        self.bootstrap = bootstrap
        self._started_at: dict[str, str] = {}

    @staticmethod
    def _services(names) -> str:
        return " ".join(COMPOSE_SERVICE.get(n, n) for n in names)

    def start(self, *names: str) -> None:
        """Start the named services (every stopped one if none named); running ones are left alone."""
        self.compose.execute(f"start {self._services(names)}".strip())

    def stop(self, *names: str, timeout_s: float = 20) -> None:
        """Stop the named services (all if none named): SIGTERM, SIGKILL after timeout_s."""
        self.compose.execute(f"stop --timeout {int(timeout_s)} {self._services(names)}".strip())

    def _state(self, name: str) -> tuple[bool, str]:
        """(running, started at) of the service's container."""
        container = self.compose.execute(f"ps --all --quiet {self._services([name])}").decode().split()
        if not container:
            return False, ""
        out = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}",
                              container[0]], check=True, capture_output=True, text=True).stdout.split()
        return out[0] == "true", out[1]

    def signal(self, name: str, sig: int) -> None:
        """Send a signal to the service's main process (SIGKILL: as a crash would)."""
        self._started_at[name] = self._state(name)[1]
        self.compose.execute(f"kill --signal {signal.Signals(sig).name} {self._services([name])}")

    def kill(self, name: str) -> None:
        """SIGKILL the service and wait until it has ended."""
        self.signal(name, signal.SIGKILL)
        self.wait_stopped(name)

    def running(self, name: str) -> bool:
        """True if the service's container is running."""
        return self._state(name)[0]

    def wait_stopped(self, name: str, timeout_s: float = 10) -> None:
        """Wait until the container has ended since the last signal, or has already been started
        again by its restart policy (which then counts as the restart the test does next)."""
        before = self._started_at.get(name)

        def ended() -> bool:
            running, started_at = self._state(name)
            return not running or (before is not None and started_at != before)

        wait_until(ended, timeout_s, f"the end of {name}", interval_s=0.2)

    def wait_ready(self, timeout_s: float = 180) -> None:
        """Wait for the broker from the host and every web service's /readyz."""
        deadline = time.monotonic() + timeout_s
        wait_until(lambda: port_open(self.bootstrap), timeout_s, "Kafka")
        for service, url in self.urls.items():
            wait_until(lambda url=url: ready(url), max(1.0, deadline - time.monotonic()), f"the {service} service")
