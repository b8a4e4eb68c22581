"""docker-compose.yml is safe by default (no engine needed): the TLS proxy is the only way in, each
key file reaches only the containers that use it, no environment carries a secret, Kafka and
MongoDB sit on an internal network, and infra/proxy/Caddyfile serves the four web services on one
https host with no plaintext listener but the redirect.

The checks on ports, secrets and environments run on the file as PyYAML reads it (interpolated
here for a server and for the test host) and, where `docker compose config` runs, on what compose
itself makes of it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.config import DEFAULT_PORTS, SERVICES, Settings
from tests.compose.compose_file import (CADDYFILE, COMPOSE_FILE, Port, caddyfile, compose_plugin_missing,
                                        global_options, load, project_services, published_ports, resolved,
                                        service_env, service_networks, service_secrets, site_blocks, snippets)
from tests.compose.conftest import TEST_HOST, compose_test_env

ROOT = Path(__file__).resolve().parents[2]
WEB = {f"{service}-web": service for service in SERVICES}
SERVER_ENV = {"NRW_DOMAIN": "nrw.example.org", "NRW_SECRETS_HOST_DIR": "/srv/nrw-keys"}


# The key files, as `python -m shared.keys init` names them (checked against shared.keys below).
TOKEN_KEY, TOKEN_PUBLIC, WEB_SESSION_SECRET = "token-signing.key", "token-signing.pub", "web-session.secret"
ADVOCACY_KEY, ADVOCACY_PUBLIC = "service-advocacy.key", "service-advocacy.pub"
DATA_KEYS = "keys.json"
AUDIT_KEY = "audit.key"
CASE_NOTES_KEY = "case-notes.key"
CELLKEY_KEY = "reporting-cellkey.key"

# Who may hold each key file (../shared/ARCHITECTURE.md, "Trust boundaries"): the issuer alone signs
# tokens and sessions; every web process verifies them and signs its cookies; identifying data is
# decrypted by intake's web process and consumer only; the audit trail is sealed by intake's web process
# (where intake's commands run), its consumer (other services' audited writes) and the dead-letter tool
# (each replay) alone; advocacy alone
# has its service key, which
# intake alone checks. Consumers, relays, the topics job, Kafka, MongoDB and the proxy hold none.
KEY_HOLDERS = {
    TOKEN_KEY: {"intake-web"},
    TOKEN_PUBLIC: set(WEB),
    WEB_SESSION_SECRET: set(WEB),
    DATA_KEYS: {"intake-web", "intake-consumer"},
    ADVOCACY_KEY: {"advocacy-web"},
    ADVOCACY_PUBLIC: {"intake-web"},
    AUDIT_KEY: {"intake-web", "intake-consumer", "deadletters"},
    CASE_NOTES_KEY: {"case-web"},
    CELLKEY_KEY: {"reporting-web"},  # public figures' noise (services/reporting/cellkey.py)
    # Database logins (shared/mongo_accounts.py): the operator's (MongoDB's root) to MongoDB, which
    # makes it on its first start, and to the one-shot job that gives the services their accounts;
    # each service's to that service's three containers and to that job alone.
    "mongo-operator.password": {"mongo", "mongo-accounts"},
    **{f"mongo-{s}.password": {f"{s}-web", f"{s}-consumer", f"{s}-relay", "mongo-accounts"} for s in SERVICES},
    # intake's also to the dead-letter tool, which writes each replay to intake's audit trail first
    "mongo-intake.password": {"intake-web", "intake-consumer", "intake-relay", "mongo-accounts", "deadletters"},
    # Kafka logins (shared/kafka_auth.py): the broker's own and its admin's to the broker (the
    # admin's also to the one-shot topics job, which sets every principal's credentials and ACLs);
    # each service's to that service's three containers alone.
    "kafka-admin.password": {"kafka", "topics"},
    "kafka-broker.password": {"kafka"},
    "kafka-controller.password": {"kafka"},
    **{f"kafka-{s}.password": {f"{s}-web", f"{s}-consumer", f"{s}-relay", "topics"} for s in SERVICES},
    "kafka-deadletters.password": {"topics", "deadletters"},
    "kafka-operator.password": {"topics"},
}

# Words that make an environment variable's name look like it holds a secret.
SECRET_WORDS = {"SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS", "KEY", "KEYS", "TOKEN", "PRIVATE",
                "CREDENTIAL", "CREDENTIALS", "SASL", "OTP", "SEED"}
# Settings with such a word that hold no secret.
NOT_SECRET = {"NRW_TOKEN_TTL_SECONDS"}
_LONG_RANDOM = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")
_URL_CREDENTIALS = re.compile(r"://[^/@\s]+:[^/@\s]*@")


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as PyYAML reads it, nothing interpolated."""
    return load()


