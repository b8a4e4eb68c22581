"""Run last: no identifying value that any end-to-end test typed (every one carries the SYNTH
marker) appears in any Kafka record, any log line, or any database but intake's encrypted store."""

import json
from pathlib import Path

from pymongo import MongoClient

from shared.config import SERVICES, all_topics
from tests.support import SYNTH, read_topic, synthetic_report, wait_for


def test_identifying_data_never_leaves_intake_in_clear(api, stack, bootstrap):
    created = api.post_report(synthetic_report())  # at least one report, whatever ran before
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    marker = SYNTH.encode()

    scanned = 0
    for topic in all_topics():
        for record in read_topic(bootstrap, topic):
            scanned += 1
            assert marker not in (record.value or b""), f"identifying data in {topic} at offset {record.offset}"
            assert marker not in (record.key or b"")
            assert all(marker not in value for _, value in record.headers or [])
    assert scanned > 0

    logs = sorted(stack.logs.glob("*.log"))
    assert {p.stem for p in logs} >= set(stack.commands)
    for path in logs:
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            assert marker not in line, f"identifying data in {path.name} line {number}"

    client = MongoClient(Path(stack.env["NRW_VAR"], "secrets", "mongo-operator.uri").read_text().strip())
    try:
        for service in (*SERVICES, "identity"):
            db = client[f"nrw_{service}"]
            for name in db.list_collection_names():
                for doc in db[name].find():
                    assert SYNTH not in json.dumps(doc, default=str), f"identifying data in nrw_{service}.{name}"
    finally:
        client.close()
