"""A caseworker in a real headless Chromium: log in, file a report in English and one in Korean,
meet a validation error with everything typed kept, fix it, open the case, move it to detained.
Screenshots of each page are saved in artifacts/browser/."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid

import pytest

from tests.support import ROOT, SYNTH, near_duplicate_pair, synthetic_report, wait_for, wait_for_page

SHOTS = ROOT / "artifacts" / "browser"


@pytest.fixture
def page(browser, api):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> None:
    """Save what the caseworker sees."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page, api):
    page.goto(f"{api.urls['intake']}/reports")
    assert "/login" in page.url  # pages need a login
    shot(page, "01-login")
    page.get_by_label("Username").fill(api.caseworker_name)
    page.get_by_label("Password").fill("e2e-password-0001")
    page.get_by_role("button", name="Log in").click()
    wait_for_page(page, api.urls["intake"], "/reports")


def test_a_caseworker_files_reports_fixes_an_error_and_moves_the_case(page, api):
    log_in(page, api)
    shot(page, "02-reports")
    page.get_by_role("link", name="New report").click()
    name = f"{SYNTH} Browser {uuid.uuid4().hex[:6]}"
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Birth year").fill("1899")  # wrong on purpose
    page.get_by_label("Hometown").fill(f"{SYNTH}town browser")
    page.get_by_label("Province").fill("Jilin")
    page.get_by_label("Source type").select_option("family")
    page.get_by_label("Reliability").select_option("confirmed")
    page.get_by_label("Advocacy consent").select_option("named")
    # "Sex" is left out: two errors at once.
    page.get_by_role("button", name="Save report").click()

    alert = page.get_by_role("alert")
    assert "was not saved" in alert.inner_text()
    assert "Must be between 1900" in page.locator("#person-birth_year-error").inner_text()
    assert page.locator("#person-sex-error").is_visible()
    assert page.get_by_label("Full name").input_value() == name  # what was typed is kept
    assert page.get_by_label("Province").input_value() == "Jilin"
    assert page.get_by_label("Birth year").get_attribute("aria-invalid") == "true"
    shot(page, "03-validation-error")

    page.get_by_label("Birth year").fill("1994")
    page.get_by_label("Sex").select_option("female")
    page.get_by_role("button", name="Save report").click()
    page.wait_for_url("**/reports/*")
    assert "A new case was opened." in page.get_by_role("status").inner_text()
    assert page.locator("#full-name").inner_text() == name
    shot(page, "04-report")

    page.locator("#case-link").click()
    page.wait_for_selector("#case-status")
    assert page.locator("#case-status").inner_text() == "reported"
    shot(page, "05-case")
    page.get_by_label("New status").select_option("detained")
    page.get_by_label("Date it happened").fill("2023-04-18")
    page.get_by_label("Reason").fill("confirmed by the family")
    page.get_by_role("button", name="Change status").click()
    page.wait_for_function("document.querySelector('#case-status')?.innerText === 'detained'")
    timeline = page.locator("#timeline").inner_text()
    assert "detained" in timeline and "April 18, 2023" in timeline  # business date, as people read it
    shot(page, "06-case-detained")


def test_a_report_in_korean(page, api):
    log_in(page, api)
    page.get_by_label("Language").select_option("ko")
    page.get_by_role("button", name="Change").click()
    page.get_by_role("link", name="새 보고").click()
    name = f"{SYNTH} 김옥선 {uuid.uuid4().hex[:6]}"
    page.get_by_label("성명").fill(name)
    page.get_by_label("출생 연도").fill("1990")
    page.get_by_label("성(省)").fill("Liaoning")
    page.get_by_label("출처 유형").select_option("church_partner")
    page.get_by_label("신뢰도").select_option("probable")
    page.get_by_label("옹호 활동 동의").select_option("anonymous")
    page.get_by_label("송환 임박").check()
    page.get_by_role("button", name="보고 저장").click()  # 성별 (sex) left out: the error is in Korean
    alert = page.get_by_role("alert").inner_text()
    assert "보고가 저장되지 않았습니다" in alert and "성별" in alert and "필수 항목입니다." in alert
    assert page.locator("#person-sex-error").inner_text() == "필수 항목입니다."
    assert page.get_by_label("성명").input_value() == name and page.get_by_label("송환 임박").is_checked()
    shot(page, "07-korean-form-error")
    page.get_by_label("성별").select_option("female")
    page.get_by_role("button", name="보고 저장").click()
    page.wait_for_url("**/reports/*")
    assert "보고가 저장되었습니다." in page.get_by_role("status").inner_text()
    assert page.locator("#full-name").inner_text() == name
    page.locator("#case-link").click()
    page.wait_for_selector("#case-status")
    assert page.locator("#case-status").inner_text() == "보고됨"
    shot(page, "08-korean-case")


def test_a_forged_form_without_the_csrf_token_is_refused(page, api):
    log_in(page, api)
    before = page.context.request.get(f"{api.urls['intake']}/reports").text()
    res = page.context.request.post(f"{api.urls['intake']}/reports/new", form={
        "person.full_name": f"{SYNTH} forged", "person.sex": "male", "detention.province": "Jilin",
        "source.type": "family", "source.reliability": "confirmed", "consent.advocacy": "none"})
    assert res.status == 400
    assert "not sent from this site" in res.text()
    assert page.context.request.get(f"{api.urls['intake']}/reports").text().count("<tr>") == before.count("<tr>")


