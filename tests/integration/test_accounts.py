"""Accounts, keys and sessions against a stolen disk, a dismissed insider and a guessed password
(issue 9), on the real identity database: forgery, revocation, guessing, the second factor."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
import warnings
from pathlib import Path

import jwt
import pyotp
import pytest
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

from services.intake.app import create_app as intake_factory
from shared import auth, keys
from shared.config import Settings
from tests.support import page_login, synthetic_report

STRONG = "quiet river lantern 4471"


def _new_user(client, tokens, role: str, prefix: str = "u") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    res = client.post("/api/v1/users", json={"username": name, "password": STRONG, "roles": [role]},
                      headers=tokens["admin"])
    assert res.status_code == 201, res.get_json()
    return name


def _token(client, username: str, password: str = STRONG, **extra) -> dict:
    res = client.post("/api/v1/auth/token", json={"username": username, "password": password, **extra})
    assert res.status_code == 200, res.get_json()
    return {"Authorization": f"Bearer {res.get_json()['access_token']}"}


# --- forgery -------------------------------------------------------------------------------------


def _strings(value, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, bytes):
        out.add(value.decode("latin-1"))
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def _everything_an_attacker_copied(mongo, settings: Settings) -> set[str]:
    """Every string in every database of the stack, every printable run in the files under the
    database's folder, and every setting of the verifying processes' environment."""
    found: set[str] = set()
    for name in mongo.list_database_names():
        if not name.startswith(settings.db_prefix):
            continue
        for coll in mongo[name].list_collection_names():
            for doc in mongo[name][coll].find({}):
                _strings(doc, found)
    for path in Path(settings.var_dir, "ferretdb").rglob("*"):
        if path.is_file():
            found.update(m.decode("latin-1") for m in re.findall(rb"[\x20-\x7e]{16,}", path.read_bytes()))
    found.update(v for k, v in settings.__dict__.items() if isinstance(v, str))
    return {s for s in found if s}


def _hs(claims: dict, secret: str, algorithm: str = "HS256") -> str:
    """A token an attacker signs with a guessed secret (short secrets too: PyJWT only warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret.encode(), algorithm=algorithm)


def _forged_claims(admin_user: dict, session_id: str, kind: str) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"iss": "nrw", "sub": admin_user["user_id"], "name": admin_user["_id"], "sid": session_id,
            "ver": admin_user["version"], "typ": kind, "scope": "full", "iat": now,
            "exp": now + dt.timedelta(days=3650), "jti": uuid.uuid4().hex}


def test_a_copy_of_every_database_and_the_verifiers_settings_cannot_forge_a_token_or_session(
        settings, mongo, intake_app, case_app, client, case_client, tokens, users):
    client.get("/api/v1/audit", headers=tokens["admin"])  # everything has been touched once
    identity_db = intake_app.extensions["nrw"].identity_db
    admin = identity_db["users"].find_one({"_id": users["admin"]})
    live_session = identity_db["sessions"].find_one({"user_id": admin["user_id"]})["_id"]
    candidates = _everything_an_attacker_copied(mongo, settings)
    assert len(candidates) > 100  # the copy is real
    private_pem = keys.token_key_path(settings).read_text()
    assert not any("PRIVATE KEY" in s for s in candidates)
    assert private_pem.split("\n")[1] not in "\n".join(candidates)

    verifier = case_app.extensions["nrw"].token_verifier
    forged = []
    for secret in candidates:
        for algorithm in ("HS256", "HS512"):
            forged.append(_hs(_forged_claims(admin, live_session, "access"), secret, algorithm))
    forged.append(jwt.encode(_forged_claims(admin, live_session, "access"), None, algorithm="none"))
    for token in forged:
        with pytest.raises(Exception):
            verifier.claims(token)
    for token in forged[:40] + forged[-3:]:  # and over HTTP, on a reading and on the issuing service
        header = {"Authorization": f"Bearer {token}"}
        assert case_client.get("/api/v1/cases", headers=header).status_code == 401
        assert client.get("/api/v1/audit", headers=header).status_code == 401

    # a page session: the cookie secret is on the verifiers' disks, but the login inside the
    # cookie is the issuer's signature, which no copied string makes
    cookie_secret = case_app.extensions["nrw"].cookie_secret
    interface = SecureCookieSessionInterface()
    for secret in [cookie_secret, *list(candidates)[:200]]:
        signer = URLSafeTimedSerializer(secret, salt=interface.salt, serializer=interface.serializer,
                                        signer_kwargs={"key_derivation": "hmac", "digest_method": interface.digest_method})
        fake_login = _hs(_forged_claims(admin, live_session, "session"), secret)
        cookie = signer.dumps({"auth": fake_login, "seen": 2e9, "lang": "en"})
        for target in (client, case_client):
            target.set_cookie("nrw_session", cookie)
            page = target.get("/audit" if target is client else "/cases")
            assert page.status_code == 302 and "/login" in page.headers["Location"], secret[:8]
            target.delete_cookie("nrw_session")


