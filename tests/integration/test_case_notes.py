"""Free text stays inside the encryption boundary (issue 10 point 5): a status change's reason,
which may name someone, is sealed by the case service with its own key, read back only by
caseworkers and admins, and found in clear in no database, no Kafka record and no analyst's answer."""

from __future__ import annotations

import json
import uuid

from tests.integration.test_event_flow import case_consumer  # noqa: F401  (the fixture)
from tests.support import SYNTH, page_login, read_topic, synthetic_report, wait_for
from tests.integration.conftest import PASSWORD


def test_a_status_reason_is_sealed_and_shown_only_to_caseworkers_and_admins(
        client, case_client, tokens, users, settings, mongo, case_consumer):  # noqa: F811
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    case_id = created["case_id"]
    wait_for(lambda: case_consumer.get(case_id), what="the case to open")
    reason = f"{SYNTH} held with her brother {SYNTH}-Kim {uuid.uuid4().hex[:6]}, contact +86 {SYNTH} 1380000"
    moved = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                             json={"to": "detained", "effective_on": "2024-01-09", "reason": reason})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["history"][-1]["reason"] == reason  # the caseworker who wrote it reads it back

    for role, expected in (("caseworker", reason), ("admin", reason), ("analyst", None), ("advocate", None)):
        history = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens[role]).get_json()["history"]
        assert history[-1]["reason"] == expected, role
        assert history[0]["reason"] == "first report"  # the service's own words, for everyone
        listed = case_client.get("/api/v1/cases?status=detained", headers=tokens[role]).get_json()["items"]
        if expected is None:
            assert SYNTH not in json.dumps(listed), role

    for name in mongo.list_database_names():
        if name.startswith(settings.db_prefix) and not name.endswith("intake"):
            for coll in mongo[name].list_collection_names():
                for doc in mongo[name][coll].find({}):
                    assert SYNTH not in json.dumps(doc, default=str), f"{name}.{coll}"
    for record in read_topic(settings.kafka_bootstrap, "case.events"):
        assert SYNTH.encode() not in record.value

    page_login(case_client, users["analyst"], PASSWORD, next_path=f"/cases/{case_id}")
    assert SYNTH not in case_client.get(f"/cases/{case_id}").get_data(as_text=True)
    page_login(case_client, users["caseworker"], PASSWORD, next_path=f"/cases/{case_id}")
    assert reason in case_client.get(f"/cases/{case_id}").get_data(as_text=True).replace("&#43;", "+")
