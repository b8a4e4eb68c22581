"""docker-compose.yml and infra/Dockerfile agree with the local launcher and the settings the code
reads (no engine). Who may reach what, and who holds which key: test_compose_security.py."""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import os
import posixpath
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from infra.stack import read_procfile
from shared.config import DEFAULT_PORTS, SERVICES, TOPICS, Settings, all_topics
from tests.compose.compose_file import (COMPOSE_FILE, compose_plugin_missing, healthcheck_text, interpolate,
                                        project_services, service_env)
from tests.compose.conftest import COMPOSE_KAFKA_HOST_PORT, KAFKA_FROM_HOST, TEST_HOST, compose_test_env, public_urls

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
KAFKA_START = ROOT / "infra" / "kafka" / "start.sh"
KAFKA_POM = ROOT / "infra" / "kafka" / "pom.xml"

PROCFILE = read_procfile()
# Procfile processes that compose replaces with official images, and those images' services
# (with the proxy, which the local stack does not have).
REPLACED_BY_IMAGES = {"kafka", "ferretdb"}
IMAGE_SERVICES = {"kafka", "mongo", "proxy"}
ONE_SHOT = {"topics", "mongo-accounts", "deadletters"}
PROJECT_PROCESSES = [name for name in PROCFILE if name not in REPLACED_BY_IMAGES]
WEB = {f"{service}-web": service for service in SERVICES}

# The NRW_* variables shared/config.py reads, by Settings field (kept by hand, checked below).
SETTINGS_ENV = {
    "kafka_bootstrap": ["NRW_KAFKA_BOOTSTRAP"],
    "kafka_security_protocol": ["NRW_KAFKA_SECURITY_PROTOCOL"],
    "kafka_sasl_username": ["NRW_KAFKA_SASL_USERNAME"],
    "kafka_sasl_password": ["NRW_KAFKA_SASL_PASSWORD"],
    "kafka_sasl_password_file": ["NRW_KAFKA_SASL_PASSWORD_FILE"],
    "kafka_ssl_cafile": ["NRW_KAFKA_SSL_CAFILE"],
    "mongo_uri": ["NRW_MONGO_URI"],
    "mongo_uri_file": ["NRW_MONGO_URI_FILE"],
    "db_prefix": ["NRW_DB_PREFIX"],
    "admin_password": ["NRW_ADMIN_PASSWORD"],
    "token_ttl_seconds": ["NRW_TOKEN_TTL_SECONDS"],
    "token_private_key_file": ["NRW_TOKEN_PRIVATE_KEY_FILE"],
    "token_public_key_file": ["NRW_TOKEN_PUBLIC_KEY_FILE"],
    "secrets_dir": ["NRW_SECRETS_DIR"],
    "session_absolute_hours": ["NRW_SESSION_ABSOLUTE_HOURS"],
    "twofa_roles": ["NRW_2FA_ROLES"],
    "identifying_reads_per_hour": ["NRW_IDENTIFYING_READS_PER_HOUR"],
    "max_body_bytes": ["NRW_MAX_BODY_BYTES"],
    "max_json_depth": ["NRW_MAX_JSON_DEPTH"],
    "public_url": ["NRW_PUBLIC_URL"],
    "trusted_proxies": ["NRW_TRUSTED_PROXIES"],
    "login_failures_before_lock": ["NRW_LOGIN_FAILURES_BEFORE_LOCK"],
    "login_lock_seconds": ["NRW_LOGIN_LOCK_SECONDS"],
    "login_attempts_per_minute": ["NRW_LOGIN_ATTEMPTS_PER_MINUTE"],
    "blind_index_key": ["NRW_BLIND_INDEX_KEY"],
    "topic_partitions": ["NRW_TOPIC_PARTITIONS"],
    "topic_replication": ["NRW_TOPIC_REPLICATION"],
    "relay_interval_seconds": ["NRW_RELAY_INTERVAL_SECONDS"],
    "relay_grace_seconds": ["NRW_RELAY_GRACE_SECONDS"],
    "session_idle_minutes": ["NRW_SESSION_IDLE_MINUTES"],
    "appeal_due_hours": ["NRW_APPEAL_DUE_HOURS"],
    "follow_up_days": ["NRW_FOLLOW_UP_DAYS"],
    "service_urls": [f"NRW_{s.upper()}_{kind}" for s in SERVICES for kind in ("URL", "PORT")],
    "var_dir": ["NRW_VAR"],
}
# Those whose local default is wrong or unsafe on a server: every container must set them.
SERVER_ENV = sorted({
    "NRW_KAFKA_BOOTSTRAP", "NRW_MONGO_URI", "NRW_VAR", "NRW_SECRETS_DIR", "NRW_PUBLIC_URL",
    *SETTINGS_ENV["service_urls"],
})


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as PyYAML reads it (anchors and << merges resolved)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    """The compose services by name."""
    return compose["services"]


