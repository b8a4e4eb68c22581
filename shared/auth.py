"""Tokens and the account behind every request.

Intake's web process (the issuer) signs access tokens and page sessions with an Ed25519 key that
only it reads; every process verifies them with the public key (shared/keys.py). A token is a
claim, the account is the truth: each request looks up the user (it exists, is active, its
version is the token's) and the session the token belongs to (not ended, not expired), and takes
the roles from the account. Logging out ends the session; disabling a user, changing their roles
or password bumps their version, which ends every token and page session they hold.

Nothing here imports the web layer: routes live in shared/accounts.py, pages in shared/ui.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app, g, request
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.errors import ApiError

ROLES = ("caseworker", "advocate", "analyst", "admin")
SERVICE_ROLE = "service"
TOKEN_ALGORITHM = "EdDSA"
TOKEN_ISSUER = "nrw"
SERVICE_ISSUER = "nrw-service"
SERVICE_TOKEN_MAX_SECONDS = 300
CLOCK_SKEW_SECONDS = 30

# What a token may be used for. A user who must enrol a second factor, or change a password an
# admin set, gets a token that only opens the routes that do that.
FULL = "full"
OTP_ENROLMENT = "otp_enrolment"
PASSWORD_CHANGE = "password_change"

ACCESS = "access"    # a bearer token of the API
SESSION = "session"  # a browser's login, kept in the page cookie
PENDING = "pending"  # a password accepted, the second factor still to come (pages only)


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who, which session, which account version, for what."""

    user_id: str
    username: str
    session_id: str
    version: int
    kind: str
    scope: str
    expires_at: dt.datetime


class TokenSigner:
    """Mints tokens: held only by the issuing process."""

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key

    def sign(self, user: dict, *, session_id: str, kind: str, scope: str, ttl_seconds: float,
             now: dt.datetime) -> str:
        """A signed token for the user's current version."""
        claims = {
            "iss": TOKEN_ISSUER, "sub": user["user_id"], "name": user["_id"], "sid": session_id,
            "ver": int(user.get("version", 0)), "typ": kind, "scope": scope,
            "iat": now, "exp": now + dt.timedelta(seconds=ttl_seconds), "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM)


class TokenVerifier:
    """Checks tokens with the issuer's public key (and the service accounts' keys)."""

    def __init__(self, public_key: Ed25519PublicKey, service_keys: dict[str, Ed25519PublicKey] | None = None):
        self._key = public_key
        self._service_keys = service_keys or {}

    def claims(self, token: str, *, kinds: tuple[str, ...] = (ACCESS,)) -> Claims:
        """The token's claims; ApiError 401 if forged, tampered with, expired or of another kind."""
        data = _decode(token, self._key, TOKEN_ISSUER)
        if data.get("typ") not in kinds:
            raise ApiError(401, "invalid_token", "The token is not valid.")
        try:
            return Claims(user_id=str(data["sub"]), username=str(data["name"]), session_id=str(data["sid"]),
                          version=int(data["ver"]), kind=data["typ"], scope=str(data.get("scope", FULL)),
                          expires_at=dt.datetime.fromtimestamp(data["exp"], dt.timezone.utc))
        except (KeyError, TypeError, ValueError):
            raise ApiError(401, "invalid_token", "The token is not valid.") from None

    def service(self, token: str) -> tuple[str, str] | None:
        """(service account, token id) of a token signed by a service account's key, or None if it
        is not a service token. A service token lives SERVICE_TOKEN_MAX_SECONDS at most, so that
        one minted during a short compromise does not work for long."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return None
        kid = header.get("kid", "")
        if not kid.startswith("svc-") or kid[4:] not in self._service_keys:
            return None
        data = _decode(token, self._service_keys[kid[4:]], SERVICE_ISSUER)
        now = dt.datetime.now(dt.timezone.utc).timestamp()
        if (data.get("sub") != kid or not isinstance(data.get("jti"), str) or not isinstance(data.get("iat"), int)
                or data["exp"] - data["iat"] > SERVICE_TOKEN_MAX_SECONDS or data["iat"] > now + CLOCK_SKEW_SECONDS):
            raise ApiError(401, "invalid_token", "The token is not valid.")
        return kid, data["jti"]


def _decode(token: str, key, issuer: str) -> dict:
    try:
        return jwt.decode(token, key, algorithms=[TOKEN_ALGORITHM], issuer=issuer,
                          options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "The token has expired; ask for a new one.") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "The token is not valid.") from None


def service_token(service: str, key: Ed25519PrivateKey, ttl_seconds: int = 120) -> str:
    """A short-lived token of a service's own account (advocacy asking intake for a name for a
    letter), signed with that service's own key: it opens only the routes for service accounts."""
    now = dt.datetime.now(dt.timezone.utc)
    claims = {"iss": SERVICE_ISSUER, "sub": f"svc-{service}", "iat": now,
              "exp": now + dt.timedelta(seconds=ttl_seconds), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=TOKEN_ALGORITHM, headers={"kid": f"svc-{service}"})


