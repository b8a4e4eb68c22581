"""Database accounts: one per service and one for operators, their passwords, what each may do.

Each service's processes (web, consumer, relay, its commands) log in to the database as the
service: `intake`, `case`, `advocacy` or `reporting`. `operator` is for people and tools that
look after the data (the launcher's first admin, the tests' own checks, `mongosh`); on a local
stack `var/secrets/mongo-operator.uri` is a complete connection string for it.

Where a process's credentials come from, first match wins:
  1. `NRW_MONGO_URI_FILE`: a file holding the whole connection string (a deployment's secret store);
  2. `NRW_MONGO_URI` itself, when it carries a user name;
  3. the file `mongo-<account>.password` in the secrets folder (0600, made by
     `python -m shared.keys init`), the host and options staying those of `NRW_MONGO_URI`.

What the database enforces depends on the server. MongoDB (docker-compose.yml, `mongod --auth`)
gets the roles below from `python -m shared.mongo_accounts` (compose's `mongo-accounts`, logged in
as the operator, the server's root user that the mongo image makes from the same password file):
each service reads and writes its own database only, plus, on the identity database, what its
web process needs to check logins (intake, the issuer, reads and writes it). FerretDB v1.24 (the
local stack) refuses every client that has not logged in, but has no roles at all: any account
may read and write any database (README, "Security"; infra/ferretdb/main.go).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import urllib.parse
from pathlib import Path

from shared.config import SERVICES, Settings

OPERATOR = "operator"
ACCOUNTS = SERVICES + (OPERATOR,)
AUTH_SOURCE = "admin"  # every account is defined in the admin database
MECHANISM = "SCRAM-SHA-256"
IDENTITY_READER = "nrw_identity_reader"  # MongoDB role: what a verifying web process needs


class CredentialsMissing(RuntimeError):
    """An account's password file is not there (run `python -m shared.keys init`)."""


def password_path(settings: Settings, account: str) -> Path:
    """Where an account's password is kept (secrets folder)."""
    return settings.secrets_path / f"mongo-{account}.password"


def operator_uri_path(settings: Settings) -> Path:
    """The operator's complete connection string (local stack)."""
    return settings.secrets_path / f"mongo-{OPERATOR}.uri"


def read_password(path: Path) -> str:
    """A password (or connection-string) file's content, without its line end."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CredentialsMissing(f"no database password file at {path} (run `python -m shared.keys init`)") from None


def with_credentials(uri: str, username: str, password: str) -> str:
    """`uri` with a user name and password in it, and the admin database as their source."""
    parts = urllib.parse.urlsplit(uri)
    hosts = parts.netloc.rpartition("@")[2]
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(key.lower() == "authsource" for key, _ in query):
        query.append(("authSource", AUTH_SOURCE))
    userinfo = f"{urllib.parse.quote(username, safe='')}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit((parts.scheme, f"{userinfo}@{hosts}", parts.path or "/",
                                    urllib.parse.urlencode(query), ""))


def ensure_credentials(settings: Settings) -> list[Path]:
    """Make every missing password file, and the operator's connection string; the files made."""
    from shared.keys import write_new

    made = []
    for account in ACCOUNTS:
        path = password_path(settings, account)
        if not path.exists() and write_new(path, secrets.token_urlsafe(32).encode()):
            made.append(path)
    uri = operator_uri_path(settings)
    if not uri.exists() and write_new(uri, (account_uri(settings, OPERATOR) + "\n").encode()):
        made.append(uri)
    return made


def account_uri(settings: Settings, account: str) -> str:
    """A complete connection string of `account` (NRW_MONGO_URI's host, the account's password
    file), for a tool that takes only a URI; secret, like the password file."""
    return with_credentials(settings.mongo_uri, account, read_password(password_path(settings, account)))


def connection(settings: Settings, account: str) -> tuple[str, dict]:
    """The connection string and the pymongo keyword arguments (credentials) `account` connects with."""
    if settings.mongo_uri_file:
        return read_password(settings.mongo_uri_file), {}
    uri = settings.mongo_uri
    if urllib.parse.urlsplit(uri).username:
        return uri, {}
    path = password_path(settings, account)
    if not path.exists():
        return uri, {}  # a database that asks for no credentials (a developer's own MongoDB)
    options = {"username": account, "password": read_password(path)}
    if "authsource=" not in uri.lower():
        options["authSource"] = AUTH_SOURCE
    return uri, options


def roles(settings: Settings) -> dict[str, list[dict]]:
    """MongoDB roles of each service's account: its own database, and on the identity database
    what it needs (intake issues logins: read and write; the others verify them: read the users
    and sessions, end a session on logout, make the users' index every web process ensures)."""
    identity = settings.database_name("identity")
    return {service: [{"role": "readWrite", "db": settings.database_name(service)},
                      {"role": "readWrite" if service == "intake" else IDENTITY_READER, "db": identity}]
            for service in SERVICES}


def identity_reader_privileges(settings: Settings) -> list[dict]:
    """The privileges of the identity-reader role (the verifying services' part of identity)."""
    identity = settings.database_name("identity")
    return [
        {"resource": {"db": identity, "collection": "users"}, "actions": ["find", "createIndex"]},
        {"resource": {"db": identity, "collection": "sessions"}, "actions": ["find", "remove"]},
    ]


def ensure_mongodb_accounts(client, settings: Settings) -> None:
    """On MongoDB, logged in as the operator (the server's first user, made by the mongo image with
    the root role): create or update the identity-reader role and every service's account with
    its password and roles (idempotent: a password file made anew takes effect)."""
    identity = client[settings.database_name("identity")]
    privileges = identity_reader_privileges(settings)
    if identity.command("rolesInfo", IDENTITY_READER)["roles"]:
        identity.command("updateRole", IDENTITY_READER, privileges=privileges, roles=[])
    else:
        identity.command("createRole", IDENTITY_READER, privileges=privileges, roles=[])
    admin = client[AUTH_SOURCE]
    for account, granted in roles(settings).items():
        password = read_password(password_path(settings, account))
        command = "updateUser" if admin.command("usersInfo", account)["users"] else "createUser"
        admin.command(command, account, pwd=password, roles=granted, mechanisms=[MECHANISM])


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.mongo_accounts`: give a MongoDB server its accounts (compose's init)."""
    parser = argparse.ArgumentParser(prog="python -m shared.mongo_accounts", description=(
        "Create or update the database accounts on MongoDB (one per service with rights on its own database, "
        "and the operator), logged in as the operator (MongoDB's first user). Settings: NRW_MONGO_URI, "
        "NRW_SECRETS_DIR (mongo-<account>.password files). FerretDB needs none of this: infra/ferretdb does it."))
    parser.parse_args(argv)
    from shared.mongo import connect

    settings = Settings.from_env()
    client = connect(settings, OPERATOR, timeout_ms=30000)
    try:
        ensure_mongodb_accounts(client, settings)
    finally:
        client.close()
    print(f"database accounts ready: {', '.join(ACCOUNTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
