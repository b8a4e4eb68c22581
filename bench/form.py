"""A client of the web pages as a caseworker's browser uses them, for bench.pipeline's form phase:
log in through the login form, fetch the new-report form for its CSRF token, post the report's
fields, follow the redirect to the report page, and open the case it links to.

The page parsing uses the standard library's html.parser (no HTML library is installed); the
helpers that turn pages and reports into values are pure, and tested in tests/unit/test_bench_form.py.
"""

from __future__ import annotations

import time
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlparse

import requests

# The form's checkboxes: a browser sends "on" for a ticked box without a value, and nothing for an unticked one.
CHECKBOXES = ("risk.deportation_imminent", "risk.trafficking_victim", "consent.statistics")
REPEATED = ("risk.vulnerabilities",)


class _PageScan(HTMLParser):
    """Collects the value of every <input name=...> and the href and text of every <a id=...>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.inputs: dict[str, list[str]] = {}
        self.links: dict[str, dict[str, str]] = {}
        self._open_link: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input" and attributes.get("name"):
            self.inputs.setdefault(attributes["name"], []).append(attributes.get("value") or "")
        elif tag == "a" and attributes.get("id"):
            self._open_link = attributes["id"]
            self.links[self._open_link] = {"href": attributes.get("href") or "", "text": ""}

    def handle_data(self, data):
        if self._open_link is not None:
            self.links[self._open_link]["text"] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._open_link = None


def _scan(html: str) -> _PageScan:
    scan = _PageScan()
    scan.feed(html)
    scan.close()
    return scan


def csrf_token(html: str) -> str:
    """The value of the page's hidden csrf_token input; ValueError if the page has none with a value, or two
    that differ."""
    values = set(_scan(html).inputs.get("csrf_token", [])) - {""}
    if not values:
        raise ValueError("the page has no csrf_token input with a value")
    if len(values) > 1:
        raise ValueError("the page's csrf_token is ambiguous")
    return values.pop()


def case_link(html: str) -> tuple[str, str]:
    """The report page's link to its case (<a id="case-link">): its href and the case id it names.
    ValueError if the page has no such link or the link names no case."""
    link = _scan(html).links.get("case-link")
    if link is None:
        raise ValueError("the page has no case link")
    case_id = unquote(urlparse(link["href"]).path.rstrip("/").rpartition("/cases/")[2])
    if not case_id or "/" in case_id or case_id != link["text"].strip():
        raise ValueError("the case link names no case")
    return link["href"], case_id


def report_form_fields(report: dict) -> list[tuple[str, str]]:
    """A report body (as the JSON API takes it) as the (name, value) pairs a browser posts from the
    new-report form: fields named by their dotted paths, ticked boxes as "on", unticked boxes and empty
    values left out, one pair per chosen vulnerability. services.intake.web.form_to_report reverses it."""
    pairs: list[tuple[str, str]] = []
    for section, content in report.items():
        items = content.items() if isinstance(content, dict) else [(None, content)]
        for field, value in items:
            name = f"{section}.{field}" if field is not None else section
            if name in CHECKBOXES:
                if value:
                    pairs.append((name, "on"))
            elif name in REPEATED:
                pairs.extend((name, str(v)) for v in value or [])
            elif value is not None and value != "":
                pairs.append((name, str(value)))
    return pairs


class FormClient:
    """One browser: its own HTTP session (cookies, kept-alive connections). The session cookie is valid
    on all four services (cookies are per host, not per port), so the case page opens with the same login."""

    def __init__(self, intake_url: str, timeout_s: float, http: requests.Session | None = None):
        self.intake = intake_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = http or requests.Session()

    def login(self, username: str, password: str) -> None:
        """Log in through the login page; RuntimeError if it does not let us in."""
        page = self.http.get(f"{self.intake}/login", timeout=self.timeout_s)
        page.raise_for_status()
        try:
            token = csrf_token(page.text)
        except ValueError as exc:
            raise RuntimeError(f"the login page: {exc}") from exc
        resp = self.http.post(f"{self.intake}/login", data={"csrf_token": token, "username": username,
                                                            "password": password, "lang": "en"},
                              allow_redirects=False, timeout=self.timeout_s)
        if resp.status_code not in (302, 303) or "nrw_session" not in self.http.cookies:
            raise RuntimeError(f"the login form answered {resp.status_code} without letting the benchmark in")

    def clone(self) -> FormClient:
        """Another browser holding the same login (a copy of the cookies), with connections of its own."""
        twin = FormClient(self.intake, self.timeout_s)
        twin.http.cookies.update(self.http.cookies)
        return twin

    def submit(self, report: dict, cap_s: float, poll_s: float) -> dict:
        """Fetch the form, post the report, follow the redirect to the report page, then open the case it
        links to every poll_s seconds until it answers 200 or cap_s has passed since the post was sent.
        perf_counter times: `started` (post sent), `answered` (its redirect), `shown` (report page),
        `readable` (the case page's 200; absent on a timeout), with `case_id`, `polls` and `form_get_s`;
        `error` instead of what could not be done."""
        fetched = time.perf_counter()
        try:
            form = self.http.get(f"{self.intake}/reports/new", timeout=self.timeout_s)
            if form.status_code != 200:
                return {"error": f"GET /reports/new answered {form.status_code}"}
            fields = [("csrf_token", csrf_token(form.text)), *report_form_fields(report)]
        except (requests.RequestException, ValueError) as exc:
            return {"error": f"GET /reports/new: {type(exc).__name__}"}
        started = time.perf_counter()
        done: dict = {"started": started, "form_get_s": started - fetched}
        try:
            resp = self.http.post(f"{self.intake}/reports/new", data=fields, allow_redirects=False,
                                  timeout=self.timeout_s)
            done["answered"] = time.perf_counter()
            if resp.status_code not in (302, 303) or not resp.headers.get("Location"):
                return {**done, "error": f"POST /reports/new answered {resp.status_code}"}
            page_url = urljoin(resp.url, resp.headers["Location"])
            page = self.http.get(page_url, allow_redirects=False, timeout=self.timeout_s)
            done["shown"] = time.perf_counter()
            if page.status_code != 200:
                return {**done, "error": f"the report page answered {page.status_code}"}
            href, done["case_id"] = case_link(page.text)
            case_url = urljoin(page_url, href)
            done["polls"] = 0
            while True:
                answer = self.http.get(case_url, allow_redirects=False, timeout=self.timeout_s)
                now = time.perf_counter()
                done["polls"] += 1
                if answer.status_code == 200:
                    return {**done, "readable": now}
                if answer.status_code != 404:  # 404 is the page's "not here yet"
                    return {**done, "error": f"the case page answered {answer.status_code}"}
                if now - started >= cap_s:
                    return done
                time.sleep(poll_s)
        except (requests.RequestException, ValueError) as exc:
            return {**done, "error": type(exc).__name__}