def procfile_imports() -> set[str]:
    """Repository paths the Procfile's commands (and the topics job) need: packages and files."""
    needed = set()
    for command in [*(PROCFILE[name] for name in PROJECT_PROCESSES), "python -m shared.topics"]:
        argv = shlex.split(command)
        if argv[0] == "python" and argv[1] == "-m":
            needed.add(argv[2].split(".")[0])
        elif argv[0] == "gunicorn":
            needed.add(argv[argv.index("-c") + 1])
            needed.add(argv[-1].split(":")[0].split(".")[0])
        else:
            raise AssertionError(f"unknown kind of command in the Procfile: {command}")
    return needed


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) for each instruction of infra/Dockerfile, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split()[0].upper(), line.split()[1:]) for line in lines if line and not line.startswith("#")]


def image_layout() -> dict[str, str]:
    """Repository path -> path under WORKDIR, for everything the Dockerfile COPYs."""
    layout = {}
    for instruction, args in dockerfile_instructions():
        if instruction != "COPY":
            continue
        *sources, dest = [a for a in args if not a.startswith("--")]
        into_dir = dest.endswith("/") or dest == "." or len(sources) > 1
        dest = posixpath.normpath(dest)
        for source in sources:
            source = source.rstrip("/")
            if (ROOT / source).is_dir() or not into_dir:
                layout[source] = dest
            else:
                layout[source] = posixpath.normpath(posixpath.join(dest, Path(source).name))
    return layout


def test_compose_file_parses(compose, services):
    """The file is valid YAML with a shared x-service block and the expected services."""
    assert "x-service" in compose, "shared service settings belong in the x-service anchor"
    assert "x-service" not in services
    assert IMAGE_SERVICES <= set(services)


@pytest.mark.parametrize("process", PROJECT_PROCESSES)
def test_every_procfile_process_runs_the_same_command_in_compose(services, process):
    """Each Procfile process is a compose service with the same command; web ones bind 0.0.0.0."""
    assert process in services, f"docker-compose.yml has no service for the Procfile's {process!r}"
    command = services[process].get("command")
    assert isinstance(command, str), "keep commands as strings so that they compare with the Procfile"
    local = PROCFILE[process]
    if process in WEB:
        assert "--bind 127.0.0.1:" in local
        local = local.replace("--bind 127.0.0.1:", "--bind 0.0.0.0:")
    assert command == local


def test_every_container_of_project_code_is_a_procfile_process(services):
    """Nothing runs the project's image that the local launcher does not run (bar the topics job)."""
    project = set(project_services(services))
    assert project - ONE_SHOT == set(PROJECT_PROCESSES)
    assert ONE_SHOT <= project
    assert set(services) - project == IMAGE_SERVICES


def test_project_containers_share_one_image(services):
    """One image, built from infra/Dockerfile at the repository root, for every project container."""
    project = project_services(services)
    assert len({s["image"] for s in project.values()}) == 1
    for name, service in project.items():
        build = service["build"]
        assert (build["context"], build["dockerfile"]) == (".", "infra/Dockerfile"), name
        assert service["command"], f"{name} must say what it runs (the image has no useful default)"


