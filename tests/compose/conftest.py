"""Compose tier: fixtures for pytest-docker, pointed at the repository's docker-compose.yml, and the
same `stack`, `api`, `bootstrap` and `browser` fixtures as the end-to-end tier, so that the
end-to-end tests collected in test_compose_stack.py run against the compose stack. Where no Docker
engine answers, every test that needs the stack is skipped with the reason."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor

from tests.compose.compose_stack import ComposeStack
from tests.support import ADMIN_PASSWORD, Api, chromium, chromium_missing

ROOT = Path(__file__).resolve().parents[2]

# Host ports of the compose stack's web services: away from `make run` (8001-8004) and the
# local test stacks (18001-18004), so that all of them can share a machine.
COMPOSE_TEST_PORTS = {"intake": 28001, "case": 28002, "advocacy": 28003, "reporting": 28004}
# Where the host reaches the compose broker (tests/compose/kafka-from-host.yml, loopback only).
COMPOSE_KAFKA_HOST_PORT = 28092
KAFKA_FROM_HOST = ROOT / "tests" / "compose" / "kafka-from-host.yml"


def docker_engine_missing() -> str | None:
    """Why the compose stack cannot start here, or None if a Docker engine and compose answer."""
    if shutil.which("docker") is None:
        return "no Docker engine: the docker client is not installed"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode != 0:
            return "no Docker engine: `docker info` failed"
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=10).returncode != 0:
            return "no docker compose plugin next to the Docker engine"
    except subprocess.TimeoutExpired:
        return "no Docker engine: `docker info` did not answer within 5 s"
    return None


def _random_key() -> str:
    """32 random bytes in the urlsafe base64 form shared/crypto.py reads."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def compose_test_env() -> dict[str, str]:
    """The variables docker-compose.yml interpolates, with fresh keys for one test session."""
    env = {
        "NRW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NRW_TOKEN_SECRET": _random_key(),
        "NRW_DATA_KEYS": f"k1:{_random_key()}",
        "NRW_DATA_KEY_ID": "k1",
        "NRW_BLIND_INDEX_KEY": _random_key(),
    }
    env.update({f"NRW_{service.upper()}_PORT": str(port) for service, port in COMPOSE_TEST_PORTS.items()})
    env["NRW_KAFKA_HOST_PORT"] = str(COMPOSE_KAFKA_HOST_PORT)
    return env


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    """The compose file a server uses (not a test copy), and the overlay that opens Kafka to the host."""
    return [str(ROOT / "docker-compose.yml"), str(KAFKA_FROM_HOST)]


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Build and start detached; the test waits on /readyz itself."""
    # `up --wait` hangs or fails on the one-shot topics container with some compose versions.
    return ["up --build --detach"]


@pytest.fixture(scope="session")
def compose_env():
    """Secrets and ports for `docker compose`, kept for the session so that `down -v` still has them."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in compose_test_env().items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def stack(request, docker_compose_command, docker_compose_file, docker_compose_project_name):
    """The compose stack, up and ready, behind infra.stack.Stack's handle; skipped without an engine."""
    reason = docker_engine_missing()
    if reason:
        pytest.skip(reason)
    # Only now, with an engine known to answer, may pytest-docker run `docker compose up`.
    request.getfixturevalue("compose_env")
    docker_services = request.getfixturevalue("docker_services")
    docker_ip = request.getfixturevalue("docker_ip")
    urls = {service: f"http://{docker_ip}:{docker_services.port_for(f'{service}-web', port)}"
            for service, port in COMPOSE_TEST_PORTS.items()}
    compose = DockerComposeExecutor(docker_compose_command, docker_compose_file, docker_compose_project_name)
    stack = ComposeStack(compose, urls, bootstrap=f"127.0.0.1:{COMPOSE_KAFKA_HOST_PORT}")
    stack.wait_ready(timeout_s=300)  # the first start builds the image and pulls Kafka and MongoDB
    return stack


@pytest.fixture(scope="session")
def api(stack):
    """HTTP access to the compose stack."""
    return Api(stack.urls)


@pytest.fixture(scope="session")
def bootstrap(stack):
    """The compose broker's address from the host."""
    return stack.bootstrap


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    with chromium() as browser:
        yield browser
