"""Intake's audit trail is a hash chain (shared/audit.py) against the real FerretDB: each kind of
tampering done directly in the database (an entry edited, deleted, inserted, two swapped) is
reported at its position; an untouched trail verifies; concurrent appends leave no gap; the API,
the command and the audit page say the same."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from bson import ObjectId

import shared.audit
from services.intake import audit as audit_command
from services.intake.store import IntakeStore
from shared import keys
from shared.audit import GENESIS, AuditTrail, entry_id
from shared.config import Settings
from tests.integration.conftest import PASSWORD
from tests.support import page_login, synthetic_report


@pytest.fixture
def scratch(settings) -> Settings:
    """Settings of an intake database of this test's own (its trail can be tampered with freely)."""
    return Settings(**{**settings.__dict__, "db_prefix": f"au{uuid.uuid4().hex[:8]}_"})


@pytest.fixture
def db(mongo, scratch):
    database = mongo[scratch.database_name("intake")]
    yield database
    mongo.drop_database(database.name)


@pytest.fixture
def trail(db, scratch) -> AuditTrail:
    return AuditTrail(db, keys.audit_key(scratch))


def entry(n: int, **extra) -> dict:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=n)
    return {"at": at, "user_id": f"u{n % 3}", "username": f"user{n % 3}", "report_id": f"r{n}", "case_id": f"c{n}",
            "reason": f"looked {n}", "remote_addr": "127.0.0.1", "what": "report", "action": "read",
            "out_of_assignment": False, **extra}


def filled(trail: AuditTrail, n: int = 8) -> list[dict]:
    return [trail.append(entry(i)) for i in range(1, n + 1)]


def test_an_untouched_trail_verifies_with_its_count(trail):
    docs = filled(trail)
    assert [d["seq"] for d in docs] == list(range(1, 9))
    assert docs[0]["prev"] == GENESIS and all(b["prev"] == a["mac"] for a, b in zip(docs, docs[1:]))
    assert trail.verify().as_dict() == {"ok": True, "entries": 8, "unchained": 0}
    assert trail.verify(progress=True).ok
    assert AuditTrail(trail.entries.database, b"\x01" * 32).verify().first_bad["problem"] == "changed"


def test_an_edited_entry_is_changed_at_its_position(trail):
    docs = filled(trail)
    trail.entries.update_one({"_id": docs[2]["_id"]}, {"$set": {"username": "someone-else", "reason": "routine"}})
    assert trail.verify().as_dict() == {"ok": False, "entries": 8, "unchained": 0, "first_bad": {
        "position": 3, "entry_id": docs[2]["_id"], "problem": "changed"}}


def test_the_last_entry_edited_is_changed_too(trail):
    docs = filled(trail, 4)
    trail.entries.update_one({"_id": docs[3]["_id"]}, {"$set": {"user_id": "u9"}})
    assert trail.verify().first_bad == {"position": 4, "entry_id": docs[3]["_id"], "problem": "changed"}


def test_a_deleted_entry_is_missing_at_its_position(trail):
    docs = filled(trail)
    trail.entries.delete_one({"_id": docs[3]["_id"]})
    assert trail.verify().as_dict() == {"ok": False, "entries": 7, "unchained": 0, "first_bad": {
        "position": 4, "entry_id": None, "problem": "missing"}}


def test_entries_cut_off_the_end_are_missing(trail):
    docs = filled(trail, 5)
    trail.entries.delete_many({"_id": {"$in": [docs[3]["_id"], docs[4]["_id"]]}})
    assert trail.verify().first_bad == {"position": 4, "entry_id": None, "problem": "missing"}
    # The next entry does not fill the gap: its position follows the highest ever written.
    shared.audit._tails.clear()
    assert trail.append(entry(9))["seq"] == 6
    assert trail.verify().first_bad == {"position": 4, "entry_id": None, "problem": "missing"}