def test_settings_mirror_matches_shared_config(monkeypatch):
    """SETTINGS_ENV names every Settings field, and Settings.from_env reads each listed variable."""
    assert set(SETTINGS_ENV) == {f.name for f in dataclasses.fields(Settings)}
    samples = {"kafka_bootstrap": "broker.example:1", "kafka_security_protocol": "SASL_SSL",
               "kafka_sasl_username": "sample-user", "kafka_sasl_password": "sample-kafka-password",
               "kafka_sasl_password_file": Path("/keys/kafka.password"), "kafka_ssl_cafile": Path("/keys/ca.pem"),
               "mongo_uri": "mongodb://db.example:2/", "db_prefix": "p_",
               "admin_password": "sample-password", "token_ttl_seconds": 77, "trusted_proxies": 2,
               "token_private_key_file": Path("/keys/sample.key"), "token_public_key_file": Path("/keys/sample.pub"),
               "secrets_dir": Path("/keys"), "session_absolute_hours": 3.5, "twofa_roles": ("admin", "analyst"),
               "identifying_reads_per_hour": 9, "max_body_bytes": 12345, "max_json_depth": 7,
               "public_url": "https://nrw.example.org", "login_failures_before_lock": 4, "login_lock_seconds": 12.5,
               "login_attempts_per_minute": 11, "blind_index_key": "sample-index-key", "topic_partitions": 5,
               "topic_replication": 3,
               "relay_interval_seconds": 0.25, "relay_grace_seconds": 0.75, "session_idle_minutes": 12.5,
               "appeal_due_hours": 6.0, "follow_up_days": 3, "var_dir": Path("/srv/sample")}
    for field, value in samples.items():
        (name,) = SETTINGS_ENV[field]
        monkeypatch.setenv(name, ",".join(value) if isinstance(value, tuple) else str(value))
    for service in SERVICES:
        monkeypatch.delenv(f"NRW_{service.upper()}_URL", raising=False)
        monkeypatch.setenv(f"NRW_{service.upper()}_PORT", str(DEFAULT_PORTS[service] + 100))
    settings = Settings.from_env()
    assert {field: getattr(settings, field) for field in samples} == samples
    assert settings.service_urls == {s: f"http://127.0.0.1:{DEFAULT_PORTS[s] + 100}" for s in SERVICES}
    for service in SERVICES:
        monkeypatch.setenv(f"NRW_{service.upper()}_URL", f"http://{service}.example")
    assert Settings.from_env().service_urls == {s: f"http://{s}.example" for s in SERVICES}


@pytest.mark.parametrize("name", sorted(set(PROJECT_PROCESSES) | ONE_SHOT))
def test_server_settings_are_set_for_every_project_container(services, name):
    """Each container sets every variable whose local default is wrong on a server: the compose hosts
    of Kafka and MongoDB, the key folder, and the public https URLs of the four services."""
    env = service_env(services[name])
    missing = [var for var in SERVER_ENV if not env.get(var, "").strip()]
    assert not missing, f"{name} does not set {missing}"
    resolved = {var: interpolate(value, compose_test_env()) for var, value in env.items()}
    hosts = [resolved["NRW_KAFKA_BOOTSTRAP"].rpartition(":")[0], urlsplit(resolved["NRW_MONGO_URI"]).hostname]
    assert set(hosts) <= set(services), f"{name} points at hosts compose does not define: {hosts}"
    assert resolved["NRW_SECRETS_DIR"] == "/run/secrets", "compose mounts secrets there"
    assert {s: resolved[f"NRW_{s.upper()}_URL"] for s in SERVICES} == public_urls()
    assert resolved["NRW_PUBLIC_URL"] == public_urls()["intake"].rpartition("/")[0]


@pytest.mark.parametrize("env, public", [
    ({"NRW_DOMAIN": "nrw.example.org"}, "https://nrw.example.org"),
    ({"NRW_DOMAIN": "nrw.example.org", "NRW_HTTPS_PORT": "8443"}, "https://nrw.example.org:8443"),
], ids=["server", "other-port"])
def test_public_urls_are_https_on_one_host(services, env, public):
    """NRW_PUBLIC_URL is https://NRW_DOMAIN (a port only when it is not 443), and each service is a
    path under it, so that the __Host- login cookie of that one host works on all four."""
    for name, service in project_services(services).items():
        resolved = {var: interpolate(value, env) for var, value in service_env(service).items()}
        assert resolved["NRW_PUBLIC_URL"] == public, name
        for s in SERVICES:
            assert resolved[f"NRW_{s.upper()}_URL"] == f"{public}/{s}", name
    with pytest.raises(KeyError):  # no domain, no start: there is no safe default
        interpolate(service_env(services["intake-web"])["NRW_PUBLIC_URL"], {})


@pytest.mark.parametrize("overrides", [{}, {"NRW_INTAKE_PORT": "18001", "NRW_CASE_PORT": "18002",
                                            "NRW_ADVOCACY_PORT": "18003", "NRW_REPORTING_PORT": "18004"}],
                         ids=["default-ports", "overridden-ports"])
