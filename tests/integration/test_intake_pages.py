"""Intake's pages against the real database: the audit trail page (admins only) and the login
session (HttpOnly and SameSite cookie, ended by inactivity, sliding)."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest
from babel.dates import format_datetime

from shared import identity, ui
from tests.support import page_login as support_page_login, synthetic_report

PASSWORD = "integration-password-1"  # the users fixture's


def page_login(client, username: str, lang: str = "en", next_path: str = "/reports"):
    """Log in through intake's login form (CSRF token included), as a browser does; the form's answer."""
    return support_page_login(client, username, PASSWORD, lang=lang, next_path=next_path)


def new_user(client, tokens, role: str) -> tuple[str, dict]:
    """A user of its own for a test (made by the admin through the API), and its bearer header:
    reads of identifying data are limited per user and hour, so a test that reads much reads as
    someone of its own."""
    name = f"{role[:4]}-{uuid.uuid4().hex[:8]}"
    made = client.post("/api/v1/users", json={"username": name, "password": PASSWORD, "roles": [role]},
                       headers=tokens["admin"])
    assert made.status_code == 201, made.get_json()
    token = client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
    assert token.status_code == 200, token.get_json()
    return name, {"Authorization": f"Bearer {token.get_json()['access_token']}"}


def read_report(client, tokens, reason: str) -> dict:
    """A caseworker files a synthetic report and reads it once with `reason`; the 201 body."""
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    read = client.get(f"/api/v1/reports/{created['report_id']}?reason={reason}", headers=tokens["caseworker"])
    assert read.status_code == 200
    return created


def audit_rows(html: str) -> list[str]:
    """The rows of the audit table, as HTML."""
    body = html.split('<table id="audit">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>.*?</tr>", body, flags=re.S)


# --- the audit trail page -------------------------------------------------------------------------


def test_admins_see_who_read_which_report_from_where_and_why(client, intake_app, tokens, users, settings, mongo):
    first = read_report(client, tokens, "pages check one")
    second = read_report(client, tokens, "pages check two")
    assert page_login(client, users["admin"]).status_code == 302

    page = client.get(f"/audit?case_id={first['case_id']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    (row,) = audit_rows(html)
    assert users["caseworker"] in row and "pages check one" in row and client.environ_base["REMOTE_ADDR"] in row
    assert first["report_id"][:8] in row and first["case_id"][:8] in row
    assert second["report_id"][:8] not in html
    entry = mongo[settings.database_name("intake")]["audit"].find_one({"report_id": first["report_id"]})
    assert format_datetime(entry["at"], "medium", tzinfo=dt.timezone.utc, locale="en") in row  # as people read it
    assert entry["at"].isoformat()[:19] not in row
    assert 'href="http://' in html and "/audit\">Audit trail</a>" in html  # the admin's navigation links here


@pytest.mark.parametrize("by", ["username", "user id"])
def test_the_audit_page_filters_by_user_and_by_case(client, tokens, users, by):
    created = read_report(client, tokens, f"filter check by {by}")
    page_login(client, users["admin"])
    reader = client.get(f"/api/v1/audit?case_id={created['case_id']}", headers=tokens["admin"]).get_json()
    user = users["caseworker"] if by == "username" else reader["items"][0]["user_id"]

    by_user = client.get(f"/audit?user={user}").get_data(as_text=True)
    rows = audit_rows(by_user)
    assert rows and all(users["caseworker"] in row for row in rows)
    assert any(f"filter check by {by}" in row for row in rows)
    assert f'value="{user}"' in by_user  # the filter stays in its field

    both = audit_rows(client.get(f"/audit?user={user}&case_id={created['case_id']}").get_data(as_text=True))
    assert len(both) == 1 and f"filter check by {by}" in both[0]
    idle = f"idle-{uuid.uuid4().hex[:6]}"  # an analyst who has read and written nothing
    identity.create_user(client.application.extensions["nrw"].identity_db, idle, "integration-password-1", ["analyst"])
    nobody = client.get(f"/audit?user={idle}").get_data(as_text=True)
    assert audit_rows(nobody) == [] and "0 views" in nobody


def test_the_audit_page_pages_like_the_report_list(client, tokens, users):
    _name, reader = new_user(client, tokens, "caseworker")  # 52 reads: not the shared caseworker's hourly limit
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=reader).get_json()
    for n in range(52):
        assert client.get(f"/api/v1/reports/{created['report_id']}?reason=page+{n}",
                          headers=reader).status_code == 200
    page_login(client, users["admin"])
    first = client.get(f"/audit?case_id={created['case_id']}").get_data(as_text=True)
    assert len(audit_rows(first)) == 50 and "52 views" in first and "Previous page" not in first
    next_link = re.search(r'<a href="([^"]+)">Next page</a>', first).group(1).replace("&amp;", "&")
    assert f"case_id={created['case_id']}" in next_link and "page=2" in next_link
    second = client.get(next_link).get_data(as_text=True)
    assert len(audit_rows(second)) == 2 and "Previous page" in second and "Next page" not in second
    assert all((f">page {n}</td>" in first) != (f">page {n}</td>" in second) for n in range(52))  # each once


def test_the_audit_page_is_in_korean_for_a_korean_reader(client, tokens, users):
    created = read_report(client, tokens, "korean check")
    page_login(client, users["admin"], lang="ko")
    html = client.get(f"/audit?case_id={created['case_id']}").get_data(as_text=True)
    assert "<h1>감사 기록</h1>" in html and "열람 1건" in html and "열람자" in html and "접속 주소" in html


@pytest.mark.parametrize("role", ["caseworker", "advocate", "analyst"])
def test_anyone_but_an_admin_is_refused_the_audit_page(client, users, role):
    assert page_login(client, users[role]).status_code == 302
    refused = client.get("/audit")
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert "<h1>Forbidden</h1>" in html and "Non-Refoulement Watch" in html  # the shared error page
    assert "Audit trail" not in html and "/audit\">" not in html  # nor is it in their navigation


def test_the_audit_page_needs_a_login(client):
    res = client.get("/audit?case_id=x")
    assert res.status_code == 302 and "/login?next=" in res.headers["Location"]


# --- the login session ------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The inactivity check's clock, moved by hand: clock.advance(minutes)."""

    class Clock:
        now = time.time()

        def advance(self, minutes: float) -> None:
            self.now += minutes * 60

    moved = Clock()
    monkeypatch.setattr(ui, "_now", lambda: moved.now)
    return moved