def test_key_files_are_private_and_only_the_issuer_reads_the_private_key(settings, case_app, intake_app):
    folder = keys.token_key_path(settings).parent
    assert folder.stat().st_mode & 0o777 == 0o700
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    with pytest.raises(RuntimeError):
        case_app.extensions["nrw"].token_signer  # a verifying process cannot mint
    with pytest.raises(RuntimeError):
        case_app.extensions["nrw"].otp_key


# --- revocation ----------------------------------------------------------------------------------


def test_disabling_a_user_ends_their_tokens_and_page_sessions_at_once(client, case_client, tokens):
    name = _new_user(client, tokens, "caseworker")
    bearer = _token(client, name)
    assert case_client.get("/api/v1/cases", headers=bearer).status_code == 200
    assert page_login(case_client, name, STRONG, next_path="/cases").status_code == 302
    assert case_client.get("/cases").status_code == 200

    off = client.patch(f"/api/v1/users/{name}", json={"active": False}, headers=tokens["admin"])
    assert off.status_code == 200 and off.get_json()["active"] is False
    for service in (client, case_client):
        refused = service.get("/api/v1/cases" if service is case_client else "/api/v1/reports/x", headers=bearer)
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "session_ended"
    page = case_client.get("/cases")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert client.post("/api/v1/auth/token", json={"username": name, "password": STRONG}).status_code == 401

    on = client.patch(f"/api/v1/users/{name}", json={"active": True}, headers=tokens["admin"])
    assert on.status_code == 200
    assert case_client.get("/api/v1/cases", headers=bearer).status_code == 401  # the old token stays ended
    assert case_client.get("/api/v1/cases", headers=_token(client, name)).status_code == 200


def test_after_logout_the_old_cookie_and_token_open_nothing(intake_app, case_client, tokens):
    client = intake_app.test_client()
    name = _new_user(client, tokens, "caseworker")
    assert page_login(client, name, STRONG).status_code == 302
    old_cookie = client.get_cookie("nrw_session").value
    assert client.get("/reports").status_code == 200
    html = client.get("/reports").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302

    replay = intake_app.test_client()
    replay.set_cookie("nrw_session", old_cookie)
    page = replay.get("/reports")
    assert page.status_code == 302 and "/login" in page.headers["Location"]

    bearer = _token(client, name)
    assert client.post("/api/v1/auth/logout", headers=bearer).status_code == 200
    assert case_client.get("/api/v1/cases", headers=bearer).status_code == 401


def test_a_role_removed_is_refused_at_once_and_roles_come_from_the_account(client, case_client, tokens):
    name = _new_user(client, tokens, "caseworker")
    bearer = _token(client, name)
    assert client.post("/api/v1/reports", json=synthetic_report(), headers=bearer).status_code == 201
    changed = client.patch(f"/api/v1/users/{name}", json={"roles": ["analyst"]}, headers=tokens["admin"])
    assert changed.status_code == 200 and changed.get_json()["roles"] == ["analyst"]
    refused = client.post("/api/v1/reports", json=synthetic_report(), headers=bearer)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert case_client.get("/api/v1/cases", headers=bearer).status_code == 401  # the old token has ended
    analyst = _token(client, name)
    assert client.post("/api/v1/reports", json=synthetic_report(), headers=analyst).status_code == 403
    assert case_client.get("/api/v1/cases", headers=analyst).status_code == 200


