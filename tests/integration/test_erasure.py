"""A person can be erased (issue 10 point 7), against the real FerretDB and Kafka: after an admin
erases a case, the person's name is in no document of intake's database, a copy of that database
taken before the erasure no longer decrypts with any key the server still holds, other people's
reports still do, the audit trail says who erased and why, statistics follow the consent rules,
and only an admin with a reason may erase."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import uuid

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.intake.datakeys import Erased, IntakeKeyring, is_record_sealed, migrate_all
from services.reporting import handlers as reporting_handlers
from services.reporting.figures import counted_case_ids
from services.reporting.store import ReportingStore
from shared.crypto import Keyring
from shared.events import validate_event
from tests.integration import test_case_advocacy, test_intake_duplicates
from tests.integration.test_consent import _case_consent, _command, _file, _name
from tests.integration.test_intake_pages import page_login
from tests.support import SYNTH, read_topic, synthetic_report, wait_for

case_consumer = test_case_advocacy.case_consumer  # the case service's consumer, in a thread
intake_consumer = test_intake_duplicates.intake_consumer  # intake's own (autouse): the near-match buckets

WHY = f"{SYNTH} erasure asked in writing by the person's lawyer, ticket 4411"


def _erase(client, headers, case_id: str, **body):
    return client.post(f"/api/v1/cases/{case_id}/erase", headers=headers, json={"reason": WHY, **body})


def _database(mongo, settings) -> dict[str, list[dict]]:
    """Every document of intake's database, as a backup would hold it."""
    db = mongo[settings.database_name("intake")]
    return {name: list(db[name].find()) for name in db.list_collection_names()}


def _dump(copy: dict) -> str:
    return json.dumps(copy, default=str, ensure_ascii=False)


def _intake_events(settings, case_id: str) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
            if r.key == case_id.encode()]


def _counted_in_statistics(settings, mongo, case_id: str) -> bool:
    """Whether reporting counts the case among those reported: its read model rebuilt, in a
    database of this test's own, from the case's events on intake's and the case service's topics."""
    store = ReportingStore(mongo[f"{settings.db_prefix}erasure_reporting_{uuid.uuid4().hex[:6]}"])
    for topic in ("intake.events", "case.events"):
        for record in read_topic(settings.kafka_bootstrap, topic):
            event = json.loads(record.value)
            if record.key == case_id.encode() and event["event_type"] in reporting_handlers.EVENT_TYPES:
                reporting_handlers.on_event(validate_event(event), store=store)
    return case_id in counted_case_ids(store.all_records(), measure="reported", as_of=dt.date.today(), since=None)


def _every_key(keyring: IntakeKeyring, folder) -> list[bytes]:
    """The master keys and every record key in `folder`, unwrapped."""
    unwrapped = [base64.b64decode(keyring.decrypt_lasting(json.loads(p.read_text()), bound_to=f"record-key:{p.stem}")
                                  ["key"]) for p in folder.glob("*.key")]
    return list(keyring.keys.values()) + unwrapped


def _assert_undecryptable(blob: dict, record_id: str, keyring: IntakeKeyring, keys: list[bytes]) -> None:
    with pytest.raises(Erased):
        keyring.decrypt(blob, bound_to=record_id)
    for key in keys:
        with pytest.raises(InvalidTag):
            AESGCM(key).decrypt(base64.b64decode(blob["nonce"]), base64.b64decode(blob["ct"]), record_id.encode())


