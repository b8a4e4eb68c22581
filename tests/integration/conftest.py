"""Integration tier: a real Kafka broker and a real FerretDB, started once for the session from
the same scripts `make run` uses, on test ports, with fresh data."""

from __future__ import annotations

import os
import itertools
import shutil
import threading
import uuid

import pytest
from flask.testing import FlaskClient

from infra.stack import Stack, port_open, wait_until
from shared import identity, keys
from shared.bus import ensure_topics
from shared.config import Settings
from shared.mongo import connect
from tests.support import register_kafka, tier_env

PASSWORD = "integration-password-1"  # every test user's


@pytest.fixture(scope="session")
def infra():
    """Kafka and FerretDB, running for the whole session."""
    env = tier_env("integration")
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    os.environ.update(env)
    register_kafka(env["NRW_KAFKA_BOOTSTRAP"], Settings.from_env().secrets_path)
    stack = Stack(env)
    stack.start("kafka", "ferretdb")
    try:
        wait_until(lambda: port_open(env["NRW_MONGO_URI"]), 60, "FerretDB")
        wait_until(lambda: port_open(env["NRW_KAFKA_BOOTSTRAP"]), 90, "Kafka")
        ensure_topics(Settings.from_env())
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def settings(infra) -> Settings:
    """Settings of the test stack, with a database prefix of this session's own."""
    base = Settings.from_env()
    made = Settings(**{**base.__dict__, "db_prefix": f"it{uuid.uuid4().hex[:6]}_"})
    keys.init(made)
    return made


@pytest.fixture(scope="session")
def mongo(settings):
    """A pymongo client to the test FerretDB, logged in as the operator."""
    client = connect(settings, "operator")
    yield client
    client.close()


class PublishedClient(FlaskClient):
    """A test client that, after each request, waits until the app's background publisher has sent
    what the request stored (requests answer before their events are out: shared/bus.py), so a
    test reading a topic right after a request finds them; the e2e tier tests the real timing."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        assert self.application.extensions["nrw"].wait_published(30), "events still unpublished after 30 s"
        return response


def _app(factory, settings):
    app = factory(settings)
    app.testing = True
    app.test_client_class = PublishedClient
    return app


@pytest.fixture(scope="session")
def intake_app(settings):
    """The intake app, wired to the real database and broker."""
    from services.intake.app import create_app
    return _app(create_app, settings)


@pytest.fixture(scope="session")
def case_app(settings):
    """The case app, wired to the real database and broker."""
    from services.case.app import create_app
    return _app(create_app, settings)


@pytest.fixture(scope="session")
def advocacy_app(settings):
    """The advocacy app, wired to the real database and broker."""
    from services.advocacy.app import create_app
    return _app(create_app, settings)


@pytest.fixture
def advocacy_client(advocacy_app):
    """A test client of the advocacy app."""
    return advocacy_app.test_client()


@pytest.fixture(scope="session")
def reporting_app(settings):
    """The reporting app, wired to the real database and broker."""
    from services.reporting.app import create_app
    return _app(create_app, settings)


@pytest.fixture
def reporting_client(reporting_app):
    """A test client of the reporting app."""
    return reporting_app.test_client()


@pytest.fixture
def client(intake_app):
    """A test client of the intake app."""
    return intake_app.test_client()


@pytest.fixture
def case_client(case_app):
    """A test client of the case app."""
    return case_app.test_client()


@pytest.fixture(scope="session")
def users(settings, mongo, intake_app):
    """One user per role (and an admin), as {role: user doc}."""
    identity_db = intake_app.extensions["nrw"].identity_db  # a fresh database: this bootstraps `admin`
    made = {}
    for role in ("caseworker", "advocate", "analyst", "admin"):
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        identity.create_user(identity_db, name, PASSWORD, [role])
        made[role] = name
    return made


def bearer_tokens(intake_app, users: dict) -> dict:
    """A bearer token per role ({role: username}), obtained through intake's real login route."""
    client = intake_app.test_client()
    out = {}
    for role, name in users.items():
        res = client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
        assert res.status_code == 200, res.get_json()
        out[role] = {"Authorization": f"Bearer {res.get_json()['access_token']}"}
    return out


@pytest.fixture(scope="session")
def tokens(users, intake_app):
    """A bearer token per role, obtained through the real login route."""
    return bearer_tokens(intake_app, users)


@pytest.fixture(scope="session")
def intake_server(intake_app, settings):
    """Intake's app answering HTTP on its port, as the issuer the other services hand logins and
    account changes to."""
    from werkzeug.serving import make_server

    host, port = settings.url_of("intake").rsplit("/", 1)[-1].split(":")
    server = make_server(host, int(port), intake_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield settings.url_of("intake")
    server.shutdown()


_ADDRESSES = itertools.count(1)


@pytest.fixture(autouse=True)
def client_address_of_its_own(monkeypatch):
    """Each test's Flask clients come from a loopback address of their own (127.0.x.y; no traffic
    leaves the process), as different people's browsers would: login throttling counts failures
    per address, and one test's deliberate failures must not lock the next test out."""
    from flask.testing import FlaskClient

    n = next(_ADDRESSES)
    address = f"127.0.{n // 250 % 250}.{n % 250 + 2}"
    original = FlaskClient.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.environ_base["REMOTE_ADDR"] = address

    monkeypatch.setattr(FlaskClient, "__init__", init)