def test_web_ports_match_shared_config(services, overrides):
    """Bind, healthcheck, NRW_<SERVICE>_PORT and the proxy's upstream agree and default to
    DEFAULT_PORTS; the web services publish no port (the proxy is the way in)."""
    proxy_env = service_env(services["proxy"])
    for name, service_name in WEB.items():
        service = services[name]
        port = overrides.get(f"NRW_{service_name.upper()}_PORT", str(DEFAULT_PORTS[service_name]))
        env = compose_test_env() | overrides
        assert f"--bind 0.0.0.0:{port} " in interpolate(service["command"], env)
        assert "ports" not in service, f"{name} is reached through the proxy only"
        assert f"127.0.0.1:{port}/{service_name}/readyz" in interpolate(healthcheck_text(service), env), \
            "gunicorn refuses paths outside SCRIPT_NAME, so the probe carries the prefix"
        assert interpolate(service_env(service)[f"NRW_{service_name.upper()}_PORT"], env) == port
        assert interpolate(proxy_env[f"NRW_{service_name.upper()}_PORT"], env) == port


def test_healthchecks(services):
    """Web services probe /readyz with Python's urllib (no curl in the image); Kafka and MongoDB use their own tools."""
    for name, service in project_services(services).items():
        if name in WEB:
            check = healthcheck_text(service)
            assert check.startswith("CMD python -c") and "urllib" in check and "/readyz" in check, name
            assert "curl" not in check and "wget" not in check, name
        else:
            assert "healthcheck" not in service, f"{name} has no HTTP port to probe"
    assert healthcheck_text(services["kafka"]).startswith("CMD /opt/kafka/bin/kafka-")
    assert "mongosh" in healthcheck_text(services["mongo"]) and "ping" in healthcheck_text(services["mongo"])


def test_start_order(services):
    """Topics exist before anything that uses Kafka starts, and the database answers, with every
    service's account, first."""
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["topics"]["restart"] == "no"
    assert services["mongo-accounts"]["depends_on"] == {"mongo": {"condition": "service_healthy"}}
    assert services["mongo-accounts"]["restart"] == "no"
    for name, service in project_services(services).items():
        if name in ONE_SHOT:
            continue
        deps = service["depends_on"]
        assert deps["mongo"] == {"condition": "service_healthy"}, name
        assert deps["topics"] == {"condition": "service_completed_successfully"}, name
        assert deps["mongo-accounts"] == {"condition": "service_completed_successfully"}, name
    for name, service in services.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which it never is"


def test_kafka_runs_the_local_start_script_in_the_official_image(compose, services):
    """The broker in compose is configured by infra/kafka/start.sh itself (the same properties,
    SASL logins and ACL authoriser as `make run`), on the apache/kafka image of the same release,
    with its listeners at NRW_KAFKA_BOOTSTRAP and its data on a volume."""
    kafka = services["kafka"]
    env = service_env(kafka)
    local_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text()).group(1)
    assert kafka["image"] == f"apache/kafka:{local_version}", "the same Kafka release as the local broker"
    assert kafka["command"] == ["bash", "/opt/nrw/kafka/start.sh"]
    assert "./infra/kafka:/opt/nrw/kafka:ro" in kafka["volumes"]
    assert env["NRW_KAFKA_HOME"] == "/opt/kafka" and env["NRW_SECRETS_DIR"] == "/run/secrets"
    bootstrap = {service_env(s)["NRW_KAFKA_BOOTSTRAP"] for s in project_services(services).values()}
    assert bootstrap == {env["NRW_KAFKA_BOOTSTRAP"]}
    volume = next(v for v in kafka["volumes"] if v.endswith(":" + env["NRW_KAFKA_DATA"]))
    assert volume.split(":")[0] in compose["volumes"]
    script = KAFKA_START.read_text()
    for needed in ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                   "allow.everyone.if.no.acl.found=false", "CLIENT:SASL_PLAINTEXT", "SCRAM-SHA-512",
                   "auto.create.topics.enable=false", "log.retention.hours=-1"):
        assert needed in script, needed
    assert "PLAINTEXT://" not in script, "no listener without a login"


def test_the_host_overlay_only_adds_a_loopback_listener_to_kafka(compose, services):
    """tests/compose/kafka-from-host.yml adds one listener (start.sh's NRW_KAFKA_HOST_LISTENER, the
    same logins), published on the host's loopback at the port the compose tier's tests read the
    topics from, through a network of its own (the server file's `backend` is internal and can
    publish nothing)."""
    overlay_file = yaml.safe_load(KAFKA_FROM_HOST.read_text())
    overlay = overlay_file["services"]
    assert set(overlay) == {"kafka"}
    extra = service_env(overlay["kafka"])
    assert set(extra) == {"NRW_KAFKA_HOST_LISTENER"} and extra["NRW_KAFKA_HOST_LISTENER"].startswith("127.0.0.1:")
    assert "NRW_KAFKA_HOST_LISTENER" in KAFKA_START.read_text()
    env = compose_test_env()
    assert interpolate(extra["NRW_KAFKA_HOST_LISTENER"], env) == f"127.0.0.1:{COMPOSE_KAFKA_HOST_PORT}"
    published = [interpolate(port, env) for port in overlay["kafka"]["ports"]]
    assert published == [f"127.0.0.1:{COMPOSE_KAFKA_HOST_PORT}:29092"]
    assert "ports" not in services["kafka"], "a server keeps Kafka inside the compose network"
    added_networks = set(overlay["kafka"]["networks"]) - set(services["kafka"]["networks"])
    assert set(services["kafka"]["networks"]) <= set(overlay["kafka"]["networks"])
    assert added_networks == set(overlay_file["networks"]) and len(added_networks) == 1
    assert not any((overlay_file["networks"][n] or {}).get("internal") for n in added_networks)
    assert not set(added_networks) & set(compose["networks"]), "a network of its own, not one of the server's"


