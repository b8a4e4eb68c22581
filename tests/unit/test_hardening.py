"""The web answers like a hardened site, before any database is reached: security headers on every
kind of answer, the body limit, JSON nested too deep, 405 with Allow, and an OpenAPI document
that names what each route can answer."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from services.advocacy.app import create_app as advocacy_app
from services.case.app import create_app as case_app
from services.intake.app import create_app as intake_app
from services.reporting.app import create_app as reporting_app
from shared import hardening
from shared.config import Settings
from tests.support import ROOT, offline_app

FACTORIES = {"intake": intake_app, "case": case_app, "advocacy": advocacy_app, "reporting": reporting_app}
DEEP = 100_000


@pytest.fixture(params=sorted(FACTORIES))
def client(request, tmp_path):
    return request.param, offline_app(FACTORIES[request.param], tmp_path).test_client()


def assert_hardened(res, *, static: bool = False) -> None:
    """The headers every answer carries (point 1 of the contract)."""
    csp = res.headers.get("Content-Security-Policy", "")
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'",
                      "object-src 'none'"):
        assert directive in csp, (res.request.path, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert res.headers.get("X-Content-Type-Options") == "nosniff"
    assert res.headers.get("Referrer-Policy") == "no-referrer"
    if not static:
        assert res.headers.get("Cache-Control") == "no-store", res.request.path
    assert "Strict-Transport-Security" not in res.headers  # plain http unless NRW_PUBLIC_URL is https


def test_every_kind_of_answer_carries_the_security_headers(client):
    name, c = client
    answers = [c.get("/healthz"), c.get("/openapi.json"), c.get("/login"), c.get("/api/v1/nothing-here"),
               c.get("/nothing-here"), c.delete("/healthz"), c.post("/api/v1/users", json={}),
               c.post("/api/v1/nothing-here", data=b"x" * 1_000_001, content_type="application/json")]
    # /login is the issuer's (intake's) page; the other services send the browser there.
    assert [r.status_code for r in answers] == [200, 200, 200 if name == "intake" else 302, 404, 404, 405, 401, 413]
    for res in answers:
        assert_hardened(res)


@pytest.fixture
def intake(tmp_path):
    """The issuer's app: its login route reads JSON without any database (the others hand it on)."""
    return offline_app(intake_app, tmp_path).test_client()


def test_the_stylesheets_are_files_that_may_be_cached(client):
    _, c = client
    for name in ("nrw.css", "reporting.css"):
        res = c.get(f"/assets/{name}")
        assert res.status_code == 200 and res.mimetype == "text/css"
        assert_hardened(res, static=True)
        assert "no-store" not in res.headers.get("Cache-Control", "")
        res.close()
    page = c.get("/nothing-here").get_data(as_text=True)  # the error page, in the layout of every page
    assert '<link rel="stylesheet" href="/assets/nrw.css">' in page


def test_https_adds_strict_transport_security(tmp_path):
    app = intake_app(Settings(mongo_uri="mongodb://127.0.0.1:1/", var_dir=tmp_path, public_url="https://nrw.example.org",
                              **_offline_secret()))
    for res in (app.test_client().get("/healthz"), app.test_client().get("/nothing")):
        assert res.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def _offline_secret() -> dict:
    """The token secret offline_app gives, if this version of the settings has one."""
    return {"token_secret": "unit-" + "s" * 40} if "token_secret" in Settings.__dataclass_fields__ else {}


def test_a_405_keeps_werkzeugs_allow_header_in_json_and_on_pages(client):
    _, c = client
    api = c.delete("/healthz")
    assert api.status_code == 405 and api.get_json()["error"]["code"] == "method_not_allowed"
    assert set(api.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}
    page = c.put("/login")
    assert page.status_code == 405 and page.mimetype == "text/html"
    assert "POST" in page.headers["Allow"]


class Untouchable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return 0

    def seek(self, offset, whence=io.SEEK_SET):
        return 0

    def readinto(self, buffer):
        raise AssertionError("the body was read")


