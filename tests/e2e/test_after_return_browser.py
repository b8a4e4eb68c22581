"""A caseworker in a real headless Chromium, in English and in Korean (issue 11 points 1-2): on the
page of a case that was repatriated she records what became known after the return (custody,
a kyohwaso sentence, forced labour making wigs and eyelashes) and an article 46 application, and
sees both listed in her language; a date after the one the news was learned is refused beside its
field, with what she typed kept. Screenshots in artifacts/browser/."""

from __future__ import annotations

from tests.e2e import test_browser
from tests.support import synthetic_report, wait_for

page = test_browser.page  # a browser tab (the fixture), as the other browser tests have it
log_in, shot = test_browser.log_in, test_browser.shot


def _returned_case(api) -> str:
    """A case filed by the caseworker, opened by the case service, then repatriated."""
    case_id = api.post_report(synthetic_report())["case_id"]
    wait_for(lambda: api.case(case_id), timeout_s=30, what="the case to open")
    for to, on in (("detained", "2023-05-02"), ("repatriated", "2023-11-01")):
        res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker,
                            timeout=10, json={"to": to, "effective_on": on})
        assert res.status_code == 200, res.text
    return case_id


def test_a_caseworker_records_news_after_return_and_an_article_46_application(page, api):
    case_id = _returned_case(api)
    log_in(page, api)
    page.goto(f"{api.urls['case']}/cases/{case_id}")
    news = page.locator("#after-return form")
    assert "Nothing is known yet" in page.locator("#after-return").inner_text()
    news.get_by_label("Date learned").fill("2024-02-01")
    news.get_by_label("Date it happened").fill("2024-02-03")  # after it was learned: wrong on purpose
    news.get_by_label("Source type").select_option("fellow_escapee")
    news.get_by_label("Reliability").select_option("probable")
    news.get_by_label("First custodial authority").select_option("mss")
    news.get_by_label("Outcome").select_option("kyohwaso")
    news.get_by_label("Sentence in years").fill("5")
    news.get_by_label("Forced labour").select_option("yes")
    news.get_by_label("wigs and eyelashes").check()
    news.get_by_label("Products").fill("false eyelashes\nwigs")
    news.get_by_label("torture").check()
    news.get_by_role("button", name="Record news after return").click()

    assert "The news was not recorded." in page.get_by_role("alert").inner_text()
    assert page.locator("#after_return-effective_on-error").inner_text() == "Cannot be after the date it was learned."
    news = page.locator("#after-return form")
    assert news.get_by_label("Products").input_value() == "false eyelashes\nwigs"  # what was typed is kept
    assert news.get_by_label("wigs and eyelashes").is_checked()
    assert news.get_by_label("Date it happened").get_attribute("aria-invalid") == "true"
    shot(page, "20-after-return-error")
    news.get_by_label("Date it happened").fill("2023-11-20")
    news.get_by_role("button", name="Record news after return").click()
    page.wait_for_selector("#after-return-records")
    row = page.locator("#after-return-records tbody tr").first.inner_text()
    for words in ("November 20, 2023", "February 1, 2024", "Ministry of State Security (MSS)",
                  "kyohwaso (reform-through-labour prison) · 5 years", "wigs and eyelashes",
                  "false eyelashes, wigs", "torture", "fellow escapee (probable)"):
        assert words in row, words

    asylum = page.locator("#asylum form")
    asylum.get_by_label("Procedure").select_option("art46")
    asylum.get_by_label("Step").select_option("applied")
    asylum.get_by_label("Date").fill("2024-01-05")
    asylum.get_by_label("Source type").select_option("family")
    asylum.get_by_label("Reliability").select_option("confirmed")
    asylum.get_by_role("button", name="Record asylum step").click()
    page.wait_for_selector("#asylum-records")
    row = page.locator("#asylum-records tbody tr").first.inner_text()
    assert "Article 46 application" in row and "applied" in row and "January 5, 2024" in row
    shot(page, "21-after-return-and-asylum")

    case = api.case(case_id)
    assert [(r["outcome"], r["sentence_years"], r["work"]) for r in case["after_return"]] == \
        [("kyohwaso", 5.0, ["wigs_eyelashes"])]
    assert [(a["procedure"], a["step"], a["effective_on"]) for a in case["asylum"]] == [("art46", "applied", "2024-01-05")]


def test_the_same_in_korean(page, api):
    case_id = _returned_case(api)
    log_in(page, api)
    page.get_by_label("Language").select_option("ko")
    page.get_by_role("button", name="Change").click()
    page.goto(f"{api.urls['case']}/cases/{case_id}")
    assert page.get_by_role("heading", name="송환 후", exact=True).is_visible()
    news = page.locator("#after-return form")
    news.get_by_label("알게 된 날짜").fill("2024-03-01")
    news.get_by_label("출처 유형").select_option("family")
    news.get_by_label("신뢰도").select_option("confirmed")
    news.get_by_label("처음 신병을 인수한 기관").select_option("mps")
    news.get_by_label("결과").select_option("labour_training_camp")
    news.get_by_label("강제노동").select_option("yes")
    news.get_by_label("건설").check()
    news.get_by_role("button", name="송환 후 소식 기록").click()
    page.wait_for_selector("#after-return-records")
    row = page.locator("#after-return-records tbody tr").first.inner_text()
    for words in ("2024년 3월 1일", "사회안전성", "노동단련대", "건설", "가족 (확인됨)"):
        assert words in row, words

    asylum = page.locator("#asylum form")
    asylum.get_by_label("절차").select_option("art46")
    asylum.get_by_label("단계").select_option("tic_issued")
    asylum.get_by_label("날짜").fill("2024-03-05")
    asylum.get_by_label("출처 유형").select_option("church_partner")
    asylum.get_by_label("신뢰도").select_option("probable")
    asylum.get_by_role("button", name="망명 절차 단계 기록").click()
    page.wait_for_selector("#asylum-records")
    row = page.locator("#asylum-records tbody tr").first.inner_text()
    assert "출입국관리법 제46조 난민 신청" in row and "임시 신분증명서 발급" in row and "2024년 3월 5일" in row
    shot(page, "22-after-return-korean")
    assert [a["step"] for a in api.case(case_id)["asylum"]] == ["tic_issued"]