def test_mongo_is_the_official_image_with_a_volume(compose, services):
    """MongoDB 7 keeps its data in a named volume, and the URI the services use points at it."""
    mongo = services["mongo"]
    assert mongo["image"] == "mongo:7"
    volume, _, path = mongo["volumes"][0].partition(":")
    assert path == "/data/db" and volume in compose["volumes"]


def test_topics_the_services_need_exist(services, monkeypatch):
    """The topics job creates what every relay publishes to and every consumer reads."""
    assert services["topics"]["command"] == "python -m shared.topics"
    created = set(all_topics())
    for name in PROJECT_PROCESSES:
        argv = shlex.split(PROCFILE[name])
        if argv[:3] == ["python", "-m", "shared.relay"]:
            assert TOPICS[argv[3]] in created, name
        elif argv[:2] == ["python", "-m"] and argv[2].endswith(".consumer"):
            module = importlib.import_module(argv[2])
            seen = {}
            monkeypatch.setattr(module, "run_consumer", lambda service, topics, *a, **k: seen.update(topics=topics))
            module.main([])
            assert seen["topics"] and set(seen["topics"]) <= created, name


def test_dockerfile_builds_the_runtime_image():
    """python:3.11-slim, runtime requirements only, a non-root user, unbuffered output, ports 8001-8004."""
    instructions = dockerfile_instructions()
    args = {name: [a for i, a in instructions if i == name] for name in ("FROM", "RUN", "USER", "ENV", "EXPOSE")}
    assert args["FROM"] == [["python:3.11-slim"]]
    runs = " ".join(" ".join(a) for a in args["RUN"])
    assert "pip install -r requirements.txt" in runs and "requirements-dev" not in runs
    assert args["USER"] and args["USER"][-1][0] not in {"root", "0"}
    assert "PYTHONUNBUFFERED=1" in " ".join(" ".join(a) for a in args["ENV"])
    assert {int(p) for p in args["EXPOSE"][-1]} == set(DEFAULT_PORTS.values())
    assert any(i == "WORKDIR" for i, _ in instructions), "the Procfile's relative paths need a WORKDIR"


@pytest.mark.parametrize("path", sorted(procfile_imports() | {"requirements.txt"}))
def test_dockerfile_copies_what_the_commands_need(path):
    """Every package or file a command uses is COPYed to its repository path and not .dockerignored."""
    assert (ROOT / path).exists()
    layout = image_layout()
    covering = [src for src in layout if path == src or path.startswith(src + "/")]
    assert covering, f"infra/Dockerfile does not COPY {path}"
    src = covering[0]
    in_image = posixpath.normpath(posixpath.join(layout[src], path[len(src):].lstrip("/")))
    assert in_image == path, f"{path} lands at {in_image} (relative to WORKDIR) in the image"
    ignored = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    for pattern in ignored:
        assert not any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)), pattern


def test_dockerignore_keeps_local_state_out():
    """The virtualenv, caches, runtime data, git history, tests and benchmarks stay out of the image."""
    ignored = {p.strip() for p in DOCKERIGNORE.read_text().splitlines()}
    assert {".venv", ".cache", "var", ".git", "tests", "bench"} <= ignored


def test_docker_compose_accepts_the_file():
    """`docker compose config -q` (no engine needed) validates the file, alone and with the tests'
    overlays, against the compose spec."""
    reason = compose_plugin_missing()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, **compose_test_env()}
    for files in ([COMPOSE_FILE], [COMPOSE_FILE, KAFKA_FROM_HOST, TEST_HOST]):
        result = subprocess.run(["docker", "compose", *(f"--file={f}" for f in files), "config", "-q"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (files, result.stderr)
