"""Every write of issue 10 point 4 leaves an entry in intake's audit trail, against the real
FerretDB and Kafka: account changes, failed logins and lockouts, consent, merges and "not the same
person", status changes (case service), snapshots (reporting), letters (advocacy), key rotation,
imports and dead-letter replays (commands). Other services' writes travel as audit.recorded on
their own topic and intake's consumer appends them once; a replayed event adds nothing; an audit
event on another service's topic is dead-lettered; the chain verifies afterwards."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import os
import subprocess
import sys
import threading
import uuid

import pytest
from kafka import KafkaProducer

from services.advocacy.store import AdvocacyStore
from services.intake import consumer as intake_consumer
from shared import identity
from shared.audit import audit_trail
from shared.bus import Publisher
from shared.config import dead_letter_topic
from shared.events import encode, new_event
from shared.kafka_auth import client_options
from tests.integration.conftest import PASSWORD
from tests.integration import test_case_advocacy
from tests.support import ROOT, SYNTH, page_login, read_topic, start_group_at_end, synthetic_report, wait_for

case_consumer = test_case_advocacy.case_consumer  # the case service's consumer, as a fixture here too


@pytest.fixture
def intake_group(settings, mongo):
    """A consumer group of intake's consumer's own, at the topics' ends, and start(): intake's
    consumer (its topics, handlers and audit-topic check) reading in it, in a thread."""
    db = mongo[settings.database_name("intake")]
    group_id = f"it-intake-audit-{uuid.uuid4().hex[:6]}"
    start_group_at_end(settings.kafka_bootstrap, group_id, intake_consumer.TOPICS)
    publisher = Publisher(settings, principal="admin", client_id=group_id)
    consumer = intake_consumer.IntakeConsumer(
        settings, principal="admin", group_id=group_id, topics=intake_consumer.TOPICS,
        handlers=intake_consumer.make_handlers(db, publisher, settings), publisher=publisher, retry_backoff_s=0.2)
    thread = threading.Thread(target=consumer.run, daemon=True)

    def start():
        thread.start()
        return db

    yield start
    consumer.stop.set()
    if thread.is_alive():
        thread.join(timeout=15)
    publisher.close()


@pytest.fixture
def audit_consumer(intake_group):
    """Intake's consumer, running; intake's database."""
    return intake_group()


def _audit(client, tokens, **query) -> list[dict]:
    res = client.get("/api/v1/audit", query_string=query, headers=tokens["admin"])
    assert res.status_code == 200, res.get_json()
    return res.get_json()["items"]


def _entry(client, tokens, what: str = "the audit entry", **query) -> dict:
    """The one entry the filter finds, once it is there (other services' entries come through Kafka)."""
    found = wait_for(lambda: _audit(client, tokens, **query) or None, timeout_s=30, what=what)
    assert len(found) == 1, found
    return found[0]


def _verifies(client, tokens) -> None:
    answer = client.get("/api/v1/audit/verify", headers=tokens["admin"]).get_json()
    assert answer["ok"] is True, answer


def _file(client, tokens, **sections) -> dict:
    res = client.post("/api/v1/reports", json=synthetic_report(**sections), headers=tokens["caseworker"])
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def _login(client, username: str, password: str):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def _nowhere_in_the_trail(db, text: str) -> None:
    for entry in db["audit"].find({}):
        assert text.lower() not in json.dumps(entry, default=str).lower()


# --- intake's own writes ------------------------------------------------------------------------


def test_user_created_and_roles_changed_name_the_admin(client, tokens, users):
    name = f"audited-{uuid.uuid4().hex[:6]}"
    made = client.post("/api/v1/users", headers=tokens["admin"],
                       json={"username": name, "password": PASSWORD + "-x", "roles": ["analyst"]})
    assert made.status_code == 201, made.get_json()
    changed = client.patch(f"/api/v1/users/{name}", headers=tokens["admin"], json={"roles": ["analyst", "advocate"]})
    assert changed.status_code == 200, changed.get_json()
    entries = {e["action"]: e for e in _audit(client, tokens, user=users["admin"], action="write")
               if e.get("target") == name}
    assert entries["user_created"]["username"] == users["admin"] and entries["user_created"]["reason"] == "analyst"
    assert entries["user_changed"]["reason"] == "roles=advocate,analyst"
    _verifies(client, tokens)


def test_failed_logins_and_one_lockout_per_lock_are_audited(client, tokens, intake_app):
    name = f"locked-{uuid.uuid4().hex[:6]}"
    identity.create_user(intake_app.extensions["nrw"].identity_db, name, PASSWORD, ["analyst"])
    threshold = intake_app.extensions["nrw"].settings.login_failures_before_lock
    for _ in range(threshold):
        assert _login(client, name, "wrong password").status_code == 401
    for _ in range(3):  # refused while locked: not counted, not audited (a lock is no way to flood the trail)
        assert _login(client, name, PASSWORD).status_code == 429
    failed = _audit(client, tokens, user=name, action="login_failed")
    locked = _audit(client, tokens, user=name, action="login_locked")
    assert len(failed) == threshold and {e["target"] for e in failed} == {name}
    assert {e["detail"] for e in failed} == {"password"} and all(e["remote_addr"] for e in failed)
    assert len(locked) == 1 and locked[0]["detail"].startswith("username_locked ")
    _verifies(client, tokens)


def test_a_failed_login_with_an_unknown_name_keeps_only_a_keyed_hash(client, tokens, intake_app):
    typed = f"{SYNTH}-typed-password-{uuid.uuid4().hex[:6]}".lower()
    assert _login(client, typed, "whatever").status_code == 401
    assert _login(client, typed.upper(), "whatever").status_code == 401
    db = intake_app.extensions["nrw"].db
    entries = list(db["audit"].find({"action": "login_failed", "user_id": None}).sort("seq", -1).limit(2))
    assert len(entries) == 2 and entries[0]["unknown_username"] == entries[1]["unknown_username"]
    assert len(entries[0]["unknown_username"]) == 32 and entries[0]["username"] is None
    _nowhere_in_the_trail(db, typed)


def test_consent_recorded_is_audited(client, tokens, users):
    case_id = _file(client, tokens)["case_id"]
    res = client.post(f"/api/v1/cases/{case_id}/consent", headers=tokens["caseworker"],
                      json={"advocacy": "anonymous", "statistics": True, "reason": f"{SYNTH} asked by phone",
                            "given_by": "family"})
    assert res.status_code == 200, res.get_json()
    [entry] = [e for e in _audit(client, tokens, case_id=case_id, action="write") if e["what"] == "consent"]
    assert entry["username"] == users["caseworker"] and SYNTH not in json.dumps(entry)


def test_ruling_out_a_duplicate_is_audited(client, tokens, users):
    a, b = _file(client, tokens)["case_id"], _file(client, tokens)["case_id"]
    res = client.post(f"/api/v1/cases/{a}/distinct", headers=tokens["caseworker"], json={"other_case_id": b})
    assert res.status_code == 200, res.get_json()
    entry = _entry(client, tokens, case_id=b, action="duplicate_ruled_out")
    assert entry["username"] == users["caseworker"] and entry["case_ids"] == [a, b]
    assert entry["user_id"] == identity.user_id_of(client.application.extensions["nrw"].identity_db,
                                                   users["caseworker"])


def test_a_merge_travels_with_its_event_and_is_appended_once(client, tokens, users, settings, audit_consumer):
    a, b = _file(client, tokens)["case_id"], _file(client, tokens)["case_id"]
    res = client.post(f"/api/v1/cases/{a}/merge", headers=tokens["caseworker"], json={"into_case_id": b})
    assert res.status_code == 200, res.get_json()
    entry = _entry(client, tokens, "the merge's entry", case_id=b, action="cases_merged")
    assert (entry["username"], entry["service"], entry["case_ids"]) == (users["caseworker"], "intake", [a, b])
    [event] = [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
               if json.loads(r.value)["event_type"] == "audit.recorded" and r.key == a.encode()]
    assert event["event_id"] == entry["event_id"] and event["actor"] == entry["user_id"]
    _verifies(client, tokens)


# --- other services' writes ---------------------------------------------------------------------


def test_a_status_change_is_audited_once_even_when_its_event_comes_again(client, case_client, tokens, users, settings,
                                                                         audit_consumer, case_consumer):
    case_id = _file(client, tokens)["case_id"]
    wait_for(lambda: case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["caseworker"]).status_code == 200,
             what="the case opened")
    moved = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                             json={"to": "detained", "effective_on": "2024-01-03", "reason": f"{SYNTH} held"})
    assert moved.status_code == 200, moved.get_json()
    entry = _entry(client, tokens, "the status change's entry", case_id=case_id, action="status_changed")
    assert (entry["username"], entry["service"], entry["detail"]) == (users["caseworker"], "case", "reported > detained")
    assert SYNTH not in json.dumps(entry)

    # The same event once more (a redelivery, a replay): nothing is added.
    [record] = [r for r in read_topic(settings.kafka_bootstrap, "case.events")
                if r.key == case_id.encode() and json.loads(r.value)["event_type"] == "audit.recorded"]
    producer = KafkaProducer(**client_options(settings, "admin"), acks="all")
    try:
        producer.send("case.events", key=record.key, value=record.value).get(timeout=10)
    finally:
        producer.close()
    again = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                             json={"to": "released", "effective_on": "2024-01-05"})
    assert again.status_code == 200, again.get_json()
    # Once the later change's entry is there, the repeated record (before it on the partition) was consumed.
    wait_for(lambda: len(_audit(client, tokens, case_id=case_id, action="status_changed")) == 2,
             timeout_s=30, what="the second status change's entry")
    entries = _audit(client, tokens, case_id=case_id, action="status_changed")
    assert sorted(e["detail"] for e in entries) == ["detained > released", "reported > detained"]
    assert [e["event_id"] for e in entries].count(entry["event_id"]) == 1
    _verifies(client, tokens)