def test_a_body_over_the_limit_is_413_json_before_it_is_read(client):
    _, c = client
    for path in ("/api/v1/auth/token", "/api/v1/users", "/api/v1/nothing-here"):
        res = c.post(path, input_stream=Untouchable(), content_type="application/json",
                     environ_overrides={"CONTENT_LENGTH": "1000001"})
        assert res.status_code == 413, path
        assert res.get_json() == {"error": {"code": "payload_too_large",
                                            "message": "The request body is larger than the limit of 1000000 bytes."}}


def test_a_chunked_body_is_stopped_at_the_limit(intake):
    c = intake
    # A chunked body has no Content-Length; the server (gunicorn) marks the stream as terminated.
    res = c.post("/api/v1/auth/token", input_stream=io.BytesIO(b"[" * 2_000_000), content_type="application/json",
                 environ_overrides={"wsgi.input_terminated": True})
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "payload_too_large"


def test_a_page_form_over_the_limit_gets_the_error_page(intake):
    c = intake
    c.get("/login")  # as a browser does: the form first
    res = c.post("/login", data={"username": "x", "password": "y" * 1_100_000})
    assert res.status_code == 413 and res.mimetype == "text/html"
    assert "1000000 bytes" in res.get_data(as_text=True)
    assert_hardened(res)


def test_the_limit_is_a_setting(tmp_path):
    app = intake_app(Settings(mongo_uri="mongodb://127.0.0.1:1/", var_dir=tmp_path, max_body_bytes=100,
                              **_offline_secret()))
    res = app.test_client().post("/api/v1/auth/token", data=b"{" + b" " * 200 + b"}", content_type="application/json")
    assert res.status_code == 413


