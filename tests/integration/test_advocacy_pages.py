"""Advocacy's pages against the real FerretDB and Kafka: the dashboard (urgent first, overdue
flagged), the forms that issue and answer appeals and record requests (the API's schemas and
handlers, errors next to their fields, CSRF), consent refused, letters, and Korean."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest
from babel.dates import format_date

from services.advocacy import handlers
from services.advocacy.store import AdvocacyStore
from shared.bus import Publisher
from shared.events import new_event, validate_event
from shared.mongo import utcnow
from tests.support import page_login as support_page_login, topic_size

PASSWORD = "integration-password-1"  # the users fixture's


@pytest.fixture(scope="module")
def advocacy(settings, mongo, advocacy_app):
    """What the advocacy consumer would use: its store, a producer, the settings."""
    store = AdvocacyStore(mongo[settings.database_name("advocacy")])
    store.ensure_indexes()
    publisher = Publisher(settings, principal="admin", client_id="it-advocacy-pages")
    yield {"store": store, "publisher": publisher, "settings": settings}
    publisher.close()


def page_login(client, username: str, lang: str = "en") -> None:
    """Log in through intake's login form, as a browser does; the cookie works here too."""
    res = support_page_login(client, username, PASSWORD, lang=lang)
    assert res.status_code == 302, res.get_data(as_text=True)


def csrf_token(client, path: str) -> str:
    """The CSRF token of the first form on a page."""
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _deliver(advocacy, event: dict) -> None:
    """Apply a case event the way the consumer does (validated as consumed)."""
    handlers.on_case_event(validate_event(json.loads(json.dumps(event))), now=utcnow(), **advocacy)


def _open_case(advocacy, consent: str = "anonymous") -> str:
    case_id = str(uuid.uuid4())
    _deliver(advocacy, new_event("case.opened", producer="case", case_id=case_id, payload={
        "status": "reported", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
        "detained_on": "2024-01-05", "deportation_imminent": False, "vulnerabilities": [],
        "consent_advocacy": consent, "consent_statistics": True}))
    return case_id


def _imminent_since(advocacy, case_id: str, hours_ago: float) -> str:
    """The case became at imminent risk `hours_ago`: the clock's draft id."""
    _deliver(advocacy, new_event("case.status_changed", producer="case", case_id=case_id,
                                 payload={"from": "reported", "to": "deportation_imminent",
                                          "effective_on": utcnow().date().isoformat()},
                                 now=utcnow() - dt.timedelta(hours=hours_ago)))
    return advocacy["store"].get_case(case_id)["episode_appeal_id"]


