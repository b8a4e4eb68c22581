"""Every answer of every service, against the real database and broker, is hardened: each route of
each OpenAPI document and the pages carry the security headers, no route answers 500 or a code
its operation does not name, bodies over the limit are 413 and JSON nested 100,000 deep is 400,
both as JSON and without a traceback in the log; letters and annexes are sandboxed documents."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import threading
import uuid

import pytest
from werkzeug.serving import make_server

from shared.mongo import utcnow
from tests.support import ROOT, chromium, chromium_missing, read_topic, synthetic_report, wait_for

SHOTS = ROOT / "artifacts" / "browser"

SERVICES = ("intake", "case", "advocacy", "reporting")
PAGE_DIRECTIVES = ("default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'",
                   "object-src 'none'")
PASSWORD = "hardening-password-0001"
# Operations that would end or change the walking user's own login: answered, but not sent here.
SELF_ENDING = {("post", "/api/v1/auth/logout"), ("post", "/api/v1/auth/password")}


@pytest.fixture(scope="module")
def apps(intake_server, intake_app, case_app, advocacy_app, reporting_app):
    """The four apps; intake's also served where the others hand account requests to it."""
    return {"intake": intake_app, "case": case_app, "advocacy": advocacy_app, "reporting": reporting_app}


@pytest.fixture(scope="module")
def walker(intake_app, tokens) -> tuple[str, dict]:
    """An admin of this module's own (the walk may end sessions; the shared tokens stay valid)."""
    client = intake_app.test_client()
    name = f"harden-{uuid.uuid4().hex[:6]}"
    made = client.post("/api/v1/users", headers=tokens["admin"],
                       json={"username": name, "password": PASSWORD, "roles": ["admin"]})
    assert made.status_code == 201, made.get_json()
    res = client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
    assert res.status_code == 200, res.get_json()
    return name, {"Authorization": f"Bearer {res.get_json()['access_token']}"}


def assert_hardened(res, what: str, *, document: bool = False) -> None:
    csp = res.headers.get("Content-Security-Policy", "")
    if document:
        assert csp.startswith("sandbox;") and "default-src 'none'" in csp, (what, csp)
    else:
        assert all(d in csp for d in PAGE_DIRECTIVES), (what, csp)
    assert "unsafe-eval" not in csp and "script-src" not in csp, (what, csp)
    assert document or "unsafe-inline" not in csp, (what, csp)
    assert res.headers.get("X-Content-Type-Options") == "nosniff", what
    assert res.headers.get("Referrer-Policy") == "no-referrer", what
    assert res.headers.get("Cache-Control") == "no-store", what


def _example_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-" + uuid.uuid4().hex[:8], path)


def _walk(client, service: str, path: str, method: str, op: dict, headers: dict) -> None:
    kwargs = {"headers": headers if "security" in op else {}}
    if "requestBody" in op:
        kwargs["json"] = {}
    res = client.open(_example_path(path), method=method.upper(), **kwargs)
    what = f"{service} {method.upper()} {path} -> {res.status_code}"
    assert res.status_code < 500 or (path == "/readyz" and res.status_code == 503), what
    assert str(res.status_code) in op["responses"], f"{what}: not in the operation's responses"
    assert_hardened(res, what)


def test_every_route_of_every_service_answers_hardened_and_as_documented(apps, walker, caplog):
    caplog.set_level(logging.INFO)
    name, headers = walker
    walked, last = 0, []
    for service in SERVICES:
        client = apps[service].test_client()
        spec_res = client.get("/openapi.json")
        assert_hardened(spec_res, f"{service} /openapi.json")
        for path, item in spec_res.get_json()["paths"].items():
            for method, op in item.items():
                if (method, path) in SELF_ENDING:
                    last.append((client, service, path, method, op))
                else:
                    _walk(client, service, path, method, op, headers)
                walked += 1
    for client, service, path, method, op in last:  # each with a login of its own
        login = apps["intake"].test_client().post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
        _walk(client, service, path, method, op, {"Authorization": f"Bearer {login.get_json()['access_token']}"})
    assert walked > 40
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text


