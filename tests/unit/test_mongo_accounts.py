"""Database accounts without a database: where each process's credentials come from, the files
the start makes, and the MongoDB roles compose's init gives (each service its own database)."""

from __future__ import annotations

from urllib.parse import urlsplit

from shared import keys
from shared.config import SERVICES, Settings
from shared.mongo_accounts import (ACCOUNTS, IDENTITY_READER, account_uri, connection, ensure_credentials,
                                   identity_reader_privileges, operator_uri_path, password_path, read_password,
                                   roles, with_credentials)


def _settings(tmp_path, **changes) -> Settings:
    return Settings(**{"var_dir": tmp_path, "mongo_uri": "mongodb://db.example:27017/?tls=false", **changes})


def test_the_start_makes_one_private_password_per_account_once(tmp_path):
    settings = _settings(tmp_path)
    made = keys.init(settings)
    for account in ACCOUNTS:
        path = password_path(settings, account)
        assert path in made and path.stat().st_mode & 0o777 == 0o600
    uri = operator_uri_path(settings)
    assert uri in made and uri.stat().st_mode & 0o777 == 0o600
    passwords = {a: read_password(password_path(settings, a)) for a in ACCOUNTS}
    assert len(set(passwords.values())) == len(ACCOUNTS)
    assert ensure_credentials(settings) == []  # kept as they are on every later start
    assert {a: read_password(password_path(settings, a)) for a in ACCOUNTS} == passwords
    parts = urlsplit(uri.read_text().strip())
    assert (parts.username, parts.password, parts.hostname, parts.port) == (
        "operator", passwords["operator"], "db.example", 27017)
    assert "authSource=admin" in parts.query and "tls=false" in parts.query


def test_each_account_connects_with_its_own_password_file(tmp_path):
    settings = _settings(tmp_path)
    ensure_credentials(settings)
    for account in ACCOUNTS:
        uri, options = connection(settings, account)
        assert uri == settings.mongo_uri  # host and options from NRW_MONGO_URI
        assert options == {"username": account, "password": read_password(password_path(settings, account)),
                           "authSource": "admin"}


def test_a_deployment_setting_wins_over_the_password_files(tmp_path):
    settings = _settings(tmp_path, mongo_uri="mongodb://case:s3cret@db.example/?authSource=nrw")
    ensure_credentials(settings)
    assert connection(settings, "case") == ("mongodb://case:s3cret@db.example/?authSource=nrw", {})
    secret = tmp_path / "uri"
    secret.write_text("mongodb://reporting:other@db2.example/\n")
    from_file = _settings(tmp_path, mongo_uri_file=secret)
    assert connection(from_file, "reporting") == ("mongodb://reporting:other@db2.example/", {})


def test_without_password_files_no_credentials_are_sent(tmp_path):
    assert connection(_settings(tmp_path), "case") == ("mongodb://db.example:27017/?tls=false", {})


def test_credentials_in_a_uri_are_escaped_and_replace_any_there():
    uri = with_credentials("mongodb://old:pw@h1:1,h2:2/db?replicaSet=rs", "op", "p@ss:/word")
    parts = urlsplit(uri)
    assert parts.netloc == "op:p%40ss%3A%2Fword@h1:1,h2:2"
    assert parts.path == "/db" and parts.query == "replicaSet=rs&authSource=admin"


def test_account_uri_is_the_settings_host_with_the_accounts_password(tmp_path):
    settings = _settings(tmp_path)
    ensure_credentials(settings)
    parts = urlsplit(account_uri(settings, "intake"))
    assert (parts.username, parts.password, parts.hostname) == ("intake", read_password(password_path(settings, "intake")),
                                                                 "db.example")


def test_mongodb_roles_give_each_service_its_own_database_only(tmp_path):
    settings = _settings(tmp_path, db_prefix="p_")
    granted = roles(settings)
    assert set(granted) == set(SERVICES)
    for service, its_roles in granted.items():
        databases = {r["db"] for r in its_roles}
        assert databases == {f"p_{service}", "p_identity"}
        assert {"role": "readWrite", "db": f"p_{service}"} in its_roles
        identity_role = next(r["role"] for r in its_roles if r["db"] == "p_identity")
        assert identity_role == ("readWrite" if service == "intake" else IDENTITY_READER)
    privileges = identity_reader_privileges(settings)
    assert {p["resource"]["collection"]: p["actions"] for p in privileges} == {
        "users": ["find", "createIndex"], "sessions": ["find", "remove"]}
    assert {p["resource"]["db"] for p in privileges} == {"p_identity"}