def test_an_erased_person_cannot_be_read_from_the_database_nor_from_a_backup_taken_before(
        client, tokens, users, settings, mongo, intake_app, case_client, case_consumer, tmp_path):
    keyring: IntakeKeyring = intake_app.extensions["intake_keyring"]
    body = synthetic_report(consent={"advocacy": "named", "statistics": True})
    name = body["person"]["full_name"]
    first = _file(client, tokens, body)
    second = _file(client, tokens, synthetic_report(person={**body["person"], "hometown": f"{SYNTH}ville"},
                                                    consent={"advocacy": "named", "statistics": True}))
    case_id = first["case_id"]
    assert second["case_id"] == case_id
    assert _command(client, tokens["caseworker"], case_id).status_code == 200  # a sealed reason about the person
    other_body = synthetic_report()
    other = _file(client, tokens, other_body)
    buckets = mongo[settings.database_name("intake")]["near_buckets"]
    wait_for(lambda: any(e["r"] == second["report_id"] for b in buckets.find() for e in b["entries"]),
             timeout_s=30, what="the reports filed in the near-match buckets")
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("named", True, False),
                    what="the case service to hold the case")
    moved = case_client.post(f"/api/v1/cases/{case_id}/transitions", headers=tokens["caseworker"],
                             json={"to": "detained", "effective_on": "2023-04-18", "reason": f"held with {name}"})
    assert moved.status_code == 200, moved.get_json()
    case_versions = mongo[settings.database_name("case")]["cases_versions"]
    assert any("reason_sealed" in e for v in case_versions.find({"aggregate_id": case_id})
               for e in v["state"]["history"])

    # The backup: every document of the database, and every key file but the erased person's.
    backup = _database(mongo, settings)
    records = [first["report_id"], second["report_id"]] + \
        [c["_id"] for c in backup["consent_commands"] if c["case_id"] == case_id]
    assert all(keyring.has_key(r) for r in records)
    key_backup = tmp_path / "person-keys"
    shutil.copytree(keyring.folder, key_backup, ignore=lambda _d, names: [n for n in names
                                                                         if n.removesuffix(".key") in records])
    sealed_before = {d["_id"]: d["sealed"] for d in backup["reports"] if d["_id"] in records}
    assert all(is_record_sealed(b) for b in sealed_before.values())
    opened = keyring.decrypt(sealed_before[first["report_id"]], bound_to=first["report_id"])
    assert opened["person"]["full_name"] == name

    res = _erase(client, tokens["admin"], case_id)
    assert res.status_code == 200, res.get_json()
    done = res.get_json()
    assert done["already_erased"] is False and done["reports_erased"] == 2 and done["erased_by"] == users["admin"]
    assert done["consent"]["advocacy"] == "anonymous" and done["consent"]["statistics"] is True

    # The database: no name, no ciphertext, no keyed hash of the name (each could confirm a guess).
    wait_for(lambda: not any(e["r"] in records for b in buckets.find() for e in b["entries"]), timeout_s=30,
             what="intake's consumer to take the reports out of the near-match buckets")
    after = _database(mongo, settings)
    assert name not in _dump(after) and f"{SYNTH}ville" not in _dump(after)
    erased = [d for d in after["reports"] if d["_id"] in records]
    assert len(erased) == 2 and all(d["sealed"] is None and "person_key" not in d and "name_grams" not in d
                                    for d in erased)
    assert all(d["person"]["birth_year"] == body["person"]["birth_year"] for d in erased)  # facts stay
    person_keys = {d["person_key"] for d in backup["reports"] if d["_id"] in records}
    assert not [p for p in after["persons"] if p["_id"] in person_keys or p["case_id"] == case_id]
    assert not [c for c in after["consent_commands"] if c["case_id"] == case_id and c.get("reason_sealed")]
    assert WHY not in _dump(after)  # the erasure's own reason is sealed

    # The backup: nothing of the person decrypts with any key the server still holds, nor with the
    # key files copied before the erasure (the person's own left out).
    assert not any(keyring.has_key(r) for r in records)
    keys_now = _every_key(keyring, keyring.folder) + _every_key(keyring, key_backup)
    for report_id, blob in sealed_before.items():
        _assert_undecryptable(blob, report_id, keyring, keys_now)
        _assert_undecryptable(blob, report_id, IntakeKeyring(keyring, key_backup), keys_now)
    for command in (c for c in backup["consent_commands"] if c["case_id"] == case_id):
        _assert_undecryptable(command["reason_sealed"], command["_id"], keyring, keys_now)

    # Other people's reports still decrypt, from the database and from the backup.
    assert client.get(f"/api/v1/reports/{other['report_id']}", headers=tokens["caseworker"]).get_json()[
        "person"]["full_name"] == other_body["person"]["full_name"]
    [other_then] = [d for d in backup["reports"] if d["_id"] == other["report_id"]]
    assert IntakeKeyring(keyring, key_backup).decrypt(other_then["sealed"], bound_to=other["report_id"])[
        "person"]["full_name"] == other_body["person"]["full_name"]

    # Reads answer a clear code, never a 500 nor a name.
    read = client.get(f"/api/v1/reports/{first['report_id']}", headers=tokens["admin"])
    assert read.status_code == 410 and read.get_json()["error"]["code"] == "erased"
    assert _name(client, settings, case_id).status_code == 410

    # The audit trail names the admin and the reason (sealed in the database, opened for admins).
    audit = client.get(f"/api/v1/audit?case_id={case_id}&action=write", headers=tokens["admin"]).get_json()
    [entry] = [e for e in audit["items"] if e["what"] == "erasure"]
    assert entry["username"] == users["admin"] and entry["reason"] == WHY
    assert client.get("/api/v1/audit/verify", headers=tokens["admin"]).get_json()["ok"] is True
    page_login(client, users["admin"])
    assert "lawyer, ticket 4411" in client.get(f"/audit?case_id={case_id}").get_data(as_text=True)  # escaped quote
    page = client.get(f"/reports/{first['report_id']}")
    assert page.status_code == 410 and "was erased on request" in page.get_data(as_text=True)

    # Kafka: person.erased and the narrowed consent, never the reason or a name.
    events = _intake_events(settings, case_id)
    [gone] = [e for e in events if e["event_type"] == "person.erased"]
    assert gone["payload"] == {"statistics_withdrawn": False, "merged_case_ids": []}
    assert gone["actor"] == entry["user_id"]
    assert [e["payload"]["consent_advocacy"] for e in events if e["event_type"] == "consent.changed"][-1] == "anonymous"
    raw = b"".join(r.value for r in read_topic(settings.kafka_bootstrap, "intake.events") if r.key == case_id.encode())
    assert WHY.encode() not in raw and name.encode() not in raw

    # Statistics follow consent: the case still counts (statistics consent kept), named no more.
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("anonymous", True, False),
                    what="the case service to take the consent after erasure")
    assert _counted_in_statistics(settings, mongo, case_id)
    # The case service drops its own sealed free text about the person (the status reason).
    wait_for(lambda: not any("reason_sealed" in e for v in case_versions.find({"aggregate_id": case_id})
                             for e in v["state"]["history"]), what="the case service to drop the status reason")
    history = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["caseworker"]).get_json()["history"]
    assert [h["status"] for h in history] == ["reported", "detained"] and history[-1]["reason"] is None

    # Idempotent: asking again answers the first erasure and adds nothing to the trail.
    again = _erase(client, tokens["admin"], case_id, reason=f"{SYNTH} asked twice")
    assert again.status_code == 200 and again.get_json()["already_erased"] is True
    assert again.get_json()["erased_at"] == done["erased_at"]
    audit = client.get(f"/api/v1/audit?case_id={case_id}&action=write", headers=tokens["admin"]).get_json()
    assert len([e for e in audit["items"] if e["what"] == "erasure"]) == 1