def _logged_in(apps: dict, username: str) -> dict:
    """A test client per service with one login made on intake's form (the issuer's), its session
    cookie shared as a browser shares it between the services of one host."""
    issuer = apps["intake"].test_client()
    page = issuer.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    res = issuer.post("/login", data={"csrf_token": token, "username": username, "password": PASSWORD})
    assert res.status_code == 302, res.get_data(as_text=True)[:500]
    name = apps["intake"].config["SESSION_COOKIE_NAME"]
    cookie = issuer.get_cookie(name)
    clients = {"intake": issuer}
    for service in SERVICES[1:]:
        clients[service] = apps[service].test_client()
        clients[service].set_cookie(name, cookie.value)
    return clients


def test_the_pages_404s_and_405s_are_hardened_too(apps, walker):
    name, _ = walker
    for service in SERVICES:
        client = apps[service].test_client()
        for res, what in ((client.get("/"), "/ before login"), (client.get("/login"), "/login"),
                          (client.get("/no-such-page"), "a 404 page"), (client.get("/api/v1/no-such-route"), "a 404")):
            assert_hardened(res, f"{service} {what}")
        refused = client.put("/login")
        assert refused.status_code == 405 and "POST" in refused.headers["Allow"]
        assert_hardened(refused, f"{service} 405 page")
        api_refused = client.delete("/api/v1/auth/token")
        assert api_refused.status_code == 405 and "POST" in api_refused.headers["Allow"]
        assert api_refused.get_json()["error"]["code"] == "method_not_allowed"
        assert_hardened(api_refused, f"{service} 405")
    for service, client in _logged_in(apps, name).items():
        home = client.get("/", follow_redirects=True)
        assert home.status_code == 200 and home.mimetype == "text/html", service
        assert_hardened(home, f"{service} / logged in")
        assert 'rel="stylesheet" href="/assets/nrw.css"' in home.get_data(as_text=True)
        assert client.get("/assets/nrw.css").status_code == 200


def test_an_oversized_body_is_413_and_a_deep_one_400_as_json_without_a_traceback(apps, walker, caplog):
    caplog.set_level(logging.INFO)
    _, headers = walker
    deep = "[" * 100_000 + "]" * 100_000
    for service, path in (("intake", "/api/v1/reports"), ("case", "/api/v1/cases/x/transitions"),
                          ("advocacy", "/api/v1/appeals"), ("reporting", "/api/v1/upr/snapshots"),
                          ("intake", "/api/v1/auth/token")):
        client = apps[service].test_client()
        big = client.post(path, headers=headers, data=json.dumps({"notes": "x" * 1_100_000}),
                          content_type="application/json")
        assert big.status_code == 413 and big.get_json()["error"]["code"] == "payload_too_large", (service, path)
        assert_hardened(big, f"{service} {path} 413")
        nested = client.post(path, headers=headers, data=deep, content_type="application/json")
        assert nested.status_code == 400 and nested.get_json()["error"]["code"] == "too_deeply_nested", (service, path)
        assert_hardened(nested, f"{service} {path} deep")
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]


@pytest.fixture(scope="module")
def snapshot_id(reporting_app, walker) -> str:
    taken = reporting_app.test_client().post(
        "/api/v1/upr/snapshots", headers=walker[1],
        json={"cycle": "CN-9", "as_of": (utcnow().date() - dt.timedelta(days=1)).isoformat()})
    assert taken.status_code == 201, taken.get_json()
    return taken.get_json()["snapshot_id"]


