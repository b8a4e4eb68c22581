"""Issue 13, backups that restore: a stack of its own (own var/ and ports, apart from the session's
stack) with synthetic cases filed through the API is backed up while a caseworker keeps filing,
its var/ is wiped and `python -m infra.backup restore` brings it back from the two archives.
The restored stack shows the same cases, reports (decrypted with the restored keys), audit
trail (its chain verifies), statistics and snapshot; the reports filed during the backup are
consistent (each has its case and is counted once); every case was opened once; new reports
flow. A changed byte, no recovery key, a wrong one, an archive forged with the recovery key's
public half (not sealed with the keys archive's seal key), a keys archive forged with a seal key
of its own (not the one the recovery key file records), and a var/ that is not empty are refused."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from infra.backup.load import occupied
from infra.stack import Stack, service_urls
from shared.config import Settings
from shared.mongo import connect
from tests.support import (ROOT, SYNTH, TEST_PORTS, Api, near_duplicate_pair, read_topic, register_kafka,
                           synthetic_report, tier_env, wait_for)

PORT_SHIFT = 57  # apart from the e2e session's stack, which may be running in the same pytest
MEASURES = ["detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued"]
BYS = ["province", "province,sex,age_group", "province,status", "province,nationality"]
AS_OF = ["2023-04-19", "2023-05-01", dt.date.today().isoformat()]


def _env() -> dict[str, str]:
    env = tier_env("backup")
    ports = {name: port + PORT_SHIFT for name, port in TEST_PORTS.items()}
    env.update({"NRW_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
                "NRW_KAFKA_CONTROLLER_PORT": str(ports["kafka_controller"]),
                "NRW_FERRETDB_LISTEN": f"127.0.0.1:{ports['mongo']}",
                "NRW_MONGO_URI": f"mongodb://127.0.0.1:{ports['mongo']}/",
                **{f"NRW_{s.upper()}_PORT": str(ports[s]) for s in ("intake", "case", "advocacy", "reporting")}})
    return env


def _backup(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.backup", *args, "--quiet"], cwd=ROOT, timeout=300,
                          env={**os.environ, **env}, capture_output=True, text=True)


def _analyst(api) -> dict:
    if not hasattr(api, "analyst"):
        res = api.http.post(f"{api.urls['intake']}/api/v1/users", headers=api.admin, timeout=10,
                            json={"username": "analyst-backup", "password": "e2e-password-0001", "roles": ["analyst"]})
        assert res.status_code == 201, res.text
    api.analyst = api.login("analyst-backup", "e2e-password-0001")
    return api.analyst


def _get(api, service, path, headers, **params) -> dict:
    res = api.http.get(f"{api.urls[service]}{path}", params=params, headers=headers, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()


def _statistics(api, leave_out: str) -> dict:
    """Every measure, breakdown and date, the cells of the province filed during the backup left out."""
    figures = {}
    for measure in MEASURES:
        for by in BYS:
            for as_of in AS_OF:
                answer = _get(api, "reporting", "/api/v1/statistics", api.analyst, measure=measure, by=by,
                              as_of=as_of, since="2020-01-01", disclosure="internal")
                figures[(measure, by, as_of)] = sorted(
                    (sorted(c.items()) for c in answer["cells"] if c.get("province") != leave_out), key=repr)
    return figures


def _reported_in(api, province: str) -> int:
    answer = _get(api, "reporting", "/api/v1/statistics", api.analyst, measure="reported", by="province",
                  as_of=dt.date.today().isoformat(), disclosure="internal")
    return sum(c["count"] for c in answer["cells"] if c.get("province") == province)


def _audit(api) -> list[dict]:
    """The whole audit trail, every page."""
    entries, page = [], 1
    while True:
        answer = _get(api, "intake", "/api/v1/audit", api.admin, page=page)
        entries += answer["items"]
        if not answer["items"] or len(entries) >= answer["total"]:
            return entries
        page += 1


def _move(api, case_id, to, on):
    res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker, timeout=10,
                        json={"to": to, "effective_on": on})
    assert res.status_code == 200, res.text


def _file_until(api, stop: threading.Event, province: str, filed: list) -> None:
    """A caseworker filing reports while the backup runs (a session of its own: another thread)."""
    session = requests.Session()
    while not stop.is_set():
        filed.append(api.post_report(synthetic_report(detention={"province": province}), session=session))


def _restored_reports(env) -> list[dict]:
    os_env = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings.from_env()
    finally:
        os.environ.clear()
        os.environ.update(os_env)
    with connect(settings, "operator") as client:
        return list(client[settings.database_name("intake")].reports.find({}, {"case_id": 1, "detention.province": 1}))


@pytest.fixture
def own_stack():
    env = _env()
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    register_kafka(env["NRW_KAFKA_BOOTSTRAP"], Path(env["NRW_VAR"]) / "secrets")
    stacks = []

    def start() -> Stack:
        stack = Stack(env)
        stacks.append(stack)
        stack.start()
        stack.wait_ready(timeout_s=240)
        return stack

    yield env, start
    for stack in stacks:
        stack.stop()


def _rewritten(data: bytes, identity_file: Path, edit, seal_key: bytes | None = None) -> bytes:
    """An archive decrypted, each member passed through edit(name, bytes) with its checksum put right
    in the manifest (and the manifest sealed again with seal_key, if given, else the seal kept as it
    was), then encrypted again to the recovery key's public half: what anyone holding it can do."""
    import io
    import tarfile

    import pyrage

    from infra.backup.archive import MANIFEST, SEAL, read_identity, seal, sha256

    identity = read_identity(identity_file)
    plain = io.BytesIO()
    pyrage.decrypt_io(io.BytesIO(data), plain, [identity])
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue()), mode="r|") as tar:
        members = [(info.name, tar.extractfile(info).read()) for info in tar]
    manifest = json.loads(dict(members)[MANIFEST])
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, member in members:
            if name == MANIFEST:
                member = manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
            elif name == SEAL:
                member = seal(seal_key, manifest_bytes) if seal_key else member
            else:
                member = edit(name, member)
                manifest["members"][name].update(bytes=len(member), sha256=sha256(member))
            info = tarfile.TarInfo(name)
            info.size = len(member)
            tar.addfile(info, io.BytesIO(member))
    sealed = io.BytesIO()
    pyrage.encrypt_io(io.BytesIO(out.getvalue()), sealed, [identity.to_public()])
    return sealed.getvalue()


