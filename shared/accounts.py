"""Logging in, the second factor, and the accounts of users: the `/api/v1/auth/*` and
`/api/v1/users*` routes of every service.

Intake's web process is the issuer: it alone holds the signing key and answers these routes.
Every other service answers them by handing the request to intake (with the client's address,
signed with the web processes' shared secret, so that guessing is counted per address there
too), so a login, a lock or an account change is one and the same everywhere. Each change to an
account is written to intake's audit trail and ends the user's logins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass
from urllib.parse import quote

import requests
from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from pymongo.errors import DuplicateKeyError

from shared import audit_events, auth, identity, keys, passwords, throttle, twofactor
from shared.audit import audit_trail
from shared.errors import ApiError
from shared.http import doc, load_body

log = logging.getLogger(__name__)

ADDRESS_HEADER = "X-NRW-Client-Address"
ADDRESS_SIGNATURE = "X-NRW-Client-Signature"
USERNAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,63}$",
                           error="Use 2-64 lower-case letters, digits, dots, dashes or underscores.")


class TokenRequest(Schema):
    """Credentials for POST /api/v1/auth/token."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)
    otp = fields.String(load_default=None, validate=validate.Length(max=32), load_only=True)


class TokenResponse(Schema):
    """A bearer token and what it allows."""

    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    roles = fields.List(fields.String())
    scope = fields.String()


class UserCreate(Schema):
    """A new user, created by an admin."""

    username = fields.String(required=True, validate=USERNAME)
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))
    roles = fields.List(fields.String(validate=validate.OneOf(auth.ROLES)), required=True,
                        validate=validate.Length(min=1))

    @validates_schema(skip_on_field_errors=False)
    def _strong_password(self, data: dict, **_kwargs) -> None:
        if isinstance(data.get("password"), str):
            problems = passwords.password_problems(data["password"], data.get("username") or "")
            if problems:
                raise ValidationError({"password": passwords.problem_messages(problems)})


class UserChange(Schema):
    """What an admin may change of a user."""

    roles = fields.List(fields.String(validate=validate.OneOf(auth.ROLES)), validate=validate.Length(min=1))
    active = fields.Boolean()


class PasswordSet(Schema):
    """A one-time password an admin gives a user (to be changed at the next login)."""

    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))


class PasswordChange(Schema):
    """A user changing their own password."""

    old_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))


class OtpConfirm(Schema):
    """A code from the authenticator app."""

    otp = fields.String(required=True, validate=validate.Length(min=1, max=32))


class UserOut(Schema):
    """A user as the API shows it (never a hash or a secret)."""

    username = fields.String()
    user_id = fields.String()
    roles = fields.List(fields.String())
    active = fields.Boolean()
    otp_enrolled = fields.Boolean()
    must_change_password = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class UserList(Schema):
    """Every user."""

    items = fields.List(fields.Nested(UserOut))


class TotpStart(Schema):
    """What an authenticator app needs."""

    otpauth_uri = fields.String()
    secret = fields.String()


class RecoveryCodes(Schema):
    """Ten one-time codes, shown once."""

    recovery_codes = fields.List(fields.String())


# --- logging in (the issuer) ------------------------------------------------------------------------


@dataclass
class LoginResult:
    """A password accepted: the user, and whether a second factor is still to come."""

    user: dict
    scope: str
    otp_pending: bool


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def needs_second_factor(user: dict, settings) -> bool:
    """True if the user's roles require a second factor (NRW_2FA_ROLES)."""
    return bool(set(user.get("roles", [])) & set(settings.twofa_roles))


def check_password_step(res, username: str, password: str, address: str, now: dt.datetime) -> LoginResult:
    """The first step of every login: throttled per username and address (locked or too fast:
    429 `too_many_attempts` with Retry-After, also for the right password, and the same whether
    or not the user exists), then the password."""
    db = res.identity_db
    try:
        throttle.check(db, username, address, now, policy=_policy(res))
    except throttle.Throttled as exc:
        raise too_many(exc.retry_after_seconds) from None
    user = identity.check_password(db, username, password)
    if user is None:
        failed_login(res, username, address, now, step="password")
        raise ApiError(401, "invalid_credentials", "Wrong username or password.")
    enrolled = bool(user.get("otp_secret"))
    if enrolled:
        return LoginResult(user, auth.FULL, otp_pending=True)
    throttle.record_success(db, username, address, now, policy=_policy(res))
    if needs_second_factor(user, res.settings):
        return LoginResult(user, auth.OTP_ENROLMENT, otp_pending=False)
    return LoginResult(user, _scope_after_factors(user), otp_pending=False)