@pytest.fixture(scope="module")
def advocacy_records(advocacy_app, settings, mongo, walker) -> dict:
    """A case advocacy knows (consent anonymous: its letters need no names), an appeal and a request."""
    from services.advocacy import handlers
    from services.advocacy.store import AdvocacyStore
    from shared.bus import Publisher
    from shared.events import new_event, validate_event

    store = AdvocacyStore(mongo[settings.database_name("advocacy")])
    case_id = str(uuid.uuid4())
    publisher = Publisher(settings, principal="admin", client_id="it-hardening")
    try:
        event = new_event("case.opened", producer="case", case_id=case_id, payload={
            "status": "reported", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
            "detained_on": "2024-01-05", "deportation_imminent": False, "vulnerabilities": [],
            "consent_advocacy": "anonymous", "consent_statistics": True})
        handlers.on_case_event(validate_event(json.loads(json.dumps(event))), now=utcnow(), store=store,
                               publisher=publisher, settings=settings)
    finally:
        publisher.close()
    client = advocacy_app.test_client()
    appeal = client.post("/api/v1/appeals", headers=walker[1], json={"case_ids": [case_id], "kind": "urgent_appeal"})
    assert appeal.status_code == 201, appeal.get_json()
    request = client.post("/api/v1/unhcr-access-requests", headers=walker[1],
                          json={"case_ids": [case_id], "office": "UNHCR Beijing", "channel": "email",
                                "sent_on": (utcnow().date() - dt.timedelta(days=2)).isoformat()})
    assert request.status_code == 201, request.get_json()
    return {"case_id": case_id, "appeal_id": appeal.get_json()["appeal_id"],
            "request_id": request.get_json()["request_id"]}


def test_an_annex_is_a_sandboxed_download(reporting_app, walker, snapshot_id):
    client = reporting_app.test_client()
    for fmt in ("html", "md", "csv", "pdf"):
        res = client.get(f"/api/v1/upr/snapshots/{snapshot_id}/annex?format={fmt}&lang=en", headers=walker[1])
        assert res.status_code == 200 and res.headers["Content-Disposition"].startswith("attachment;")
        assert_hardened(res, f"annex {fmt}", document=fmt != "pdf")


def test_a_letter_is_a_sandboxed_document(advocacy_app, walker, advocacy_records):
    client = advocacy_app.test_client()
    appeal_id = advocacy_records["appeal_id"]
    for fmt, disposition in (("html", "inline"), ("md", "inline"), ("pdf", "inline"), ("html", "attachment")):
        download = "&download=1" if disposition == "attachment" else ""
        res = client.get(f"/api/v1/appeals/{appeal_id}/letter?format={fmt}&lang=en{download}", headers=walker[1])
        assert res.status_code == 200, res.get_data(as_text=True)[:300]
        assert res.headers["Content-Disposition"].startswith(disposition + ";")
        assert_hardened(res, f"letter {fmt}", document=fmt != "pdf")


# --- in a real browser ------------------------------------------------------------------------------


