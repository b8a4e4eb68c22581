"""Intake's API against the real FerretDB and Kafka: good reports are stored and announced, bad
ones are refused with a clear JSON error and leave nothing behind."""

from __future__ import annotations

import json

import pytest

from shared.bus import outbox_pending
from shared.events import validate_event
from tests.support import SYNTH, read_topic, synthetic_report, topic_size


@pytest.fixture
def reports(settings, mongo):
    return mongo[settings.database_name("intake")]["reports"]


def _nothing_written(reports, settings, before_docs, before_events):
    assert reports.count_documents({}) == before_docs, "a document was stored"
    assert topic_size(settings.kafka_bootstrap, "intake.events") == before_events, "an event was sent"


def _refusals(tokens):
    good = synthetic_report()
    missing = synthetic_report()
    del missing["person"]["full_name"], missing["source"]
    wrong = synthetic_report(person={"sex": "other", "birth_year": 1800})
    unknown = synthetic_report(person={"nickname": f"{SYNTH} nick"})
    return [
        ("malformed JSON", dict(data=b'{"person": ', content_type="application/json", headers=tokens["caseworker"]),
         400, "malformed_json", None),
        ("empty body", dict(data=b"", content_type="application/json", headers=tokens["caseworker"]),
         400, "malformed_json", None),
        ("not an object", dict(json=[1, 2], headers=tokens["caseworker"]), 422, "validation_error", {"_schema"}),
        ("missing fields", dict(json=missing, headers=tokens["caseworker"]), 422, "validation_error",
         {"person.full_name", "source"}),
        ("wrong values", dict(json=wrong, headers=tokens["caseworker"]), 422, "validation_error",
         {"person.sex", "person.birth_year"}),
        ("unknown field", dict(json=unknown, headers=tokens["caseworker"]), 422, "validation_error",
         {"person.nickname"}),
        ("no token", dict(json=good), 401, "unauthorized", None),
        ("bad token", dict(json=good, headers={"Authorization": "Bearer abc.def.ghi"}), 401, "invalid_token", None),
        ("wrong role", dict(json=good, headers=tokens["analyst"]), 403, "forbidden", None),
        ("wrong role", dict(json=good, headers=tokens["advocate"]), 403, "forbidden", None),
    ]


def test_bad_input_is_refused_with_json_and_leaves_nothing_behind(client, tokens, reports, settings):
    before_docs = reports.count_documents({})
    before_events = topic_size(settings.kafka_bootstrap, "intake.events")
    for label, kwargs, status, code, fields in _refusals(tokens):
        res = client.post("/api/v1/reports", **kwargs)
        assert res.status_code == status, label
        assert res.is_json, label
        error = res.get_json()["error"]
        assert error["code"] == code, label
        assert error["message"], label
        if fields is not None:
            assert set(error["fields"]) == fields, label
        assert SYNTH not in res.get_data(as_text=True), label
    _nothing_written(reports, settings, before_docs, before_events)


def test_a_report_is_stored_encrypted_and_announced_without_identifying_data(client, tokens, reports, settings):
    body = synthetic_report()
    res = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"])
    assert res.status_code == 201, res.get_json()
    created = res.get_json()
    assert set(created) == {"report_id", "case_id", "matched_existing_case"}
    assert created["matched_existing_case"] is False

    raw = reports.find_one({"_id": created["report_id"]})
    stored = json.dumps(raw, default=str)
    for secret in (body["person"]["full_name"], body["person"]["hometown"], body["person"]["family_contact"],
                   body["notes"], body["detention"]["city"]):
        assert secret not in stored
    assert not outbox_pending(reports, raw["_id"]) and len(raw["outbox"]) == 1  # published on the fast path

    records = [r for r in read_topic(settings.kafka_bootstrap, "intake.events")
               if r.key == created["case_id"].encode()]
    assert len(records) == 1
    event = validate_event(json.loads(records[0].value), strict=True)
    assert event["event_type"] == "case.reported" and event["producer"] == "intake"
    assert event["payload"]["report_id"] == created["report_id"]
    assert event["payload"]["province"] == body["detention"]["province"]
    assert SYNTH not in records[0].value.decode()


def test_reading_a_report_decrypts_it_for_caseworkers_and_audits_the_read(client, tokens, settings, mongo):
    body = synthetic_report()
    created = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"]).get_json()
    res = client.get(f"/api/v1/reports/{created['report_id']}?reason=follow-up", headers=tokens["caseworker"])
    assert res.status_code == 200
    report = res.get_json()
    assert report["person"]["full_name"] == body["person"]["full_name"]
    assert report["person"]["hometown"] == body["person"]["hometown"]
    assert report["notes"] == body["notes"] and report["case_id"] == created["case_id"]
    audit = list(mongo[settings.database_name("intake")]["audit"].find({"report_id": created["report_id"]}))
    assert len(audit) == 1 and audit[0]["reason"] == "follow-up" and audit[0]["case_id"] == created["case_id"]

    assert client.get(f"/api/v1/reports/{created['report_id']}", headers=tokens["analyst"]).status_code == 403
    assert client.get("/api/v1/reports/no-such-report", headers=tokens["caseworker"]).status_code == 404
    assert mongo[settings.database_name("intake")]["audit"].count_documents({"report_id": created["report_id"]}) == 1


