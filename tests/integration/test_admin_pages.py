"""The admins' page for the accounts (intake's /admin/users) against the real database: create a
user through the form, change their roles, disable and enable them, give a one-time password,
reset the second factor and delete them, each audited and ending their logins as the API does;
errors next to their fields with the right status; admins only."""

from __future__ import annotations

import re
import uuid

from tests.integration.conftest import PASSWORD
from tests.support import next_totp, page_login

ONE_TIME = "violet-harbour-cactus-91"
CHOSEN = "copper lantern meadow 58"


# --- helpers ------------------------------------------------------------------------------------------


def csrf(client, path: str = "/admin/users") -> str:
    """The CSRF token of this client's session, from a form of the page at `path`."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def post(client, path: str, data: dict | None = None, token_from: str = "/admin/users"):
    """Send a page form, with the session's CSRF token, as a browser does."""
    return client.post(path, data={"csrf_token": csrf(client, token_from), **(data or {})})


def as_admin(intake_app, users):
    """A client of intake logged in through the login form as the fixtures' admin."""
    client = intake_app.test_client()
    assert page_login(client, users["admin"], PASSWORD).status_code == 302
    return client


def section(html: str, username: str) -> str:
    """A user's forms on the page."""
    return re.search(rf'<section id="user-{re.escape(username)}".*?</section>', html, flags=re.S).group(0)


def row(html: str, username: str) -> str | None:
    """A user's row in the list, or None if they are not listed."""
    found = re.search(rf'<tr id="row-{re.escape(username)}">.*?</tr>', html, flags=re.S)
    return found.group(0) if found else None


def cells(html: str, username: str) -> list[str]:
    """The texts of a user's row: username, roles, status, second factor, must change, created, last login."""
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row(html, username), flags=re.S)]


def error_of(html: str, field_id: str) -> str:
    """The error shown next to a field (its id-error paragraph)."""
    found = re.search(rf'<p class="error" id="{re.escape(field_id)}-error">(.*?)</p>', html, flags=re.S)
    assert found, f"no error next to {field_id}"
    return found.group(1)


def token(client, username: str, password: str, otp: str | None = None):
    """POST /api/v1/auth/token; the response."""
    body = {"username": username, "password": password, **({"otp": otp} if otp else {})}
    return client.post("/api/v1/auth/token", json=body)


def accepted(client, headers: dict) -> bool:
    """True if a caseworker's API token opens the API (a report that does not exist: 404), False
    if it is refused (401)."""
    status = client.get(f"/api/v1/reports/{uuid.uuid4()}", headers=headers).status_code
    assert status in (401, 404), status
    return status == 404


def bearer(answer) -> dict:
    assert answer.status_code == 200, answer.get_json()
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def account_audit(intake_app, target: str) -> list[dict]:
    """Intake's audit entries about a user's account, oldest first."""
    entries = intake_app.extensions["nrw"].db["audit"].find({"what": "account", "target": target})
    return sorted(entries, key=lambda e: e["at"])


def create_through_form(admin, roles: list[str]) -> str:
    """A new user created by the admin through the form; their username."""
    name = f"pg-{uuid.uuid4().hex[:8]}"
    made = post(admin, "/admin/users", {"username": name, "password": PASSWORD, "roles": roles})
    assert made.status_code == 303, made.get_data(as_text=True)
    return name


# --- tests ----------------------------------------------------------------------------------------------


