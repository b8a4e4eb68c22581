"""Compose tier: fixtures for pytest-docker, pointed at the repository's docker-compose.yml, and the
same `stack`, `api`, `bootstrap` and `browser` fixtures as the end-to-end tier, so that the
end-to-end tests collected in test_compose_stack.py run against the compose stack. Where no Docker
engine answers, every test that needs the stack is skipped with the reason.

The tests reach the stack as people do, through the proxy: https://nrw.test:28443/<service>, with
the key files made by `python -m shared.keys init` and a certificate from a test CA of the
session's own (tests/compose/test-host.yml)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor

from tests.compose.compose_stack import ComposeStack
from tests.support import ADMIN_PASSWORD, CHROMIUM, Api, chromium_missing, register_kafka

ROOT = Path(__file__).resolve().parents[2]

# The test host's name and ports: away from `make run` (8001-8004) and the local test stacks
# (18001-18004), so that all of them can share a machine. The name is resolved to the loopback by
# the tests themselves (resolving_to_loopback) and to the proxy inside the compose network.
COMPOSE_TEST_DOMAIN = "nrw.test"
COMPOSE_HTTPS_PORT = 28443
COMPOSE_HTTP_PORT = 28080
# Where the host reaches the compose broker (tests/compose/kafka-from-host.yml, loopback only).
COMPOSE_KAFKA_HOST_PORT = 28092
KAFKA_FROM_HOST = ROOT / "tests" / "compose" / "kafka-from-host.yml"
TEST_HOST = ROOT / "tests" / "compose" / "test-host.yml"
# The session's key files and test certificates (var/ is ignored by git and by docker builds).
COMPOSE_STATE = ROOT / "var" / "test" / "compose"
# The containers' user (infra/Dockerfile), which must be able to read the key files it is given.
CONTAINER_UID = 10001
# The mongo image's own user, which reads the operator's password on its first start.
MONGO_UID = 999


def docker_engine_missing() -> str | None:
    """Why the compose stack cannot start here, or None if a Docker engine and compose answer."""
    if shutil.which("docker") is None:
        return "no Docker engine: the docker client is not installed"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode != 0:
            return "no Docker engine: `docker info` failed"
        if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=10).returncode != 0:
            return "no docker compose plugin next to the Docker engine"
    except subprocess.TimeoutExpired:
        return "no Docker engine: `docker info` did not answer within 5 s"
    return None


def compose_test_env() -> dict[str, str]:
    """The variables docker-compose.yml and the test overlays interpolate, for the test host."""
    return {
        "NRW_DOMAIN": COMPOSE_TEST_DOMAIN,
        "NRW_HTTPS_PORT": str(COMPOSE_HTTPS_PORT),
        "NRW_HTTP_PORT": str(COMPOSE_HTTP_PORT),
        "NRW_SECRETS_HOST_DIR": str(COMPOSE_STATE / "secrets"),
        "NRW_TEST_TLS_DIR": str(COMPOSE_STATE / "tls"),
        "NRW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NRW_KAFKA_HOST_PORT": str(COMPOSE_KAFKA_HOST_PORT),
    }


def public_urls(env: dict[str, str] | None = None) -> dict[str, str]:
    """Where people (and the tests) reach each service: one host, one path prefix per service."""
    env = env or compose_test_env()
    return {service: f"https://{env['NRW_DOMAIN']}:{env['NRW_HTTPS_PORT']}/{service}"
            for service in ("intake", "case", "advocacy", "reporting")}


def compose_secret_files() -> list[str]:
    """The file names docker-compose.yml takes its secrets from."""
    import yaml

    secrets = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["secrets"]
    return [Path(spec["file"]).name for spec in secrets.values()]


def make_key_files(folder: Path) -> None:
    """The server's key files, made as an operator would (`python -m shared.keys init --dir`), and
    readable by the containers' user."""
    subprocess.run([sys.executable, "-m", "shared.keys", "init", "--dir", str(folder)], cwd=ROOT, check=True,
                   capture_output=True)
    missing = [name for name in compose_secret_files() if not (folder / name).is_file()]
    if missing:
        pytest.fail(f"`python -m shared.keys init` did not make {missing}, which docker-compose.yml gives out")
    for name in compose_secret_files():
        _readable_by_containers(folder / name)
    _readable_by_mongo(folder / "mongo-operator.password")


