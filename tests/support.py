"""Helpers the test tiers share: test ports, synthetic data, reading Kafka topics, waiting.

All identifying values in test data are synthetic and carry the marker SYNTH, so a scan for the
marker in Kafka records, logs or non-intake databases finds any leak of any test's data.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
import uuid
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

import requests
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
SYNTH = "Synthmark"

# The test stack uses its own ports and var/ folder, so `make test` never touches a `make run` stack.
# NRW_TEST_PORT_OFFSET shifts them all (and the var/ folder), so two checkouts can test at once.
PORT_OFFSET = int(os.environ.get("NRW_TEST_PORT_OFFSET", "0"))
TEST_PORTS = {name: port + PORT_OFFSET for name, port in
              {"kafka": 19092, "kafka_controller": 19093, "mongo": 27117,
               "intake": 18001, "case": 18002, "advocacy": 18003, "reporting": 18004}.items()}
ADMIN_PASSWORD = "test-admin-password-0001"


def tier_env(tier: str) -> dict[str, str]:
    """NRW_* settings for one test tier's stack."""
    return {
        "NRW_KAFKA_BOOTSTRAP": f"127.0.0.1:{TEST_PORTS['kafka']}",
        "NRW_KAFKA_CONTROLLER_PORT": str(TEST_PORTS["kafka_controller"]),
        "NRW_KAFKA_HEAP": "512m",
        "NRW_FERRETDB_LISTEN": f"127.0.0.1:{TEST_PORTS['mongo']}",
        "NRW_MONGO_URI": f"mongodb://127.0.0.1:{TEST_PORTS['mongo']}/",
        "NRW_INTAKE_PORT": str(TEST_PORTS["intake"]),
        "NRW_CASE_PORT": str(TEST_PORTS["case"]),
        "NRW_ADVOCACY_PORT": str(TEST_PORTS["advocacy"]),
        "NRW_REPORTING_PORT": str(TEST_PORTS["reporting"]),
        "NRW_VAR": str(ROOT / "var" / "test" / (f"{tier}-{PORT_OFFSET}" if PORT_OFFSET else tier)),
        "NRW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "NRW_RELAY_INTERVAL_SECONDS": "0.5",
        "NRW_RELAY_GRACE_SECONDS": "3",
        "NRW_WEB_WORKERS": "2",
        # Test sessions outlast the 15-minute default of a token; the second factor is asked of
        # admins in the end-to-end tiers (its own tests cover every role), of nobody in-process.
        "NRW_TOKEN_TTL_SECONDS": "7200",
        "NRW_2FA_ROLES": "" if tier == "integration" else "admin",
        # Every test logs in from 127.0.0.1, many times a minute; the throttle's own tests set theirs.
        "NRW_LOGIN_ATTEMPTS_PER_MINUTE": "100000",
    }


_KAFKA_SECRETS: dict[str, Path] = {}


def register_kafka(bootstrap: str, secrets_dir: Path) -> None:
    """Say where the password files of the broker at `bootstrap` are (a tier's var/secrets)."""
    _KAFKA_SECRETS[bootstrap] = Path(secrets_dir)


def kafka_secrets(bootstrap: str) -> Path:
    """The secrets folder registered for the broker at `bootstrap`."""
    if bootstrap not in _KAFKA_SECRETS:
        raise KeyError(f"no secrets folder registered for the broker at {bootstrap} (tests.support.register_kafka)")
    return _KAFKA_SECRETS[bootstrap]


def kafka_options(bootstrap: str, principal: str = "admin") -> dict:
    """kafka-python arguments to reach a test broker as one principal (the admin by default: the
    tests read and write any topic and group; the ACL tests log in as the services)."""
    from shared.config import Settings
    from shared.kafka_auth import client_options

    return client_options(Settings(kafka_bootstrap=bootstrap, secrets_dir=kafka_secrets(bootstrap)), principal)


def offline_app(factory, var_dir: Path):
    """A service's app for unit tests: settings that reach no database and no broker."""
    from shared.config import Settings

    from shared import keys

    settings = Settings(mongo_uri="mongodb://127.0.0.1:1/", var_dir=var_dir)
    keys.init(settings)
    app = factory(settings)
    app.testing = True
    return app


_ISSUERS: dict[int, object] = {}