def _rows(html: str, table_id: str) -> list[str]:
    body = html.split(f'<table id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr class=.*?</tr>", body, flags=re.S)


def _appeal_count(advocacy, case_id: str) -> int:
    return len(advocacy["store"].list_appeals(case_id=case_id))


# --- the dashboard --------------------------------------------------------------------------------


def test_the_dashboard_puts_the_clock_drafts_first_with_their_time_left_and_flags_what_is_overdue(
        advocacy_client, advocacy, tokens, users):
    due_hours = advocacy["settings"].appeal_due_hours
    late, soon, manual_case = _open_case(advocacy), _open_case(advocacy), _open_case(advocacy)
    late_draft = _imminent_since(advocacy, late, due_hours + 2)  # due two hours ago
    soon_draft = _imminent_since(advocacy, soon, due_hours - 5)  # due in five hours
    manual = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"],
                                  json={"case_ids": [manual_case], "kind": "allegation_letter"}).get_json()
    overdue_request = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"], json={
        "case_ids": [late], "office": "UNHCR Beijing", "channel": "email",
        "sent_on": (utcnow().date() - dt.timedelta(days=30)).isoformat()}).get_json()
    fresh_request = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"], json={
        "case_ids": [soon], "office": "UNHCR Bangkok", "channel": "fax",
        "sent_on": utcnow().date().isoformat()}).get_json()

    page_login(advocacy_client, users["advocate"])
    res = advocacy_client.get("/")
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    drafts = {re.search(r'data-appeal-id="([^"]+)"', row).group(1): (n, row)
              for n, row in enumerate(_rows(html, "drafts"))}
    assert drafts[late_draft][0] < drafts[soon_draft][0] < drafts[manual["appeal_id"]][0]  # soonest due first
    late_row, soon_row = drafts[late_draft][1], drafts[soon_draft][1]
    assert 'class="draft overdue"' in late_row and "overdue by 2 hours" in late_row
    assert 'class="overdue-marker"' in late_row and "Overdue" in late_row  # a word, not colour alone
    assert f'href="/appeals/{late_draft}"' in late_row and "deportation clock" in late_row
    assert late in late_row  # its case, linked to the case service
    assert 'class="draft"' in soon_row and "in 5 hours" in soon_row and "Overdue" not in soon_row
    assert "allegation letter" in drafts[manual["appeal_id"]][1]

    requests = {re.search(r'data-request-id="([^"]+)"', row).group(1): (n, row)
                for n, row in enumerate(_rows(html, "open-requests"))}
    assert requests[overdue_request["request_id"]][0] < requests[fresh_request["request_id"]][0]
    assert 'class="request overdue"' in requests[overdue_request["request_id"]][1]
    assert "Overdue" in requests[overdue_request["request_id"]][1]
    assert "Overdue" not in requests[fresh_request["request_id"]][1]
    assert html.index('id="drafts"') < html.index('id="open-requests"') < html.index("Recent appeals")

    # The case leaves imminent risk: its draft says so, on the dashboard and on its page.
    _deliver(advocacy, new_event("case.status_changed", producer="case", case_id=soon, payload={
        "from": "deportation_imminent", "to": "released", "effective_on": utcnow().date().isoformat()}))
    html = advocacy_client.get("/").get_data(as_text=True)
    row = next(r for r in _rows(html, "drafts") if soon_draft in r)
    assert "The case is no longer at imminent risk since" in row
    assert "no longer at imminent risk since" in advocacy_client.get(f"/appeals/{soon_draft}").get_data(as_text=True)


def test_the_dashboard_is_for_advocates_and_the_navigation_links_to_it(advocacy_client, users):
    page_login(advocacy_client, users["caseworker"])
    assert advocacy_client.get("/").status_code == 403
    readable = advocacy_client.get("/appeals")  # anyone may read the lists
    assert readable.status_code == 200 and ">Advocacy</a>" not in readable.get_data(as_text=True)
    page_login(advocacy_client, users["advocate"])
    html = advocacy_client.get("/").get_data(as_text=True)
    assert re.search(r'<a href="http://[^"]+/">Advocacy</a>', html)


def test_the_dashboard_in_korean(advocacy_client, advocacy, users):
    due_hours = advocacy["settings"].appeal_due_hours
    draft = _imminent_since(advocacy, _open_case(advocacy), due_hours - 5)
    late = _imminent_since(advocacy, _open_case(advocacy), due_hours + 2)
    page_login(advocacy_client, users["advocate"], lang="ko")
    html = advocacy_client.get("/").get_data(as_text=True)
    assert '<html lang="ko">' in html and "<h1>옹호 활동: 긴급한 일부터</h1>" in html
    rows = {d: next(r for r in _rows(html, "drafts") if d in r) for d in (draft, late)}
    assert "5시간 후" in rows[draft] and "강제송환 시계" in rows[draft] and "긴급 호소" in rows[draft]
    assert "기한 초과" in rows[late] and "2시간 지남" in rows[late]


# --- appeals: issue, answer, errors, consent, CSRF ------------------------------------------------