def _one_case_released(name: str, member: bytes) -> bytes:
    """The first case of a cases member with its status changed."""
    import bson

    from infra.backup.archive import split_bson

    if not name.endswith("/cases.bson"):
        return member
    documents = [bson.decode(raw) for raw in split_bson(member)]
    documents[0]["status"] = "released"
    return b"".join(bson.encode(doc) for doc in documents)


@pytest.mark.slow
@pytest.mark.timeout(600)  # two starts of a whole stack and a restore: about three minutes here
def test_a_backup_taken_while_serving_restores_the_same_system(own_stack, tmp_path):
    env, start = own_stack
    stack = start()
    api = Api(service_urls(stack.env))
    _analyst(api)

    # Synthetic cases through the API: four, a near-duplicate pair (one case), two status changes, a snapshot.
    made = [api.post_report(synthetic_report()) for _ in range(4)]
    first, second = near_duplicate_pair()
    made += [api.post_report(first), api.post_report(second)]
    cases = sorted({m["case_id"] for m in made})
    for case_id in cases:
        wait_for(lambda: api.case(case_id), timeout_s=30, what="the case opened")
    _move(api, made[0]["case_id"], "detained", "2023-04-20")
    _move(api, made[1]["case_id"], "repatriated", "2023-04-28")
    wait_for(lambda: _get(api, "reporting", "/api/v1/statistics", api.analyst, measure="repatriated",
                          as_of=AS_OF[-1], since="2020-01-01", disclosure="internal")["total"] == 1,
             timeout_s=30, what="the repatriation counted")
    snapshot = api.http.post(f"{api.urls['reporting']}/api/v1/upr/snapshots", headers=api.analyst, timeout=60,
                             json={"cycle": "CN-4", "as_of": AS_OF[-1], "title": "before the backup"})
    assert snapshot.status_code == 201, snapshot.text
    snapshot_id = snapshot.json()["snapshot_id"]
    for case_id in cases:
        wait_for(lambda: any(s["snapshot_id"] == snapshot_id for s in api.case(case_id).get("upr_snapshots", [])),
                 timeout_s=30, what="the snapshot on its cases")

    during = f"Backup-during-{uuid.uuid4().hex[:6]}"
    before = {
        "reports": {m["report_id"]: _get(api, "intake", f"/api/v1/reports/{m['report_id']}", api.caseworker)
                    for m in made},
        "cases": {c: api.case(c) for c in cases},
        "snapshot": _get(api, "reporting", f"/api/v1/upr/snapshots/{snapshot_id}", api.analyst),
        "statistics": _statistics(api, leave_out=during),
        "audit": _audit(api),
    }
    assert before["reports"][made[0]["report_id"]]["person"]["full_name"].startswith("Synthmark")
    verified = _get(api, "intake", "/api/v1/audit/verify", api.admin)
    assert verified["ok"] is True and verified["entries"] > 0

    # The recovery key: its private half never under var/.
    refused = _backup(env, "recovery-key", "--out", str(Path(env["NRW_VAR"]) / "recovery.key"))
    assert refused.returncode == 2 and "must not be kept under" in refused.stderr
    made_key = _backup(env, "recovery-key", "--out", str(tmp_path / "recovery.key"))
    assert made_key.returncode == 0, made_key.stderr
    assert "AGE-SECRET-KEY-" in (tmp_path / "recovery.key").read_text()
    assert not list(Path(env["NRW_VAR"]).rglob("*recovery.key*"))

    # The backup while a caseworker keeps filing reports.
    stop, filed = threading.Event(), []
    filer = threading.Thread(target=_file_until, args=(api, stop, during, filed))
    filer.start()
    try:
        wait_for(lambda: filed, timeout_s=30, what="a report filed before the backup starts")
        created = _backup(env, "create", "--out", f"{tmp_path / 'data'}/")
        keys = _backup(env, "keys", "--out", str(tmp_path / "keys.age"))
    finally:
        stop.set()
        filer.join(timeout=60)
    assert created.returncode == 0, created.stderr
    assert keys.returncode == 0, keys.stderr
    assert "Never store it beside a data archive" in keys.stdout and "key custodians" in keys.stdout
    assert filed, "no report was filed while the backup ran"
    archive = next((tmp_path / "data").glob("nrw-data-*.age"))
    listing = archive.read_bytes()
    assert b"Synthmark" not in listing and b"Synthmark" not in (tmp_path / "keys.age").read_bytes()
    checked = _backup(env, "verify", str(archive), "--identity", str(tmp_path / "recovery.key"))
    assert checked.returncode == 0 and "every checksum matches" in checked.stdout, checked.stderr
    assert "does not say who wrote" in checked.stdout
    sealed = _backup(env, "verify", str(archive), "--keys", str(tmp_path / "keys.age"),
                     "--identity", str(tmp_path / "recovery.key"))
    assert sealed.returncode == 0 and "sealed by the keys archive" in sealed.stdout, sealed.stderr

    stack.stop()
    identity = ["--identity", str(tmp_path / "recovery.key")]
    not_empty = _backup(env, "restore", str(archive), "--keys", str(tmp_path / "keys.age"), *identity)
    assert not_empty.returncode == 2 and "is not empty" in not_empty.stderr and "--force" in not_empty.stderr

    shutil.rmtree(env["NRW_VAR"])  # the server's disk is gone
    tampered = tmp_path / "tampered.age"
    changed = bytearray(listing)
    changed[len(changed) // 2] ^= 0x01
    tampered.write_bytes(bytes(changed))
    for args, message in [
        ([str(tampered), "--keys", str(tmp_path / "keys.age"), *identity], "changed or damaged"),
        ([str(archive), "--keys", str(tmp_path / "keys.age")], "needs the organisation's recovery key"),
        ([str(archive), "--keys", str(tmp_path / "keys.age"), "--identity", str(tmp_path / "missing.key")],
         "no recovery key at"),
    ]:
        answer = _backup(env, "restore", *args)
        assert answer.returncode == 2 and message in answer.stderr, (args, answer.stderr)
        assert not occupied(Path(env["NRW_VAR"])), "a refused restore changed var/"
    # Someone who could write to the backups folder and knows the recovery key's public half (it is on
    # the server) changes a document and lists it right in the manifest: every checksum matches, the
    # seal does not.
    forged = tmp_path / "forged.age"
    forged.write_bytes(_rewritten(listing, tmp_path / "recovery.key", _one_case_released))
    looks_fine = _backup(env, "verify", str(forged), *identity)
    assert looks_fine.returncode == 0, looks_fine.stderr
    refused_forgery = _backup(env, "restore", str(forged), "--keys", str(tmp_path / "keys.age"), *identity)
    assert refused_forgery.returncode == 2 and "seal does not match" in refused_forgery.stderr, refused_forgery.stderr
    assert not occupied(Path(env["NRW_VAR"])), "a forged archive changed var/"
    # ... and with a keys archive of their own too, whose seal key seals their data archive: the
    # recovery key file (off the server) records the real seal key, and names the forgery.
    own_key = os.urandom(32)
    forged_keys = tmp_path / "forged-keys.age"
    forged_keys.write_bytes(_rewritten((tmp_path / "keys.age").read_bytes(), tmp_path / "recovery.key",
                                       lambda name, member: own_key.hex().encode()
                                       if name == "secrets/backup-seal.key" else member))
    forged.write_bytes(_rewritten(listing, tmp_path / "recovery.key", _one_case_released, seal_key=own_key))
    both_forged = _backup(env, "restore", str(forged), "--keys", str(forged_keys), *identity)
    assert both_forged.returncode == 2 and "not the one your recovery key file records" in both_forged.stderr, \
        both_forged.stderr
    assert not occupied(Path(env["NRW_VAR"])), "forged archives changed var/"
    other = _backup(env, "recovery-key", "--out", str(tmp_path / "other.key"), "--public", str(tmp_path / "other.pub"))
    assert other.returncode == 0, other.stderr
    wrong = _backup(env, "restore", str(archive), "--keys", str(tmp_path / "keys.age"),
                    "--identity", str(tmp_path / "other.key"))
    assert wrong.returncode == 2 and "cannot open the archive" in wrong.stderr, wrong.stderr
    assert not occupied(Path(env["NRW_VAR"]))

    restored = _backup(env, "restore", str(archive), "--keys", str(tmp_path / "keys.age"), *identity)
    assert restored.returncode == 0, restored.stderr + restored.stdout
    for answer in (created, keys, checked, restored):
        assert SYNTH not in answer.stdout + answer.stderr  # nothing identifying in what the commands print

    stack = start()
    api.admin = api.login("admin", "test-admin-password-0001")
    api.caseworker = api.login(api.caseworker_name, "e2e-password-0001")
    _analyst(api)

    # What was filed during the backup is consistent: each restored report has its case and is counted once.
    during_reports = [r for r in _restored_reports(env) if r["detention"]["province"] == during]
    during_cases = {r["case_id"] for r in during_reports}
    for case_id in during_cases:
        wait_for(lambda: api.case(case_id), timeout_s=60, what="the case of a report filed during the backup")
    wait_for(lambda: _reported_in(api, during) >= len(during_cases), timeout_s=60,
             what="the reports filed during the backup counted")
    def listed() -> set[str]:
        found, page = set(), 1
        while True:
            answer = _get(api, "case", "/api/v1/cases", api.caseworker, province=during, page=page)
            found |= {c["case_id"] for c in answer["items"]}
            if not answer["items"] or len(found) >= answer["total"]:
                return found
            page += 1

    wait_for(lambda: listed() == during_cases, timeout_s=30, what="the case list showing the restored cases")
    assert listed() == during_cases, "a case without its report, or a report without its case"
    assert _reported_in(api, during) == len(during_cases), "a report filed during the backup counted twice"

    after = {
        "reports": {r: _get(api, "intake", f"/api/v1/reports/{r}", api.caseworker) for r in before["reports"]},
        "cases": {c: api.case(c) for c in cases},
        "snapshot": _get(api, "reporting", f"/api/v1/upr/snapshots/{snapshot_id}", api.analyst),
        "statistics": _statistics(api, leave_out=during),
    }
    assert after["reports"] == before["reports"]
    assert after["cases"] == before["cases"]
    assert after["snapshot"] == before["snapshot"]
    assert after["statistics"] == before["statistics"]
    verified_after = _get(api, "intake", "/api/v1/audit/verify", api.admin)
    assert verified_after["ok"] is True, verified_after
    assert verified_after["entries"] >= verified["entries"]
    trail = _audit(api)
    assert [e for e in before["audit"] if e not in trail] == []

    # Every case opened once, though the relays and consumers resumed from a copy: one case.opened
    # event per case (a relay may send a pending event again after the restore: the same event id,
    # which every consumer skips).
    opened: dict[str, set] = {}
    for record in read_topic(env["NRW_KAFKA_BOOTSTRAP"], "case.events"):
        event = json.loads(record.value)
        if event["event_type"] == "case.opened":
            opened.setdefault(event["case_id"], set()).add(event["event_id"])
    assert {case_id: ids for case_id, ids in opened.items() if len(ids) > 1} == {}
    assert set(cases) | during_cases <= set(opened)

    # The restored stack backs up again, to the same recovery key.
    again = _backup(env, "create", "--out", f"{tmp_path / 'again'}/")
    assert again.returncode == 0, again.stderr
    assert _backup(env, "verify", str(next((tmp_path / "again").glob("*.age"))), *identity).returncode == 0

    # New reports flow after the restore.
    new = api.post_report(synthetic_report(detention={"province": during}))
    wait_for(lambda: api.case(new["case_id"]), timeout_s=60, what="a new report's case after the restore")
    wait_for(lambda: _reported_in(api, during) == len(during_cases) + 1, timeout_s=60,
             what="a new report counted after the restore")