def test_an_admin_creates_a_user_through_the_form(intake_app, users, client):
    admin = as_admin(intake_app, users)
    page = admin.get("/admin/users")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert cells(html, users["caseworker"])[:5] == [users["caseworker"], "caseworker", "Active", "Not set up", "No"]
    assert "$argon2" not in html and "password_hash" not in html and "otp_secret" not in html
    assert 'href="http://' in html and '/admin/users">Users</a>' in html  # the admin's navigation links here
    name = f"pg-{uuid.uuid4().hex[:8]}"

    weak = post(admin, "/admin/users", {"username": name, "password": "aaaaaaaaaaaa", "roles": ["caseworker"]})
    assert weak.status_code == 422
    html = weak.get_data(as_text=True)
    assert "too common or too easy to guess" in error_of(html, "new-password")
    assert 'id="error-summary"' in html and "The user was not created" in html
    assert f'value="{name}"' in html and "aaaaaaaaaaaa" not in html  # the username is kept, the password is not
    assert re.search(r'value="caseworker" checked', html)
    assert row(html, name) is None

    bad_name = post(admin, "/admin/users", {"username": "Not A Name", "password": PASSWORD, "roles": ["analyst"]})
    assert bad_name.status_code == 422
    assert "lower-case letters" in error_of(bad_name.get_data(as_text=True), "new-username")
    no_role = post(admin, "/admin/users", {"username": name, "password": PASSWORD})
    assert no_role.status_code == 422
    assert "Choose at least one role." in error_of(no_role.get_data(as_text=True), "new-roles")

    made = post(admin, "/admin/users", {"username": name, "password": PASSWORD, "roles": ["caseworker"]})
    assert made.status_code == 303 and made.headers["Location"].endswith(f"/admin/users#user-{name}")
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"User {name} was created with the roles: caseworker." in html
    assert cells(html, name)[:5] == [name, "caseworker", "Active", "Not set up", "No"]
    assert cells(html, name)[5] != "—" and cells(html, name)[6] == "Never"
    assert token(client, name, PASSWORD).status_code == 200  # the new user logs in

    again = post(admin, "/admin/users", {"username": name, "password": PASSWORD, "roles": ["analyst"]})
    assert again.status_code == 409
    assert "already exists" in error_of(again.get_data(as_text=True), "new-username")

    (created,) = account_audit(intake_app, name)
    assert created["action"] == "user_created" and created["username"] == users["admin"]
    assert created["reason"] == "caseworker" and created["remote_addr"] == admin.environ_base["REMOTE_ADDR"]


