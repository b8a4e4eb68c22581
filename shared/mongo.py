"""MongoDB connections (FerretDB or MongoDB), made after fork, never at import time."""

from __future__ import annotations

import datetime as dt

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from shared.config import Settings
from shared.mongo_accounts import connection

# Errors that mean "the database is not answering right now": retry, never dead-letter.
TRANSIENT_ERRORS = (ConnectionFailure,)
# Server answers that mean the same (MongoDB error codes): HostUnreachable, HostNotFound,
# NetworkTimeout, ShutdownInProgress, ExceededTimeLimit, SocketException, InterruptedAtShutdown.
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 262, 9001, 11600})
# InternalError: how FerretDB reports a failure of its backend, e.g. SQLite's transaction cut off
# while FerretDB shuts down. Usually passing, but it could also be a bug that hits one document.
INTERNAL_ERROR = 1


def connect(settings: Settings, account: str, *, timeout_ms: int = 3000) -> MongoClient:
    """A client for this process, logged in as `account` (a service, or `operator`: see
    shared/mongo_accounts.py); pymongo clients must not cross a fork."""
    uri, credentials = connection(settings, account)
    return MongoClient(
        uri,
        **credentials,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10000),
        tz_aware=True,
        uuidRepresentation="standard",
        appname="nrw",
    )


def ping(client: MongoClient) -> str:
    """'ok' if the server answers a ping, else a short reason (no connection string in it)."""
    try:
        client.admin.command("ping")
        return "ok"
    except PyMongoError as exc:
        return f"unavailable: {type(exc).__name__}"


def utcnow() -> dt.datetime:
    """Now, in UTC, at the millisecond precision BSON keeps."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def is_transient(exc: BaseException) -> bool:
    """True for database errors worth retrying for as long as it takes (server unreachable or
    shutting down, not a bad command)."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    return isinstance(exc, OperationFailure) and (exc.has_error_label("RetryableWriteError")
                                                  or exc.code in TRANSIENT_CODES)


def is_server_internal(exc: BaseException) -> bool:
    """True if the database answered with an internal error: worth retrying a few times, not forever."""
    return isinstance(exc, OperationFailure) and exc.code == INTERNAL_ERROR