def test_the_session_cookie_is_httponly_and_samesite(client, users):
    login = page_login(client, users["caseworker"])
    (cookie,) = [c for c in login.headers.getlist("Set-Cookie") if c.startswith("nrw_session=")]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
    assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=lax"
    assert "expires" in attributes  # a persistent cookie, renewed on every request


def test_requests_within_the_idle_limit_keep_the_session_alive(client, users, clock):
    page_login(client, users["caseworker"])
    for _ in range(3):  # 87 minutes in all, never 30 without a request
        clock.advance(29)
        assert client.get("/reports").status_code == 200


def test_a_request_after_the_idle_limit_is_sent_to_log_in_again_with_a_reason(client, users, clock):
    page_login(client, users["caseworker"])
    clock.advance(10)
    assert client.get("/reports").status_code == 200
    clock.advance(30.5)
    late = client.get("/reports?province=Jilin")
    assert late.status_code == 302 and late.headers["Location"].startswith("/login?next=")
    login_page = client.get(late.headers["Location"]).get_data(as_text=True)
    assert "You were logged out after 30 minutes without activity. Please log in again." in login_page
    again = client.get("/reports")  # the session is gone, and the message was shown once
    assert again.status_code == 302
    assert "without activity" not in client.get(again.headers["Location"]).get_data(as_text=True)
    assert page_login(client, users["caseworker"], next_path="/reports?province=Jilin").headers["Location"] == \
        "/reports?province=Jilin"


def test_the_idle_logout_speaks_the_readers_language(client, users, clock):
    page_login(client, users["caseworker"], lang="ko")
    clock.advance(31)
    late = client.get("/reports")
    login_page = client.get(late.headers["Location"]).get_data(as_text=True)
    assert "30분 동안 활동이 없어 로그아웃되었습니다." in login_page


