"""Helpers the test tiers share: test ports, synthetic data, reading Kafka topics, waiting.

All identifying values in test data are synthetic and carry the marker SYNTH, so a scan for the
marker in Kafka records, logs or non-intake databases finds any leak of any test's data.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
SYNTH = "Synthmark"

# The test stack uses its own ports and var/ folder, so `make test` never touches a `make run` stack.
# NRW_TEST_PORT_OFFSET shifts them all (and the var/ folder), so two checkouts can test at once.
PORT_OFFSET = int(os.environ.get("NRW_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {name: port + PORT_OFFSET for name, port in
              {"kafka": 19092, "kafka_controller": 19093, "mongo": 27117,
               "intake": 18001, "case": 18002, "advocacy": 18003, "reporting": 18004}.items()}
ADMIN_PASSWORD = "test-admin-password-0001"


def tier_env(tier: str) -> dict[str, str]:
    """NRW_* settings for one test tier's stack."""
    return {
        "NRW_KAFKA_BOOTSTRAP": f"127.0.0.1:{TEST_PORTS['kafka']}",
        "NRW_KAFKA_CONTROLLER_PORT": str(TEST_PORTS["kafka_controller"]),
        "NRW_KAFKA_HEAP": "512m",
        "NRW_FERRETDB_LISTEN": f"127.0.0.1:{TEST_PORTS['mongo']}",
        "NRW_MONGO_URI": f"mongodb://127.0.0.1:{TEST_PORTS['mongo']}/",
        "NRW_INTAKE_PORT": str(TEST_PORTS["intake"]),
        "NRW_CASE_PORT": str(TEST_PORTS["case"]),
        "NRW_ADVOCACY_PORT": str(TEST_PORTS["advocacy"]),
        "NRW_REPORTING_PORT": str(TEST_PORTS["reporting"]),
        "NRW_VAR": str(ROOT / "var" / "test" / (f"{tier}-{PORT_OFFSET}" if PORT_OFFSET else tier)),
        "NRW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NRW_RELAY_INTERVAL_SECONDS": "0.5",
        "NRW_RELAY_GRACE_SECONDS": "3",
        "NRW_WEB_WORKERS": "2",
    }


def offline_app(factory, var_dir: Path):
    """A service's app for unit tests: settings that reach no database and no broker."""
    from shared.config import Settings

    app = factory(Settings(mongo_uri="mongodb://127.0.0.1:1/", var_dir=var_dir, token_secret="unit-" + "s" * 40))
    app.testing = True
    return app


def synthetic_report(**sections) -> dict:
    """A valid report body about an invented person; identifying values carry the SYNTH marker."""
    tag = uuid.uuid4().hex[:10]
    rng = random.Random(tag)
    body = {
        "person": {"full_name": f"{SYNTH} Name {tag}", "sex": rng.choice(["female", "male", "unknown"]),
                   "birth_year": rng.randint(1950, 2015), "nationality": "KP",
                   "hometown": f"{SYNTH}town {tag}", "family_contact": f"{SYNTH}-contact-{tag}"},
        "detention": {"detained_on": "2023-04-18", "province": rng.choice(["Jilin", "Liaoning", "Yunnan"]),
                      "city": f"{SYNTH}city {tag}", "facility": f"{SYNTH} facility {tag}"},
        "risk": {"deportation_imminent": False, "expected_deportation_on": None,
                 "vulnerabilities": ["prior_repatriation"], "trafficking_victim": False},
        "source": {"type": "family", "reliability": "confirmed", "received_on": "2023-04-20"},
        "consent": {"advocacy": "named", "statistics": True},
        "notes": f"{SYNTH} note {tag}: met the family at a synthetic place.",
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def near_duplicate_pair(province: str | None = None) -> tuple[dict, dict]:
    """Two reports that may be one person: the name spelled two ways (no exact match), the same
    birth year, and a province of their own unless one is given."""
    tag = uuid.uuid4().hex[:6]
    place = {"province": province or f"Province {tag}"}
    return (synthetic_report(person={"full_name": f"{SYNTH} Kim Ok-sun {tag}", "birth_year": 1991}, detention=place),
            synthetic_report(person={"full_name": f"{SYNTH} Kim Ok Son {tag}", "birth_year": 1991}, detention=place))


def start_group_at_end(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """Commit a new consumer group's offsets at the topics' current ends, so that its consumer
    reads only what is published from now on (not every earlier test's events)."""
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                             bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(partitions).items()})
    finally:
        consumer.close(autocommit=False)


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10) -> list:
    """Every record of a topic, from the start of each partition to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def wait_for(predicate, timeout_s: float = 15, interval_s: float = 0.1, what: str = "condition"):
    """Poll until predicate() returns something truthy; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