@contextlib.contextmanager
def _served(apps: dict):
    """The four in-process apps on ports of their own, for a browser."""
    servers = {name: make_server("127.0.0.1", 0, app, threaded=True) for name, app in apps.items()}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield {name: f"http://127.0.0.1:{s.server_port}" for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def case_page_case(settings, mongo, intake_app, walker) -> dict:
    """A report filed through intake's API, its case opened by the case service's own handler from
    the event intake published (no consumer runs in this tier)."""
    from services.case import consumer as case_consumer
    from shared.bus import Publisher

    created = intake_app.test_client().post("/api/v1/reports", headers=walker[1], json=synthetic_report())
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    events = wait_for(lambda: [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
                               if r.key == body["case_id"].encode()], what="intake's event")
    publisher = Publisher(settings, principal="admin", client_id="it-hardening-case")
    try:
        handlers = case_consumer.make_handlers(mongo[settings.database_name("case")], publisher)
        for event in events:
            if event["event_type"] in handlers:
                handlers[event["event_type"]](event)
    finally:
        publisher.close()
    return body


def test_no_page_breaks_the_policy_in_chromium_and_the_charts_look_right(apps, walker, advocacy_records, snapshot_id,
                                                                           case_page_case):
    if chromium_missing():
        pytest.skip(chromium_missing())
    name, _ = walker
    appeal, request = advocacy_records["appeal_id"], advocacy_records["request_id"]
    pages = {
        "intake": ["/reports", "/reports/new", f"/reports/{case_page_case['report_id']}", "/audit", "/no-such-page"],
        "case": ["/cases", f"/cases/{case_page_case['case_id']}"],
        "advocacy": ["/", "/appeals", "/appeals/new", f"/appeals/{appeal}", "/requests", "/requests/new",
                     f"/requests/{request}"],
        "reporting": ["/", "/?disclosure=internal&sex=female", "/snapshots", f"/snapshots/{snapshot_id}"],
    }
    documents = {"advocacy": [f"/appeals/{appeal}/letter?format=html&lang=en",
                              f"/requests/{request}/letter?format=html&lang=ko"]}
    with _served(apps) as urls, chromium() as browser:
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        problems = _watch(page)
        page.goto(f"{urls['intake']}/login")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/reports")
        # The stylesheet applies (a file: the policy allows no inline style).
        assert page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor") == "rgb(20, 50, 74)"
        for service, paths in pages.items():
            for path in paths:
                res = page.goto(urls[service] + path)
                assert res.status in (200, 404), (service, path, res.status)
                assert "Content-Security-Policy" in {k.title(): v for k, v in res.headers.items()} or \
                    "content-security-policy" in res.headers
        page.goto(f"{urls['intake']}/reports/new")
        page.get_by_role("button", name="Save report").click()  # empty: the form with its errors
        assert page.get_by_role("alert").is_visible()
        page.goto(f"{urls['reporting']}/")
        for chart in ("#chart-over-time-svg", "#chart-by-age-and-sex-svg"):
            assert page.locator(chart).is_visible(), chart
        # Drawn as matplotlib drew it: the background white, a series in its colour, text in its font.
        assert page.eval_on_selector("#chart-over-time-svg path", "e => getComputedStyle(e).fill") == \
            "rgb(255, 255, 255)"
        assert page.eval_on_selector("#chart-over-time-svg", "e => getComputedStyle(e).strokeLinejoin") == "round"
        colours = page.eval_on_selector_all("#chart-over-time-svg [id*='series-detained'] *",
                                            "es => es.map(e => getComputedStyle(e).stroke)")
        assert "rgb(0, 114, 178)" in colours
        sizes = page.eval_on_selector_all("#chart-over-time-svg text", "es => es.map(e => getComputedStyle(e).fontSize)")
        assert sizes and "16px" not in sizes  # matplotlib's sizes, not the browser's default
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "hardened-dashboard.png"), full_page=True)
        for service, paths in documents.items():
            for path in paths:
                res = page.goto(urls[service] + path)
                assert res.status == 200 and res.headers["content-security-policy"].startswith("sandbox;")
                assert page.locator("h1").count() == 1
        context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not _policy_problems(problems), problems


def _watch(page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{page.url}: {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    return problems


def _policy_problems(problems: list[str]) -> list[str]:
    """Console lines other than the answers asked for (a 404 page, /favicon.ico, a form with errors)."""
    expected = re.compile(r"Failed to load resource: the server responded with a status of (404|422)")
    return [p for p in problems if not expected.search(p)]


def test_the_account_pages_break_no_policy_either(apps, tokens):
    """The admins' user pages, one's own password, and a second factor set up (QR code, recovery
    codes) and then asked for at the next login, in Chromium."""
    if chromium_missing():
        pytest.skip(chromium_missing())
    import pyotp

    name = f"enrol-{uuid.uuid4().hex[:6]}"
    made = apps["intake"].test_client().post("/api/v1/users", headers=tokens["admin"],
                                             json={"username": name, "password": PASSWORD, "roles": ["admin"]})
    assert made.status_code == 201, made.get_json()
    with _served(apps) as urls, chromium() as browser:
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        problems = _watch(page)
        intake = urls["intake"]
        # (No wrong password here: every failure from 127.0.0.1 counts towards locking the address
        # for the rest of the tier.)
        page.goto(f"{intake}/login")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        for path in ("/admin/users", f"/admin/users/{name}/delete", "/account/password"):
            assert page.goto(intake + path).status == 200, path
        page.goto(f"{intake}/account/2fa")
        assert page.locator("#qr svg").is_visible()
        secret = page.locator("#otp-secret").inner_text().strip()
        page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_load_state()
        assert "recovery" in page.content().lower()
        page.goto(f"{intake}/login")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/login/otp**")
        assert page.get_by_label("Code").is_visible()
        context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not _policy_problems(problems), problems
