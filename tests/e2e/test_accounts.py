"""Accounts on the whole stack: an admin enrols a second factor in a real Chromium and logs in with
it; guessing is locked on every service's login; a disabled account's page session ends.
(The e2e stack asks admins for a second factor, as NRW_2FA_ROLES does by default.)"""

from __future__ import annotations

import uuid

import pyotp
import pytest
import requests

from tests.support import ROOT, next_totp, wait_for_page

SHOTS = ROOT / "artifacts" / "browser"
PASSWORD = "saffron orchard beacon 7731"


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    yield page
    context.close()


def _make_user(api, role: str) -> str:
    name = f"{role[:3]}-{uuid.uuid4().hex[:6]}"
    res = api.http.post(f"{api.urls['intake']}/api/v1/users", headers=api.admin, timeout=10,
                        json={"username": name, "password": PASSWORD, "roles": [role]})
    assert res.status_code == 201, res.text
    return name


def _log_in(page, api, username: str, password: str, start: str) -> None:
    page.goto(start)
    assert "/login" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_an_admin_enrols_a_second_factor_in_the_browser_and_logs_in_with_it(page, api):
    name = _make_user(api, "admin")
    _log_in(page, api, name, PASSWORD, f"{api.urls['case']}/cases")
    wait_for_page(page, api.urls["intake"], "/account/2fa")  # taken to enrolment right after the password
    assert page.locator("#qr svg").count() == 1
    page.screenshot(path=str(SHOTS / "20-enrol.png"), full_page=True)
    page.goto(f"{api.urls['intake']}/audit")  # nothing else opens before enrolment
    assert "/account/2fa" in page.url
    secret = page.locator("#otp-secret").inner_text().strip()
    page.get_by_label("Code").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.get_by_role("button", name="Confirm").click()
    assert page.locator("#otp-error").is_visible()  # a wrong code fails
    page.get_by_label("Code").fill(next_totp(secret, name))
    page.get_by_role("button", name="Confirm").click()
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10
    page.screenshot(path=str(SHOTS / "21-recovery-codes.png"), full_page=True)

    # log out, log in again with a code; the page then opens
    _log_in(page, api, name, PASSWORD, f"{api.urls['intake']}/audit")
    page.wait_for_url("**/login/otp**")
    page.get_by_label("Code").fill("12345x")
    page.get_by_role("button", name="Continue").click()
    assert "not right" in page.get_by_role("alert").inner_text()
    page.get_by_label("Code").fill(next_totp(secret, name))
    page.get_by_role("button", name="Continue").click()
    wait_for_page(page, api.urls["intake"], "/audit")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login**")

    # a recovery code works once
    for attempt in range(2):
        _log_in(page, api, name, PASSWORD, f"{api.urls['intake']}/audit")
        page.wait_for_url("**/login/otp**")
        page.get_by_label("Code").fill(codes[0])
        page.get_by_role("button", name="Continue").click()
        if attempt == 0:
            wait_for_page(page, api.urls["intake"], "/audit")
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url("**/login**")
        else:
            assert "not right" in page.get_by_role("alert").inner_text()

    # the API: otp_required, then a token with the right code
    token_url = f"{api.urls['advocacy']}/api/v1/auth/token"
    missing = requests.post(token_url, json={"username": name, "password": PASSWORD}, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "otp_required"
    good = requests.post(token_url, json={"username": name, "password": PASSWORD, "otp": next_totp(secret, name)},
                         timeout=10)
    assert good.status_code == 200, good.text


def test_guessing_is_locked_on_every_service_for_real_and_unknown_users_alike(api):
    name = _make_user(api, "analyst")
    ghost = "nobody-" + uuid.uuid4().hex[:6]
    answers = []
    for who in (name, ghost):
        for attempt in range(5):
            service = ("intake", "case", "advocacy", "reporting")[attempt % 4]
            res = requests.post(f"{api.urls[service]}/api/v1/auth/token", timeout=10,
                                json={"username": who, "password": "not the password 12"})
            assert res.status_code == 401, res.text
        for service in ("reporting", "intake"):
            locked = requests.post(f"{api.urls[service]}/api/v1/auth/token", timeout=10,
                                   json={"username": who, "password": PASSWORD})
            assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1, locked.text
            answers.append(locked.json()["error"]["code"])
    assert set(answers) == {"too_many_attempts"}


def test_a_disabled_users_page_session_ends_and_logout_ends_the_cookie(page, api):
    name = _make_user(api, "caseworker")
    _log_in(page, api, name, PASSWORD, f"{api.urls['case']}/cases")
    wait_for_page(page, api.urls["case"], "/cases")
    off = api.http.patch(f"{api.urls['intake']}/api/v1/users/{name}", headers=api.admin, timeout=10,
                         json={"active": False})
    assert off.status_code == 200
    # The login page is on intake: the case service answers with a redirect to it.
    page.goto(f"{api.urls['case']}/cases")
    wait_for_page(page, api.urls["intake"], "/login")

    assert api.http.patch(f"{api.urls['intake']}/api/v1/users/{name}", headers=api.admin, timeout=10,
                          json={"active": True}).status_code == 200
    _log_in(page, api, name, PASSWORD, f"{api.urls['reporting']}/snapshots")
    wait_for_page(page, api.urls["reporting"], "/snapshots")
    jar = {c["name"]: c["value"] for c in page.context.cookies()}
    before = requests.get(f"{api.urls['case']}/cases", cookies=jar, allow_redirects=False, timeout=10)
    assert before.status_code == 200  # the copied cookie opens the page while the login lasts
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login**")
    replay = requests.get(f"{api.urls['case']}/cases", cookies=jar, allow_redirects=False, timeout=10)
    assert replay.status_code == 302 and "/login" in replay.headers["Location"]


def test_every_file_the_stack_made_under_var_is_private(stack, env):
    """Keys, logs, Kafka's and FerretDB's data: 0600 files in 0700 folders, nothing for the group
    or others (the launcher's umask, inherited by every process)."""
    from pathlib import Path

    var = Path(env["NRW_VAR"])
    loose = [str(p) for p in [var, *var.rglob("*")] if not p.is_symlink() and p.stat().st_mode & 0o077]
    assert not loose, loose[:10]
    secrets = var / "secrets"
    assert {p.name for p in secrets.iterdir()} >= {"token-signing.key", "token-signing.pub", "web-session.secret",
                                                    "service-advocacy.key", "keys.json"}
