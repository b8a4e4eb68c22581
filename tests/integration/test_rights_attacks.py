"""Attacks on the broker's and the database's rights (issue 10 points 1 and 2), found by an
adversarial review. All are mended and these tests guard the fixes. A weakness found later is shown
by a test marked @weakness (xfail(strict=True)): it passes as an expected failure, and fails (XPASS)
the day it is mended, so that the marker is taken off; --runxfail shows the attack succeed.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from infra.stack import ROOT, Stack, port_open, wait_until
from shared.bus import ensure_topics
from shared.config import TOPICS, Settings, dead_letter_topic
from shared.deadletters import (DLQ_HEADER_PREFIX, REPLAYED_AT, REPLAYED_OF, check_sources, read_dead_letters, select,
                               send_back)
from shared.events import encode
from shared.kafka_auth import client_options
from shared.mongo import connect
from shared.mongo_accounts import ACCOUNTS, OPERATOR, password_path
from tests.support import read_topic


def weakness(reason: str):
    """Expected to fail while the weakness is there; an unexpected pass fails the run."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"WEAKNESS: {reason}")


def _probe_event(producer: str) -> dict:
    """A well-formed envelope of an event type no consumer acts on (so a replayed one harms no
    other test), claiming to come from `producer`."""
    event_id = str(uuid.uuid4())
    return {"event_id": event_id, "event_type": "probe.forged", "schema_version": 1,
            "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(), "producer": producer,
            "case_id": f"forged-{event_id[:8]}", "correlation_id": event_id, "causation_id": None,
            "actor": None, "payload": {}}


def _send(options: dict, topic: str, value: bytes, headers: list | None = None) -> None:
    producer = KafkaProducer(**options, acks="all", max_block_ms=5000, bootstrap_timeout_ms=5000)
    try:
        producer.send(topic, key=b"forged", value=value, headers=headers or []).get(timeout=10)
    finally:
        producer.close(timeout=1)


@pytest.mark.parametrize("target", [TOPICS["intake"], TOPICS["case"]])
def test_a_service_cannot_publish_through_a_dead_letter_replay(settings, target):
    dlq = dead_letter_topic(TOPICS["case"])  # advocacy reads case.events, so it may write its dead letters
    forged = encode(_probe_event(producer=target.split(".")[0]))
    headers = [(DLQ_HEADER_PREFIX + "source.topic", target.encode()),
               (DLQ_HEADER_PREFIX + "source.partition", b"0"), (DLQ_HEADER_PREFIX + "source.offset", b"0"),
               (DLQ_HEADER_PREFIX + "consumer.group", b"case"), (DLQ_HEADER_PREFIX + "reason", b"handler failed"),
               (DLQ_HEADER_PREFIX + "failed_at", dt.datetime.now(dt.timezone.utc).isoformat().encode())]
    _send(client_options(settings, "advocacy"), dlq, forged, headers)
    letters = read_dead_letters(settings, [TOPICS["case"]])
    planted = [d for d in letters if d.value == forged]
    assert len(planted) == 1
    try:
        replay, _ = select(letters, coordinates=[planted[0].coordinate])  # what `replay <name>` / `--all` sends
        replay, refused = check_sources(settings, replay)
        assert replay == [] and len(refused) == 1  # not the record case.events holds at that place
        send_back(settings, replay, letters)
        assert [r for r in read_topic(settings.kafka_bootstrap, target) if r.value == forged] == []
    finally:
        if not planted[0].replays:  # keep the planted letter out of any later `replay --all`
            now = dt.datetime.now(dt.timezone.utc).isoformat().encode()
            _send(client_options(settings, "deadletters"), dlq, b"{}",
                  [(REPLAYED_OF, planted[0].coordinate.encode()), (REPLAYED_AT, now)])


def _topic_acl(principal: str, topic: str, operation: ACLOperation, permission: ACLPermissionType) -> ACL:
    return ACL(principal=principal, host="*", operation=operation, permission_type=permission,
               resource_pattern=ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL))


def _filter(acl: ACL) -> ACLFilter:
    pattern = acl.resource_pattern
    return ACLFilter(principal=acl.principal, host=acl.host, operation=acl.operation,
                     permission_type=acl.permission_type,
                     resource_pattern=ResourcePatternFilter(pattern.resource_type, pattern.resource_name,
                                                            pattern.pattern_type))


def _present(admin: KafkaAdminClient, acl: ACL) -> bool:
    found, _ = admin.describe_acls(_filter(acl))
    return bool(found)


def test_an_operators_deny_survives_the_next_start(settings):
    deny = _topic_acl("User:advocacy", dead_letter_topic(TOPICS["case"]), ACLOperation.WRITE, ACLPermissionType.DENY)
    admin = KafkaAdminClient(**client_options(settings, "admin"), request_timeout_ms=10000, bootstrap_timeout_ms=5000)
    try:
        assert admin.create_acls([deny])["failed"] == []
        try:
            ensure_topics(settings)
            assert _present(admin, deny)
        finally:
            admin.delete_acls([_filter(deny)])
    finally:
        admin.close()


def test_the_next_start_withdraws_a_grant_to_every_principal(settings):
    wildcard = _topic_acl("User:*", TOPICS["intake"], ACLOperation.READ, ACLPermissionType.ALLOW)
    admin = KafkaAdminClient(**client_options(settings, "admin"), request_timeout_ms=10000, bootstrap_timeout_ms=5000)
    try:
        assert admin.create_acls([wildcard])["failed"] == []
        try:
            ensure_topics(settings)
            assert not _present(admin, wildcard)
        finally:
            admin.delete_acls([_filter(wildcard)])
    finally:
        admin.close()