def failed_login(res, username: str, address: str, now: dt.datetime, *, step: str, account: dict | None = None) -> None:
    """Count a failed attempt (throttle) and write it to the audit trail, with each lock it starts:
    one entry per failure and per lock; attempts refused while locked are not counted, so a lock
    cannot be used to flood the trail. A name that is no account (it may be a password typed in
    the wrong field) is kept only as a keyed hash under the audit key."""
    locks = throttle.record_failure(res.identity_db, username, address, now, policy=_policy(res))
    account = account or identity.find_user(res.identity_db, username)
    who = ({"user_id": account.get("user_id"), "username": account["_id"], "target": account["_id"]} if account else
           {"user_id": None, "username": None,
            "unknown_username": audit_events.unknown_username_digest(keys.audit_key(res.settings), username)})
    base = {"at": now, **who, "what": audit_events.WHAT["login_failed"], "report_id": "", "case_id": "",
            "reason": None, "remote_addr": address}
    entries = [{**base, "action": "login_failed", "detail": step}]
    entries += [{**base, "action": "login_locked", "detail": f"{lock} {seconds:.0f}s"} for lock, seconds in locks.items()]
    audit_trail(res.db, res.settings).append_many(entries)


def _policy(res) -> throttle.Policy:
    return throttle.Policy.from_settings(res.settings)


def _scope_after_factors(user: dict) -> str:
    return auth.PASSWORD_CHANGE if user.get("must_change_password") else auth.FULL


def check_otp_step(res, user: dict, code: str, address: str, now: dt.datetime, *, counted: bool = False) -> str:
    """The second step: a TOTP code (each used once) or a recovery code (each used once). The
    scope of the login that follows; 401 `invalid_credentials` for a wrong code (counted as a
    failed attempt). `counted`: this request's attempt was already throttled by the password step
    (the API's one request), so it is not counted twice."""
    db = res.identity_db
    if not counted:
        try:
            throttle.check(db, user["_id"], address, now, policy=_policy(res))
        except throttle.Throttled as exc:
            raise too_many(exc.retry_after_seconds) from None
    if not _accept_second_factor(res, user, code, now):
        failed_login(res, user["_id"], address, now, step="second_factor", account=user)
        raise ApiError(401, "invalid_credentials", "Wrong username, password or code.")
    throttle.record_success(db, user["_id"], address, now, policy=_policy(res))
    return _scope_after_factors(user)


def _accept_second_factor(res, user: dict, code: str, now: dt.datetime) -> bool:
    users = res.identity_db["users"]
    if twofactor.looks_like_recovery_code(code):
        digest = twofactor.recovery_hash(code, res.otp_key)
        if digest not in user.get("recovery_codes", []) or not _first_use(res, f"rc:{user['user_id']}:{digest}", now):
            return False
        users.update_one({"_id": user["_id"]}, {"$pull": {"recovery_codes": digest}})
        audit(res, "recovery_code_used", target=user["_id"], actor=user)
        return True
    secret = twofactor.unseal(user["otp_secret"], res.otp_key, user["_id"])
    step = twofactor.accepted_step(secret, code, user.get("otp_last_step"), now)
    if step is None or not _first_use(res, f"otp:{user['user_id']}:{step}", now):
        return False
    users.update_one({"_id": user["_id"]}, {"$set": {"otp_last_step": step}})
    return True


def _first_use(res, key: str, now: dt.datetime) -> bool:
    """True the first time a code (a TOTP time step, a recovery code) is used, for requests racing
    too: an insert with a unique _id is atomic even where FerretDB does not isolate updates."""
    try:
        res.identity_db["used_codes"].insert_one({"_id": key, "at": now})
    except DuplicateKeyError:
        return False
    return True


