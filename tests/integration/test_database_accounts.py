"""The database asks for credentials (issue 10 point 2), against FerretDB as the stack starts it
(infra/ferretdb: FerretDB's new authentication, SQLite backend): a client that has not logged in
and a wrong password are refused; each service logs in with an account of its own; and what
FerretDB v1.24 cannot enforce, rights per database, is shown as it is (README, "Security"), so
that this test fails the day FerretDB starts to enforce them and the README must change."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from infra.stack import ROOT, Stack, port_open, wait_until
from shared.config import SERVICES, Settings
from shared.mongo import connect
from shared.mongo_accounts import ACCOUNTS, OPERATOR, operator_uri_path, password_path, read_password

UNAUTHORIZED, AUTHENTICATION_FAILED, NOT_IMPLEMENTED = 13, 18, 238


def _anonymous(uri: str) -> MongoClient:
    return MongoClient(uri, serverSelectionTimeoutMS=3000)


def _logged_in_as(client: MongoClient) -> list[str]:
    status = client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
    return [f"{u['user']}@{u['db']}" for u in status]


def test_a_client_without_credentials_is_refused(settings, mongo):
    mongo[settings.database_name("intake")]["probe"].insert_one({"_id": "there"})
    client = _anonymous(settings.mongo_uri)
    try:
        attempts = {
            "find": lambda: client[settings.database_name("intake")]["probe"].find_one(),
            "insert": lambda: client[settings.database_name("identity")]["users"].insert_one({"_id": "intruder"}),
            "listDatabases": client.list_database_names,
            "usersInfo": lambda: client.admin.command("usersInfo"),
            "createUser": lambda: client.admin.command("createUser", "intruder", pwd="x" * 20, roles=[]),
        }
        for name, attempt in attempts.items():
            with pytest.raises(OperationFailure) as refused:
                attempt()
            assert refused.value.code == UNAUTHORIZED, name
        # Only the handshake, ping and the like answer (readiness probes): they read no data.
        assert client.admin.command("ping")["ok"] == 1
        assert _logged_in_as(client) == []
    finally:
        client.close()
    assert mongo[settings.database_name("identity")]["users"].find_one({"_id": "intruder"}) is None
    assert "intruder" not in [u["user"] for u in mongo.admin.command("usersInfo")["users"]]


@pytest.mark.parametrize("username", ["case", "operator", "nobody"])
def test_a_wrong_password_is_refused_and_never_shown(settings, username):
    wrong = f"wrong-{uuid.uuid4().hex}"
    client = MongoClient(settings.mongo_uri, username=username, password=wrong, authSource="admin",
                         serverSelectionTimeoutMS=3000)
    try:
        with pytest.raises(OperationFailure) as refused:
            client[settings.database_name("case")]["cases"].find_one()
    finally:
        client.close()
    assert refused.value.code == AUTHENTICATION_FAILED
    said = f"{refused.value} {refused.value.details} {client!r}"
    assert wrong not in said
    for account in ACCOUNTS:
        assert read_password(password_path(settings, account)) not in said


def test_each_service_logs_in_with_its_own_account(settings, intake_app, case_app, advocacy_app, reporting_app):
    apps = {"intake": intake_app, "case": case_app, "advocacy": advocacy_app, "reporting": reporting_app}
    for service in SERVICES:
        web = apps[service].extensions["nrw"]
        assert _logged_in_as(web.client) == [f"{service}@admin"]
        own = web.db["account_probe"]
        own.insert_one({"_id": f"written by {service}"})
        assert own.find_one({"_id": f"written by {service}"}) is not None
        assert web.identity_db["users"].find_one({"_id": "admin"}) is not None  # token checks
        client = connect(settings, service)  # what its consumer, relay and commands use
        try:
            assert _logged_in_as(client) == [f"{service}@admin"]
        finally:
            client.close()


def test_ferretdb_does_not_enforce_rights_per_database(settings, mongo):
    """FerretDB v1.24 has no authorisation (its issue #174): the README says so, and compose's
    MongoDB enforces the roles (tests/compose). When this test fails, FerretDB enforces something
    new: give the accounts roles here too and change the README."""
    intake_db = settings.database_name("intake")
    # A collection of its own: a stray document in intake's `reports` would be listed by its pages.
    mongo[intake_db]["rights_probe"].insert_one({"_id": "only-for-intake", "sealed": "x"})
    case = connect(settings, "case")
    try:
        # The case service's account reads and writes intake's database...
        assert case[intake_db]["rights_probe"].find_one({"_id": "only-for-intake"}) is not None
        case[intake_db]["probe"].insert_one({"_id": "case was here"})
        # ...because an account can be given no role at all: a role is refused as not implemented.
        with pytest.raises(OperationFailure) as refused:
            mongo.admin.command("createUser", f"roles-{uuid.uuid4().hex[:6]}", pwd=uuid.uuid4().hex,
                                roles=[{"role": "read", "db": intake_db}])
        assert refused.value.code == NOT_IMPLEMENTED
        # Nor are accounts protected from each other: any account may set another's password.
        victim, first, second = f"victim-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex, uuid.uuid4().hex
        mongo.admin.command("createUser", victim, pwd=first, roles=[])
        case.admin.command("updateUser", victim, pwd=second)
        with MongoClient(settings.mongo_uri, username=victim, password=second, authSource="admin",
                         serverSelectionTimeoutMS=3000) as taken_over:
            assert _logged_in_as(taken_over) == [f"{victim}@admin"]
        mongo.admin.command("dropUser", victim)
    finally:
        case.close()
    assert mongo.admin.command("connectionStatus")["authInfo"]["authenticatedUserRoles"] == []


def test_credentials_are_private_files_and_in_no_database(settings, mongo):
    passwords = []
    for account in ACCOUNTS:
        path = password_path(settings, account)
        assert path.stat().st_mode & 0o777 == 0o600, path
        passwords.append(read_password(path))
    uri = operator_uri_path(settings)
    assert uri.stat().st_mode & 0o777 == 0o600
    assert _logged_in_as(MongoClient(uri.read_text().strip(), serverSelectionTimeoutMS=3000)) == ["operator@admin"]
    assert len(set(passwords)) == len(ACCOUNTS) and all(len(p) >= 40 for p in passwords)
    for name in mongo.list_database_names():
        db = mongo[name]
        for collection in db.list_collection_names():
            for doc in db[collection].find():
                text = json.dumps(doc, default=str)
                assert not [p for p in passwords if p in text], f"a password in {name}.{collection}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_start_adds_accounts_to_data_from_before_them_and_follows_new_passwords(tmp_path):
    """A var/ from before the database had accounts: FerretDB's data without any user. The stack's
    start makes the operator and the services' accounts, the data stays readable (by them only),
    and a password file made anew is the password from the next start on."""
    port = _free_port()
    var = tmp_path / "var"
    env = {"NRW_VAR": str(var), "NRW_FERRETDB_LISTEN": f"127.0.0.1:{port}", "NRW_MONGO_URI": f"mongodb://127.0.0.1:{port}/"}
    (var / "ferretdb").mkdir(parents=True)
    subprocess.run([str(ROOT / "infra/ferretdb/build.sh")], check=True, stdout=subprocess.DEVNULL)
    old = subprocess.Popen([str(ROOT / ".cache/bin/ferretdb-server"), "--handler=sqlite",
                            f"--sqlite-url=file:{var}/ferretdb/", f"--state-dir={var}/ferretdb", "--telemetry=disable",
                            "--debug-addr=-", f"--listen-addr=127.0.0.1:{port}", "--log-level=error"],
                           env={**os.environ, "DO_NOT_TRACK": "1"})
    try:
        wait_until(lambda: port_open(env["NRW_MONGO_URI"]), 30, "FerretDB without accounts")
        with _anonymous(env["NRW_MONGO_URI"]) as before:
            before["nrw_case"]["cases"].insert_one({"_id": "from before"})
    finally:
        old.send_signal(signal.SIGTERM)
        old.wait(timeout=30)

    stack = Stack(env)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings.from_env()
        replaced = None  # the case account's password of the first start
        for attempt in (1, 2):
            stack.start("ferretdb")
            try:
                wait_until(lambda: port_open(env["NRW_MONGO_URI"]), 60, "FerretDB")
                with connect(settings, "case") as case:
                    assert case["nrw_case"]["cases"].find_one({"_id": "from before"}) is not None
                with _anonymous(env["NRW_MONGO_URI"]) as anonymous, pytest.raises(OperationFailure):
                    anonymous["nrw_case"]["cases"].find_one()
                if attempt == 2:
                    with MongoClient(env["NRW_MONGO_URI"], username="case", password=replaced, authSource="admin",
                                     serverSelectionTimeoutMS=3000) as stale, pytest.raises(OperationFailure):
                        stale["nrw_case"]["cases"].find_one()
            finally:
                stack.stop()
            if attempt == 1:
                replaced = read_password(password_path(settings, "case"))
                password_path(settings, "case").unlink()  # the next start makes a new one (shared.keys init)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    log = Path(var, "logs", "ferretdb.log").read_text()
    assert "authentication required" in log
    for account in ACCOUNTS:
        assert read_password(password_path(settings, account)) not in log
    assert read_password(operator_uri_path(settings)).startswith(f"mongodb://{OPERATOR}:")