def _compose_config(files: list[Path], env: dict[str, str]) -> dict:
    reason = compose_plugin_missing()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(["docker", "compose", *(f"--file={f}" for f in files), "config", "--format", "json"],
                            cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module", params=["server", "test-host", "docker-compose-config"])
def model(request, compose) -> dict:
    """The file as it is on a server (PyYAML, interpolated with a server's settings), on the compose
    tier's test host, and as `docker compose config` makes it (skipped where compose cannot run)."""
    if request.param == "server":
        return resolved(compose, SERVER_ENV)
    if request.param == "test-host":
        return resolved(compose, compose_test_env())
    return _compose_config([COMPOSE_FILE], compose_test_env())


def _secret_like(name: str, value: str) -> str | None:
    """Why an environment variable looks like it carries a secret, or None."""
    words = set(name.upper().split("_"))
    if words & SECRET_WORDS and name not in NOT_SECRET:
        if name.endswith("_FILE") or name.endswith("_DIR"):
            if not value.startswith("/run/secrets"):
                return "a key file or folder outside /run/secrets"
        else:
            return "its name says it holds a secret"
    if "-----BEGIN" in value:
        return "a PEM block"
    if _URL_CREDENTIALS.search(value):
        return "credentials in a URL"
    if _LONG_RANDOM.search(value):
        return "a long random-looking value"
    return None


# Ports and networks: the proxy is the only way in.

def test_only_the_proxy_publishes_ports(model):
    """443 (and 80, only to redirect) on the proxy; nothing else publishes a port or uses the host's
    network, so the web services, Kafka and MongoDB are reached only from inside."""
    services = model["services"]
    publishing = {name for name, service in services.items() if published_ports(service)}
    assert publishing == {"proxy"}
    for name, service in services.items():
        assert service.get("network_mode") in (None, ""), f"{name} must not share the host's network"
    ports = published_ports(services["proxy"])
    https_port = service_env(services["proxy"])["NRW_HTTPS_PORT"]
    expected = [Port("", https_port, https_port), Port("", model_http_port(model), "80")]
    assert [Port(p.host_ip, p.published, p.target, p.protocol) for p in ports] == expected


def model_http_port(model: dict) -> str:
    """The host port the proxy's plain HTTP (the redirect) is published on, as the model says."""
    return next(p.published for p in published_ports(model["services"]["proxy"]) if p.target == "80")


def test_a_server_publishes_443_and_80():
    """With no port settings, the proxy publishes exactly 443 and 80, and listens for HTTPS on 443."""
    proxy = resolved(load(), SERVER_ENV)["services"]["proxy"]
    assert published_ports(proxy) == [Port("", "443", "443"), Port("", "80", "80")]
    assert service_env(proxy)["NRW_HTTPS_PORT"] == "443"


def test_kafka_and_mongo_are_on_an_internal_network_only(compose):
    """The broker and the database are on `backend`, an internal network (no published port, no way
    out); the proxy is not on it, so even the proxy cannot reach them."""
    services, networks = compose["services"], compose["networks"]
    for name in ("kafka", "mongo"):
        assert set(service_networks(services[name])) == {"backend"}, name
    assert networks["backend"].get("internal") is True
    assert networks["web"].get("internal") is True
    assert not (networks.get("edge") or {}).get("internal"), "the proxy needs a way out for ACME"


def test_each_service_is_on_the_networks_it_needs(compose):
    """Proxy: edge (its ports) and web; web services: web (from the proxy) and backend; every other
    project container: backend only."""
    services = compose["services"]
    assert set(service_networks(services["proxy"])) == {"edge", "web"}
    for name, service in project_services(services).items():
        expected = {"web", "backend"} if name in WEB else {"backend"}
        assert set(service_networks(service)) == expected, name


def test_the_proxy_answers_to_the_public_name_inside(compose):
    """Inside the compose network the public host name is the proxy too, so advocacy's request to
    NRW_INTAKE_URL (https://NRW_DOMAIN/intake) goes through it, certificate and all."""
    aliases = service_networks(compose["services"]["proxy"])["web"].get("aliases")
    assert aliases == ["${NRW_DOMAIN}"]


# Keys: files, each given only to those who use it.

def test_secrets_are_files_from_the_key_folder(compose):
    """Every compose secret is a file in NRW_SECRETS_HOST_DIR named as the code names it, and there
    is no default folder: compose refuses to start without one."""
    secrets = compose["secrets"]
    assert set(secrets) == set(KEY_HOLDERS)
    for name, spec in secrets.items():
        assert set(spec) == {"file"}, f"{name}: a file, not an environment variable or an external store"
        assert resolved(spec, SERVER_ENV)["file"] == f"/srv/nrw-keys/{name}"
        with pytest.raises(KeyError):
            resolved(spec, {})


def test_kafka_password_files_are_the_ones_the_code_reads():
    """Every Kafka principal's password file is a compose secret under the name shared.kafka_auth reads."""
    from shared import kafka_auth

    settings = Settings(secrets_dir=Path("/run/secrets"))
    for principal in kafka_auth.SUPER_USERS + kafka_auth.SCRAM_PRINCIPALS:
        path = kafka_auth.password_path(settings, principal)
        assert path.parent == Path("/run/secrets") and path.name in KEY_HOLDERS, principal


def test_key_file_names_are_the_ones_the_code_reads():
    """The secrets' names are the file names shared.keys writes and reads in NRW_SECRETS_DIR."""
    keys = pytest.importorskip("shared.keys", reason="shared/keys.py is not in this checkout yet")
    settings = Settings(secrets_dir=Path("/run/secrets"))
    assert (keys.TOKEN_KEY, keys.TOKEN_PUBLIC, keys.WEB_SESSION_SECRET) == (TOKEN_KEY, TOKEN_PUBLIC, WEB_SESSION_SECRET)
    assert keys.token_key_path(settings) == Path("/run/secrets") / TOKEN_KEY
    assert keys.token_public_path(settings) == Path("/run/secrets") / TOKEN_PUBLIC
    assert keys.service_key_path(settings, "advocacy").name == ADVOCACY_KEY
    assert keys.service_public_path(settings, "advocacy").name == ADVOCACY_PUBLIC
    assert keys.audit_key_path(settings) == Path("/run/secrets") / AUDIT_KEY
    assert keys.case_notes_key_path(settings) == Path("/run/secrets") / CASE_NOTES_KEY
    assert keys.cellkey_key_path(settings) == Path("/run/secrets") / CELLKEY_KEY


def test_each_secret_is_given_only_to_the_services_that_use_it(model):
    """token-signing.key to intake-web alone, the public key and the cookie secret to the four web
    services, keys.json to intake's web process and consumer, advocacy's service key to advocacy-web
    and its public key to intake-web; nothing to anyone else; each at /run/secrets/<name>."""
    holders = {name: set() for name in KEY_HOLDERS}
    for service_name, service in model["services"].items():
        for secret, target in service_secrets(service).items():
            assert secret in holders, f"{service_name} is given {secret}, which is not a key file of the system"
            assert target == f"/run/secrets/{secret}", f"{service_name}: {secret} mounted at {target}"
            holders[secret].add(service_name)
    assert holders == KEY_HOLDERS


def test_key_files_are_read_where_compose_mounts_them(model):
    """Every project container reads its keys from NRW_SECRETS_DIR=/run/secrets, where compose mounts them."""
    for name, service in project_services(model["services"]).items():
        assert service_env(service).get("NRW_SECRETS_DIR") == "/run/secrets", name


def test_no_secret_in_any_environment_block(model):
    """No environment of any service holds a key, a token secret, a password or credentials (keys
    are files); no service reads an env_file, where such things end up shared by every container."""
    for name, service in model["services"].items():
        assert "env_file" not in service, name
        for var, value in service_env(service).items():
            why = _secret_like(var, value)
            assert why is None, f"{name}: {var} looks like a secret ({why})"


def test_the_keys_of_the_old_arrangement_are_gone(compose):
    """The token key is a file now: NRW_TOKEN_SECRET is nowhere in the file, and the data keys and the
    admin's password are in no environment (intake-web generates the first password and prints it
    once)."""
    assert "NRW_TOKEN_SECRET" not in COMPOSE_FILE.read_text()
    for name, service in compose["services"].items():
        env = service_env(service)
        for var in ("NRW_DATA_KEYS", "NRW_DATA_KEY_ID", "NRW_BLIND_INDEX_KEY", "NRW_ADMIN_PASSWORD"):
            assert var not in env, f"{name} sets {var}"


def test_the_secret_like_check_finds_secrets():
    """The check above would see the values the old file had, and passes the settings the new one has."""
    assert _secret_like("NRW_TOKEN_SECRET", "x")
    assert _secret_like("NRW_ADMIN_PASSWORD", "")
    assert _secret_like("NRW_DATA_KEYS", "k1:abc")
    assert _secret_like("ANYTHING", "k1:" + "Q" * 43 + "=")
    assert _secret_like("NRW_MONGO_URI", "mongodb://nrw:hunter2@mongo:27017/")
    assert _secret_like("NRW_TOKEN_PRIVATE_KEY_FILE", "/etc/nrw/token.key")
    assert _secret_like("CERT", "-----BEGIN PRIVATE KEY-----")
    for var, value in {"NRW_SECRETS_DIR": "/run/secrets", "NRW_TOKEN_TTL_SECONDS": "900",
                       "NRW_TOKEN_PRIVATE_KEY_FILE": "/run/secrets/token-signing.key",
                       "NRW_MONGO_URI": "mongodb://mongo:27017/", "CLUSTER_ID": "DcW6vH-1Qq2F_-GOhHfuKg"}.items():
        assert _secret_like(var, value) is None, var


# The proxy and its Caddyfile.

def test_the_proxy_is_caddy_pinned_with_the_repository_caddyfile(compose):
    """The official Caddy image at an exact version, this repository's Caddyfile mounted read-only,
    certificates on a volume, and no capability beyond binding 80 and 443."""
    proxy = compose["services"]["proxy"]
    assert re.fullmatch(r"caddy:\d+\.\d+\.\d+", proxy["image"]), "pin the image to a release"
    mounts = {volume.split(":")[1]: volume for volume in proxy["volumes"]}
    assert mounts["/etc/caddy/Caddyfile"] == "./infra/proxy/Caddyfile:/etc/caddy/Caddyfile:ro"
    assert "/data" in mounts and mounts["/data"].split(":")[0] in compose["volumes"]
    assert proxy["cap_drop"] == ["ALL"] and proxy["cap_add"] == ["NET_BIND_SERVICE"]
    assert "secrets" not in proxy, "the proxy holds none of the system's keys"


def test_project_containers_drop_every_capability(compose):
    """The project's containers run unprivileged: no capability, no privilege gained by exec."""
    for name, service in project_services(compose["services"]).items():
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "privileged" not in service, name


def test_caddyfile_serves_one_https_site_and_no_plaintext_listener(compose):
    """One site, https://{$NRW_DOMAIN} on the port compose publishes, its scheme written in the file;
    no http:// site, no other listener, automatic HTTPS (and its redirect from port 80) left on."""
    tree = caddyfile()
    sites = site_blocks(tree)
    assert [site.tokens for site in sites] == [["https://{$NRW_DOMAIN}:{$NRW_HTTPS_PORT:443}"]]
    options = global_options(tree)
    option_names = {d.tokens[0] for d in options.block}
    assert not option_names & {"http_port", "https_port", "auto_https", "default_bind"}, option_names
    assert not tree.find("bind"), "listen where compose publishes, nowhere else"
    assert [d.tokens for d in options.find("protocols")] == [["protocols", "h1", "h2"]], \
        "no HTTP/3: UDP is not published"
    assert [d.tokens for d in options.block if d.tokens[0] == "admin"] == [["admin", "off"]]
    proxy = resolved(compose, {**SERVER_ENV, "NRW_HTTPS_PORT": "8443", "NRW_HTTP_PORT": "8080"})["services"]["proxy"]
    assert service_env(proxy)["NRW_HTTPS_PORT"] == "8443"
    assert published_ports(proxy) == [Port("", "8443", "8443"), Port("", "8080", "80")], \
        "HTTPS on the same port inside and out; plain HTTP on Caddy's default 80, for the redirect"


@pytest.mark.parametrize("service", SERVICES)
def test_caddyfile_routes_each_web_service_under_its_prefix(service):
    """/<service>/* goes, path whole, to <service>-web on its NRW_<SERVICE>_PORT (default as in
    shared/config.py); the bare prefix redirects to it."""
    site = site_blocks(caddyfile())[0]
    handles = [d for d in site.block if d.tokens == ["handle", f"/{service}/*"]]
    assert len(handles) == 1
    upstream = f"{service}-web:{{$NRW_{service.upper()}_PORT:{DEFAULT_PORTS[service]}}}"
    assert [d.tokens for d in handles[0].block] == [["reverse_proxy", upstream]]
    assert ["redir", f"/{service}", f"/{service}/"] in [d.tokens for d in site.block]


def test_caddyfile_passes_paths_whole_and_answers_404_elsewhere():
    """No prefix is stripped (each service's SCRIPT_NAME expects it); the root goes to intake;
    anything else is 404 from the proxy, never a service."""
    tree = caddyfile()
    site = site_blocks(tree)[0]
    for name in ("handle_path", "uri", "rewrite", "strip_prefix"):
        assert not tree.find(name), name
    assert ["redir", "/", "/intake/"] in [d.tokens for d in site.block]
    fallback = [d for d in site.block if d.tokens == ["handle"]]
    assert len(fallback) == 1 and [d.tokens[0] for d in fallback[0].block] == ["respond"]
    assert fallback[0].block[0].tokens[-1] == "404"
    routed = {d.tokens[1] for d in site.block if d.tokens[:1] == ["handle"] and len(d.tokens) == 2}
    assert routed == {f"/{s}/*" for s in SERVICES}


@pytest.mark.parametrize("name, service", WEB.items())
def test_each_web_service_knows_the_prefix_the_proxy_gives_it(compose, name, service):
    """SCRIPT_NAME=/<service>: gunicorn takes it off the path, Flask puts it back in every link."""
    assert service_env(compose["services"][name])["SCRIPT_NAME"] == f"/{service}"
    for other in set(project_services(compose["services"])) - set(WEB):
        assert "SCRIPT_NAME" not in service_env(compose["services"][other]), other


def test_caddyfile_keeps_no_access_log_and_compresses_nothing():
    """Paths and query strings stay out of the proxy's logs (gunicorn's log leaves query strings out
    too), and no response is compressed (pages carry CSRF tokens beside what was typed)."""
    tree = caddyfile()
    assert not tree.find("log") and not tree.find("encode")


def test_tls_is_automatic_unless_a_test_host_says_otherwise(compose):
    """NRW_TLS picks a snippet: acme (default: automatic HTTPS for a real domain), internal (Caddy's
    own CA, for a test host) or files (a certificate given as the secrets proxy-tls.crt/.key);
    any other value stops Caddy (no such snippet)."""
    tree = caddyfile()
    site = site_blocks(tree)[0]
    assert [d.tokens for d in site.block if d.tokens[0] == "import"] == [["import", "tls_{$NRW_TLS:acme}"]]
    found = snippets(tree)
    assert set(found) == {"tls_acme", "tls_internal", "tls_files"}
    assert found["tls_acme"].block == []
    assert [d.tokens for d in found["tls_internal"].block] == [["tls", "internal"]]
    assert [d.tokens for d in found["tls_files"].block] == [
        ["tls", "/run/secrets/proxy-tls.crt", "/run/secrets/proxy-tls.key"]]
    assert service_env(compose["services"]["proxy"])["NRW_TLS"] == "${NRW_TLS:-acme}"


def test_proxy_settings_match_the_caddyfile(compose):
    """Every {$VAR} the Caddyfile reads is in the proxy's environment, and nothing else is."""
    used = set(re.findall(r"\{\$(\w+)", CADDYFILE.read_text()))
    assert used == set(service_env(compose["services"]["proxy"]))


def test_the_test_host_overlay_adds_a_certificate_and_test_settings_only():
    """tests/compose/test-host.yml publishes nothing, gives the proxy its certificate files as the
    `files` TLS mode expects them, and lets advocacy-web trust the test CA through a secret; the
    admin's password it sets is a test value, for the test stack only."""
    overlay = load(TEST_HOST)
    services = overlay["services"]
    assert set(services) == {"proxy", *WEB}
    assert not any("ports" in s for s in services.values())
    assert service_env(services["proxy"]) == {"NRW_TLS": "files"}
    assert set(service_secrets(services["proxy"])) == {"proxy-tls.crt", "proxy-tls.key"}
    advocacy = services["advocacy-web"]
    assert service_env(advocacy)["REQUESTS_CA_BUNDLE"] == service_secrets(advocacy)["test-ca.crt"]
    assert set(overlay["secrets"]) == {"proxy-tls.crt", "proxy-tls.key", "test-ca.crt"}
    assert not set(overlay["secrets"]) & set(KEY_HOLDERS), "the system's own keys come from the server file"


def _caddy() -> str | None:
    return os.environ.get("NRW_CADDY") or shutil.which("caddy")


@pytest.mark.parametrize("tls", ["acme", "internal"])
def test_caddy_reads_the_caddyfile_as_intended(tls):
    """Where a caddy binary is at hand (on PATH, or NRW_CADDY): `caddy adapt` accepts the file, and
    its JSON has one server, listening on the https port only, for the one host, sending each
    prefix to its service."""
    caddy = _caddy()
    if caddy is None:
        pytest.skip("no caddy binary here (put one on PATH or in NRW_CADDY)")
    env = {**os.environ, "NRW_DOMAIN": "nrw.example.org", "NRW_TLS": tls}
    result = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "not formatted" not in result.stderr, "run `caddy fmt --overwrite infra/proxy/Caddyfile`"
    config = json.loads(result.stdout)
    assert config["admin"] == {"disabled": True}
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    (route,) = server["routes"]
    assert route["match"] == [{"host": ["nrw.example.org"]}]
    dials = {}

    def walk(node, path=None):
        if isinstance(node, dict):
            paths = [m.get("path") for m in node.get("match", []) if m.get("path")]
            path = paths[0][0] if paths else path
            if node.get("handler") == "reverse_proxy":
                dials[path] = [u["dial"] for u in node["upstreams"]]
            for value in node.values():
                walk(value, path)
        elif isinstance(node, list):
            for value in node:
                walk(value, path)

    walk(route)
    assert dials == {f"/{s}/*": [f"{s}-web:{DEFAULT_PORTS[s]}"] for s in SERVICES}
    policies = config["apps"].get("tls", {}).get("automation", {}).get("policies", [])
    internal = [p for p in policies if any(i.get("module") == "internal" for i in p.get("issuers", []))]
    assert bool(internal) == (tls == "internal")
