"""The topics on the real single-node broker: each system topic and its dead-letter topic with 3
partitions and one replica, the broker's offsets topic with one replica, and the creating script idempotent."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from shared.kafka_auth import client_options
from shared.bus import ensure_topics
from shared.config import all_topics
from tests.support import ROOT


@pytest.fixture
def admin(settings):
    client = KafkaAdminClient(**client_options(settings, "admin"), bootstrap_timeout_ms=10000)
    yield client
    client.close()


def _layout(admin, topics: list[str]) -> dict[str, tuple[int, set[int]]]:
    """topic -> (partition count, the set of replica counts of its partitions)."""
    return {t["name"]: (len(t["partitions"]), {len(p["replica_nodes"]) for p in t["partitions"]})
            for t in admin.describe_topics(topics)}


def test_every_topic_has_three_partitions_and_one_replica(admin):
    assert len(all_topics()) == 8 and all(t.endswith(".events") or t.endswith(".events.dlq") for t in all_topics())
    assert _layout(admin, all_topics()) == {t: (3, {1}) for t in all_topics()}


def test_the_script_creates_only_what_is_missing_and_says_so(admin, settings):
    before = _layout(admin, all_topics())
    again = subprocess.run([sys.executable, "-m", "shared.topics", "--timeout", "30"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines() == [
        f"topics: {len(all_topics())} already present",
        "topics: credentials and rights of every principal set (shared/kafka_auth.py)"]
    assert _layout(admin, all_topics()) == before

    fresh = [f"it-topics-{uuid.uuid4().hex[:6]}", f"it-topics-{uuid.uuid4().hex[:6]}.dlq"]
    assert ensure_topics(settings, fresh) == fresh
    assert ensure_topics(settings, fresh) == []
    assert _layout(admin, fresh) == {t: (settings.topic_partitions, {1}) for t in fresh}


def test_the_offsets_topic_has_one_replica(admin, settings):
    """Committing once makes sure the broker has created its offsets topic, as configured in start.sh."""
    consumer = KafkaConsumer(**client_options(settings, "admin"), group_id=f"it-topics-{uuid.uuid4().hex[:6]}",
                             enable_auto_commit=False, bootstrap_timeout_ms=10000)
    try:
        tp = TopicPartition("intake.events", 0)
        consumer.assign([tp])
        consumer.commit({tp: OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()
    assert "__consumer_offsets" in admin.list_topics()
    assert _layout(admin, ["__consumer_offsets"]) == {"__consumer_offsets": (3, {1})}