def test_a_deleted_user_is_gone_but_the_audit_trail_still_names_them(client, tokens, intake_app):
    name = _new_user(client, tokens, "caseworker")
    bearer = _token(client, name)
    created = client.post("/api/v1/reports", json=synthetic_report(), headers=bearer).get_json()
    assert client.get(f"/api/v1/reports/{created['report_id']}", headers=bearer).status_code == 200
    user_id = intake_app.extensions["nrw"].identity_db["users"].find_one({"_id": name})["user_id"]
    assert client.delete(f"/api/v1/users/{name}", headers=tokens["admin"]).status_code == 204
    assert client.get(f"/api/v1/reports/{created['report_id']}", headers=bearer).status_code == 401
    listed = client.get("/api/v1/users", headers=tokens["admin"]).get_json()["items"]
    assert name not in {u["username"] for u in listed}
    trail = client.get(f"/api/v1/audit?user_id={user_id}", headers=tokens["admin"]).get_json()["items"]
    assert trail and all(e["user_id"] == user_id for e in trail)
    assert client.delete(f"/api/v1/users/{name}", headers=tokens["admin"]).status_code == 404


def test_users_list_shows_no_secret_and_account_changes_are_audited(client, tokens, intake_app):
    name = _new_user(client, tokens, "advocate")
    listed = client.get("/api/v1/users", headers=tokens["admin"])
    assert listed.status_code == 200 and "no-store" in listed.headers["Cache-Control"]
    me = next(u for u in listed.get_json()["items"] if u["username"] == name)
    assert set(me) >= {"username", "roles", "active", "otp_enrolled", "created_at", "last_login_at"}
    assert "hash" not in json.dumps(listed.get_json()) and STRONG not in listed.get_data(as_text=True)
    assert client.post(f"/api/v1/users/{name}/password", json={"password": "amber window falcon 2290"},
                       headers=tokens["admin"]).status_code == 200
    scoped = client.post("/api/v1/auth/token", json={"username": name, "password": "amber window falcon 2290"})
    assert scoped.get_json()["scope"] == "password_change"
    header = {"Authorization": f"Bearer {scoped.get_json()['access_token']}"}
    assert client.get("/api/v1/appeals", headers=header).status_code in (403, 404)
    changed = client.post("/api/v1/auth/password", headers=header,
                          json={"old_password": "amber window falcon 2290", "new_password": "cobalt meadow piano 5512"})
    assert changed.status_code == 200
    assert "scope" not in client.post("/api/v1/auth/token", json={"username": name,
                                                                   "password": "cobalt meadow piano 5512"}).get_json()
    actions = {e["action"] for e in intake_app.extensions["nrw"].db["audit"].find({"what": "account", "target": name})}
    assert {"user_created", "password_reset", "password_changed"} <= actions


# --- guessing ------------------------------------------------------------------------------------


def test_weak_passwords_are_refused_at_creation_with_a_clear_message(client, tokens):
    for password, username in (("aaaaaaaaaaaa", "weak-one"), ("password1234", "weak-two"),
                               ("cw-quiet-river-1", "cw-quiet-river-1"), ("short", "weak-three")):
        res = client.post("/api/v1/users", json={"username": username, "password": password, "roles": ["analyst"]},
                          headers=tokens["admin"])
        assert res.status_code == 422, password
        assert res.get_json()["error"]["fields"]["password"], password
        assert password not in json.dumps(res.get_json())


def test_repeated_wrong_passwords_lock_the_account_and_the_right_one_is_refused_too(client, case_client, tokens,
                                                                                     intake_server):
    name = _new_user(client, tokens, "analyst")
    ghost = "ghost-" + uuid.uuid4().hex[:8]
    answers = {}
    for who in (name, ghost):
        for _ in range(5):
            res = client.post("/api/v1/auth/token", json={"username": who, "password": "wrong guess 000111"})
            assert res.status_code == 401
        locked = client.post("/api/v1/auth/token", json={"username": who, "password": STRONG})
        answers[who] = locked
        # and the same through another service, which hands the login to intake
        other = case_client.post("/api/v1/auth/token", json={"username": who, "password": STRONG})
        assert other.status_code == 429 and int(other.headers["Retry-After"]) > 0
    for who, res in answers.items():
        assert res.status_code == 429, who
        assert res.get_json()["error"]["code"] == "too_many_attempts"
        assert 1 <= int(res.headers["Retry-After"]) <= 3600
    assert answers[name].get_json() == answers[ghost].get_json() or \
        {k: v for k, v in answers[name].get_json()["error"].items() if k != "message"} == \
        {k: v for k, v in answers[ghost].get_json()["error"].items() if k != "message"}


# --- the second factor ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_intake(settings):
    """Intake with the default second-factor roles (admin, caseworker, advocate)."""
    app = intake_factory(Settings(**{**settings.__dict__, "twofa_roles": ("admin", "advocate", "caseworker")}))
    app.testing = True
    return app.test_client()


