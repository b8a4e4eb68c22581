"""Dead letters on a real broker: a consumer with a bug gives up on an event and on poison; the
operator lists them (`python -m shared.deadletters`), mends the bug and replays; the event is
applied once, the poison is refused and stays outstanding, and a second replay is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

from kafka import KafkaAdminClient, KafkaProducer

from shared import kafka_auth
from shared.kafka_auth import client_options
from shared.bus import EventConsumer, Publisher, ensure_topics
from shared.config import dead_letter_topic
from shared.deadletters import REPLAY_HEADER
from shared.events import encode, new_event
from tests.support import ROOT, read_topic, wait_for


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.deadletters", *args, "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _let_the_tool_at(settings, topic: str) -> None:
    """Give the dead-letter tool (its own broker login) the rights over a test's own topic that
    `python -m shared.topics` gives it over the system's."""
    admin = KafkaAdminClient(**client_options(settings, "admin"), request_timeout_ms=10000, bootstrap_timeout_ms=5000)
    try:
        kafka_auth.grant(admin, kafka_auth.dead_letter_tool_grants([topic]))
    finally:
        admin.close()


def test_dead_letters_are_listed_replayed_once_mended_and_poison_stays_outstanding(settings):
    topic, group = f"it-dlq-{uuid.uuid4().hex[:6]}", f"it-dlq-{uuid.uuid4().hex[:6]}"
    dlq = dead_letter_topic(topic)
    ensure_topics(settings, [topic, dlq])
    _let_the_tool_at(settings, topic)
    case_id = str(uuid.uuid4())
    event = new_event("case.status_changed", producer="case", case_id=case_id,
                      payload={"from": "reported", "to": "detained", "effective_on": "2023-04-20"})
    producer = KafkaProducer(**client_options(settings, "admin"), acks="all")
    try:
        producer.send(topic, key=case_id.encode(), value=encode(event)).get(timeout=10)
        producer.send(topic, key=case_id.encode(), value=b"\x00poison").get(timeout=10)
    finally:
        producer.close()

    mended, applied = threading.Event(), []

    def on_status_changed(e: dict) -> None:
        if not mended.is_set():
            raise ValueError("a bug in the handler")
        applied.append(e["event_id"])

    publisher = Publisher(settings, principal="admin", client_id=group)
    consumer = EventConsumer(settings, principal="admin", group_id=group, topics=[topic], publisher=publisher,
                             handlers={"case.status_changed": on_status_changed})
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(read_topic(settings.kafka_bootstrap, dlq)) == 2, timeout_s=30, what="two dead letters")

        listed = _cli("list", "--topic", topic)
        assert listed.returncode == 0, listed.stderr
        assert "2 dead letters, 2 outstanding" in listed.stdout
        rows = [json.loads(line) for line in _cli("list", "--topic", topic, "--json").stdout.splitlines()]
        by_kind = {row["event_type"]: row for row in rows}
        assert set(by_kind) == {"case.status_changed", None}
        good, poison = by_kind["case.status_changed"], by_kind[None]
        assert good["event_id"] == event["event_id"] and good["group"] == group
        assert good["reason"] == "handler failed: ValueError" and "not JSON" in poison["reason"]
        assert good["source"]["topic"] == topic and not good["replayed_at"] and not poison["replayed_at"]

        mended.set()
        replayed = _cli("replay", "--all", "--group", group, "--topic", topic)
        assert replayed.returncode == 1, replayed.stderr  # the poison was refused
        assert f"replayed: {good['dead_letter']} (group {group}) -> {topic}" in replayed.stdout
        assert f"not replayed: {poison['dead_letter']}: still invalid: record value is not JSON" in replayed.stdout
        wait_for(lambda: applied == [event["event_id"]], timeout_s=30, what="the replayed event applied")

        sent_back = read_topic(settings.kafka_bootstrap, topic)[-1]
        assert sent_back.value == encode(event) and sent_back.key == case_id.encode()
        assert dict(sent_back.headers)[REPLAY_HEADER] == good["dead_letter"].encode()

        again = _cli("replay", good["dead_letter"], "--topic", topic)
        assert again.returncode == 1 and "already replayed at" in again.stdout
        assert len(read_topic(settings.kafka_bootstrap, topic)) == 3  # 2 records + 1 replay, nothing more
        rows = {row["dead_letter"]: row
                for row in map(json.loads, _cli("list", "--topic", topic, "--json").stdout.splitlines())}
        assert rows[good["dead_letter"]]["replayed_at"] and not rows[poison["dead_letter"]]["replayed_at"]
        assert "1 outstanding" in _cli("list", "--topic", topic).stdout
        assert applied == [event["event_id"]]
    finally:
        consumer.stop.set()
        thread.join(timeout=30)
        publisher.close()