def test_a_new_document_without_a_mac_is_inserted(trail):
    filled(trail)
    forged = trail.entries.insert_one({**entry(99), "at": dt.datetime.now(dt.timezone.utc)}).inserted_id
    assert trail.verify().as_dict() == {"ok": False, "entries": 8, "unchained": 0, "first_bad": {
        "position": 9, "entry_id": str(forged), "problem": "inserted"}}


def test_a_forged_entry_claiming_a_position_is_inserted(trail):
    docs = filled(trail)
    forged = {"_id": ObjectId(), **entry(3, username="nobody"), "seq": 3, "prev": docs[1]["mac"], "mac": "ab" * 32}
    trail.entries.insert_one(forged)
    assert trail.verify().first_bad == {"position": 3, "entry_id": str(forged["_id"]), "problem": "inserted"}


def test_an_entry_pushed_in_with_the_rest_renumbered_is_inserted(trail):
    docs = filled(trail, 5)
    for doc in reversed(docs[2:]):  # make room at position 3
        trail.entries.delete_one({"_id": doc["_id"]})
        trail.entries.insert_one({**doc, "_id": entry_id(doc["seq"] + 1), "seq": doc["seq"] + 1})
    trail.entries.insert_one({"_id": entry_id(3), **entry(50), "seq": 3, "prev": docs[1]["mac"], "mac": "cd" * 32})
    assert trail.verify().first_bad == {"position": 3, "entry_id": entry_id(3), "problem": "inserted"}


def test_a_forged_huge_hint_costs_the_walk_nothing(trail):
    docs = filled(trail, 4)
    trail.head.update_one({"_id": "head"}, {"$set": {"seq": 10 ** 9}})
    assert trail.verify().first_bad == {"position": 5, "entry_id": None, "problem": "missing"}
    trail.entries.update_one({"_id": docs[2]["_id"]}, {"$set": {"reason": "routine"}})
    # Where a changed entry could have come from is tried at the positions the trail holds, not
    # at every number up to the hint.
    assert trail.verify().first_bad == {"position": 3, "entry_id": docs[2]["_id"], "problem": "changed"}


def test_two_entries_swapped_are_reordered(trail):
    docs = filled(trail)
    a, b = docs[1], docs[5]
    trail.entries.delete_many({"_id": {"$in": [a["_id"], b["_id"]]}})
    trail.entries.insert_one({**a, "_id": b["_id"], "seq": b["seq"]})
    trail.entries.insert_one({**b, "_id": a["_id"], "seq": a["seq"]})
    assert trail.verify().as_dict() == {"ok": False, "entries": 8, "unchained": 0, "first_bad": {
        "position": 2, "entry_id": a["_id"], "problem": "reordered"}}


def test_older_entries_without_a_chain_are_counted_not_verified(trail):
    old = [trail.entries.insert_one({**entry(-i)}).inserted_id for i in range(1, 4)]
    assert trail.verify().as_dict() == {"ok": True, "entries": 0, "unchained": 3}
    filled(trail, 3)
    assert trail.verify().as_dict() == {"ok": True, "entries": 3, "unchained": 3}
    assert trail.entries.count_documents({"_id": {"$in": old}}) == 3