def test_a_caseworker_reviews_a_possible_duplicate_and_merges_it(page, api):
    first, second = near_duplicate_pair()
    a, b = api.post_report(first), api.post_report(second)
    log_in(page, api)
    page.goto(f"{api.urls['intake']}/reports/{b['report_id']}")
    for _ in range(60):  # intake's consumer files the reports for review within seconds
        if page.locator(f"#possible-duplicates tr[data-case-id='{a['case_id']}']").count():
            break
        page.wait_for_timeout(250)
        page.reload()
    section = page.locator("#possible-duplicates")
    assert section.get_by_role("heading", name="Possible duplicates").is_visible()
    row = section.locator(f"tr[data-case-id='{a['case_id']}']")
    assert first["person"]["full_name"] in row.inner_text()  # the caseworker compares the names
    shot(page, "09-possible-duplicate")
    row.get_by_role("button", name="Same person: merge this case into it").click()
    page.wait_for_url("**/reports/*merged=*")
    assert "The cases were merged." in page.get_by_role("status").inner_text()
    assert page.locator("#case-link").inner_text() == a["case_id"]
    shot(page, "10-merged")
    page.goto(f"{api.urls['case']}/cases/{b['case_id']}")
    for _ in range(40):  # the case service closes the duplicate when the event arrives
        if page.locator("#case-status").get_attribute("data-status") == "closed_duplicate":
            break
        page.wait_for_timeout(250)
        page.reload()
    status = page.locator("#case-status")
    assert status.get_attribute("data-status") == "closed_duplicate"
    assert status.inner_text() == "closed as a duplicate"  # the reader's words, not the code
    assert "closed as a duplicate" in page.locator("#merged-into").inner_text()
    shot(page, "11-duplicate-closed")


def test_an_advocate_sees_the_urgent_draft_issues_it_and_downloads_the_letter(page, api, tmp_path):
    body = synthetic_report(consent={"advocacy": "anonymous", "statistics": True})
    created = api.post_report(body)
    case_id = created["case_id"]
    wait_for(lambda: api.case(case_id), what="the case")
    moved = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker,
                          timeout=10, json={"to": "deportation_imminent", "effective_on": dt.date.today().isoformat()})
    assert moved.status_code == 200, moved.text

    page.goto(f"{api.urls['intake']}/login")
    page.get_by_label("Username").fill(api.advocate_name)
    page.get_by_label("Password").fill("e2e-password-0001")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{api.urls['advocacy']}/")
    draft = page.locator("#drafts tr.draft", has=page.locator(f"a[href*='{case_id}']"))
    for _ in range(40):  # the deportation clock opens the draft within seconds
        if draft.count():
            break
        page.wait_for_timeout(250)
        page.reload()
    assert draft.count() == 1
    assert "hour" in draft.inner_text()  # the time left, in words
    assert page.locator("#drafts tr.draft").first.get_attribute("data-appeal-id") is not None
    shot(page, "12-advocacy-dashboard")
    draft.get_by_role("link").first.click()
    page.wait_for_selector("#appeal-status")
    assert "draft" in page.locator("#appeal-status").inner_text()
    page.get_by_label("SR DPRK", exact=False).first.check()
    page.get_by_role("button", name="Record it as issued").click()
    page.wait_for_function("document.querySelector('#appeal-status')?.innerText.includes('issued')")
    today = dt.date.today()
    assert str(today.year) in page.locator("#appeal-issued-on").inner_text()
    shot(page, "13-appeal-issued")
    with page.expect_download() as download:
        page.locator("#letter").get_by_role("link", name="PDF").first.click()
    saved = tmp_path / "letter.pdf"
    download.value.save_as(saved)
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(saved), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert body["person"]["full_name"] not in text and SYNTH not in text  # anonymous: never named
    assert "urgent" in text.lower()
    page.goto(f"{api.urls['case']}/cases/{case_id}")
    for _ in range(40):  # the case service hears of the issued appeal through advocacy.events
        if page.locator("#appeals").count() and "issued" in page.locator("#appeals").inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
    assert "issued" in page.locator("#appeals").inner_text() and "SR DPRK" in page.locator("#appeals").inner_text()
    shot(page, "14-case-with-appeal")


def test_a_caseworker_not_assigned_to_a_case_gives_a_reason_before_reading_it(page, api):
    """Need to know: another caseworker's report asks why first; the reason is recorded and the
    view flagged on the admins' audit trail."""
    body = synthetic_report()
    created = api.post_report(body)  # filed (and so assigned) by the shared caseworker
    other, _headers = api._user("cw2", "caseworker")
    page.goto(f"{api.urls['intake']}/login")
    page.get_by_label("Username").fill(other)
    page.get_by_label("Password").fill("e2e-password-0001")
    page.get_by_role("button", name="Log in").click()
    wait_for_page(page, api.urls["intake"], "/reports")
    page.goto(f"{api.urls['intake']}/reports/{created['report_id']}")
    assert page.get_by_role("heading", name="Not assigned to this case").is_visible()
    assert body["person"]["full_name"] not in page.content()
    shot(page, "15-reason-asked")
    page.get_by_label("Reason (3 to 200 characters)").fill("her brother called the hotline")
    page.get_by_role("button", name="Read the report").click()
    page.wait_for_selector("#full-name")
    assert page.locator("#full-name").inner_text() == body["person"]["full_name"]
    assert "flagged for review" in page.locator("#out-of-assignment").inner_text()
    shot(page, "16-read-out-of-assignment")
    audit = api.http.get(f"{api.urls['intake']}/api/v1/audit?case_id={created['case_id']}", headers=api.admin,
                         timeout=10).json()["items"]
    assert [(e["username"], e["reason"], e["out_of_assignment"]) for e in audit] == [
        (other, "her brother called the hotline", True)]
