"""Cluster tier (issue 13 point 3): three Kafka brokers (KRaft, each broker and controller, topics
with three replicas and min.insync.replicas 2) on one machine, FerretDB, the four web services,
and two of every consumer and relay, each process on its own so a test can kill any of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.stack import Stack, cluster_env, scaled_procfile
from tests.e2e import conftest as e2e
from tests.support import TEST_PORTS, register_kafka, tier_env

BROKERS = 3
INSTANCES = 2


@pytest.fixture(scope="session")
def env():
    """The NRW_* settings of the cluster stack (fresh data each session); its brokers' ports start
    20 above the single broker's of the other tiers."""
    env = tier_env("cluster")
    env.update(cluster_env(BROKERS, first_port=TEST_PORTS["kafka"] + 20))
    env["NRW_KAFKA_HEAP"] = "384m"
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    register_kafka(env["NRW_KAFKA_BOOTSTRAP"], Path(env["NRW_VAR"]) / "secrets")
    return env


@pytest.fixture(scope="session")
def stack(env):
    """Every process of the scaled Procfile, started and ready."""
    procfile = scaled_procfile(Path(env["NRW_VAR"]) / "run" / "Procfile", env, instances=INSTANCES)
    stack = Stack(env, procfile)
    stack.start()
    try:
        stack.wait_ready(timeout_s=240)
        yield stack
    finally:
        stack.stop()


# The end-to-end tier's HTTP access and broker address, for this stack.
api, bootstrap = e2e.api, e2e.bootstrap