# --- the new-report form --------------------------------------------------------------------------


def _form_fields(html: str) -> dict[str, str]:
    """The hidden fields of the new-report form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def _filled(report: dict, hidden: dict[str, str]) -> dict[str, str]:
    person, detention, source, consent = report["person"], report["detention"], report["source"], report["consent"]
    return {**hidden, "person.full_name": person["full_name"], "person.sex": person["sex"],
            "detention.province": detention["province"], "source.type": source["type"],
            "source.reliability": source["reliability"], "source.received_on": source["received_on"],
            "consent.advocacy": consent["advocacy"], "consent.statistics": "on"}


def test_the_form_sent_twice_files_one_report_and_a_changed_resend_is_refused(client, users, mongo, settings):
    page_login(client, users["caseworker"], next_path="/reports/new")
    hidden = _form_fields(client.get("/reports/new").get_data(as_text=True))
    assert re.fullmatch(r"[0-9a-f-]{36}", hidden["submission_id"]) and hidden["csrf_token"]
    report = synthetic_report()
    first = client.post("/reports/new", data=_filled(report, hidden))
    again = client.post("/reports/new", data=_filled(report, hidden))  # a double click, or "send again"
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"].split("?")[0] == again.headers["Location"].split("?")[0]
    report_id = first.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    reports = mongo[settings.database_name("intake")]["reports"]
    case_id = reports.find_one({"_id": report_id})["case_id"]
    assert reports.count_documents({"case_id": case_id}) == 1

    other_province = "Jilin" if report["detention"]["province"] != "Jilin" else "Liaoning"
    changed = client.post("/reports/new", data={**_filled(report, hidden), "detention.province": other_province})
    assert changed.status_code == 409
    html = changed.get_data(as_text=True)
    assert "already saved as a report" in html and report["person"]["full_name"] in html  # what was typed stays
    fresh = _form_fields(html)["submission_id"]
    assert fresh != hidden["submission_id"]
    resent = client.post("/reports/new", data={**_filled(report, {**hidden, "submission_id": fresh}),
                                               "detention.province": other_province})
    assert resent.status_code == 302
    assert resent.headers["Location"].split("?")[0] != first.headers["Location"].split("?")[0]  # a new report


# --- labels, not codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang, words", [
    ("en", ["prior repatriation", "contact with South Koreans", "victim of trafficking", "fellow escapee",
            "NGO partner", "religious contact"]),
    ("ko", ["송환 전력", "한국인 접촉", "인신매매 피해자", "동료 탈북민", "협력 NGO", "종교 접촉"]),
])
def test_the_report_form_shows_words_not_codes_and_one_trafficking_box(client, users, lang, words):
    page_login(client, users["caseworker"], lang=lang, next_path="/reports/new")
    html = client.get("/reports/new").get_data(as_text=True)
    shown = re.sub(r"<[^>]+>", " ", html)  # what the reader sees (not the values sent back)
    for word in words:
        assert word in shown
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", shown), re.findall(r"\b[a-z]+_[a-z_]+\b", shown)
    assert 'name="risk.trafficking_victim"' not in html
    assert html.count('value="trafficking_victim"') == 1  # the vulnerability's box, once


def test_the_trafficking_box_of_the_form_sets_the_apis_field_too(client, users, mongo, settings):
    page_login(client, users["caseworker"], next_path="/reports/new")
    hidden = _form_fields(client.get("/reports/new").get_data(as_text=True))
    report = synthetic_report()
    sent = client.post("/reports/new", data={**_filled(report, hidden), "risk.vulnerabilities": ["trafficking_victim"]})
    assert sent.status_code == 302
    report_id = sent.headers["Location"].split("?")[0].rsplit("/", 1)[1]
    outbox = mongo[settings.database_name("intake")]["reports"].find_one({"_id": report_id})
    event = next(e for e in outbox["outbox"] if e["event_type"] == "case.reported")["payload"]
    assert event["trafficking_victim"] is True and event["vulnerabilities"] == ["trafficking_victim"]