def test_an_erasure_that_withdraws_statistics_takes_the_case_out_of_them(client, tokens, settings, mongo,
                                                                          case_client, case_consumer):
    created = _file(client, tokens, synthetic_report(consent={"advocacy": "anonymous", "statistics": True}))
    case_id = created["case_id"]
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("anonymous", True, False),
                    what="the case service to hold the case")
    assert _counted_in_statistics(settings, mongo, case_id)
    res = _erase(client, tokens["admin"], case_id, withdraw_statistics=True)
    assert res.status_code == 200 and res.get_json()["consent"]["statistics"] is False
    [gone] = [e for e in _intake_events(settings, case_id) if e["event_type"] == "person.erased"]
    assert gone["payload"] == {"statistics_withdrawn": True, "merged_case_ids": []}
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("anonymous", False, False),
                    what="the case service to withdraw the case from statistics")
    assert not _counted_in_statistics(settings, mongo, case_id)
    # The person's newer word, recorded by a caseworker, counts again; a name it cannot bring back.
    recorded = _command(client, tokens["admin"], case_id, advocacy="named", statistics=True)
    assert recorded.status_code == 200, recorded.get_json()
    assert (recorded.get_json()["advocacy"], recorded.get_json()["statistics"]) == ("anonymous", True)
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("anonymous", True, False),
                    what="the case to count again")
    assert _counted_in_statistics(settings, mongo, case_id)