def start_session(res, user: dict, *, kind: str, scope: str, now: dt.datetime) -> tuple[str, float]:
    """Open a session and sign its token: (token, lifetime in seconds). Access tokens live
    NRW_TOKEN_TTL_SECONDS; page sessions NRW_SESSION_ABSOLUTE_HOURS at most (the idle limit is
    checked on each page request); a token for unfinished set-up lives 10 minutes."""
    if scope != auth.FULL:
        lifetime = 600.0
    elif kind == auth.SESSION:
        lifetime = res.settings.session_absolute_hours * 3600
    else:
        lifetime = float(res.settings.token_ttl_seconds)
    session_id = identity.open_session(res.identity_db, user, kind=kind, lifetime_s=lifetime, now=now)
    if scope == auth.FULL:
        identity.record_login(res.identity_db, user["_id"], now)
    return res.token_signer.sign(user, session_id=session_id, kind=kind, scope=scope, ttl_seconds=lifetime,
                                 now=now), lifetime


def too_many(retry_after: float) -> ApiError:
    """429 `too_many_attempts` with Retry-After."""
    seconds = max(1, int(retry_after + 0.999))
    return ApiError(429, "too_many_attempts", f"Too many attempts; try again in {seconds} seconds.",
                    headers={"Retry-After": str(seconds)})


def client_address(res) -> str:
    """The client's address: the request's own, or, for a login handed on by another service,
    the address that service saw (trusted only with a valid signature)."""
    claimed = request.headers.get(ADDRESS_HEADER)
    signature = request.headers.get(ADDRESS_SIGNATURE, "")
    if claimed and hmac.compare_digest(_sign_address(res, claimed), signature):
        return claimed
    return request.remote_addr or "unknown"


def _sign_address(res, address: str) -> str:
    return hmac.new(res.cookie_secret.encode(), b"client-address:" + address.encode(), hashlib.sha256).hexdigest()


def audit(res, action: str, *, target: str, actor: dict | None = None, detail: str | None = None) -> None:
    """An account change in intake's audit trail (who, when, from where, to whom), appended to its
    chain like every entry (shared/audit.py)."""
    actor = actor or auth.current_user()
    audit_trail(res.db, res.settings).append({
        "at": _utcnow(), "user_id": actor.get("user_id") or actor.get("id"),
        "username": actor.get("_id") or actor.get("username"), "what": "account", "action": action,
        "target": target, "reason": detail, "report_id": "", "case_id": "", "remote_addr": client_address(res),
    })


# --- routes -------------------------------------------------------------------------------------------


