"""The accounts store (the identity database): users, their sessions, and every change to them.

A user document: `_id` (username), `user_id` (pseudonymous, what the audit trail and events
name), `password_hash` (argon2id), `roles`, `active`, `version` (bumped by every change that
must end the user's logins), `must_change_password`, the sealed TOTP secret and the hashes of
the recovery codes once enrolled. A session document (`_id` = session id) exists while a login
lasts; every token and page session names one. No key, and nothing that can mint a token, is
stored here.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import sys
import uuid

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared import passwords
from shared.errors import ApiError

log = logging.getLogger(__name__)


def ensure_indexes(db: Database) -> None:
    """Users are keyed by username (the _id); user_id is unique too."""
    db["users"].create_index("user_id", unique=True)


def check_password_rules(password: str, username: str) -> None:
    """ApiError 422 naming what is wrong with a new password (too short, the username, common)."""
    problems = passwords.password_problems(password, username)
    if problems:
        raise ApiError(422, "weak_password", "Choose another password.",
                       fields={"password": passwords.problem_messages(problems)})


def create_user(db: Database, username: str, password: str, roles: list[str], *,
                must_change_password: bool = False, now: dt.datetime | None = None) -> dict:
    """Store a new user; ApiError 409 if the name is taken, 422 for a weak password."""
    check_password_rules(password, username)
    now = now or dt.datetime.now(dt.timezone.utc)
    doc = {
        "_id": username, "user_id": str(uuid.uuid4()), "password_hash": passwords.hash_password(password),
        "roles": sorted(set(roles)), "active": True, "version": 1, "created_at": now, "last_login_at": None,
        "must_change_password": must_change_password,
    }
    try:
        db["users"].insert_one(doc)
    except DuplicateKeyError:
        raise ApiError(409, "user_exists", "A user with that username already exists.") from None
    return doc


def bootstrap_admin(db: Database, password: str | None, announce: bool = True) -> str | None:
    """On a fresh start with no users, create `admin` with NRW_ADMIN_PASSWORD, or with a generated
    password that is printed once (announce) and returned."""
    if db["users"].find_one({}, {"_id": 1}) is not None:
        return None
    generated = password is None
    password = password or secrets.token_urlsafe(15)
    try:
        create_user(db, "admin", password, ["admin"])
    except ApiError as exc:
        if exc.code == "weak_password":
            raise SystemExit("NRW_ADMIN_PASSWORD is too weak: " + "; ".join(exc.fields["password"])) from None
        return None  # another process bootstrapped it
    if not generated:
        log.info("created user 'admin' with the password from NRW_ADMIN_PASSWORD")
        return None
    if announce:
        print(f"nrw: created user 'admin' with generated password {password} (set NRW_ADMIN_PASSWORD to choose one)",
              file=sys.stderr, flush=True)
    return password


def find_user(db: Database, username: str) -> dict | None:
    """The user document, or None."""
    return db["users"].find_one({"_id": username}) if username else None


def user_id_of(db: Database, username: str) -> str | None:
    """The user id of a username, or None if there is no such user."""
    user = db["users"].find_one({"_id": username}, {"user_id": 1})
    return user["user_id"] if user else None


def usernames_of(db: Database, user_ids: set[str]) -> dict[str, str]:
    """user id -> username, for current and deleted users (the audit trail stays readable)."""
    ids = sorted(user_ids)
    found = {u["user_id"]: u["_id"] for u in db["users"].find({"user_id": {"$in": ids}}, {"user_id": 1})}
    missing = [i for i in ids if i not in found]
    if missing:
        found.update({u["_id"]: u["username"] for u in db["former_users"].find({"_id": {"$in": missing}})})
    return found


def check_password(db: Database, username: str, password: str) -> dict | None:
    """The user if the password matches (an active account), else None, in about the same time
    either way; an old hash is upgraded to argon2id on the way."""
    user = find_user(db, username)
    if user is None:
        passwords.dummy_verify(password)
        return None
    ok, new_hash = passwords.verify_password(user["password_hash"], password)
    if not ok:
        return None
    if new_hash:
        db["users"].update_one({"_id": username}, {"$set": {"password_hash": new_hash}})
        user["password_hash"] = new_hash
    return user if user.get("active", True) else None


def open_session(db: Database, user: dict, *, kind: str, lifetime_s: float, now: dt.datetime) -> str:
    """A new login for the user; its id, named by every token it issues."""
    session_id = uuid.uuid4().hex
    db["sessions"].insert_one({"_id": session_id, "user_id": user["user_id"], "kind": kind, "created_at": now,
                               "expires_at": now + dt.timedelta(seconds=lifetime_s)})
    if secrets.randbelow(50) == 0:  # now and then, forget logins long over
        db["sessions"].delete_many({"expires_at": {"$lt": now}})
    return session_id


def end_session(db: Database, session_id: str) -> None:
    """Log out: the session's tokens and page login open nothing from now on."""
    db["sessions"].delete_one({"_id": session_id})


def record_login(db: Database, username: str, now: dt.datetime) -> None:
    """Remember when the user last logged in."""
    db["users"].update_one({"_id": username}, {"$set": {"last_login_at": now}})


def change_user(db: Database, username: str, changes: dict) -> dict:
    """Apply changes and bump the version, which ends every token and page session of the user."""
    user = find_user(db, username)
    if user is None:
        raise ApiError(404, "not_found", "No user with that username.")
    db["users"].update_one({"_id": username}, {"$set": changes, "$inc": {"version": 1}})
    db["sessions"].delete_many({"user_id": user["user_id"]})
    return find_user(db, username)


def set_password(db: Database, username: str, password: str, *, must_change: bool) -> dict:
    """A new password (checked against the rules); ends the user's logins."""
    check_password_rules(password, username)
    return change_user(db, username, {"password_hash": passwords.hash_password(password),
                                      "must_change_password": must_change})


def delete_user(db: Database, username: str, now: dt.datetime) -> dict:
    """Remove the account (its logins end); its id and name stay known to the audit trail."""
    user = find_user(db, username)
    if user is None:
        raise ApiError(404, "not_found", "No user with that username.")
    db["former_users"].replace_one({"_id": user["user_id"]}, {"_id": user["user_id"], "username": username,
                                                              "deleted_at": now}, upsert=True)
    db["users"].delete_one({"_id": username})
    db["sessions"].delete_many({"user_id": user["user_id"]})
    return user


def public_view(user: dict) -> dict:
    """A user as the API shows it: never a hash or a secret."""
    return {"username": user["_id"], "user_id": user["user_id"], "roles": list(user.get("roles", [])),
            "active": bool(user.get("active", True)), "otp_enrolled": bool(user.get("otp_secret")),
            "must_change_password": bool(user.get("must_change_password")),
            "created_at": user.get("created_at"), "last_login_at": user.get("last_login_at")}