def _readable_by_containers(path: Path) -> None:
    """Owned by the containers' user where the tests run as root (as on a server); else readable by
    all, which the test folder's 0700 keeps to its owner on the host."""
    try:
        os.chown(path, CONTAINER_UID, CONTAINER_UID)
    except PermissionError:
        path.chmod(0o644)


def _readable_by_mongo(path: Path) -> None:
    """The operator's password, read by the mongo image's own user too (uid 999, README step 3)."""
    try:
        os.chown(path, CONTAINER_UID, MONGO_UID)
        path.chmod(0o640)
    except PermissionError:
        path.chmod(0o644)


def make_test_certificates(folder: Path, domain: str) -> Path:
    """A test CA and the proxy's certificate for `domain`, signed by it; the CA's file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.timezone.utc)

    def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("NRW compose test CA", ca_key, "NRW compose test CA", ca_key, ca=True)
    leaf = certificate(domain, key, "NRW compose test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    files = {
        "test-ca.crt": ca.public_bytes(pem),
        "proxy-tls.crt": leaf.public_bytes(pem) + ca.public_bytes(pem),
        "proxy-tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # advocacy-web (the containers' user) reads the CA; Caddy runs as root without the capability to
    # read other users' files, so its certificate and key stay the test runner's, private where
    # that is root.
    _readable_by_containers(folder / "test-ca.crt")
    for name in ("proxy-tls.crt", "proxy-tls.key"):
        (folder / name).chmod(0o600 if os.geteuid() == 0 else 0o644)
    return folder / "test-ca.crt"


@contextlib.contextmanager
def resolving_to_loopback(name: str):
    """Within the block, this process resolves `name` to 127.0.0.1 (as a server's DNS would name it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host == name else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    """The compose file a server uses (not a test copy), the overlay that opens Kafka to the host and
    the one that makes the test host (its certificate, the test admin)."""
    return [str(ROOT / "docker-compose.yml"), str(KAFKA_FROM_HOST), str(TEST_HOST)]


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Build and start detached; the test waits on /readyz itself."""
    # `up --wait` hangs or fails on the one-shot topics container with some compose versions.
    return ["up --build --detach"]


@pytest.fixture(scope="session")
def compose_env():
    """Settings, key files and certificates for `docker compose`, kept for the session so that
    `down -v` still has them; this process resolves the test host and trusts its test CA."""
    env = compose_test_env()
    shutil.rmtree(COMPOSE_STATE, ignore_errors=True)
    secrets = Path(env["NRW_SECRETS_HOST_DIR"])
    secrets.mkdir(parents=True, mode=0o700)
    make_key_files(secrets)
    register_kafka(f"127.0.0.1:{COMPOSE_KAFKA_HOST_PORT}", secrets)  # the tests log in as its admin
    ca = make_test_certificates(Path(env["NRW_TEST_TLS_DIR"]), env["NRW_DOMAIN"])
    with pytest.MonkeyPatch.context() as mp, resolving_to_loopback(env["NRW_DOMAIN"]):
        for name, value in env.items():
            mp.setenv(name, value)
        mp.setenv("REQUESTS_CA_BUNDLE", str(ca))
        yield


@pytest.fixture(scope="session")
def stack(request, docker_compose_command, docker_compose_file, docker_compose_project_name):
    """The compose stack, up and ready, behind infra.stack.Stack's handle; skipped without an engine."""
    reason = docker_engine_missing()
    if reason:
        pytest.skip(reason)
    # Only now, with an engine known to answer, may pytest-docker run `docker compose up`.
    request.getfixturevalue("compose_env")
    request.getfixturevalue("docker_services")
    compose = DockerComposeExecutor(docker_compose_command, docker_compose_file, docker_compose_project_name)
    stack = ComposeStack(compose, public_urls(), bootstrap=f"127.0.0.1:{COMPOSE_KAFKA_HOST_PORT}")
    stack.wait_ready(timeout_s=300)  # the first start builds the image and pulls Kafka, MongoDB and Caddy
    return stack


@pytest.fixture(scope="session")
def api(stack):
    """HTTP access to the compose stack, through the proxy."""
    return Api(stack.urls)


@pytest.fixture(scope="session")
def bootstrap(stack):
    """The compose broker's address from the host."""
    return stack.bootstrap


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright, sending the test host to the loopback and
    accepting its test certificate."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
            f"--host-resolver-rules=MAP {COMPOSE_TEST_DOMAIN} 127.0.0.1", "--ignore-certificate-errors"])
        try:
            yield browser
        finally:
            browser.close()