def test_only_an_admin_with_a_reason_erases_a_case_intake_knows(client, tokens):
    created = _file(client, tokens, synthetic_report())
    case_id = created["case_id"]
    for role in ("caseworker", "advocate", "analyst"):
        assert _erase(client, tokens[role], case_id).status_code == 403
    assert client.post(f"/api/v1/cases/{case_id}/erase", json={"reason": WHY}).status_code == 401
    assert _erase(client, tokens["admin"], "no-such-case").status_code == 404
    for body in ({}, {"reason": ""}, {"reason": "   \t  "}, {"reason": "x" * 1001}, {"reason": WHY, "extra": 1},
                 {"reason": WHY, "withdraw_statistics": "perhaps"}):
        res = client.post(f"/api/v1/cases/{case_id}/erase", headers=tokens["admin"], json=body)
        assert res.status_code == 422, body
    # Nothing was erased by any of these.
    assert client.get(f"/api/v1/reports/{created['report_id']}", headers=tokens["caseworker"]).status_code == 200


def test_a_case_merged_into_another_is_erased_through_the_case_it_was_merged_into(client, tokens, settings, mongo,
                                                                                  intake_app):
    keyring = intake_app.extensions["intake_keyring"]
    a, b = _file(client, tokens, synthetic_report()), _file(client, tokens, synthetic_report())
    assert client.post(f"/api/v1/cases/{a['case_id']}/merge", headers=tokens["admin"],
                       json={"into_case_id": b["case_id"]}).status_code == 200
    refused = _erase(client, tokens["admin"], a["case_id"])
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "merged"
    live = _file(client, tokens, synthetic_report())
    assert _erase(client, tokens["admin"], b["case_id"]).get_json()["reports_erased"] == 2
    [gone] = [e for e in _intake_events(settings, b["case_id"]) if e["event_type"] == "person.erased"]
    assert gone["payload"]["merged_case_ids"] == [a["case_id"]]  # the case service scrubs that case too
    reports = mongo[settings.database_name("intake")]["reports"]
    for report_id in (a["report_id"], b["report_id"]):
        assert reports.find_one({"_id": report_id})["sealed"] is None and not keyring.has_key(report_id)
    # Nobody can know a live case to be the same person as an erased one.
    merged = client.post(f"/api/v1/cases/{live['case_id']}/merge", headers=tokens["admin"],
                         json={"into_case_id": b["case_id"]})
    assert merged.status_code == 409 and merged.get_json()["error"]["code"] == "erased"
    assert reports.find_one({"_id": live["report_id"]})["case_id"] == live["case_id"]


def test_reports_sealed_before_per_record_keys_are_moved_to_keys_of_their_own(client, tokens, settings, mongo,
                                                                               intake_app):
    """An older report (sealed by the master key itself) stays readable, gets a key of its own on
    start, and is then erasable like any other."""
    keyring: IntakeKeyring = intake_app.extensions["intake_keyring"]
    body = synthetic_report()
    created = _file(client, tokens, body)
    reports = mongo[settings.database_name("intake")]["reports"]
    report_id = created["report_id"]
    opened = keyring.decrypt(reports.find_one({"_id": report_id})["sealed"], bound_to=report_id)
    keyring.destroy(report_id)
    older = Keyring.encrypt(keyring, opened, bound_to=report_id)  # as reports were sealed before
    reports.update_one({"_id": report_id}, {"$set": {"sealed": older}})
    assert "kid" in older and not keyring.has_key(report_id)
    shown = client.get(f"/api/v1/reports/{report_id}", headers=tokens["caseworker"])
    assert shown.status_code == 200 and shown.get_json()["person"]["full_name"] == body["person"]["full_name"]

    migrate_all(mongo[settings.database_name("intake")], keyring)  # as every intake process does on start
    migrated = reports.find_one({"_id": report_id})["sealed"]
    assert is_record_sealed(migrated) and keyring.has_key(report_id)
    assert migrate_all(mongo[settings.database_name("intake")], keyring) == 0
    shown = client.get(f"/api/v1/reports/{report_id}", headers=tokens["caseworker"])
    assert shown.get_json()["person"]["full_name"] == body["person"]["full_name"]

    assert _erase(client, tokens["admin"], created["case_id"]).status_code == 200
    _assert_undecryptable(migrated, report_id, keyring, _every_key(keyring, keyring.folder))
