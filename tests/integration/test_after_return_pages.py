"""The case page's after-return and asylum sections and forms (issue 11 points 1-2) against the real
FerretDB and Kafka: a caseworker records both through the forms (CSRF, the API's schema and
handler), meets errors in her language beside the field with what she typed kept; every code
reads as a word in English and Korean; analysts and advocates see the records but no form."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from tests.integration.conftest import PASSWORD
from tests.integration.test_after_return_api import NEWS, STEP, _move, _open_case
from tests.support import page_login


def _login(client, username: str, lang: str = "en") -> None:
    res = page_login(client, username, PASSWORD, lang=lang)
    assert res.status_code == 302, res.get_data(as_text=True)


def _csrf(client, path: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _text(res) -> str:
    return html_lib.unescape(res.get_data(as_text=True))


@pytest.fixture
def returned(case_client, tokens, settings, mongo) -> str:
    case_id = _open_case(settings, mongo)
    _move(case_client, tokens, case_id, "repatriated", "2023-11-01")
    return case_id


NEWS_FORM = {"learned_on": "2024-02-01", "effective_on": "2023-11-20", "source_type": "fellow_escapee",
             "source_reliability": "probable", "custody": "mss", "outcome": "kyohwaso", "sentence_years": "5",
             "forced_labour": "yes", "work": ["wigs_eyelashes", "mining"], "products": "false eyelashes\nwigs\n\nWigs",
             "facilities": "Kyohwaso No. 12", "companies": "", "ill_treatment": ["torture"]}


def test_a_caseworker_records_news_and_an_asylum_step_through_the_forms(case_client, tokens, users, returned):
    _login(case_client, users["caseworker"])
    page = f"/cases/{returned}"
    assert "Nothing is known yet of what happened after the return." in _text(case_client.get(page))
    res = case_client.post(f"{page}/after-return", data={"csrf_token": _csrf(case_client, page), **NEWS_FORM})
    assert res.status_code == 302 and res.headers["Location"].endswith(f"{page}#after-return")
    res = case_client.post(f"{page}/asylum", data={"csrf_token": _csrf(case_client, page), **STEP})
    assert res.status_code == 302

    shown = _text(case_client.get(page))
    for words in ("Ministry of State Security (MSS)", "kyohwaso (reform-through-labour prison) · 5 years",
                  "wigs and eyelashes", "false eyelashes, wigs", "Kyohwaso No. 12", "torture", "fellow escapee",
                  "Article 46 application (Exit and Entry Administration Law)", "January 5, 2024"):
        assert words in shown, words
    tables = "".join(shown.split(f'id="{table}"')[1].split("</table>")[0]
                     for table in ("after-return-records", "asylum-records"))
    for code in ("wigs_eyelashes", "fellow_escapee", "mss", "art46", ">kyohwaso<"):
        assert code not in tables.replace("data-record-id", ""), code
    case = case_client.get(f"/api/v1/cases/{returned}", headers=tokens["caseworker"]).get_json()
    assert case["after_return"][0]["products"] == ["false eyelashes", "wigs"]
    assert case["after_return"][0]["work"] == ["mining", "wigs_eyelashes"]
    assert [(a["procedure"], a["step"]) for a in case["asylum"]] == [("art46", "applied")]


def test_the_form_says_what_is_wrong_beside_the_field_and_keeps_what_was_typed(case_client, users, returned):
    _login(case_client, users["caseworker"])
    page = f"/cases/{returned}"
    res = case_client.post(f"{page}/after-return", data={
        "csrf_token": _csrf(case_client, page), **NEWS_FORM, "effective_on": "2024-02-05"})
    assert res.status_code == 422
    shown = _text(res)
    assert "The news was not recorded." in shown
    assert re.search(r'id="after_return-effective_on-error">Cannot be after the date it was learned.', shown)
    assert 'value="2024-02-05"' in shown and 'value="mining" checked' in shown
    res = case_client.post(f"{page}/after-return", data={
        "csrf_token": _csrf(case_client, page), **NEWS_FORM, "products": "wigs\ncall +86 138 0013 8000"})
    shown = _text(res)
    assert res.status_code == 422
    assert re.search(r'id="after_return-products-error">Name things, never people: this looks like a phone number.',
                     shown)
    assert "call +86 138 0013 8000" in shown  # kept in the box, to be corrected
    res = case_client.post(f"{page}/after-return", data={"csrf_token": _csrf(case_client, page), **NEWS_FORM,
                                                          "learned_on": "", "source_type": ""})
    assert res.status_code == 422 and _text(res).count("Missing data for required field.") == 2
    res = case_client.post(f"{page}/asylum", data={"csrf_token": _csrf(case_client, page), **STEP,
                                                   "step": "recognised"})
    assert res.status_code == 422 and "Not a step of this procedure." in _text(res)
    assert case_client.post(f"{page}/asylum", data=STEP).status_code == 400  # no CSRF token


def test_news_after_return_waits_for_a_return(case_client, tokens, users, settings, mongo):
    case_id = _open_case(settings, mongo)
    _login(case_client, users["caseworker"])
    shown = _text(case_client.get(f"/cases/{case_id}"))
    assert "News after return is recorded once the case has been repatriated." in shown
    assert "Record news after return" not in shown and "Record an asylum step" in shown
    res = case_client.post(f"/cases/{case_id}/after-return",
                           data={"csrf_token": _csrf(case_client, f"/cases/{case_id}"), **NEWS_FORM})
    assert res.status_code == 422 and "Only a case that has been repatriated has news after return." in _text(res)


def test_in_korean_every_code_is_a_korean_word(case_client, tokens, users, returned):
    case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"], json=NEWS)
    case_client.post(f"/api/v1/cases/{returned}/asylum", headers=tokens["caseworker"],
                     json={**STEP, "procedure": "unhcr_rsd", "step": "access_denied"})
    _login(case_client, users["caseworker"], lang="ko")
    shown = _text(case_client.get(f"/cases/{returned}"))
    for words in ("송환 후", "국가보위성", "교화소", "가발·속눈썹", "고문", "UNHCR 난민지위 결정", "접근 거부",
                  "송환 후 소식 기록", "망명 절차 단계 기록"):
        assert words in shown, words
    res = case_client.post(f"/cases/{returned}/asylum", data={"csrf_token": _csrf(case_client, f"/cases/{returned}"),
                                                             **STEP, "effective_on": ""})
    assert res.status_code == 422 and "필수 항목입니다." in _text(res)


@pytest.mark.parametrize("role", ["analyst", "advocate"])
def test_analysts_and_advocates_see_the_records_but_no_form(case_client, tokens, users, returned, role):
    case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"], json=NEWS)
    _login(case_client, users[role])
    shown = _text(case_client.get(f"/cases/{returned}"))
    assert "Ministry of State Security (MSS)" in shown and "Example Hair Products Co." in shown
    assert "Record news after return" not in shown and "Record an asylum step" not in shown
    res = case_client.post(f"/cases/{returned}/asylum", data={"csrf_token": _csrf(case_client, f"/cases/{returned}"),
                                                             **STEP})
    assert res.status_code in (302, 403) and case_client.get(
        f"/api/v1/cases/{returned}", headers=tokens["caseworker"]).get_json()["asylum"] == []
