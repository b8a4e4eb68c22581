"""The events are real Kafka records: Apache Kafka's own console consumer, run from the same jars
as the broker with the operator's login, reads them, keyed by case id, as JSON."""

import json
import subprocess
import uuid

from tests.support import ROOT, kafka_secrets, synthetic_report, wait_for


def test_kafkas_console_consumer_reads_keyed_json_events(api, bootstrap):
    created = api.post_report(synthetic_report())
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    # As an operator would: the operator's login from var/secrets/kafka-client.properties, in a
    # group of its own ("operator-..."; it may read every topic and write none).
    properties = kafka_secrets(bootstrap) / "kafka-client.properties"
    run = subprocess.run(
        ["java", "-cp", str(ROOT / ".cache/kafka/libs/*"), "-Dlog4j2.configurationFile=" + str(ROOT / "infra/kafka/log4j2.xml"),
         "org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bootstrap,
         "--consumer.config", str(properties), "--group", f"operator-e2e-{uuid.uuid4().hex[:6]}",
         "--topic", "intake.events", "--from-beginning", "--timeout-ms", "15000",
         "--property", "print.key=true", "--property", "key.separator=\t"],
        capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if "\t" in line]
    assert lines, run.stderr[-2000:]
    records = [(key, json.loads(value)) for key, value in (line.split("\t", 1) for line in lines)
               if value.startswith("{") and '"event_type"' in value]
    assert records
    assert all(key == event["case_id"] for key, event in records)
    ours = [event for key, event in records if key == created["case_id"]]
    assert [e["event_type"] for e in ours] == ["case.reported"]
    assert ours[0]["payload"]["report_id"] == created["report_id"]
