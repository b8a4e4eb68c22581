"""An analyst in a real headless Chromium, in English and in Korean (issue 11 points 5-6): she opens
a recommendation to cease forcible repatriation and sees the case returned after its date counted
against it, takes a snapshot through the form and downloads its DOCX draft, which python-docx
reads back with the answers, the tables and the recommendation. Screenshots in artifacts/browser/."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import docx
import pytest

from tests.e2e import test_browser
from tests.e2e.test_after_return_browser import _returned_case
from tests.support import browser_log_in, wait_for

shot = test_browser.shot
PASSWORD = "e2e-password-0001"
QUESTIONS = ("detained_by_age_sex", "facing_deportation", "returned", "pattern_after_return", "art46",
             "unhcr_recognition", "unhcr_access", "appeals", "business")
ISSUED = "2023-10-01"


@pytest.fixture(scope="module")
def analyst(api) -> tuple[str, dict]:
    """An analyst of this module's own (no second factor is asked of analysts)."""
    name = f"analyst-rec-{uuid.uuid4().hex[:6]}"
    res = api.http.post(f"{api.urls['intake']}/api/v1/users", headers=api.admin, timeout=10,
                        json={"username": name, "password": PASSWORD, "roles": ["analyst"]})
    assert res.status_code == 201, res.text
    return name, api.login(name, PASSWORD)


@pytest.fixture(scope="module")
def followed(api, analyst) -> dict:
    """A case returned on 2023-11-01 and a recommendation dated 2023-10-01 linked to returns,
    once reporting counts the case against it."""
    case_id = _returned_case(api)
    number = f"7.{uuid.uuid4().int % 9000 + 1}"
    rec = api.http.post(f"{api.urls['reporting']}/api/v1/recommendations", headers=analyst[1], timeout=10, json={
        "mechanism": "upr", "cycle": "CN-4", "number": number, "recommending_state": "Synthetic State",
        "text": f"End forcible repatriation (browser test {number}).", "response": "noted", "issued_on": ISSUED,
        "measures": ["repatriated"], "questions": ["returned"]})
    assert rec.status_code == 201, rec.text
    rec = rec.json()

    def counted():
        res = api.http.get(f"{api.urls['reporting']}/api/v1/recommendations/{rec['recommendation_id']}",
                           params={"disclosure": "internal"}, headers=analyst[1], timeout=30)
        return case_id in res.json()["figures"]["measures"][0]["case_ids"]
    wait_for(counted, timeout_s=30, what="reporting to count the return against the recommendation")
    return {"case_id": case_id, "rec": rec}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_an_analyst_follows_a_recommendation_and_downloads_the_docx_draft(browser, api, analyst, followed, lang):
    context = browser.new_context(locale="ko-KR" if lang == "ko" else "en-GB", accept_downloads=True)
    page = context.new_page()
    try:
        browser_log_in(page, api.urls["intake"], analyst[0], PASSWORD, lang)
        # The dashboard answers the submission's questions, each with a sentence to paste that says
        # its figures are of documented cases.
        page.goto(f"{api.urls['reporting']}/")
        page.wait_for_selector("#upr-questions")
        shown = page.eval_on_selector_all("#upr-questions li", "items => items.map(i => i.dataset.question)")
        assert set(shown) >= set(QUESTIONS), shown
        for question in QUESTIONS:
            answer = page.locator(f"#answer-{question}").input_value()
            assert "documented" in answer, (question, answer)
        page.goto(f"{api.urls['reporting']}/recommendations")
        assert page.evaluate("document.documentElement.lang") == lang
        listing = page.locator("#recommendations").inner_text()
        assert "28.131" in listing and "CAT/C/CHN/CO/5" in listing  # the reference document's, from the start
        rid = followed["rec"]["recommendation_id"]
        page.locator(f'tr[data-recommendation="{rid}"] a').click()
        page.wait_for_selector("#followed-form")
        page.locator('#followed-form input[name="disclosure"][value="internal"]').check()
        page.locator("#followed-form button[type=submit]").click()
        page.wait_for_selector('#followed tr[data-measure="repatriated"]')
        row = page.locator('#followed tr[data-measure="repatriated"]').inner_text()
        assert ("북한으로 강제송환" in row) == (lang == "ko")
        assert int(page.locator('#followed tr[data-measure="repatriated"] td.total').inner_text()) >= 1
        page.locator('details.case-ids[data-measure="repatriated"] summary').click()
        assert followed["case_id"] in page.locator('details.case-ids[data-measure="repatriated"]').inner_text()
        shot(page, f"30-recommendation-{lang}")

        page.goto(f"{api.urls['reporting']}/snapshots")
        page.locator("#cycle").fill("CN-4")
        page.locator("#as_of").fill(dt.date.today().isoformat())
        page.locator("#snapshot-form button[type=submit]").click()
        page.wait_for_selector("#annex")
        with page.expect_download() as download:
            page.locator(f'#annex a[href*="format=docx"][href*="lang={lang}"]').click()
        document = docx.Document(io.BytesIO(download.value.path().read_bytes()))
        text = "\n".join(p.text for p in document.paragraphs)
        tables = [[[c.text for c in row.cells] for row in t.rows] for t in document.tables]
        assert followed["rec"]["text"] in text
        if lang == "en":  # the questions with their answers (the Korean ones: unit and integration tests)
            assert "How many North Koreans were forcibly returned to the DPRK in the period?" in text
            assert "documented persons were forcibly returned to the DPRK" in text
        assert ("권고 이행 추적" in text) == (lang == "ko") and ("Recommendations followed" in text) == (lang == "en")
        assert any(row[0] in ("Returned to the DPRK (in the period)", "북한으로 강제송환 (기간 중)")
                   for t in tables for row in t)
        assert len(tables) > 10 and followed["case_id"] not in text
        shot(page, f"31-snapshot-docx-{lang}")
    finally:
        context.close()