def test_a_snapshot_taken_while_intake_is_down_is_audited_when_it_is_back(client, reporting_client, tokens, users,
                                                                          intake_group):
    title = f"Submission {uuid.uuid4().hex[:8]}"  # kept in reporting, never in an event or the trail
    res = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                json={"cycle": "CN-4", "as_of": "2024-01-31", "title": title})
    assert res.status_code == 201, res.get_json()  # intake's consumer is not running: the write is not held up
    snapshot_id = res.get_json()["snapshot_id"]

    def entry():
        return next((e for e in _audit(client, tokens, user=users["analyst"], action="snapshot_taken")
                     if e["object_id"] == snapshot_id), None)

    assert entry() is None
    intake_group()  # intake's consumer is back: it reads on from where its group stopped
    found = wait_for(entry, timeout_s=30, what="the snapshot's entry")
    assert (found["username"], found["service"], found["detail"]) == (users["analyst"], "reporting", "as_of=2024-01-31")
    assert title not in json.dumps(found)


def test_a_letter_is_audited_before_it_is_handed_out(client, advocacy_client, tokens, users, settings, mongo,
                                                      audit_consumer):
    store = AdvocacyStore(mongo[settings.database_name("advocacy")])
    store.ensure_indexes()
    case_id = str(uuid.uuid4())
    store.save_case({"_id": case_id, "status": "detained", "sex": "female", "birth_year": 1990, "nationality": "KP",
                     "province": "Jilin", "consent_advocacy": "anonymous", "consent_statistics": True,
                     "vulnerabilities": []})
    sent_on = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    made = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"],
                                json={"case_ids": [case_id], "office": "UNHCR Beijing", "sent_on": sent_on,
                                      "channel": "email"})
    assert made.status_code == 201, made.get_json()
    request_id = made.get_json()["request_id"]
    letter = advocacy_client.get(f"/api/v1/unhcr-access-requests/{request_id}/letter?lang=en&format=md",
                                 headers=tokens["advocate"])
    assert letter.status_code == 200
    entry = _entry(client, tokens, "the letter's entry", case_id=case_id, action="letter_generated")
    assert (entry["username"], entry["service"], entry["object_id"]) == (users["advocate"], "advocacy", request_id)
    assert entry["detail"] == "unhcr_access en md"
    assert store.requests.get(request_id)["letters_made"] == 1


