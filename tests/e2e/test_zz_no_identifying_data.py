"""Run last: no identifying value that any end-to-end test typed (every one carries the SYNTH
marker) appears in any Kafka record, any log line, or any database but intake's encrypted store.
Free text typed about a person where a form allows it (issue 10 point 5) is added here first: a
status change's reason with a name and a phone (sealed by the case service, read back by the
caseworker, hidden from the analyst) and a UNHCR office typed as free text (refused)."""

import datetime as dt
import json
from pathlib import Path

from pymongo import MongoClient

from shared.config import SERVICES, all_topics
from tests.e2e.test_reporting import _analyst
from tests.support import SYNTH, read_topic, synthetic_report, wait_for


def _type_free_text_about_the_person(api, case_id: str) -> None:
    """A reason naming a relative with a phone number, and the same typed as a UNHCR office."""
    typed = f"{SYNTH} held with her brother {SYNTH}-Kim, contact +86 {SYNTH} 13800138000"
    moved = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker,
                          timeout=30, json={"to": "detained", "effective_on": "2024-01-09", "reason": typed})
    assert moved.status_code == 200, moved.text
    assert moved.json()["history"][-1]["reason"] == typed
    seen = api.http.get(f"{api.urls['case']}/api/v1/cases/{case_id}", headers=_analyst(api), timeout=10)
    assert seen.status_code == 200 and SYNTH not in seen.text
    office = api.http.post(f"{api.urls['advocacy']}/api/v1/unhcr-access-requests", headers=api.advocate, timeout=30,
                           json={"case_ids": [case_id], "office": typed, "channel": "email",
                                 "sent_on": dt.date.today().isoformat()})
    assert office.status_code == 422 and list(office.json()["error"]["fields"]) == ["office"]
    assert SYNTH not in office.text


def test_identifying_data_never_leaves_intake_in_clear(api, stack, bootstrap):
    created = api.post_report(synthetic_report())  # at least one report, whatever ran before
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    _type_free_text_about_the_person(api, created["case_id"])
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
    # ...nor any database password (the processes log in with them; issue 10 point 2)
    passwords = [p.read_bytes().strip() for p in Path(stack.env["NRW_VAR"], "secrets").glob("mongo-*.password")]
    assert len(passwords) == 5
    for path in logs:
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            assert marker not in line, f"identifying data in {path.name} line {number}"
            assert not [p for p in passwords if p in line], f"a database password in {path.name} line {number}"

    client = MongoClient(Path(stack.env["NRW_VAR"], "secrets", "mongo-operator.uri").read_text().strip())
    try:
        for service in (*SERVICES, "identity"):
            db = client[f"nrw_{service}"]
            for name in db.list_collection_names():
                for doc in db[name].find():
                    assert SYNTH not in json.dumps(doc, default=str), f"identifying data in nrw_{service}.{name}"
    finally:
        client.close()