def page_login(client, username: str, password: str, *, lang: str = "en", next_path: str = "/"):
    """Log a Flask test client in through intake's login form (CSRF token included), as a browser
    does from any service's page: intake, the issuer, signs the session, and the cookie (per host,
    not per port) is then sent to every service. The form's answer."""
    import re

    app = client.application
    if app.extensions["nrw"].service == "intake":
        issuer = client
    else:
        from services.intake.app import create_app

        settings = app.extensions["nrw"].settings
        intake = _ISSUERS.setdefault(id(settings), create_app(settings))
        intake.testing = True
        issuer = intake.test_client()
    form = issuer.get(f"/login?next={next_path}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.get_data(as_text=True)).group(1)
    answer = issuer.post(f"/login?next={next_path}",
                         data={"csrf_token": token, "username": username, "password": password, "lang": lang})
    if issuer is not client:
        cookie = issuer.get_cookie("nrw_session")
        if cookie is not None:
            client.set_cookie("nrw_session", cookie.value)
    return answer


def synthetic_report(**sections) -> dict:
    """A valid report body about an invented person; identifying values carry the SYNTH marker."""
    tag = uuid.uuid4().hex[:10]
    rng = random.Random(tag)
    body = {
        "person": {"full_name": f"{SYNTH} Name {tag}", "sex": rng.choice(["female", "male", "unknown"]),
                   "birth_year": rng.randint(1950, 2015), "nationality": "KP",
                   "hometown": f"{SYNTH}town {tag}", "family_contact": f"{SYNTH}-contact-{tag}"},
        "detention": {"detained_on": "2023-04-18", "province": rng.choice(["Jilin", "Liaoning", "Yunnan"]),
                      "city": f"{SYNTH}city {tag}", "facility": f"{SYNTH} facility {tag}"},
        "risk": {"deportation_imminent": False, "expected_deportation_on": None,
                 "vulnerabilities": ["prior_repatriation"], "trafficking_victim": False},
        "source": {"type": "family", "reliability": "confirmed", "received_on": "2023-04-20"},
        "consent": {"advocacy": "named", "statistics": True},
        "notes": f"{SYNTH} note {tag}: met the family at a synthetic place.",
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def near_duplicate_pair(province: str | None = None) -> tuple[dict, dict]:
    """Two reports that may be one person: the name spelled two ways (no exact match), the same
    birth year, and a province of their own unless one is given."""
    tag = uuid.uuid4().hex[:6]
    place = {"province": province or f"Province {tag}"}
    return (synthetic_report(person={"full_name": f"{SYNTH} Kim Ok-sun {tag}", "birth_year": 1991}, detention=place),
            synthetic_report(person={"full_name": f"{SYNTH} Kim Ok Son {tag}", "birth_year": 1991}, detention=place))


def start_group_at_end(bootstrap: str, group_id: str, topics: list[str]) -> None:
    """Commit a new consumer group's offsets at the topics' current ends, so that its consumer
    reads only what is published from now on (not every earlier test's events)."""
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(**kafka_options(bootstrap), group_id=group_id, enable_auto_commit=False,
                             bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(partitions).items()})
    finally:
        consumer.close(autocommit=False)


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10) -> list:
    """Every record of a topic, from the start of each partition to its current end."""
    consumer = KafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False, group_id=None,
                             bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def topic_size(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(**kafka_options(bootstrap), group_id=None, bootstrap_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def wait_for(predicate, timeout_s: float = 15, interval_s: float = 0.1, what: str = "condition"):
    """Poll until predicate() returns something truthy; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Api:
    """HTTP access to a running stack (local or compose), with a caseworker's, an advocate's and an
    admin's token. The two users are created for the session through the admin."""

    def __init__(self, urls: dict[str, str]):
        self.urls = urls
        self.http = requests.Session()
        self.otp_secrets: dict[str, str] = {}
        self.admin = self.login("admin", ADMIN_PASSWORD)
        self.caseworker_name, self.caseworker = self._user("cw", "caseworker")
        self.advocate_name, self.advocate = self._user("adv", "advocate")

    def _user(self, prefix: str, role: str) -> tuple[str, dict]:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        res = self.http.post(f"{self.urls['intake']}/api/v1/users", headers=self.admin, timeout=10,
                             json={"username": name, "password": "e2e-password-0001", "roles": [role]})
        assert res.status_code == 201, res.text
        return name, self.login(name, "e2e-password-0001")

    def login(self, username: str, password: str) -> dict:
        """Bearer header for a user; one whose role needs a second factor is enrolled first (the
        test keeps the secret and computes codes, as an authenticator app would)."""
        body = {"username": username, "password": password}
        if username in self.otp_secrets:
            body["otp"] = next_totp(self.otp_secrets[username], username)
        res = self.http.post(f"{self.urls['intake']}/api/v1/auth/token", timeout=10, json=body)
        assert res.status_code == 200, res.text
        if res.json().get("scope") == "otp_enrolment":
            self.otp_secrets[username] = enrol_totp(self.http, self.urls["intake"], res.json()["access_token"],
                                                    username)
            return self.login(username, password)
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


_LAST_STEP: dict[str, int] = {}


def wait_for_page(page, origin: str, path: str) -> None:
    """Wait until the browser is at `path` (a glob on the path alone) on `origin`. A glob on the
    whole address such as "**/cases" already matches a login page whose ?next= names that page, so
    it could return before the login has even been sent, and the page's own move that follows then
    interrupts whatever the test does next."""
    def there(url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == origin.rstrip("/") and fnmatchcase(parts.path, path)

    page.wait_for_url(there)


def next_totp(secret: str, username: str) -> str:
    """A TOTP code of a time step not used before for this user (the server takes each step once),
    waiting for the next step if this one was used."""
    import pyotp

    totp = pyotp.TOTP(secret)
    step = int(time.time()) // totp.interval
    if _LAST_STEP.get(username, -1) >= step:
        time.sleep((step + 1) * totp.interval - time.time() + 0.05)  # the authenticator shows the next code
        step += 1
    _LAST_STEP[username] = step
    return totp.generate_otp(step)


def enrol_totp(http: requests.Session, base_url: str, enrolment_token: str, username: str) -> str:
    """Enrol a second factor through the API with a token of scope otp_enrolment; the secret."""
    headers = {"Authorization": f"Bearer {enrolment_token}"}
    started = http.post(f"{base_url}/api/v1/auth/totp", headers=headers, timeout=10)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = http.post(f"{base_url}/api/v1/auth/totp/confirm", headers=headers, timeout=10,
                          json={"otp": next_totp(secret, username)})
    assert confirmed.status_code == 200, confirmed.text
    return secret


CHROMIUM = "/usr/bin/chromium"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (`make browser` installs Chromium), or None."""
    return None if shutil.which(CHROMIUM) else f"no Chromium at {CHROMIUM} (`make browser` installs Debian's)"


AXE_VERSION = "4.14.1"  # pinned in infra/axe.sh, which `make browser` runs
AXE = ROOT / ".cache" / "axe" / f"axe-core-{AXE_VERSION}" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page) -> list[dict]:
    """What axe-core finds on the page as it is now (WCAG 2.2 A/AA and best practices): one dict
    per rule broken, with its id, impact, help and the first few offending elements. axe is
    evaluated in the page through the DevTools protocol, which the pages' CSP does not restrict."""
    if not AXE.exists():
        raise AssertionError(f"no axe-core at {AXE}: run `make browser` (infra/axe.sh fetches it)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async (tags) => {
        const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
    }""", AXE_TAGS)
    return found


def browser_log_in(page, intake_url: str, username: str, password: str, lang: str = "en",
                   otp_secret: str | None = None) -> None:
    """Log in through intake's login page (and its second-factor page when `otp_secret` is given),
    the pages then in `lang`."""
    page.goto(f"{intake_url}/login")
    if page.evaluate("document.documentElement.lang") != lang:
        page.locator("#lang-switch").select_option(lang)
        page.locator("form:has(#lang-switch) button").click()
        page.wait_for_load_state()
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("form:has(#username) button[type=submit]").click()
    if otp_secret:
        page.wait_for_url("**/login/otp**")
        page.locator("#otp").fill(next_totp(otp_secret, username))
        page.locator("form:has(#otp) button[type=submit]").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.url
    assert page.evaluate("document.documentElement.lang") == lang


@contextlib.contextmanager
def chromium():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            yield browser
        finally:
            browser.close()