def test_json_nested_too_deep_is_400_never_a_500_nor_a_traceback(intake, caplog):
    c = intake
    caplog.set_level(logging.DEBUG)
    for body in ("[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * DEEP, "[" * 33 + "]" * 33):
        res = c.post("/api/v1/auth/token", data=body, content_type="application/json")
        assert res.status_code == 400, res.get_data(as_text=True)[:200]
        assert res.get_json()["error"]["code"] == "too_deeply_nested"
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


def test_json_within_the_depth_reaches_the_schema(intake):
    c = intake
    res = c.post("/api/v1/auth/token", data="[" * 32 + "]" * 32, content_type="application/json")
    assert res.status_code == 422  # a list, not an object: the schema's answer, not the depth's
    brackets_in_strings = json.dumps({"username": "[" * 50 + '\\"{' * 50, "password": "}" * 50})
    assert hardening.json_depth(brackets_in_strings) == 1


@pytest.mark.parametrize("text, depth", [
    ("1", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ('["]]]", "[[[", "\\"[", "\\\\"]', 1),
    ('[[[["\\\\\\"]]]"]]]]', 4), ("", 0),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert hardening.json_depth(text) == depth


def test_malformed_json_is_still_400_malformed(intake):
    c = intake
    for body in (b"{", b"\xff\xfe", b"", b"null", b"   "):
        res = c.post("/api/v1/auth/token", data=body, content_type="application/json")
        assert res.status_code == 400 and res.get_json()["error"]["code"] == "malformed_json", body


def test_letters_and_annexes_are_sandboxed_documents_but_pdfs_keep_the_page_policy():
    from flask import Flask, Response
    with Flask(__name__).test_request_context():
        html = hardening.as_document(Response("<p>x</p>", mimetype="text/html"))
        pdf = hardening.as_document(Response(b"%PDF", mimetype="application/pdf"))
    policy = html.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy and "script" not in policy
    assert "Content-Security-Policy" not in pdf.headers  # the page policy is put on in after_request
    assert hardening.secure(html, Settings()).headers["Content-Security-Policy"] == policy


def test_no_page_template_has_inline_script_or_style():
    """The pages' policy allows neither; letters and annexes are sandboxed documents of their own."""
    templates = [p for p in ROOT.glob("s*/**/templates/**/*.html")]
    assert len(templates) > 20
    for path in templates:
        text = path.read_text()
        for pattern in (r"<script", r"<style", r"\sstyle=", r"\son[a-z]+=", r"javascript:"):
            assert not re.search(pattern, text, re.I), f"{path.relative_to(ROOT)}: {pattern}"


def test_openapi_names_what_each_route_can_answer(client):
    name, c = client
    spec = c.get("/openapi.json").get_json()
    ops = {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}
    assert ("/healthz", "get") in ops and ("/readyz", "get") in ops and ("/openapi.json", "get") in ops
    for (path, method), op in ops.items():
        codes = set(op["responses"])
        if "requestBody" in op:
            assert {"400", "413", "422"} <= codes, (path, method)
        if "security" in op:
            assert {"401", "403"} <= codes, (path, method)
        if path not in ("/healthz", "/openapi.json"):
            assert "503" in codes, (path, method)
        for code, response in op["responses"].items():
            if int(code) >= 400 and path != "/readyz":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    token = ops[("/api/v1/auth/token", "post")]["responses"]
    assert {"200", "400", "413", "422", "503"} <= set(token)
    assert "503" not in ops[("/healthz", "get")]["responses"]


def test_a_value_of_another_json_type_than_its_field_is_refused():
    """marshmallow would take 0 for false and "12" for 12; the OpenAPI document says boolean and
    integer, and so does the API (found by Schemathesis)."""
    from marshmallow import Schema, fields

    class Inner(Schema):
        flag = fields.Boolean()

    class Outer(Schema):
        count = fields.Integer()
        ratio = fields.Float()
        name = fields.String(allow_none=True)
        inner = fields.Nested(Inner)
        items = fields.List(fields.Integer())
        many = fields.Nested(Inner, many=True)

    good = {"count": 3, "ratio": 2, "name": None, "inner": {"flag": False}, "items": [1, 2], "many": [{"flag": True}]}
    assert hardening.json_type_errors(Outer(), good) == {}
    bad = {"count": "3", "ratio": True, "name": 5, "inner": {"flag": 0}, "items": [1, "2", 3.5], "many": [{"flag": "yes"}]}
    assert hardening.json_type_errors(Outer(), bad) == {
        "count": ["Not a valid integer."], "ratio": ["Not a valid number."], "name": ["Not a valid string."],
        "inner.flag": ["Not a valid boolean."], "items.1": ["Not a valid integer."], "items.2": ["Not a valid integer."],
        "many.0.flag": ["Not a valid boolean."]}


def test_the_api_refuses_a_number_for_a_boolean(intake):
    from services.intake.schemas import ReportIn
    from shared.http import load_body

    app = intake.application
    body = {"consent": {"advocacy": "none", "statistics": 0}}
    with app.test_request_context("/", method="POST", json=body):
        with pytest.raises(Exception) as exc:
            load_body(ReportIn())
    assert exc.value.status == 422 and exc.value.fields["consent.statistics"] == ["Not a valid boolean."]


def test_figures_as_of_the_first_year_have_the_months_the_calendar_has():
    """A snapshot as of 0001-01-01 was a 500 (year 0 is out of range; found by Schemathesis)."""
    import datetime as dt

    from services.reporting import figures

    assert [label for label, _, _ in figures.month_ends(dt.date(1, 3, 31))] == ["0001-01", "0001-02", "0001-03"]
    assert figures.series([], as_of=dt.date(1, 1, 1))["months"] == ["0001-01"]


def test_an_event_nested_too_deep_is_an_event_error_not_a_recursion_error():
    """Records are JSON from the network too: a poison record is dead-lettered like any bad one."""
    from shared.events import EventError, decode

    with pytest.raises(EventError, match="nests too deeply"):
        decode(b"[" * DEEP + b"]" * DEEP)
