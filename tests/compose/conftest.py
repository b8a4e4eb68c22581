"""Compose tier: fixtures for pytest-docker, pointed at the repository's docker-compose.yml."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.support import ADMIN_PASSWORD

ROOT = Path(__file__).resolve().parents[2]

# Host ports of the compose stack's web services: away from `make run` (8001-8004) and the
# local test stacks (18001-18004), so that all of them can share a machine.
COMPOSE_TEST_PORTS = {"intake": 28001, "case": 28002, "advocacy": 28003, "reporting": 28004}


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
    return env


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    """The compose file under test: the one a server uses, not a test copy."""
    return str(ROOT / "docker-compose.yml")


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