def test_issuing_a_draft_through_the_form_records_the_date_and_the_recipients(advocacy_client, advocacy, tokens,
                                                                               users):
    case_id = _open_case(advocacy)
    draft = _imminent_since(advocacy, case_id, 1)
    page_login(advocacy_client, users["advocate"])
    page = advocacy_client.get(f"/appeals/{draft}").get_data(as_text=True)
    assert f'name="issued_on" max="{utcnow().date().isoformat()}" value="{utcnow().date().isoformat()}"' in page
    assert re.search(rf'href="http://[^"]+/cases/{case_id}"', page)  # the case, on the case service
    assert 'value="SR DPRK" >' in page  # the maintained list, none chosen yet (the clock named no one)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sent = utcnow().date() - dt.timedelta(days=1)
    res = advocacy_client.post(f"/appeals/{draft}/issue", data={"csrf_token": token, "issued_on": sent.isoformat(),
                                                                "recipients": ["SR DPRK", "UN WGAD"]})
    assert res.status_code == 302 and res.headers["Location"].endswith(f"/appeals/{draft}")
    shown = advocacy_client.get(f"/appeals/{draft}").get_data(as_text=True)
    assert "The appeal was issued on" in shown and format_date(sent, "long", locale="en") in shown
    assert '<dd id="appeal-status"><strong>issued</strong></dd>' in shown
    stored = advocacy_client.get(f"/api/v1/appeals/{draft}", headers=tokens["advocate"]).get_json()
    assert stored["status"] == "issued" and stored["issued_on"] == sent.isoformat()
    assert stored["recipients"] == ["SR DPRK", "UN WGAD"]
    assert 'id="issue-form"' not in shown and 'id="answer-form"' in shown

    # The answer, through its form.
    res = advocacy_client.post(f"/appeals/{draft}/answer", data={
        "csrf_token": token, "outcome": "response_received", "received_on": utcnow().date().isoformat()})
    assert res.status_code == 302
    shown = advocacy_client.get(f"/appeals/{draft}").get_data(as_text=True)
    assert '<strong>response received</strong>' in shown and 'id="responses"' in shown
    assert users["advocate"] in shown.split('id="history"', 1)[1]  # who did it, by name


def test_a_form_error_is_shown_next_to_its_field_and_keeps_what_was_typed(advocacy_client, advocacy, users):
    case_id = _open_case(advocacy)
    page_login(advocacy_client, users["advocate"])
    token = csrf_token(advocacy_client, "/appeals/new")
    future = (utcnow().date() + dt.timedelta(days=3)).isoformat()
    typed = f"{case_id},\n  {case_id[:8]}-typo"
    res = advocacy_client.post("/appeals/new", data={"csrf_token": token, "case_ids": typed, "kind": "",
                                                     "recipients": ["SR Torture"], "issued_on": future})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert re.search(r'<select id="kind" name="kind" aria-invalid="true" aria-describedby="kind-error">', html)
    assert '<p class="error" id="kind-error">Missing data for required field.</p>' in html
    assert '<p class="error" id="issued_on-error">Must not be in the future.</p>' in html
    assert f">{typed}</textarea>" in html and f'value="{future}"' in html
    assert 'value="SR Torture" checked>' in html and 'value="SR DPRK" >' in html
    assert _appeal_count(advocacy, case_id) == 0

    # Valid now, but one case id is unknown to advocacy: said next to the case ids, nothing stored.
    res = advocacy_client.post("/appeals/new", data={"csrf_token": token, "case_ids": typed, "kind": "urgent_appeal",
                                                     "recipients": ["SR Torture"]})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert f"Advocacy does not know these cases: {case_id[:8]}-typo." in html.split('id="case_ids-error"', 1)[1]
    assert _appeal_count(advocacy, case_id) == 0

    # The issue form: no recipient chosen and no date.
    draft = _imminent_since(advocacy, case_id, 1)
    res = advocacy_client.post(f"/appeals/{draft}/issue", data={"csrf_token": token, "issued_on": ""})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert '<p class="error" id="recipients-error">Choose at least one recipient.</p>' in html
    assert '<p class="error" id="issued_on-error">Missing data for required field.</p>' in html
    assert advocacy["store"].appeals.get(draft)["status"] == "draft"


def test_a_new_appeal_in_korean_says_its_errors_in_korean(advocacy_client, advocacy, users):
    page_login(advocacy_client, users["advocate"], lang="ko")
    token = csrf_token(advocacy_client, "/appeals/new")
    res = advocacy_client.post("/appeals/new", data={"csrf_token": token, "case_ids": "", "kind": "urgent_appeal"})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert '<p class="error" id="case_ids-error">필수 항목입니다.</p>' in html and "<h1>새 호소문</h1>" in html