def test_the_whole_lifecycle_of_an_account_is_audited_and_ends_logins(intake_app, users, tokens, client):
    admin = as_admin(intake_app, users)
    name = create_through_form(admin, ["caseworker"])
    user_id = next(u["user_id"] for u in client.get("/api/v1/users", headers=tokens["admin"]).get_json()["items"]
                   if u["username"] == name)
    before = bearer(token(client, name, PASSWORD))
    assert accepted(client, before)

    # roles: none ticked is refused next to the field, the ticked ones kept; then a change ends the logins
    none = post(admin, f"/admin/users/{name}/roles", {})
    assert none.status_code == 422
    assert "Choose at least one role." in error_of(none.get_data(as_text=True), f"roles-{name}")
    changed = post(admin, f"/admin/users/{name}/roles", {"roles": ["caseworker", "analyst"]})
    assert changed.status_code == 303
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"The roles of {name} are now: analyst, caseworker." in html
    assert cells(html, name)[1] == "analyst, caseworker"
    assert not accepted(client, before)
    relogin = token(client, name, PASSWORD)
    assert relogin.status_code == 200 and relogin.get_json()["roles"] == ["analyst", "caseworker"]
    after_roles = bearer(relogin)

    # disable: the token obtained before is refused, and so is a new login; enable: they log in again
    assert post(admin, f"/admin/users/{name}/disable").status_code == 303
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"{name} is disabled" in html and cells(html, name)[2] == "Disabled"
    assert f"Enable {name}" in section(html, name)
    assert not accepted(client, after_roles)
    assert token(client, name, PASSWORD).status_code == 401
    assert post(admin, f"/admin/users/{name}/enable").status_code == 303
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"{name} is enabled" in html and cells(html, name)[2] == "Active"
    assert token(client, name, PASSWORD).status_code == 200

    # a one-time password: a weak one is refused next to the field; then the next login must change it
    weak = post(admin, f"/admin/users/{name}/password", {"password": "aaaaaaaaaaaa"})
    assert weak.status_code == 422
    html = weak.get_data(as_text=True)
    assert "too common" in error_of(html, f"password-{name}") and "aaaaaaaaaaaa" not in html
    assert f"Nothing was changed for {name}." in html
    assert post(admin, f"/admin/users/{name}/password", {"password": ONE_TIME}).status_code == 303
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"{name} has a one-time password now" in html and cells(html, name)[4] == "Yes"
    assert token(client, name, PASSWORD).status_code == 401
    must_change = token(client, name, ONE_TIME)
    assert must_change.status_code == 200 and must_change.get_json()["scope"] == "password_change"
    assert client.post("/api/v1/auth/password", json={"old_password": ONE_TIME, "new_password": CHOSEN},
                       headers=bearer(must_change)).status_code == 200

    # the user sets up a second factor; the admin resets it, and a login needs no code any more
    full = bearer(token(client, name, CHOSEN))
    secret = client.post("/api/v1/auth/totp", headers=full).get_json()["secret"]
    assert client.post("/api/v1/auth/totp/confirm", json={"otp": next_totp(secret, name)},
                       headers=full).status_code == 200
    assert token(client, name, CHOSEN).get_json()["error"]["code"] == "otp_required"
    html = admin.get("/admin/users").get_data(as_text=True)
    assert cells(html, name)[3] == "Set up" and "Reset second factor" in section(html, name)
    assert post(admin, f"/admin/users/{name}/second-factor/reset").status_code == 303
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"The second factor of {name} is removed" in html and cells(html, name)[3] == "Not set up"
    last = token(client, name, CHOSEN)
    assert last.status_code == 200 and "scope" not in last.get_json()
    assert accepted(client, bearer(last))

    # delete, after a confirmation page: gone from the list, the token refused, the audit trail names them
    confirm = admin.get(f"/admin/users/{name}/delete")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert f"Delete {name}?" in html and f'action="/admin/users/{name}/delete"' in html
    assert row(admin.get("/admin/users").get_data(as_text=True), name) is not None  # asking deletes nothing
    gone = post(admin, f"/admin/users/{name}/delete", token_from=f"/admin/users/{name}/delete")
    assert gone.status_code == 303 and gone.headers["Location"].endswith("/admin/users")
    html = admin.get("/admin/users").get_data(as_text=True)
    assert f"User {name} was deleted." in html and row(html, name) is None and f'id="user-{name}"' not in html
    assert not accepted(client, bearer(last))
    assert token(client, name, CHOSEN).status_code == 401
    trail = client.get(f"/api/v1/audit?user_id={user_id}", headers=tokens["admin"]).get_json()
    assert trail["total"] >= 2 and {e["username"] for e in trail["items"]} == {name}
    # the user's own changes (password and second factor), and the logins that failed on the account
    assert {e["what"] for e in trail["items"]} == {"account", "login"}
    assert {e["action"] for e in trail["items"] if e["what"] == "login"} == {"login_failed"}

    entries = account_audit(intake_app, name)
    assert [e["action"] for e in entries] == [
        "user_created", "user_changed", "user_changed", "user_changed", "password_reset", "password_changed",
        "second_factor_enrolled", "second_factor_reset", "user_deleted"]
    assert [e["reason"] for e in entries[1:4]] == ["roles=analyst,caseworker", "active=False", "active=True"]
    by_admin = [e for e in entries if e["action"] not in ("password_changed", "second_factor_enrolled")]
    assert {e["username"] for e in by_admin} == {users["admin"]}
    assert {e["username"] for e in entries} - {users["admin"]} == {name}


