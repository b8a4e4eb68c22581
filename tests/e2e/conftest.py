"""End-to-end tier: the whole stack as `make run` starts it (every Procfile line), on test ports,
driven over HTTP and Kafka only. Each process runs on its own so tests can stop or kill one."""

from __future__ import annotations

import shutil
import uuid

import pytest
import requests

from infra.stack import Stack, service_urls
from tests.support import ADMIN_PASSWORD, tier_env


class Api:
    """HTTP access to the running services, with a caseworker's, an advocate's and an admin's token."""

    def __init__(self, urls: dict[str, str]):
        self.urls = urls
        self.http = requests.Session()
        self.admin = self.login("admin", ADMIN_PASSWORD)
        name = self.caseworker_name = f"cw-{uuid.uuid4().hex[:6]}"
        res = self.http.post(f"{urls['intake']}/api/v1/users", headers=self.admin, timeout=10,
                             json={"username": name, "password": "e2e-password-0001", "roles": ["caseworker"]})
        assert res.status_code == 201, res.text
        self.caseworker = self.login(name, "e2e-password-0001")
        name = self.advocate_name = f"adv-{uuid.uuid4().hex[:6]}"
        res = self.http.post(f"{urls['intake']}/api/v1/users", headers=self.admin, timeout=10,
                             json={"username": name, "password": "e2e-password-0001", "roles": ["advocate"]})
        assert res.status_code == 201, res.text
        self.advocate = self.login(name, "e2e-password-0001")

    def login(self, username: str, password: str) -> dict:
        """Bearer header for a user."""
        res = self.http.post(f"{self.urls['intake']}/api/v1/auth/token", timeout=10,
                             json={"username": username, "password": password})
        assert res.status_code == 200, res.text
        return {"Authorization": f"Bearer {res.json()['access_token']}"}

    def post_report(self, body: dict, session: requests.Session | None = None) -> dict:
        """File a report as the caseworker; the 201 body."""
        res = (session or self.http).post(f"{self.urls['intake']}/api/v1/reports", json=body,
                                          headers=self.caseworker, timeout=30)
        assert res.status_code == 201, res.text
        return res.json()

    def case(self, case_id: str) -> dict | None:
        """The case as the case service shows it, or None while it does not exist."""
        res = self.http.get(f"{self.urls['case']}/api/v1/cases/{case_id}", headers=self.caseworker, timeout=10)
        if res.status_code == 404:
            return None
        assert res.status_code == 200, res.text
        return res.json()


@pytest.fixture(scope="session")
def env():
    """The NRW_* settings of the end-to-end stack (fresh data each session)."""
    env = tier_env("e2e")
    shutil.rmtree(env["NRW_VAR"], ignore_errors=True)
    return env


@pytest.fixture(scope="session")
def stack(env):
    """Every process of infra/Procfile, started and ready."""
    stack = Stack(env)
    stack.start()
    try:
        stack.wait_ready(timeout_s=180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def api(stack, env):
    """HTTP access to the running stack."""
    return Api(service_urls(stack.env))


@pytest.fixture(scope="session")
def bootstrap(env):
    """The test broker's address."""
    return env["NRW_KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()