def accounts_blueprint(service: str) -> Blueprint:
    """The account routes; on every service but intake they are answered by intake."""
    bp = Blueprint("accounts", __name__)

    if service != "intake":
        @bp.before_request
        def hand_to_issuer():
            if request.path != "/api/v1/auth/token":  # a forged or missing token goes no further
                current_app.extensions["nrw"].token_verifier.claims(auth.bearer_token())
            return forward_to_issuer()

    @bp.post("/api/v1/auth/token")
    @doc(summary="Exchange a username, password and (when enrolled) a second-factor code for a bearer token",
         body=TokenRequest, responses={200: TokenResponse, 401: None, 429: None}, public=True)
    def token():
        """Log in: a bearer token valid on all four services for NRW_TOKEN_TTL_SECONDS."""
        creds = load_body(TokenRequest())
        res = current_app.extensions["nrw"]
        now, address = _utcnow(), client_address(res)
        step = check_password_step(res, creds["username"], creds["password"], address, now)
        scope = step.scope
        if step.otp_pending:
            if not creds.get("otp"):
                raise ApiError(401, "otp_required", "Send the code from your authenticator app as 'otp'.")
            scope = check_otp_step(res, step.user, creds["otp"], address, now, counted=True)
        token_, lifetime = start_session(res, step.user, kind=auth.ACCESS, scope=scope, now=now)
        body = {"access_token": token_, "token_type": "Bearer", "expires_in": int(lifetime),
                "roles": step.user["roles"]}
        if scope != auth.FULL:
            body["scope"] = scope
        return jsonify(body)

    @bp.post("/api/v1/auth/logout")
    @auth.require_login(scopes=(auth.FULL, auth.OTP_ENROLMENT, auth.PASSWORD_CHANGE))
    @doc(summary="End this token's session", responses={200: None})
    def logout():
        """Every token of this login is refused from now on."""
        identity.end_session(current_app.extensions["nrw"].identity_db, g.user["session_id"])
        return jsonify({"logged_out": True})

    @bp.post("/api/v1/auth/password")
    @auth.require_login(scopes=(auth.FULL, auth.PASSWORD_CHANGE))
    @doc(summary="Change your own password (ends your logins)", body=PasswordChange, responses={200: None, 429: None})
    def change_own_password():
        """With the old password; every login of the user ends, so log in again."""
        body = load_body(PasswordChange())
        res = current_app.extensions["nrw"]
        change_password(res, g.user["username"], body["old_password"], body["new_password"])
        return jsonify({"changed": True})

    @bp.post("/api/v1/auth/totp")
    @auth.require_login(scopes=(auth.FULL, auth.OTP_ENROLMENT))
    @doc(summary="Start enrolling a second factor: the otpauth:// URI to scan", responses={200: TotpStart, 409: None})
    def totp_start():
        """A new secret, kept pending until a code from it is confirmed."""
        res = current_app.extensions["nrw"]
        return jsonify(start_enrolment(res, g.user["username"]))

    @bp.post("/api/v1/auth/totp/confirm")
    @auth.require_login(scopes=(auth.FULL, auth.OTP_ENROLMENT))
    @doc(summary="Finish enrolling: a code from the app; answers ten recovery codes, shown once",
         body=OtpConfirm, responses={200: RecoveryCodes, 409: None})
    def totp_confirm():
        """The second factor is on from now; ask for a new token with `otp`."""
        body = load_body(OtpConfirm())
        res = current_app.extensions["nrw"]
        codes = confirm_enrolment(res, g.user["username"], body["otp"], _utcnow())
        return jsonify({"recovery_codes": codes})

    @bp.get("/api/v1/users")
    @auth.require_roles("admin")
    @doc(summary="Every user (admin)", responses={200: UserList})
    def list_users():
        """Users with roles, activity, second factor and last login; never a hash."""
        db = current_app.extensions["nrw"].identity_db
        users = sorted(db["users"].find({}), key=lambda u: u["_id"])
        return jsonify(UserList().dump({"items": [identity.public_view(u) for u in users]}))

    @bp.post("/api/v1/users")
    @auth.require_roles("admin")
    @doc(summary="Create a user (admin)", body=UserCreate, responses={201: UserOut, 409: None})
    def create_user():
        """Create a user with roles (password rules: 12+ characters, not the username, not common)."""
        data = load_body(UserCreate())
        res = current_app.extensions["nrw"]
        user = create_account(res, data["username"], data["password"], data["roles"])
        return jsonify(UserOut().dump(identity.public_view(user))), 201

    @bp.patch("/api/v1/users/<username>")
    @auth.require_roles("admin")
    @doc(summary="Change a user's roles or disable/enable them (admin; ends their logins)", body=UserChange,
         responses={200: UserOut, 404: None})
    def change_user(username: str):
        """Roles and activity come from here, never from a token."""
        data = load_body(UserChange())
        res = current_app.extensions["nrw"]
        user = update_user(res, username, data)
        return jsonify(UserOut().dump(identity.public_view(user)))

    @bp.post("/api/v1/users/<username>/password")
    @auth.require_roles("admin")
    @doc(summary="Give a user a one-time password they must change at the next login (admin)", body=PasswordSet,
         responses={200: UserOut, 404: None})
    def reset_password(username: str):
        """The user's logins end; the next one leads to choosing a new password."""
        data = load_body(PasswordSet())
        res = current_app.extensions["nrw"]
        user = give_one_time_password(res, username, data["password"])
        return jsonify(UserOut().dump(identity.public_view(user)))

    @bp.delete("/api/v1/users/<username>/otp")
    @auth.require_roles("admin")
    @doc(summary="Reset a user's second factor (admin); they enrol again at the next login",
         responses={200: UserOut, 404: None})
    def reset_otp(username: str):
        """Removes the TOTP secret and recovery codes; ends the user's logins."""
        res = current_app.extensions["nrw"]
        user = reset_second_factor(res, username)
        return jsonify(UserOut().dump(identity.public_view(user)))

    @bp.delete("/api/v1/users/<username>")
    @auth.require_roles("admin")
    @doc(summary="Delete a user (admin); the audit trail keeps naming them", responses={204: None, 404: None, 409: None})
    def delete_user(username: str):
        """The account and its logins end; audit entries keep its id and name."""
        res = current_app.extensions["nrw"]
        remove_user(res, username)
        return "", 204

    return bp


