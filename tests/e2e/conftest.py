"""End-to-end tier: the whole stack as `make run` starts it (every Procfile line), on test ports,
driven over HTTP and Kafka only. Each process runs on its own so tests can stop or kill one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.stack import Stack, service_urls
from tests.support import Api, chromium, register_kafka, tier_env


@pytest.fixture(scope="session")
def env():
    """The NRW_* settings of the end-to-end stack (fresh data each session)."""
    env = tier_env("e2e")
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    register_kafka(env["NRW_KAFKA_BOOTSTRAP"], Path(env["NRW_VAR"]) / "secrets")
    return env


@pytest.fixture(scope="session")
def stack(env):
    """Every process of infra/Procfile, started and ready."""
    stack = Stack(env)
    stack.start()
    try:
        stack.wait_ready(timeout_s=180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def api(stack, env):
    """HTTP access to the running stack."""
    return Api(service_urls(stack.env))


@pytest.fixture(scope="session")
def bootstrap(env):
    """The test broker's address."""
    return env["NRW_KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    with chromium() as browser:
        yield browser