def test_a_forged_post_without_the_csrf_token_is_refused(advocacy_client, advocacy, users):
    case_id = _open_case(advocacy)
    draft = _imminent_since(advocacy, case_id, 1)
    page_login(advocacy_client, users["advocate"])
    forged = advocacy_client.post("/appeals/new", data={"case_ids": case_id, "kind": "urgent_appeal"})
    assert forged.status_code == 400 and "The form could not be accepted" in forged.get_data(as_text=True)
    assert _appeal_count(advocacy, case_id) == 1  # the clock's draft only
    forged = advocacy_client.post(f"/appeals/{draft}/issue", data={"issued_on": utcnow().date().isoformat(),
                                                                   "recipients": ["SR DPRK"]})
    assert forged.status_code == 400 and advocacy["store"].appeals.get(draft)["status"] == "draft"
    wrong = advocacy_client.post(f"/appeals/{draft}/issue", data={"csrf_token": "forged", "recipients": ["SR DPRK"],
                                                                  "issued_on": utcnow().date().isoformat()})
    assert wrong.status_code == 400 and advocacy["store"].appeals.get(draft)["status"] == "draft"


def test_a_case_without_consent_is_named_in_a_friendly_message_and_nothing_is_stored(advocacy_client, advocacy,
                                                                                     users, settings):
    allowed, refused = _open_case(advocacy, "named"), _open_case(advocacy, "none")
    versions = advocacy["store"].appeals.versions.count_documents({})
    events = topic_size(settings.kafka_bootstrap, "advocacy.events")
    page_login(advocacy_client, users["advocate"])
    token = csrf_token(advocacy_client, "/appeals/new")
    typed = f"{allowed}\n{refused}"
    res = advocacy_client.post("/appeals/new", data={"csrf_token": token, "case_ids": typed, "kind": "urgent_appeal",
                                                     "recipients": ["UN WGEID"],
                                                     "issued_on": utcnow().date().isoformat()})
    assert res.status_code == 409
    html = res.get_data(as_text=True)
    notice = html.split('id="no-consent"', 1)[1].split("</div>", 1)[0]
    assert "Nothing was saved." in notice and "consent of these cases is “none”" in notice
    assert f"/cases/{refused}\">{refused}</a>" in notice and allowed not in notice
    assert f">{typed}</textarea>" in html and 'value="UN WGEID" checked>' in html
    assert advocacy["store"].appeals.versions.count_documents({}) == versions
    assert topic_size(settings.kafka_bootstrap, "advocacy.events") == events

    token = csrf_token(advocacy_client, "/requests/new")
    res = advocacy_client.post("/requests/new", data={"csrf_token": token, "case_ids": refused, "office": "beijing",
                                                      "channel": "email", "sent_on": utcnow().date().isoformat()})
    assert res.status_code == 409 and f"/cases/{refused}\">{refused}</a>" in res.get_data(as_text=True)
    assert advocacy["store"].list_requests(case_id=refused) == []


# --- UNHCR-access requests ------------------------------------------------------------------------


def test_a_request_is_recorded_answered_and_found_by_the_list_filters(advocacy_client, advocacy, users):
    first, second = _open_case(advocacy), _open_case(advocacy)
    page_login(advocacy_client, users["advocate"])
    form = advocacy_client.get(f"/requests/new?case_id={first}").get_data(as_text=True)
    assert f">{first}</textarea>" in form and f'value="{utcnow().date().isoformat()}"' in form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    sent_on = (utcnow().date() - dt.timedelta(days=10)).isoformat()
    res = advocacy_client.post("/requests/new", data={"csrf_token": token, "case_ids": f"{first}, {second}",
                                                      "office": "UNHCR Beijing", "channel": "meeting",
                                                      "sent_on": sent_on})
    assert res.status_code == 302
    request_id = res.headers["Location"].rsplit("/", 1)[1]
    page = advocacy_client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert "The request was recorded." in page and "meeting" in page and 'class="overdue"' in page
    assert f"/cases/{first}\"" in page and f"/cases/{second}\"" in page

    overdue = advocacy_client.get(f"/requests?overdue=true&case_id={second}").get_data(as_text=True)
    assert request_id in overdue and "1 requests" in overdue
    assert request_id not in advocacy_client.get(f"/requests?overdue=false&case_id={second}").get_data(as_text=True)

    # A response through the form; a response dated before the request was sent is refused.
    early = (utcnow().date() - dt.timedelta(days=11)).isoformat()
    res = advocacy_client.post(f"/requests/{request_id}/responses", data={
        "csrf_token": token, "outcome": "acknowledged", "received_on": early})
    assert res.status_code == 422
    html = res.get_data(as_text=True)
    assert "Must be between the date the request was sent and today." in html.split('id="received_on-error"', 1)[1]
    assert f'value="{early}"' in html and '<option value="acknowledged" selected>' in html
    res = advocacy_client.post(f"/requests/{request_id}/responses", data={
        "csrf_token": token, "outcome": "granted", "received_on": utcnow().date().isoformat()})
    assert res.status_code == 302
    page = advocacy_client.get(f"/requests/{request_id}").get_data(as_text=True)
    assert '<strong>granted</strong>' in page and 'id="response-form"' not in page
    assert request_id in advocacy_client.get(f"/requests?status=granted&case_id={first}").get_data(as_text=True)
    bad = advocacy_client.get("/requests?status=lost")
    assert bad.status_code == 422 and "Choose one of the options." in bad.get_data(as_text=True)