# --- account changes (the API and the admin page share these) ---------------------------------------


def create_account(res, username: str, password: str, roles: list[str]) -> dict:
    """A new user (password rules checked), in the audit trail."""
    user = identity.create_user(res.identity_db, username, password, roles)
    audit(res, "user_created", target=user["_id"], detail=",".join(user["roles"]))
    return user


def give_one_time_password(res, username: str, password: str) -> dict:
    """A password the user must change at the next login; their logins end; audited."""
    user = identity.set_password(res.identity_db, username, password, must_change=True)
    audit(res, "password_reset", target=username)
    return user


def change_password(res, username: str, old: str, new: str) -> None:
    """A user's own change, with the old password (throttled like a login)."""
    now, address = _utcnow(), client_address(res)
    try:
        throttle.check(res.identity_db, username, address, now, policy=_policy(res))
    except throttle.Throttled as exc:
        raise too_many(exc.retry_after_seconds) from None
    user = identity.check_password(res.identity_db, username, old)
    if user is None:
        failed_login(res, username, address, now, step="old_password")
        raise ApiError(422, "validation_error", "The old password is wrong.",
                       fields={"old_password": ["The old password is wrong."]})
    if new == old:
        raise ApiError(422, "weak_password", "Choose a password you have not used here.",
                       fields={"password": ["The new password must differ from the old one."]})
    identity.set_password(res.identity_db, username, new, must_change=False)
    audit(res, "password_changed", target=username, actor=user)


def update_user(res, username: str, data: dict) -> dict:
    """Roles and/or activity; the last active admin cannot be removed or disabled."""
    changes = {k: v for k, v in data.items() if k in ("roles", "active")}
    if "roles" in changes:
        changes["roles"] = sorted(set(changes["roles"]))
    if not changes:
        raise ApiError(422, "validation_error", "Send roles and/or active.", fields={"_schema": ["Nothing to change."]})
    current = identity.find_user(res.identity_db, username)
    if current is None:
        raise ApiError(404, "not_found", "No user with that username.")
    losing_admin = "admin" in current["roles"] and current.get("active", True) and (
        ("roles" in changes and "admin" not in changes["roles"]) or changes.get("active") is False)
    with _admins_locked(res) if losing_admin else contextlib.nullcontext():
        if losing_admin:
            _keep_an_admin(res, username)
        user = identity.change_user(res.identity_db, username, changes)
    detail = ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in sorted(changes.items()))
    audit(res, "user_changed", target=username, detail=detail)
    return user


ADMIN_LOCK_STALE_SECONDS = 30


@contextlib.contextmanager
def _admins_locked(res):
    """One change that may remove an admin at a time, across processes (two admins disabling each
    other at once must not leave none): the lock is an insert with a unique _id; one left by a
    process that died is taken over after ADMIN_LOCK_STALE_SECONDS."""
    locks, now = res.identity_db["locks"], _utcnow()
    locks.delete_many({"_id": "admins", "at": {"$lt": now - dt.timedelta(seconds=ADMIN_LOCK_STALE_SECONDS)}})
    try:
        locks.insert_one({"_id": "admins", "at": now})
    except DuplicateKeyError:
        raise ApiError(409, "busy", "Another change to an admin is under way; try again in a moment.") from None
    try:
        yield
    finally:
        locks.delete_one({"_id": "admins"})


def _keep_an_admin(res, username: str) -> None:
    others = res.identity_db["users"].find({"roles": "admin"}, {"_id": 1, "active": 1})
    if not any(u["_id"] != username and u.get("active", True) for u in others):
        raise ApiError(409, "last_admin", "This is the last active admin; make another admin first.")