def test_a_second_report_about_the_same_person_attaches_to_the_case(client, tokens):
    first = synthetic_report()
    second = synthetic_report(person={**first["person"], "full_name": "  " + first["person"]["full_name"].upper()})
    a = client.post("/api/v1/reports", json=first, headers=tokens["caseworker"]).get_json()
    b = client.post("/api/v1/reports", json=second, headers=tokens["caseworker"]).get_json()
    assert b["case_id"] == a["case_id"] and b["matched_existing_case"] is True and b["report_id"] != a["report_id"]
    other_year = synthetic_report(person={**first["person"], "birth_year": first["person"]["birth_year"] - 1})
    c = client.post("/api/v1/reports", json=other_year, headers=tokens["caseworker"]).get_json()
    assert c["case_id"] != a["case_id"]


def test_a_report_sent_again_with_its_idempotency_key_is_filed_once(client, tokens, reports, settings):
    """A client that got no answer sends the same report with the same key: one report, one event."""
    body, key = synthetic_report(), "retry-key-0001-" + SYNTH[:4]
    before = topic_size(settings.kafka_bootstrap, "intake.events")
    first = client.post("/api/v1/reports", json=body, headers={**tokens["caseworker"], "Idempotency-Key": key})
    again = client.post("/api/v1/reports", json=body, headers={**tokens["caseworker"], "Idempotency-Key": key})
    assert first.status_code == again.status_code == 201, (first.get_json(), again.get_json())
    assert again.get_json() == first.get_json() and set(first.get_json()) == {"report_id", "case_id",
                                                                              "matched_existing_case"}
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert reports.count_documents({"case_id": first.get_json()["case_id"]}) == 1
    assert topic_size(settings.kafka_bootstrap, "intake.events") == before + 1

    other = client.post("/api/v1/reports", json=synthetic_report(),
                        headers={**tokens["caseworker"], "Idempotency-Key": key})
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert SYNTH not in other.get_data(as_text=True)
    assert topic_size(settings.kafka_bootstrap, "intake.events") == before + 1  # nothing stored, nothing sent

    # Keys are the sender's own: another caseworker's key of the same spelling files its own report.
    admin = client.post("/api/v1/reports", json=body, headers={**tokens["admin"], "Idempotency-Key": key})
    assert admin.status_code == 201 and admin.get_json()["report_id"] != first.get_json()["report_id"]

    bad = client.post("/api/v1/reports", json=synthetic_report(),
                      headers={**tokens["caseworker"], "Idempotency-Key": "no spaces allowed"})
    assert bad.status_code == 422 and set(bad.get_json()["error"]["fields"]) == {"Idempotency-Key"}


def test_the_openapi_document_describes_the_idempotency_key(client):
    post = client.get("/openapi.json").get_json()["paths"]["/api/v1/reports"]["post"]
    [header] = [p for p in post["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and header["required"] is False


def test_a_resend_after_a_first_sending_that_only_claimed_the_person_is_not_a_match(client, tokens, users, intake_app,
                                                                                     settings, mongo):
    """The first sending claimed the person's case id, then the database went away before the
    report was stored: the resend (same key) files the report as the person's first, not a match."""
    import uuid

    from services.intake import domain, handlers
    from services.intake.schemas import ReportIn
    from services.intake.store import IntakeStore
    from shared.mongo import utcnow

    keyring, key, body = intake_app.extensions["intake_keyring"], "claim-only-0001", synthetic_report()
    actor = intake_app.extensions["nrw"].identity_db["users"].find_one({"_id": users["caseworker"]})["user_id"]
    report = ReportIn().dump(ReportIn().load(body))
    report_id, _fingerprint = handlers._submission(report, actor, key, keyring)
    person_key = keyring.blind_index(domain.person_match_key(report["person"]["full_name"],
                                                             report["person"].get("birth_year")))
    claimed_case = str(uuid.uuid4())
    IntakeStore(mongo[settings.database_name("intake")]).claim_person(person_key, claimed_case, utcnow(), report_id)

    res = client.post("/api/v1/reports", json=body, headers={**tokens["caseworker"], "Idempotency-Key": key})
    assert res.status_code == 201, res.get_json()
    assert res.get_json() == {"report_id": report_id, "case_id": claimed_case, "matched_existing_case": False}
    second = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"])  # a later report: a match
    assert second.get_json()["case_id"] == claimed_case and second.get_json()["matched_existing_case"] is True
