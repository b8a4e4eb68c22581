"""Identity: users with hashed passwords and roles in their own database, signed bearer tokens
that every service accepts, the admin bootstrap, and the role check used on every route."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
import sys
import uuid
from typing import Callable

import jwt
from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import Schema, fields, validate
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from werkzeug.security import check_password_hash, generate_password_hash

from shared.errors import ApiError

log = logging.getLogger(__name__)

ROLES = ("caseworker", "advocate", "analyst", "admin")
TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "nrw"
_DUMMY_HASH = generate_password_hash("not-a-password-" + "x" * 16)


class TokenRequest(Schema):
    """Credentials for POST /api/v1/auth/token."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


class TokenResponse(Schema):
    """A bearer token and what it allows."""

    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    roles = fields.List(fields.String())


class UserCreate(Schema):
    """A new user, created by an admin."""

    username = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,63}$",
                             error="Use 2-64 lower-case letters, digits, dots, dashes or underscores."))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=12, max=256,
                             error="Use at least 12 characters."))
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), required=True,
                        validate=validate.Length(min=1))


class UserOut(Schema):
    """A user as the API shows it (never the password hash)."""

    username = fields.String()
    user_id = fields.String()
    roles = fields.List(fields.String())
    created_at = fields.DateTime()


def signing_key(configured: str | None, identity_db: Database) -> str:
    """The token signing key: from NRW_TOKEN_SECRET, else one generated once and shared through the
    identity database so that all four services accept each other's tokens."""
    if configured:
        return configured
    secrets_coll = identity_db["secrets"]
    found = secrets_coll.find_one({"_id": "token_signing_key"})
    if found:
        return found["value"]
    try:
        secrets_coll.insert_one({"_id": "token_signing_key", "value": secrets.token_urlsafe(48)})
    except DuplicateKeyError:
        pass  # another process made it first; use theirs
    return secrets_coll.find_one({"_id": "token_signing_key"})["value"]


def ensure_indexes(identity_db: Database) -> None:
    """Users are keyed by username (the _id); user_id is unique too."""
    identity_db["users"].create_index("user_id", unique=True)


def create_user(identity_db: Database, username: str, password: str, roles: list[str]) -> dict:
    """Store a new user with a scrypt password hash; raise ApiError 409 if the name is taken."""
    doc = {
        "_id": username,
        "user_id": str(uuid.uuid4()),
        "password_hash": generate_password_hash(password),
        "roles": sorted(set(roles)),
        "created_at": dt.datetime.now(dt.timezone.utc),
    }
    try:
        identity_db["users"].insert_one(doc)
    except DuplicateKeyError:
        raise ApiError(409, "user_exists", "A user with that username already exists.") from None
    return {"username": username, "user_id": doc["user_id"], "roles": doc["roles"], "created_at": doc["created_at"]}


def bootstrap_admin(identity_db: Database, password: str | None, announce: bool = True) -> str | None:
    """On a fresh start with no users, create `admin` with NRW_ADMIN_PASSWORD, or with a generated
    password that is printed once (announce) and returned."""
    if identity_db["users"].find_one({}, {"_id": 1}) is not None:
        return None
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        create_user(identity_db, "admin", password, ["admin"])
    except ApiError:
        return None  # another process bootstrapped it
    if not generated:
        log.info("created user 'admin' with the password from NRW_ADMIN_PASSWORD")
        return None
    if announce:
        print(f"nrw: created user 'admin' with generated password {password} (set NRW_ADMIN_PASSWORD to choose one)",
              file=sys.stderr, flush=True)
    return password


def authenticate(identity_db: Database, username: str, password: str) -> dict | None:
    """The user if the password matches, else None (in about the same time either way)."""
    user = identity_db["users"].find_one({"_id": username})
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user["password_hash"], password) else None


def user_id_of(identity_db: Database, username: str) -> str | None:
    """The user id of a username, or None if there is no such user."""
    user = identity_db["users"].find_one({"_id": username}, {"user_id": 1})
    return user["user_id"] if user else None


def issue_token(user: dict, key: str, ttl_seconds: int, now: dt.datetime | None = None) -> dict:
    """A signed, expiring bearer token for the user."""
    now = now or dt.datetime.now(dt.timezone.utc)
    claims = {
        "iss": TOKEN_ISSUER,
        "sub": user["user_id"],
        "name": user["_id"],
        "roles": user["roles"],
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return {
        "access_token": jwt.encode(claims, key, algorithm=TOKEN_ALGORITHM),
        "token_type": "Bearer",
        "expires_in": ttl_seconds,
        "roles": user["roles"],
    }


SERVICE_ROLE = "service"


def service_token(service: str, key: str, ttl_seconds: int = 120) -> str:
    """A short-lived token for a service's own account (e.g. advocacy asking intake for a name to
    put in a letter): its reads are audited under `svc-<service>` like anyone's."""
    account = {"user_id": f"svc-{service}", "_id": f"{service}-service", "roles": [SERVICE_ROLE]}
    return issue_token(account, key, ttl_seconds)["access_token"]


def verify_token(token: str, key: str) -> dict:
    """The token's claims; raise ApiError 401 if it is forged, tampered with or expired."""
    try:
        claims = jwt.decode(token, key, algorithms=[TOKEN_ALGORITHM], issuer=TOKEN_ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "The token has expired; ask for a new one.") from None
    except jwt.InvalidTokenError:
        raise ApiError(401, "invalid_token", "The token is not valid.") from None
    return claims


def current_user() -> dict:
    """The authenticated user of this request: {"id", "username", "roles"}."""
    return g.user


def require_roles(*roles: str) -> Callable:
    """Route decorator: a valid bearer token whose roles include one of `roles` (admin always passes)."""
    allowed = set(roles) | {"admin"}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'; get a token from "
                               "POST /api/v1/auth/token.")
            claims = verify_token(token.strip(), current_app.extensions["nrw"].token_key)
            g.user = {"id": claims["sub"], "username": claims.get("name"), "roles": claims.get("roles", [])}
            if not allowed.intersection(g.user["roles"]):
                raise ApiError(403, "forbidden", f"This needs one of the roles: {', '.join(sorted(allowed))}.")
            return view(*args, **kwargs)

        wrapper.nrw_roles = sorted(allowed)
        return wrapper

    return decorator


def auth_blueprint() -> Blueprint:
    """POST /api/v1/auth/token and POST /api/v1/users, the same on every service."""
    from shared.web import doc, load_body  # the web helpers import this module

    bp = Blueprint("auth", __name__)

    @bp.post("/api/v1/auth/token")
    @doc(summary="Exchange a username and password for a bearer token", body=TokenRequest,
         responses={200: TokenResponse}, public=True)
    def token():
        """Log in: a bearer token valid on all four services."""
        creds = load_body(TokenRequest())
        res = current_app.extensions["nrw"]
        user = authenticate(res.identity_db, creds["username"], creds["password"])
        if user is None:
            raise ApiError(401, "invalid_credentials", "Wrong username or password.")
        return jsonify(issue_token(user, res.token_key, res.settings.token_ttl_seconds))

    @bp.post("/api/v1/users")
    @require_roles("admin")
    @doc(summary="Create a user (admin)", body=UserCreate, responses={201: UserOut})
    def create():
        """Create a user with roles."""
        data = load_body(UserCreate())
        user = create_user(current_app.extensions["nrw"].identity_db, data["username"], data["password"], data["roles"])
        log.info("user created by %s with roles %s", current_user()["id"], ",".join(user["roles"]))
        return jsonify(UserOut().dump(user)), 201

    return bp