def _code(secret: str, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(secret)
    return totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30 * offset_steps))


def test_a_caseworker_must_enrol_then_log_in_with_a_code_or_a_recovery_code_once(strict_intake, client, tokens):
    name = _new_user(client, tokens, "caseworker", prefix="otp")
    first = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG})
    assert first.status_code == 200 and first.get_json()["scope"] == "otp_enrolment"
    enrol = {"Authorization": f"Bearer {first.get_json()['access_token']}"}
    blocked = strict_intake.post("/api/v1/reports", json=synthetic_report(), headers=enrol)
    assert blocked.status_code == 403 and blocked.get_json()["error"]["code"] == "otp_enrolment"

    started = strict_intake.post("/api/v1/auth/totp", headers=enrol)
    assert started.status_code == 200
    uri, secret = started.get_json()["otpauth_uri"], started.get_json()["secret"]
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
    wrong = strict_intake.post("/api/v1/auth/totp/confirm", json={"otp": "000000" if _code(secret) != "000000"
                                                                   else "111111"}, headers=enrol)
    assert wrong.status_code == 422
    confirmed = strict_intake.post("/api/v1/auth/totp/confirm", json={"otp": _code(secret)}, headers=enrol)
    assert confirmed.status_code == 200
    recovery = confirmed.get_json()["recovery_codes"]
    assert len(recovery) == 10 and len(set(recovery)) == 10

    missing = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG})
    assert missing.status_code == 401 and missing.get_json()["error"]["code"] == "otp_required"
    bad = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG, "otp": "12345x"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "invalid_credentials"
    good = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG,
                                                          "otp": _code(secret, 1)})
    assert good.status_code == 200 and "scope" not in good.get_json()
    replayed = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG,
                                                              "otp": _code(secret, 1)})
    assert replayed.status_code == 401  # a code is taken once
    by_recovery = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG,
                                                                 "otp": recovery[0]})
    assert by_recovery.status_code == 200
    again = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG, "otp": recovery[0]})
    assert again.status_code == 401
    stored = json.dumps(strict_intake.application.extensions["nrw"].identity_db["users"].find_one({"_id": name}),
                        default=str)
    assert secret not in stored and recovery[1] not in stored  # sealed and hashed

    reset = client.delete(f"/api/v1/users/{name}/otp", headers=tokens["admin"])
    assert reset.status_code == 200 and reset.get_json()["otp_enrolled"] is False
    after = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG})
    assert after.get_json()["scope"] == "otp_enrolment"


def test_the_second_factor_is_not_asked_of_roles_outside_the_setting(strict_intake, client, tokens):
    name = _new_user(client, tokens, "analyst", prefix="otp")
    res = strict_intake.post("/api/v1/auth/token", json={"username": name, "password": STRONG})
    assert res.status_code == 200 and "scope" not in res.get_json()


def test_a_token_lives_fifteen_minutes_by_default():
    assert Settings().token_ttl_seconds == 900 and Settings().session_absolute_hours == 12
    assert set(Settings().twofa_roles) == {"admin", "caseworker", "advocate"}


def test_a_page_session_ends_at_its_absolute_limit_whatever_the_activity(intake_app, tokens):
    client = intake_app.test_client()
    name = _new_user(client, tokens, "caseworker")
    assert page_login(client, name, STRONG).status_code == 302
    token = jwt.decode(_session_token(client, intake_app), options={"verify_signature": False})
    assert token["exp"] - token["iat"] == 12 * 3600  # NRW_SESSION_ABSOLUTE_HOURS
    assert client.get("/reports").status_code == 200
    sessions = intake_app.extensions["nrw"].identity_db["sessions"]
    sessions.update_one({"_id": token["sid"]}, {"$set": {"expires_at": dt.datetime.now(dt.timezone.utc)}})
    page = client.get("/reports")  # active a moment ago, but past the absolute limit
    assert page.status_code == 302 and "/login" in page.headers["Location"]


def _session_token(client, app) -> str:
    interface = SecureCookieSessionInterface()
    serializer = interface.get_signing_serializer(app)
    return serializer.loads(client.get_cookie("nrw_session").value)["auth"]