def test_the_appeal_list_filters_by_status_and_case(advocacy_client, advocacy, users):
    case_id = _open_case(advocacy)
    draft = _imminent_since(advocacy, case_id, 1)
    page_login(advocacy_client, users["analyst"])  # anyone may read
    html = advocacy_client.get(f"/appeals?case_id={case_id}&status=draft").get_data(as_text=True)
    assert draft in html and "1 appeals" in html
    assert draft not in advocacy_client.get(f"/appeals?case_id={case_id}&status=issued").get_data(as_text=True)
    page = advocacy_client.get(f"/appeals/{draft}").get_data(as_text=True)
    assert 'id="issue-form"' not in page and "/letter" not in page  # forms and letters are for advocates
    assert advocacy_client.get(f"/appeals/{draft}/letter").status_code == 403


# --- letters --------------------------------------------------------------------------------------


def test_letters_open_in_the_browser_and_download_in_both_languages(advocacy_client, advocacy, tokens, users):
    case_id = _open_case(advocacy, "anonymous")
    appeal = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json={
        "case_ids": [case_id], "kind": "urgent_appeal", "recipients": ["SR DPRK"],
        "issued_on": utcnow().date().isoformat()}).get_json()
    page_login(advocacy_client, users["advocate"])
    page = advocacy_client.get(f"/appeals/{appeal['appeal_id']}").get_data(as_text=True)
    for lang in ("en", "ko"):
        for fmt in ("md", "html", "pdf"):
            assert f"/appeals/{appeal['appeal_id']}/letter?lang={lang}&amp;format={fmt}&amp;download=1" in page
    shown = advocacy_client.get(f"/appeals/{appeal['appeal_id']}/letter?lang=en&format=html")
    assert shown.status_code == 200 and shown.mimetype == "text/html"
    assert shown.headers["Content-Disposition"].startswith("inline;")
    for lang, fmt, mimetype in (("ko", "pdf", "application/pdf"), ("en", "md", "text/markdown")):
        got = advocacy_client.get(f"/appeals/{appeal['appeal_id']}/letter?lang={lang}&format={fmt}&download=1")
        assert got.status_code == 200 and got.mimetype == mimetype
        assert got.headers["Content-Disposition"].startswith("attachment;")
        assert f'-{lang}.{fmt}"' in got.headers["Content-Disposition"]
    assert advocacy_client.get(f"/appeals/{appeal['appeal_id']}/letter?format=doc").status_code == 422

    request = advocacy_client.post("/api/v1/unhcr-access-requests", headers=tokens["advocate"], json={
        "case_ids": [case_id], "office": "UNHCR Beijing", "channel": "email",
        "sent_on": utcnow().date().isoformat()}).get_json()
    got = advocacy_client.get(f"/requests/{request['request_id']}/letter?lang=ko&format=md")
    assert got.status_code == 200 and got.mimetype == "text/markdown"


def test_a_letter_that_needs_names_intake_cannot_give_shows_a_friendly_page(advocacy_client, advocacy, tokens,
                                                                            users):
    case_id = _open_case(advocacy, "named")  # its name is asked of intake, which is not running here
    appeal = advocacy_client.post("/api/v1/appeals", headers=tokens["advocate"], json={
        "case_ids": [case_id], "kind": "urgent_appeal", "recipients": ["SR DPRK"],
        "issued_on": utcnow().date().isoformat()}).get_json()
    page_login(advocacy_client, users["advocate"])
    res = advocacy_client.get(f"/appeals/{appeal['appeal_id']}/letter?lang=en&format=pdf&download=1")
    assert res.status_code == 503 and res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert "names could not be fetched from the intake service" in html and "Non-Refoulement Watch" in html