def test_an_audit_event_on_another_services_topic_is_dead_lettered(client, tokens, settings, audit_consumer):
    case_id = str(uuid.uuid4())
    forged = [  # the case service's name on reporting's topic; intake's name on the case topic
        ("reporting.events", new_event("audit.recorded", producer="case", case_id=case_id, actor="someone",
                                       payload={"action": "status_changed", "case_ids": [case_id]})),
        ("case.events", new_event("audit.recorded", producer="intake", case_id=case_id, actor="someone",
                                  payload={"action": "cases_merged", "case_ids": [case_id]})),
    ]
    producer = KafkaProducer(**client_options(settings, "admin"), acks="all")
    try:
        for topic, event in forged:
            producer.send(topic, key=case_id.encode(), value=encode(event)).get(timeout=10)
    finally:
        producer.close()
    for topic, event in forged:
        [letter] = wait_for(lambda: [r for r in read_topic(settings.kafka_bootstrap, dead_letter_topic(topic))
                                     if r.key == case_id.encode()] or None, timeout_s=30, what=f"{topic}'s dead letter")
        reason = dict(letter.headers)["nrw.dlq.reason"].decode()
        assert f"naming producer '{event['producer']}' refused on topic {topic}" in reason
        assert audit_consumer["audit"].find_one({"event_id": event["event_id"]}) is None
    assert _audit(client, tokens, case_id=case_id) == []
    _verifies(client, tokens)


# --- commands on the server ---------------------------------------------------------------------


