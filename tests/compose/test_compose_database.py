"""The database on a server (issue 10 point 2): MongoDB asks every client to log in, its first user
is the operator, a one-shot job gives each service an account with rights on its own database
only, and each service's containers are given that service's password alone. The file checks run
everywhere; the last test runs on the compose stack where a Docker engine answers (skipped with
the reason elsewhere): from the case service's own container, its account is refused intake's
database."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from shared.config import SERVICES, Settings
from shared.mongo_accounts import ACCOUNTS, IDENTITY_READER, OPERATOR, password_path, roles
from tests.compose.compose_file import load, project_services, service_env, service_secrets
from tests.compose.test_compose_security import SERVER_ENV

IN_CONTAINER = Settings(secrets_dir=Path("/run/secrets"), mongo_uri="mongodb://mongo:27017/")


@pytest.fixture(scope="module")
def services() -> dict:
    """docker-compose.yml's services, interpolated with a server's settings."""
    from tests.compose.compose_file import resolved

    return resolved(load(), SERVER_ENV)["services"]


def _mongo_passwords(service: dict) -> set[str]:
    return {name for name in service_secrets(service) if name.startswith("mongo-")}


def test_mongo_asks_every_client_to_log_in_and_its_first_user_is_the_operator(services):
    mongo = services["mongo"]
    assert mongo["command"][:1] == ["mongod"] and "--auth" in mongo["command"]
    env = service_env(mongo)
    operator_file = password_path(IN_CONTAINER, OPERATOR)
    assert env == {"MONGO_INITDB_ROOT_USERNAME": OPERATOR, "MONGO_INITDB_ROOT_PASSWORD_FILE": str(operator_file)}
    assert service_secrets(mongo) == {operator_file.name: str(operator_file)}


def test_the_accounts_job_makes_every_service_account_before_anything_logs_in(services):
    job = services["mongo-accounts"]
    assert job["command"] == "python -m shared.mongo_accounts" and job["restart"] == "no"
    assert job["depends_on"] == {"mongo": {"condition": "service_healthy"}}
    assert _mongo_passwords(job) == {password_path(IN_CONTAINER, a).name for a in ACCOUNTS}
    assert set(service_secrets(job)) == _mongo_passwords(job), "it holds no other key"
    assert service_env(job)["NRW_MONGO_URI"] == "mongodb://mongo:27017/", "no credentials in the URI"
    for name, service in project_services(services).items():
        if name not in ("mongo-accounts", "topics"):
            assert service["depends_on"]["mongo-accounts"] == {"condition": "service_completed_successfully"}, name


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_container_holds_its_own_database_password_only(services, service):
    for kind in ("web", "consumer", "relay"):
        container = services[f"{service}-{kind}"]
        assert _mongo_passwords(container) == {f"mongo-{service}.password"}, f"{service}-{kind}"
        env = service_env(container)
        assert env["NRW_SECRETS_DIR"] == "/run/secrets" and "NRW_MONGO_URI_FILE" not in env
        # what the code reads there, for this service's account (shared.mongo_accounts.connection)
        assert service_secrets(container)[f"mongo-{service}.password"] == str(password_path(IN_CONTAINER, service))
    for other in ("mongo", "kafka", "proxy", "topics"):
        assert f"mongo-{service}.password" not in service_secrets(services[other]), other


def test_the_roles_compose_gives_name_no_other_services_database(services):
    prefix = service_env(services["case-web"]).get("NRW_DB_PREFIX", Settings.db_prefix)
    granted = roles(Settings(db_prefix=prefix))
    for service in SERVICES:
        databases = {role["db"] for role in granted[service]}
        assert databases == {f"{prefix}{service}", f"{prefix}identity"}, service
        if service != "intake":
            assert {"role": IDENTITY_READER, "db": f"{prefix}identity"} in granted[service]


# Run inside case-web, with the case service's own settings and password file.
_CASE_READS_INTAKE = """
from pymongo.errors import OperationFailure
from shared.config import Settings
from shared.mongo import connect
settings = Settings.from_env()
client = connect(settings, "case")
client[settings.database_name("case")]["cases"].find_one()
print("own:ok")
try:
    client[settings.database_name("intake")]["reports"].find_one()
    print("intake:read")
except OperationFailure as exc:
    print(f"intake:refused:{exc.code}")
"""


def test_the_case_account_cannot_read_intakes_database(stack):
    out = stack.compose.execute(f"exec -T case-web python -c {shlex.quote(_CASE_READS_INTAKE)}").decode()
    assert out.split() == ["own:ok", "intake:refused:13"]  # 13: Unauthorized