def test_concurrent_appends_leave_a_chain_without_gaps(trail, db, scratch):
    other = AuditTrail(db, keys.audit_key(scratch))  # a second writer, as another worker would be
    errors = []

    def write(writer: AuditTrail, k: int) -> None:
        try:
            for i in range(8):
                if i % 3 == 0:
                    shared.audit._tails.clear()  # as a process that has not seen the others' entries
                writer.append(entry(100 * k + i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(trail if k % 2 else other, k)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(d["seq"] for d in db["audit"].find({}, {"seq": 1})) == list(range(1, 49))
    assert trail.verify().as_dict() == {"ok": True, "entries": 48, "unchained": 0}


def test_two_app_instances_append_to_one_chain(settings, mongo):
    from services.intake.app import create_app

    scratch = Settings(**{**settings.__dict__, "db_prefix": f"au{uuid.uuid4().hex[:8]}_"})
    apps = [create_app(scratch), create_app(scratch)]
    errors = []

    def write(app, k: int) -> None:
        try:
            with app.app_context():
                store = IntakeStore(app.extensions["nrw"].db)
                for i in range(6):
                    store.record_access(entry(10 * k + i))
                store.record_accesses([entry(10 * k + 7), entry(10 * k + 8)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=write, args=(apps[k % 2], k)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        db = mongo[scratch.database_name("intake")]
        assert sorted(d["seq"] for d in db["audit"].find({}, {"seq": 1})) == list(range(1, 33))
        assert audit_command.verify(db, scratch) == {"ok": True, "entries": 32, "unchained": 0}
    finally:
        mongo.drop_database(scratch.database_name("intake"))
        mongo.drop_database(scratch.database_name("identity"))


def test_the_api_verifies_the_trail_and_finds_an_edit(client, tokens, settings, mongo):
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    assert client.get(f"/api/v1/reports/{created['report_id']}?reason=chain check",
                      headers=tokens["caseworker"]).status_code == 200
    answer = client.get("/api/v1/audit/verify", headers=tokens["admin"])
    assert answer.status_code == 200
    audit = mongo[settings.database_name("intake")]["audit"]
    assert answer.get_json() == {"ok": True, "entries": audit.count_documents({}), "unchained": 0}
    assert client.get("/api/v1/audit/verify", headers=tokens["caseworker"]).status_code == 403

    read = audit.find_one({"report_id": created["report_id"], "reason": "chain check"})
    assert read["seq"] >= 1 and read["_id"] == entry_id(read["seq"])
    listed = client.get(f"/api/v1/audit?case_id={created['case_id']}", headers=tokens["admin"]).get_json()
    assert listed["items"][0]["reason"] == "chain check" and "mac" not in listed["items"][0]
    try:
        audit.update_one({"_id": read["_id"]}, {"$set": {"username": "someone-else", "reason": "routine"}})
        broken = client.get("/api/v1/audit/verify", headers=tokens["admin"]).get_json()
        assert broken["ok"] is False
        assert broken["first_bad"] == {"position": read["seq"], "entry_id": read["_id"], "problem": "changed"}
    finally:
        audit.replace_one({"_id": read["_id"]}, read)
    assert client.get("/api/v1/audit/verify", headers=tokens["admin"]).get_json()["ok"] is True


def test_account_changes_are_chained(client, tokens, settings, mongo):
    name = f"chained-{uuid.uuid4().hex[:6]}"
    made = client.post("/api/v1/users", json={"username": name, "password": PASSWORD + "x", "roles": ["analyst"]},
                       headers=tokens["admin"])
    assert made.status_code in (200, 201), made.get_json()
    doc = mongo[settings.database_name("intake")]["audit"].find_one({"what": "account", "target": name})
    assert doc["action"] == "user_created" and doc["_id"] == entry_id(doc["seq"]) and len(doc["mac"]) == 64


def test_the_audit_page_verifies_on_demand(intake_app, users):
    client = intake_app.test_client()
    assert page_login(client, users["admin"], PASSWORD).status_code == 302
    html = client.get("/audit").get_data(as_text=True)
    assert 'id="verify-chain"' in html and "chain-ok" not in html
    html = client.get("/audit?verify=1").get_data(as_text=True)
    assert 'class="chain-ok"' in html and "The chain verifies" in html


def test_the_command_verifies_and_fails_on_a_broken_chain(trail, scratch, monkeypatch, capsys):
    docs = filled(trail, 4)
    monkeypatch.setattr(audit_command.Settings, "from_env", classmethod(lambda cls: scratch))
    assert audit_command.main(["verify", "--no-progress"]) == 0
    assert '"ok": true' in capsys.readouterr().out
    trail.entries.delete_one({"_id": docs[1]["_id"]})
    assert audit_command.main(["verify"]) == 1
    out = capsys.readouterr()
    assert '"problem": "missing"' in out.out and "position 2" in out.err
    with pytest.raises(SystemExit) as exit_:
        audit_command.main(["--help"])
    assert exit_.value.code == 0