# --- the database -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_ferretdb(tmp_path):
    """A FerretDB of this test's own, started as the stack starts it; (stack, settings)."""
    port = _free_port()
    env = {"NRW_VAR": str(tmp_path / "var"), "NRW_FERRETDB_LISTEN": f"127.0.0.1:{port}",
           "NRW_MONGO_URI": f"mongodb://127.0.0.1:{port}/"}
    subprocess.run([str(ROOT / "infra/ferretdb/build.sh")], check=True, stdout=subprocess.DEVNULL)
    stack = Stack(env)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield stack, Settings.from_env()
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def _start(stack: Stack, settings: Settings) -> None:
    stack.start("ferretdb")
    wait_until(lambda: port_open(settings.mongo_uri), 60, "FerretDB")


def _as_case_then_stop(stack: Stack, settings: Settings, command: str, user: str, password: str) -> None:
    """Start the database, run one account command logged in as the case service, stop it."""
    _start(stack, settings)
    with connect(settings, "case") as case:
        case.admin.command(command, user, pwd=password, roles=[])
    stack.stop()


@pytest.mark.parametrize("database", ["admin", "nrw_case"])
def test_an_account_made_by_a_service_does_not_outlive_a_restart(own_ferretdb, database):
    stack, settings = own_ferretdb
    backdoor = uuid.uuid4().hex
    _start(stack, settings)
    with connect(settings, "case") as case:
        case[database].command("createUser", "backdoor", pwd=backdoor, roles=[])
    stack.stop()
    _start(stack, settings)
    assert "dropped 1 account(s) that have no password file" in (stack.logs / "ferretdb.log").read_text()
    with MongoClient(settings.mongo_uri, username="backdoor", password=backdoor, authSource=database,
                     serverSelectionTimeoutMS=3000) as kept:
        try:
            kept.list_database_names()
        except OperationFailure:
            return
    raise AssertionError("the account a service made still reads every database after a restart")


def test_a_service_cannot_keep_the_database_from_starting(own_ferretdb):
    stack, settings = own_ferretdb
    _as_case_then_stop(stack, settings, "updateUser", OPERATOR, uuid.uuid4().hex)
    stack.start("ferretdb")
    try:
        wait_until(lambda: port_open(settings.mongo_uri), 30, "FerretDB after the operator's password was changed")
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None
    with connect(settings, "intake") as intake:
        assert intake.admin.command("ping")["ok"] == 1
    with connect(settings, OPERATOR) as operator:  # its file's password again
        assert operator.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
            {"user": OPERATOR, "db": "admin"}]
    assert password_path(settings, OPERATOR).exists()


def test_an_index_a_service_puts_on_the_accounts_cannot_keep_the_database_from_starting(own_ferretdb):
    """A unique index on a field every account has the same value of refuses every account but one."""
    stack, settings = own_ferretdb
    _start(stack, settings)
    with connect(settings, "case") as case:
        users = case.admin["system.users"]
        users.delete_many({"_id": {"$ne": "admin.case"}})
        users.create_index("roles", unique=True, name="blocks_accounts")
        assert "blocks_accounts" in users.index_information()
        with pytest.raises(OperationFailure):  # the attack works: no other account can be made
            case.admin.command("createUser", "intake-again", pwd=uuid.uuid4().hex, roles=[])
    stack.stop()
    stack.start("ferretdb")
    try:
        wait_until(lambda: port_open(settings.mongo_uri), 30, "FerretDB after an index on the accounts")
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None
    for account in ACCOUNTS:
        with connect(settings, account) as client:
            assert client.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
                {"user": account, "db": "admin"}]


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def test_the_serving_database_holds_no_password_and_no_start_account(own_ferretdb):
    """The long-running FerretDB has no password in its environment or arguments, and the account
    and database each start makes for itself are gone once it serves (with those of a start that
    was killed)."""
    stack, settings = own_ferretdb
    _start(stack, settings)
    with connect(settings, OPERATOR) as operator:  # what a killed start leaves: its database
        operator["nrw_start_0badc0ffee"]["setup"].insert_one({"_id": 1})
    stack.stop()
    _start(stack, settings)
    servers = _children(stack.procs["ferretdb"].pid)
    assert len(servers) == 1
    exposed = Path(f"/proc/{servers[0]}/environ").read_bytes() + Path(f"/proc/{servers[0]}/cmdline").read_bytes()
    assert b"FERRETDB_SETUP" not in exposed and b"--setup" not in exposed
    secrets = [p.read_bytes().strip() for p in settings.secrets_path.iterdir() if p.is_file()]
    assert secrets and not [s for s in secrets if s and s in exposed]
    with connect(settings, OPERATOR) as operator:
        assert not [n for n in operator.list_database_names() if n.startswith("nrw_start_")]
        users = operator.admin.command("usersInfo", {"forAllDBs": True})["users"]
        assert sorted((u["db"], u["user"]) for u in users) == sorted(("admin", a) for a in ACCOUNTS)


def test_a_start_that_cannot_make_its_accounts_says_why(own_ferretdb):
    stack, settings = own_ferretdb
    _start(stack, settings)
    stack.stop()
    (stack.var / "ferretdb" / "admin.sqlite").write_bytes(b"not a database")
    stack.start("ferretdb")
    wait_until(lambda: not stack.running("ferretdb"), 20, "the failed start to end")
    log = (stack.logs / "ferretdb.log").read_text()
    assert "file is not a database" in log  # FerretDB's own words, then ours
    assert "ferretdb: deleting the accounts: FerretDB stopped before it listened on its setup socket" in log
    assert "password" not in log.lower()  # the cause, not a guess about passwords