def test_unknown_users_are_named_at_the_top_with_404(intake_app, users):
    admin = as_admin(intake_app, users)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    for path, data in ((f"/admin/users/{ghost}/disable", {}), (f"/admin/users/{ghost}/roles", {"roles": ["analyst"]}),
                       (f"/admin/users/{ghost}/password", {"password": ONE_TIME}),
                       (f"/admin/users/{ghost}/second-factor/reset", {}), (f"/admin/users/{ghost}/delete", {})):
        answer = post(admin, path, data)
        assert answer.status_code == 404, path
        summary = answer.get_data(as_text=True).split('id="error-summary"', 1)[1].split("</div>", 1)[0]
        assert f"There is no user named {ghost}" in summary
    assert admin.get(f"/admin/users/{ghost}/delete").status_code == 404
    assert not account_audit(intake_app, ghost)


def test_the_last_active_admin_cannot_be_disabled_deleted_or_demoted(intake_app, users, tokens):
    admin = as_admin(intake_app, users)
    name = create_through_form(admin, ["admin"])
    last = intake_app.test_client()
    assert page_login(last, name, PASSWORD).status_code == 302
    identity_db = intake_app.extensions["nrw"].identity_db
    others = [u["_id"] for u in identity_db["users"].find({"roles": "admin", "active": True}) if u["_id"] != name]
    identity_db["users"].update_many({"_id": {"$in": others}}, {"$set": {"active": False}})
    try:
        refused = post(last, f"/admin/users/{name}/disable")
        assert refused.status_code == 409
        html = refused.get_data(as_text=True)
        assert "is the last active admin" in error_of(html, f"active-{name}")
        assert "is the last active admin" in html.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
        demoted = post(last, f"/admin/users/{name}/roles", {"roles": ["analyst"]})
        assert demoted.status_code == 409
        html = demoted.get_data(as_text=True)
        assert "is the last active admin" in error_of(html, f"roles-{name}")
        assert re.search(r'value="analyst" checked', section(html, name))  # what was ticked is kept
        deleted = post(last, f"/admin/users/{name}/delete", token_from=f"/admin/users/{name}/delete")
        assert deleted.status_code == 409
        assert "is the last active admin" in error_of(deleted.get_data(as_text=True), f"delete-{name}")
        assert cells(last.get("/admin/users").get_data(as_text=True), name)[1:3] == ["admin", "Active"]
    finally:
        identity_db["users"].update_many({"_id": {"$in": others}}, {"$set": {"active": True}})
    assert [e["action"] for e in account_audit(intake_app, name)] == ["user_created"]
    assert last.get("/admin/users").status_code == 200  # nothing ended the last admin's login
    intake_app.test_client().delete(f"/api/v1/users/{name}", headers=tokens["admin"])


def test_only_admins_see_the_page(intake_app, users):
    anonymous = intake_app.test_client()
    answer = anonymous.get("/admin/users")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/login?next=/admin/users")
    sneaked = post(anonymous, "/admin/users", {"username": "sneaked-in", "password": PASSWORD, "roles": ["admin"]},
                   token_from="/login")
    assert sneaked.status_code == 302 and "/login" in sneaked.headers["Location"]

    caseworker = intake_app.test_client()
    assert page_login(caseworker, users["caseworker"], PASSWORD, next_path="/reports").status_code == 302
    assert caseworker.get("/admin/users").status_code == 403
    assert '/admin/users">' not in caseworker.get("/reports").get_data(as_text=True)  # no link for them
    for path, data in (("/admin/users", {"username": "sneaked-in", "password": PASSWORD, "roles": ["admin"]}),
                       (f"/admin/users/{users['caseworker']}/roles", {"roles": ["admin"]}),
                       (f"/admin/users/{users['admin']}/disable", {})):
        assert post(caseworker, path, data, token_from="/reports").status_code == 403, path
    assert caseworker.get(f"/admin/users/{users['admin']}/delete").status_code == 403
    identity_db = intake_app.extensions["nrw"].identity_db
    assert identity_db["users"].find_one({"_id": "sneaked-in"}) is None
    assert identity_db["users"].find_one({"_id": users["caseworker"]})["roles"] == ["caseworker"]