def _command(settings, module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NRW_DB_PREFIX": settings.db_prefix}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


def _command_entries(client, tokens, action: str) -> list[dict]:
    return [e for e in _audit(client, tokens, action=action) if e.get("via") == "command"]


def test_key_rotation_is_audited_with_the_server_login(client, tokens, users, settings):
    before = len(_command_entries(client, tokens, "keys_rotated"))
    done = _command(settings, "services.intake.keys", "rotate")
    assert done.returncode == 0, done.stderr
    entries = _command_entries(client, tokens, "keys_rotated")
    assert len(entries) == before + 1 and entries[0]["operator"] == getpass.getuser()
    assert entries[0]["detail"] == "reseal"
    _verifies(client, tokens)
    page_login(client, users["admin"], PASSWORD)
    row = client.get("/audit").get_data(as_text=True).split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert f"<td>{getpass.getuser()}</td>" in row  # the newest entry names the server login


def test_an_import_is_audited_as_the_account_it_files_as(client, tokens, users, settings, tmp_path):
    body = synthetic_report()
    path = tmp_path / f"{SYNTH}-family.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["person.full_name", "person.sex", "detention.province", "source.type", "source.reliability",
                         "consent.advocacy"])
        writer.writerow([body["person"]["full_name"], "female", "Jilin", "family", "confirmed", "anonymous"])
    done = _command(settings, "services.intake.importer", str(path), "--as", users["caseworker"])
    assert done.returncode == 0, done.stderr + done.stdout
    entry = _entry(client, tokens, user=users["caseworker"], action="reports_imported")
    assert entry["operator"] == getpass.getuser() and entry["detail"].startswith("rows=1 sha256=")
    assert SYNTH not in json.dumps(entry)  # neither the file's name nor its content


def test_a_dead_letter_replay_is_audited(client, tokens, settings, audit_consumer):
    case_id = str(uuid.uuid4())
    forged = new_event("audit.recorded", producer="advocacy", case_id=case_id, actor="someone",
                       payload={"action": "letter_generated", "case_ids": [case_id]})
    producer = KafkaProducer(**client_options(settings, "admin"), acks="all")
    try:
        producer.send("reporting.events", key=case_id.encode(), value=encode(forged)).get(timeout=10)
    finally:
        producer.close()
    dlq = dead_letter_topic("reporting.events")
    [letter] = wait_for(lambda: [r for r in read_topic(settings.kafka_bootstrap, dlq) if r.key == case_id.encode()]
                        or None, timeout_s=30, what="the dead letter")
    coordinate = f"{dlq}:{letter.partition}@{letter.offset}"
    done = _command(settings, "shared.deadletters", "replay", coordinate, "--topic", "reporting.events", "--quiet")
    assert done.returncode == 0, done.stderr + done.stdout
    entry = _entry(client, tokens, case_id=case_id, action="dead_letter_replayed")
    assert entry["object_id"] == coordinate and entry["operator"] == getpass.getuser()
    assert entry["detail"].startswith("audit.recorded to reporting.events")
    # Sent back to the wrong topic, the forged event is refused once more, never appended.
    wait_for(lambda: len([r for r in read_topic(settings.kafka_bootstrap, dlq) if r.key == case_id.encode()
                          and "nrw.dlq.reason" in dict(r.headers)]) == 2, timeout_s=30, what="the second refusal")
    assert audit_trail(audit_consumer, settings).entries.find_one({"event_id": forged["event_id"]}) is None
    _verifies(client, tokens)


def test_a_recommendation_added_and_changed_is_audited_without_its_text(client, reporting_client, tokens, users,
                                                                       audit_consumer):
    text = f"Audit test recommendation {uuid.uuid4().hex[:8]}"  # typed by an analyst: never in the trail
    res = reporting_client.post("/api/v1/recommendations", headers=tokens["analyst"], json={
        "mechanism": "treaty_body", "symbol": "CAT/C/CHN/CO/6", "paragraph": "12", "text": text})
    assert res.status_code == 201, res.get_json()
    rid = res.get_json()["recommendation_id"]
    assert reporting_client.patch(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"],
                                  json={"issued_on": "2024-01-31"}).status_code == 200

    def entries():
        found = [e for e in _audit(client, tokens, user=users["analyst"], action="recommendation_saved")
                 if e["object_id"] == rid]
        return found if len(found) == 2 else None

    found = wait_for(entries, timeout_s=30, what="the recommendation's two entries")
    assert sorted(e["detail"] for e in found) == ["added", "changed"]
    assert {(e["username"], e["service"]) for e in found} == {(users["analyst"], "reporting")}
    assert text not in json.dumps(found)
    _verifies(client, tokens)
