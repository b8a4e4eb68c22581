"""Every page of the four services, in a real headless Chromium, in English and in Korean, as the
role that sees it: axe-core (WCAG 2.2 A/AA and best practices) finds no violation, and no page
shows an API code (prior_repatriation, in_third_country, ...) where people read words.

The pages are found by following the links of each role's start pages across the four services
(one visit per kind of page: ids in a path count as one), so a page added later is checked too."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import urljoin, urlsplit

import pytest

from shared import events
from tests.support import axe_violations, browser_log_in, synthetic_report, wait_for

PASSWORD = "e2e-password-0001"
# Links that end a session, download a file or change something are not visits.
NOT_A_VISIT = re.compile(r"logout|/letter|/annex|/export|\.(pdf|docx|xlsx|csv|md|json)$|format=|download")
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|(?<=/)[A-Za-z0-9._%-]*\d[A-Za-z0-9._%-]*$")
# The API's codes that are not words: a page showing one shows a code where people read a word.
CODES = {value for name in dir(events) if name.isupper() and isinstance(getattr(events, name), (tuple, frozenset, set))
         for value in getattr(events, name) if isinstance(value, str) and "_" in value}
MAX_PAGES = 60  # per role and language: a runaway crawl (links that make links) fails instead of hanging


@pytest.fixture(scope="module")
def people(api):
    """An analyst and an admin besides the session's caseworker and advocate (the admin enrolled
    in a second factor, as the stack asks of admins), and something on each page to show: a case
    with its report, a UNHCR-access request, an urgent appeal and a snapshot."""
    made = {}
    for role in ("analyst", "admin"):
        name = f"{role[:3]}-a11y-{uuid.uuid4().hex[:6]}"
        res = api.http.post(f"{api.urls['intake']}/api/v1/users", headers=api.admin, timeout=10,
                            json={"username": name, "password": PASSWORD, "roles": [role]})
        assert res.status_code == 201, res.text
        made[role] = (name, api.login(name, PASSWORD))
    created = api.post_report(synthetic_report(consent={"advocacy": "named", "statistics": True}))
    case_id = created["case_id"]
    wait_for(lambda: api.case(case_id) is not None, what="the case to be opened")
    today = dt.date.today().isoformat()

    def appeal_made():
        res = api.http.post(f"{api.urls['advocacy']}/api/v1/appeals", headers=api.advocate, timeout=10, json={
            "case_ids": [case_id], "kind": "urgent_appeal", "recipients": ["SR DPRK"], "issued_on": today})
        return res.status_code == 201
    wait_for(appeal_made, what="advocacy to know the case and take an appeal")
    res = api.http.post(f"{api.urls['advocacy']}/api/v1/unhcr-access-requests", headers=api.advocate, timeout=10,
                        json={"case_ids": [case_id], "office": "UNHCR Beijing", "sent_on": today, "channel": "email"})
    assert res.status_code == 201, res.text
    snap = api.http.post(f"{api.urls['reporting']}/api/v1/upr/snapshots", headers=made["analyst"][1], timeout=60,
                         json={"cycle": "CN-4", "as_of": today, "title": "accessibility"})
    assert snap.status_code == 201, snap.text
    return {"analyst": made["analyst"][0], "admin": made["admin"][0], "report_id": created["report_id"],
            "case_id": case_id}


def _kind(url: str) -> str:
    """A page's kind: its address without the query and with ids as {id}."""
    path = "/".join(ID.sub("{id}", segment) if ID.search(segment) else segment
                    for segment in urlsplit(url).path.split("/"))
    return f"{urlsplit(url).port} {path}"


def _check(page, url: str, problems: dict[str, list]) -> list[str]:
    """Visit a page, run axe and look for codes; the same-service links it offers."""
    res = page.goto(url)
    assert res is not None and res.status < 500, f"{url}: {res.status if res else 'no answer'}"
    if "text/html" not in (res.headers.get("content-type") or ""):
        return []
    where = (page.evaluate("document.documentElement.lang"), _kind(page.url))
    for found in axe_violations(page):
        problems.setdefault(where, []).append(found)
    text = page.evaluate("document.body.innerText")
    codes = sorted({word for word in re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", text) if word in CODES})
    if codes:
        problems.setdefault(where, []).append({"id": "code-shown", "codes": codes})
    links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    if page.locator("meta[http-equiv=refresh]").count():
        page.goto("about:blank")  # leave before it reloads itself in the middle of the next visit
    return links


def _crawl(page, starts: list[str], origins: set[str], seen: set[str], problems: dict[str, list]) -> None:
    queue = list(starts)
    visited = 0
    while queue:
        url = queue.pop(0)
        if _kind(url) in seen or NOT_A_VISIT.search(url):
            continue
        seen.add(_kind(url))
        visited += 1
        assert visited <= MAX_PAGES, f"more than {MAX_PAGES} kinds of page from {starts}: {sorted(seen)}"
        for href in _check(page, url, problems):
            target = urljoin(page.url, href).split("#")[0]
            if f"{urlsplit(target).scheme}://{urlsplit(target).netloc}" in origins:
                queue.append(target)


@pytest.fixture(scope="module")
def findings(browser, api, people):
    """What axe-core and the look for codes find on every page, as {(service, kind of page, rule):
    [(language, details)]}, after checking that both languages saw the same pages."""
    urls = api.urls
    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls.values()}
    starts = {  # each role's own pages first; the links lead on to the rest
        api.caseworker_name: [f"{urls['intake']}/reports", f"{urls['intake']}/reports/new",
                              f"{urls['intake']}/reports/{people['report_id']}", f"{urls['case']}/cases",
                              f"{urls['case']}/cases/{people['case_id']}", f"{urls['intake']}/account/password",
                              f"{urls['case']}/cases/no-such-case"],
        api.advocate_name: [f"{urls['advocacy']}/", f"{urls['advocacy']}/appeals/new",
                            f"{urls['advocacy']}/requests/new"],
        people["analyst"]: [f"{urls['reporting']}/", f"{urls['reporting']}/snapshots"],
        people["admin"]: [f"{urls['intake']}/audit", f"{urls['intake']}/admin/users"],
    }
    problems: dict[tuple[str, str], list] = {}
    seen_by_lang: dict[str, set[str]] = {"en": set(), "ko": set()}
    for lang in ("en", "ko"):
        context = browser.new_context(locale="en-GB")
        page = context.new_page()
        try:
            for username, pages in starts.items():
                browser_log_in(page, urls["intake"], username, PASSWORD, lang, api.otp_secrets.get(username))
                _crawl(page, pages, origins, seen_by_lang[lang], problems)
                page.context.clear_cookies()
            login_url = f"{urls['intake']}/login"
            page.goto(login_url)
            if lang == "ko":
                page.locator("#lang-switch").select_option(lang)
                page.locator("form:has(#lang-switch) button").click()
                page.wait_for_load_state()
            _check(page, login_url, problems)
        finally:
            context.close()
    assert len(seen_by_lang["en"]) >= 20 and seen_by_lang["en"] == seen_by_lang["ko"], seen_by_lang
    services = {str(urlsplit(u).port): name for name, u in urls.items()}
    found: dict[tuple[str, str, str], list] = {}
    for (lang, kind), items in problems.items():
        port, path = kind.split(" ", 1)
        for item in items:
            found.setdefault((services[port], path, item["id"]), []).append((lang, item))
    return found


def test_every_page_of_the_four_services_passes_axe_in_english_and_korean(findings):
    assert not findings, "\n".join(f"{where}: {what}" for where, what in sorted(findings.items()))