# --- the live account ------------------------------------------------------------------------------


def live_account(identity_db: Database, claims: Claims, now: dt.datetime) -> dict:
    """The account behind verified claims, if it still stands: the user exists (the same one, not
    a later user of the same name), is active, has the token's version, and the session is open.
    ApiError 401 `session_ended` otherwise."""
    user = identity_db["users"].find_one({"_id": claims.username})
    session = identity_db["sessions"].find_one({"_id": claims.session_id})
    if (user is None or user.get("user_id") != claims.user_id or not user.get("active", True)
            or int(user.get("version", 0)) != claims.version or session is None
            or session.get("user_id") != claims.user_id or _aware(session["expires_at"]) <= now):
        raise ApiError(401, "session_ended", "This login has ended (logged out, expired, or the account changed); "
                       "log in again.")
    return user


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def request_user(user: dict, claims: Claims) -> dict:
    """The request's user as routes see it: {"id", "username", "roles", "session_id", "scope"}."""
    return {"id": user["user_id"], "username": user["_id"], "roles": list(user.get("roles", [])),
            "session_id": claims.session_id, "scope": claims.scope}


def current_user() -> dict:
    """The authenticated user of this request: {"id", "username", "roles", ...}."""
    return g.user


def bearer_token() -> str:
    """The request's bearer token; ApiError 401 if there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'; get a token from "
                       "POST /api/v1/auth/token.")
    return token.strip()


def authenticate_request(*, scopes: tuple[str, ...] = (FULL,), allow_service: bool = False,
                         roles: set[str] | None = None) -> dict:
    """Check this request's bearer token against the live account; set and return g.user. A
    token ended by a change of the account answers 401, except that a route the account's
    current roles do not open answers 403 (a role removed is refused as such at once)."""
    res = current_app.extensions["nrw"]
    token = bearer_token()
    if allow_service:
        found = res.token_verifier.service(token)
        if found is not None:
            account, token_id = found
            try:  # each service token opens one request: a copied one is refused
                res.identity_db["service_tokens_used"].insert_one({"_id": token_id,
                                                                   "at": dt.datetime.now(dt.timezone.utc)})
            except DuplicateKeyError:
                raise ApiError(401, "invalid_token", "The token is not valid.") from None
            g.user = {"id": account, "username": account, "roles": [SERVICE_ROLE], "session_id": None,
                      "scope": FULL}
            return g.user
    claims = res.token_verifier.claims(token)
    try:
        user = live_account(res.identity_db, claims, dt.datetime.now(dt.timezone.utc))
    except ApiError:
        if roles is not None:
            _forbidden_if_role_removed(res.identity_db, claims, roles)
        raise
    if claims.scope not in scopes:
        raise ApiError(403, claims.scope, "Finish setting up the account first: "
                       + ("enrol a second factor (POST /api/v1/auth/totp)." if claims.scope == OTP_ENROLMENT
                          else "choose a new password (POST /api/v1/auth/password)."))
    g.user = request_user(user, claims)
    return g.user


def _forbidden_if_role_removed(identity_db: Database, claims: Claims, roles: set[str]) -> None:
    user = identity_db["users"].find_one({"_id": claims.username})
    if user is not None and user.get("user_id") == claims.user_id and user.get("active", True) \
            and not roles.intersection(user.get("roles", [])):
        raise ApiError(403, "forbidden", f"This needs one of the roles: {', '.join(sorted(roles))}.")


def require_roles(*roles: str, scopes: tuple[str, ...] = (FULL,)) -> Callable:
    """Route decorator: a live account (see authenticate_request) with one of `roles` (admin always
    passes; the service role only where it is named)."""
    allowed = set(roles) | {"admin"}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = authenticate_request(scopes=scopes, allow_service=SERVICE_ROLE in roles, roles=allowed)
            if not allowed.intersection(user["roles"]):
                raise ApiError(403, "forbidden", f"This needs one of the roles: {', '.join(sorted(allowed))}.")
            return view(*args, **kwargs)

        wrapper.nrw_roles = sorted(allowed)
        return wrapper

    return decorator


def require_login(*, scopes: tuple[str, ...] = (FULL,)) -> Callable:
    """Route decorator: any live account (for a user's own settings), in one of `scopes`."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authenticate_request(scopes=scopes)
            return view(*args, **kwargs)

        wrapper.nrw_roles = ["any"]
        return wrapper

    return decorator
