"""Schemathesis against each service's own OpenAPI document, in-process (the WSGI apps), with the
real database and broker and a real admin token: every check it has (`--checks all`: no server
error, only documented status codes, content types, headers and bodies, invalid data refused,
valid data accepted, auth not ignored, unsupported methods refused with Allow, ...), a few
examples per operation so that the file runs in about two minutes on two cores.

The apps run on a database prefix of their own: the records Schemathesis makes (and the login
failures it provokes, which throttle an address) never reach the other tests' databases."""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from werkzeug.serving import make_server

from shared.config import Settings
from tests.support import ADMIN_PASSWORD, offline_app

# The apps under test publish from a background thread after answering (shared/bus.py
# BackgroundPublisher), and kafka-python's network code picks brokers with the global `random`
# module (random.shuffle, random.choice); when that thread runs while Hypothesis draws a case,
# Hypothesis sees the global random state move and warns as if our strategies used it.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

SERVICES = ("intake", "case", "advocacy", "reporting")
MAX_EXAMPLES = 25
# Ending the token's session would leave the rest of the run without a login.
NOT_FUZZED = {("POST", "/api/v1/auth/logout")}


class Deferred:
    """A WSGI app whose target is set later: the documents are read when the tests are collected,
    the apps are made by the fixtures."""

    def __init__(self):
        self.target = None

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


TARGETS = {service: Deferred() for service in SERVICES}


@pytest.fixture(scope="module")
def issuer():
    """Intake's app served on a port: the other services hand account requests to it over HTTP."""
    target = Deferred()
    server = make_server("127.0.0.1", 0, target, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield target, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fuzz_settings(settings, issuer) -> Settings:
    return Settings(**{**settings.__dict__, "db_prefix": f"st{uuid.uuid4().hex[:6]}_",
                       "service_urls": {**settings.service_urls, "intake": issuer[1]}})


def _app(factory, settings):
    app = factory(settings)
    app.testing = True
    return app


@pytest.fixture(scope="module")
def fuzz_apps(fuzz_settings, issuer) -> dict:
    from services.advocacy.app import create_app as advocacy
    from services.case.app import create_app as case
    from services.intake.app import create_app as intake
    from services.reporting.app import create_app as reporting
    apps = {name: _app(factory, fuzz_settings) for name, factory in
            (("intake", intake), ("case", case), ("advocacy", advocacy), ("reporting", reporting))}
    issuer[0].target = apps["intake"]
    for name, app in apps.items():
        TARGETS[name].target = app
    return apps


@pytest.fixture(scope="module")
def admin_header(fuzz_apps) -> dict:
    """The bootstrap admin of the fresh databases, logged in through the real route."""
    res = fuzz_apps["intake"].test_client().post("/api/v1/auth/token",
                                                 json={"username": "admin", "password": ADMIN_PASSWORD})
    assert res.status_code == 200, res.get_json()
    return {"Authorization": f"Bearer {res.get_json()['access_token']}"}


CONFIG = SchemathesisConfig.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True},
    # Every check. Valid data may still be refused with 422 for what JSON Schema cannot say (a
    # period that ends before it starts, a case or recipient that does not exist, a weak password,
    # a birth year after today).
    "checks": {"enabled": True, "positive_data_acceptance": {
        "expected-statuses": ["2XX", "401", "403", "404", "409", "422", "429"]}},
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
})


def _document(service: str) -> dict:
    """The service's OpenAPI document, as its /openapi.json answers (made without any database,
    when the tests are collected; the requests go to the apps of the fixtures)."""
    import importlib

    factory = importlib.import_module(f"services.{service}.app").create_app
    with tempfile.TemporaryDirectory() as var_dir:
        return offline_app(factory, Path(var_dir)).test_client().get("/openapi.json").get_json()


def _schema(service: str):
    schema = schemathesis.openapi.from_dict(_document(service), config=CONFIG)
    schema.app = TARGETS[service]
    return schema


SCHEMAS = {service: _schema(service) for service in SERVICES}


def _run(case, header: dict) -> None:
    if (case.method.upper(), case.path) in NOT_FUZZED:
        pytest.skip("would end the run's own login")
    if case.query and "" in case.query:
        # A parameter without a name never reaches the server (a URL cannot carry it), so the
        # request Schemathesis meant as "an unexpected parameter" would arrive valid: send the
        # unexpected parameter under a name.
        case.query["unexpected"] = case.query.pop("") or "x"
    case.call_and_validate(headers=header)


@SCHEMAS["intake"].parametrize()
def test_intake(case, fuzz_apps, admin_header):
    _run(case, admin_header)


@SCHEMAS["case"].parametrize()
def test_case(case, fuzz_apps, admin_header):
    _run(case, admin_header)


@SCHEMAS["advocacy"].parametrize()
def test_advocacy(case, fuzz_apps, admin_header):
    _run(case, admin_header)


@SCHEMAS["reporting"].parametrize()
def test_reporting(case, fuzz_apps, admin_header):
    _run(case, admin_header)
