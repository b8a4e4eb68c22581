"""Three brokers and two of every consumer and relay (issue 13 point 3): reports filed steadily
through the API while one broker and one reporting consumer instance are killed (SIGKILL) and
brought back; every case is opened once, every statistic equals an independent count of what was
filed, and nothing is in the dead letters."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict

import pytest

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from shared.config import TOPICS, all_topics, dead_letter_topic
from tests.e2e.test_reporting import _analyst
from tests.support import kafka_options, read_topic, synthetic_report, topic_size, wait_for

REPORTS = 60
KILL_AT, BACK_AT = 15, 35
PROVINCES = ["Jilin", "Liaoning", "Yunnan", "Heilongjiang"]
DETAINED_ON = "2024-01-15"


def _by_province(api, measure: str) -> dict[str, int]:
    res = api.http.get(f"{api.urls['reporting']}/api/v1/statistics", headers=_analyst(api), timeout=30,
                       params={"measure": measure, "by": "province", "disclosure": "internal"})
    assert res.status_code == 200, res.text
    return {cell["province"]: cell["count"] for cell in res.json()["cells"] if cell["count"]}


class Reporter(threading.Thread):
    """A caseworker filing REPORTS reports one after the other, each answered before the next."""

    def __init__(self, api):
        super().__init__(daemon=True)
        self.api, self.filed, self.failure = api, [], None
        self.rng = random.Random(13)
        self.pace = threading.Event()

    def run(self):
        try:
            for _ in range(REPORTS):
                province = self.rng.choice(PROVINCES)
                created = self.api.post_report(synthetic_report(detention={"province": province}))
                self.filed.append((created["case_id"], province))
                self.pace.wait(0.2)  # a steady stream, not a burst
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure = exc


def test_every_topic_has_three_replicas_and_takes_a_write_on_two(stack, bootstrap):
    """Events, dead letters and Kafka's consumer offsets: three replicas, one on each broker; the
    system's topics take a write acknowledged by two (min.insync.replicas 2, producers acks=all)."""
    admin = KafkaAdminClient(**kafka_options(bootstrap), bootstrap_timeout_ms=10000)
    try:
        topics = all_topics() + ["__consumer_offsets"]
        layout = {t["name"]: {tuple(sorted(p["replica_nodes"])) for p in t["partitions"]}
                  for t in admin.describe_topics(topics)}
        assert layout == {t: {(1, 2, 3)} for t in topics}
        configs = admin.describe_configs([ConfigResource("TOPIC", t) for t in all_topics()])
        assert {t: configs["topic"][t]["min.insync.replicas"]["value"] for t in all_topics()} == \
            {t: "2" for t in all_topics()}
    finally:
        admin.close()


@pytest.mark.timeout(900)
def test_a_broker_and_a_consumer_killed_mid_stream_lose_and_double_nothing(stack, api, bootstrap):
    assert _by_province(api, "reported") == {}  # a fresh cluster: every count below is this test's
    reporter = Reporter(api)
    reporter.start()
    wait_for(lambda: len(reporter.filed) >= KILL_AT or reporter.failure, timeout_s=120, what="the first reports")
    stack.kill("kafka-1")  # the first node: the first bootstrap address, a controller, partition leader
    stack.kill("reporting-consumer-1")
    # The other instance takes the killed one's partitions (its session ends) and the two
    # brokers left (min.insync.replicas 2) take every write: what was filed is counted meanwhile.
    wait_for(lambda: len(reporter.filed) >= BACK_AT or reporter.failure, timeout_s=240,
             what="reports filed with a broker down")
    filed_while_down = len(reporter.filed)
    wait_for(lambda: sum(_by_province(api, "reported").values()) >= filed_while_down, timeout_s=120, interval_s=1,
             what="the reports filed so far counted by the one reporting instance left")
    stack.start("kafka-1", "reporting-consumer-1")
    reporter.join(timeout=300)
    assert reporter.failure is None, reporter.failure
    assert len(reporter.filed) == REPORTS

    case_ids = [case_id for case_id, _ in reporter.filed]
    for case_id in case_ids:
        wait_for(lambda: api.case(case_id), timeout_s=60, what=f"case {case_id}")
    detained = case_ids[::3]
    for case_id in detained:
        res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker,
                            timeout=30, json={"to": "detained", "effective_on": DETAINED_ON})
        assert res.status_code == 200, res.text

    # Every statistic equals the count of what was filed and moved (the test's own record of it).
    reported = dict(Counter(province for _, province in reporter.filed))
    province_of = dict(reporter.filed)
    in_detention = dict(Counter(province_of[c] for c in detained))
    wait_for(lambda: _by_province(api, "reported") == reported, timeout_s=120, interval_s=1,
             what=f"reported by province = {reported}")
    wait_for(lambda: _by_province(api, "detained") == in_detention, timeout_s=120, interval_s=1,
             what=f"detained by province = {in_detention}")

    # Every case opened once: one case.opened (one event id) per case, whatever was redelivered.
    opened = defaultdict(set)
    for record in read_topic(bootstrap, TOPICS["case"], timeout_s=30):
        event = json.loads(record.value)
        if event["event_type"] == "case.opened":
            opened[event["case_id"]].add(event["event_id"])
    assert {c: len(opened[c]) for c in case_ids} == {c: 1 for c in case_ids}
    assert set(opened) == set(case_ids)
    for topic in TOPICS.values():
        assert topic_size(bootstrap, dead_letter_topic(topic)) == 0, f"{dead_letter_topic(topic)} is not empty"
    # Both reporting instances worked: each applied batches (the killed one before and after).
    logs = stack.logs
    for name in ("reporting-consumer-1", "reporting-consumer-2"):
        assert "applied a batch" in (logs / f"{name}.log").read_text(errors="replace"), name
    assert stack.running("kafka-1") and stack.running("reporting-consumer-1")
