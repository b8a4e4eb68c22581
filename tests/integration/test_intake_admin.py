"""Admin tools of intake against the real database: the audit trail and key rotation."""

from __future__ import annotations

import json

from services.intake.datakeys import IntakeKeyring
from services.intake.keys import generate_local_key, rotate
from shared.crypto import Keyring
from tests.support import synthetic_report


def test_admins_list_the_audit_trail_by_case_and_by_user(client, tokens, users):
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    for reason in ("first look", "second look"):
        assert client.get(f"/api/v1/reports/{created['report_id']}?reason={reason}",
                          headers=tokens["caseworker"]).status_code == 200
    by_case = client.get(f"/api/v1/audit?case_id={created['case_id']}", headers=tokens["admin"])
    assert by_case.status_code == 200
    body = by_case.get_json()
    assert body["total"] == 2 and [e["reason"] for e in body["items"]] == ["second look", "first look"]
    assert {e["username"] for e in body["items"]} == {users["caseworker"]}
    reader = body["items"][0]["user_id"]
    by_user = client.get(f"/api/v1/audit?user_id={reader}", headers=tokens["admin"]).get_json()
    assert by_user["total"] >= 2 and all(e["user_id"] == reader for e in by_user["items"])
    assert client.get("/api/v1/audit", headers=tokens["caseworker"]).status_code == 403
    assert client.get("/api/v1/audit?page=0", headers=tokens["admin"]).status_code == 422


def test_rotation_rewraps_every_report_s_key_under_the_new_master_key(client, tokens, settings, mongo, intake_app):
    bodies = [synthetic_report() for _ in range(3)]
    ids = [client.post("/api/v1/reports", json=b, headers=tokens["caseworker"]).get_json()["report_id"] for b in bodies]
    db = mongo[settings.database_name("intake")]
    reports = db["reports"]
    folder = intake_app.extensions["intake_keyring"].folder
    wrapped_under = lambda i: json.loads((folder / f"{i}.key").read_text())["kid"]  # noqa: E731
    old = wrapped_under(ids[0])
    sealed_before = {i: reports.find_one({"_id": i})["sealed"] for i in ids}

    new = generate_local_key(settings)
    assert new != old
    result = rotate(db, IntakeKeyring.from_settings(settings), progress=False)
    assert result["rewrapped"] >= 3 and result["current"] == new
    assert {wrapped_under(i) for i in ids} == {new}
    assert rotate(db, IntakeKeyring.from_settings(settings), progress=False)["rewrapped"] == 0
    assert {i: reports.find_one({"_id": i})["sealed"] for i in ids} == sealed_before  # the records are untouched

    # The running app learns the new key by itself and still shows the data.
    shown = client.get(f"/api/v1/reports/{ids[0]}", headers=tokens["caseworker"]).get_json()
    assert shown["person"]["full_name"] == bodies[0]["person"]["full_name"]
    # And the old master key is no longer needed for these reports.
    master = Keyring.from_settings(settings)
    only_new = IntakeKeyring(Keyring({new: master.keys[new]}, new, master.blind_index_key), folder)
    doc = reports.find_one({"_id": ids[1]})
    assert only_new.decrypt(doc["sealed"], bound_to=ids[1])["person"]["full_name"] == bodies[1]["person"]["full_name"]
    assert bodies[2]["person"]["full_name"] not in json.dumps(reports.find_one({"_id": ids[2]}), default=str)