# --- found by attacking it -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["totp", "recovery"])
def test_one_code_sent_many_times_at_once_opens_one_login(strict_intake, client, tokens, kind):
    name = _new_user(client, tokens, "advocate", prefix="otp")
    enrol = {"Authorization": "Bearer " + strict_intake.post(
        "/api/v1/auth/token", json={"username": name, "password": STRONG}).get_json()["access_token"]}
    secret = strict_intake.post("/api/v1/auth/totp", headers=enrol).get_json()["secret"]
    codes = strict_intake.post("/api/v1/auth/totp/confirm", json={"otp": _code(secret)},
                               headers=enrol).get_json()["recovery_codes"]
    otp = _code(secret, 1) if kind == "totp" else codes[0]
    app = strict_intake.application
    barrier = threading.Barrier(5)  # fewer than the failures that lock the account
    answers = []

    def attempt():
        barrier.wait()
        answers.append(app.test_client().post("/api/v1/auth/token", json={
            "username": name, "password": STRONG, "otp": otp}).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 401, 401, 401, 401]


def test_two_admins_disabling_each_other_at_once_leave_one_admin(intake_app, client, tokens):
    identity_db = intake_app.extensions["nrw"].identity_db
    others = [u["_id"] for u in identity_db["users"].find({"roles": "admin", "active": True})]
    identity_db["users"].update_many({"_id": {"$in": others}}, {"$set": {"active": False}})
    try:
        pair = []
        for _ in range(2):
            name = f"adm-{uuid.uuid4().hex[:6]}"
            identity_db["users"].insert_one({"_id": name, "user_id": str(uuid.uuid4()), "roles": ["admin"],
                                             "active": True, "version": 1, "password_hash": "x"})
            pair.append(name)
        headers = {}
        for name in pair:  # a live session for each, signed by the issuer as a login would be
            user = identity_db["users"].find_one({"_id": name})
            from shared import accounts
            with intake_app.test_request_context():
                token, _ = accounts.start_session(intake_app.extensions["nrw"], user, kind=auth.ACCESS,
                                                  scope=auth.FULL, now=dt.datetime.now(dt.timezone.utc))
            headers[name] = {"Authorization": f"Bearer {token}"}
        barrier = threading.Barrier(2)
        answers = []

        def disable(actor, target):
            barrier.wait()
            answers.append(intake_app.test_client().patch(f"/api/v1/users/{target}", json={"active": False},
                                                          headers=headers[actor]).status_code)

        threads = [threading.Thread(target=disable, args=(pair[0], pair[1])),
                   threading.Thread(target=disable, args=(pair[1], pair[0]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert identity_db["users"].count_documents({"_id": {"$in": pair}, "active": True}) == 1, answers
        assert sorted(answers)[0] == 200 and sorted(answers)[1] in (401, 409)
    finally:
        identity_db["users"].update_many({"_id": {"$in": others}}, {"$set": {"active": True}})
        identity_db["users"].delete_many({"_id": {"$in": pair}})


def test_a_name_leaves_intake_only_with_named_consent_and_each_service_token_once(client, tokens, settings):
    named = client.post("/api/v1/reports", json=synthetic_report(), headers=tokens["caseworker"]).get_json()
    anonymous = client.post("/api/v1/reports", headers=tokens["caseworker"], json=synthetic_report(
        consent={"advocacy": "anonymous", "statistics": True})).get_json()
    key = keys.load_private(keys.service_key_path(settings, "advocacy"))
    token = auth.service_token("advocacy", key)
    ok = client.get(f"/api/v1/cases/{named['case_id']}/name?reason=letter", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    again = client.get(f"/api/v1/cases/{named['case_id']}/name", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401  # a copied service token opens nothing more
    refused = client.get(f"/api/v1/cases/{anonymous['case_id']}/name",
                         headers={"Authorization": f"Bearer {auth.service_token('advocacy', key)}"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "no_consent"
    long_lived = auth.service_token("advocacy", key, ttl_seconds=86400)
    assert client.get(f"/api/v1/cases/{named['case_id']}/name",
                      headers={"Authorization": f"Bearer {long_lived}"}).status_code == 401


def test_an_address_that_fails_across_many_usernames_is_locked_for_every_username(client):
    for n in range(20):  # four times a username's threshold, each a different (made-up) username
        res = client.post("/api/v1/auth/token", json={"username": f"spray-{n}-{uuid.uuid4().hex[:4]}",
                                                      "password": "sprayed password 2024"})
        assert res.status_code == 401
    locked = client.post("/api/v1/auth/token", json={"username": "admin", "password": "anything at all 1"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    assert locked.get_json()["error"]["code"] == "too_many_attempts"