def remove_user(res, username: str) -> None:
    """Delete an account (not the last admin)."""
    current = identity.find_user(res.identity_db, username)
    if current is None:
        raise ApiError(404, "not_found", "No user with that username.")
    with _admins_locked(res) if "admin" in current["roles"] else contextlib.nullcontext():
        if "admin" in current["roles"]:
            _keep_an_admin(res, username)
        identity.delete_user(res.identity_db, username, _utcnow())
    audit(res, "user_deleted", target=username)


def reset_second_factor(res, username: str) -> dict:
    """Remove a user's TOTP secret and recovery codes."""
    user = identity.change_user(res.identity_db, username, {"otp_secret": None, "recovery_codes": [],
                                                            "otp_pending": None, "otp_last_step": None})
    audit(res, "second_factor_reset", target=username)
    return user


def start_enrolment(res, username: str) -> dict:
    """A new TOTP secret, kept sealed as pending until confirmed; 409 if one is already on."""
    user = identity.find_user(res.identity_db, username)
    if user.get("otp_secret"):
        raise ApiError(409, "otp_enrolled", "A second factor is already set up; an admin can reset it.")
    secret = twofactor.new_secret()
    res.identity_db["users"].update_one({"_id": username}, {"$set": {
        "otp_pending": twofactor.seal(secret, res.otp_key, username)}})
    return {"otpauth_uri": twofactor.provisioning_uri(secret, username), "secret": secret}


def pending_secret(res, username: str) -> str | None:
    """The secret being enrolled, if any."""
    user = identity.find_user(res.identity_db, username)
    sealed = user and user.get("otp_pending")
    return twofactor.unseal(sealed, res.otp_key, username) if sealed else None


def confirm_enrolment(res, username: str, code: str, now: dt.datetime) -> list[str]:
    """Turn the second factor on with a first code; ten recovery codes (only their hashes are
    kept). The user's logins end: the next one asks for a code."""
    user = identity.find_user(res.identity_db, username)
    if user.get("otp_secret"):
        raise ApiError(409, "otp_enrolled", "A second factor is already set up.")
    secret = pending_secret(res, username)
    if secret is None:
        raise ApiError(409, "otp_not_started", "Start with POST /api/v1/auth/totp.")
    step = twofactor.accepted_step(secret, code, None, now)
    if step is None or not _first_use(res, f"otp:{user['user_id']}:{step}", now):
        raise ApiError(422, "validation_error", "That code is not right; check the app's clock and try the next one.",
                       fields={"otp": ["Wrong code."]})
    codes = twofactor.new_recovery_codes()
    identity.change_user(res.identity_db, username, {
        "otp_secret": user["otp_pending"], "otp_pending": None, "otp_last_step": step,
        "recovery_codes": [twofactor.recovery_hash(c, res.otp_key) for c in codes]})
    audit(res, "second_factor_enrolled", target=username, actor=user)
    return codes


# --- handing a request to the issuer ---------------------------------------------------------------


FORWARDED_HEADERS = ("Authorization", "Content-Type", "Accept", "Accept-Language")
RETURNED_HEADERS = ("Content-Type", "Retry-After", "Allow")


def forward_to_issuer() -> Response:
    """Answer this request with intake's answer to it (same method, path, query and body)."""
    res = current_app.extensions["nrw"]
    address = request.remote_addr or "unknown"
    headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
    headers.update({ADDRESS_HEADER: address, ADDRESS_SIGNATURE: _sign_address(res, address)})
    try:
        # The path as it came, encoded again: a username may hold "?", "#" or "%" (found by Schemathesis).
        target = quote(request.path) + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
        answer = requests.request(request.method, res.settings.url_of("intake") + target,
                                  data=request.get_data(), headers=headers, timeout=10, allow_redirects=False)
    except requests.RequestException as exc:
        log.warning("intake did not answer an account request (%s)", type(exc).__name__)
        raise ApiError(503, "unavailable", "The login service is not answering; try again shortly.") from None
    out = Response(answer.content, status=answer.status_code)
    for name in RETURNED_HEADERS:
        if name in answer.headers:
            out.headers[name] = answer.headers[name]
    return out
