"""The compose stack for real where a Docker engine answers (skipped elsewhere): intake report -> case."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from infra.stack import ready
from tests.compose.conftest import COMPOSE_TEST_PORTS
from tests.support import ADMIN_PASSWORD, synthetic_report, wait_for


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


def web_url(docker_services, docker_ip: str, service: str) -> str:
    """Where the host reaches one web service of the compose stack."""
    port = docker_services.port_for(f"{service}-web", COMPOSE_TEST_PORTS[service])
    return f"http://{docker_ip}:{port}"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first run builds the image and pulls Kafka and MongoDB
def test_report_filed_at_intake_opens_a_case(request):
    """Bring the stack up, file a synthetic report, and see its case reach the case service."""
    reason = docker_engine_missing()
    if reason:
        pytest.skip(reason)
    # Only now, with an engine known to answer, may pytest-docker run `docker compose up`.
    request.getfixturevalue("compose_env")
    docker_services = request.getfixturevalue("docker_services")
    docker_ip = request.getfixturevalue("docker_ip")
    intake, case = (web_url(docker_services, docker_ip, s) for s in ("intake", "case"))
    for url in (intake, case):
        docker_services.wait_until_responsive(check=lambda url=url: ready(url), timeout=300, pause=2)

    login = requests.post(f"{intake}/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD},
                          timeout=10)
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    filed = requests.post(f"{intake}/api/v1/reports", json=synthetic_report(), headers=headers, timeout=10)
    assert filed.status_code == 201, filed.text
    case_id = filed.json()["case_id"]

    def case_status() -> str | None:
        res = requests.get(f"{case}/api/v1/cases/{case_id}", headers=headers, timeout=10)
        return res.json()["status"] if res.status_code == 200 else None

    assert wait_for(case_status, timeout_s=120, interval_s=1, what=f"case {case_id} at the case service") == "reported"
