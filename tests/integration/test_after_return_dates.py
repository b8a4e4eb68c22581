"""News after return is checked against the return (issue 11), through the case service's API and
its page form against the real FerretDB and Kafka: a date learned or happened before the case's
repatriation is refused (422 naming the field; a message beside the field, in English and
Korean) and nothing is stored; a case returned twice takes news after either return."""

from __future__ import annotations

import pytest

from tests.integration import test_after_return_api
from tests.integration.test_after_return_api import NEWS, _move, _open_case
from tests.integration.test_after_return_pages import NEWS_FORM, _csrf, _login, _text

returned = test_after_return_api.returned  # a case detained, then repatriated on 2023-11-01: a fixture here too


def _records(case_client, tokens, case_id: str) -> list:
    return case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["caseworker"]).get_json()["after_return"]


@pytest.mark.parametrize("change, fields", [
    ({"effective_on": "2023-10-31"}, ["effective_on"]),
    ({"effective_on": "2023-09-01", "learned_on": "2023-10-15"}, ["effective_on", "learned_on"]),
    ({"effective_on": None, "learned_on": "2023-10-31"}, ["learned_on"]),
])
def test_news_dated_before_the_return_is_refused_naming_the_field(case_client, tokens, returned, change, fields):
    res = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                           json={**NEWS, **change})
    assert res.status_code == 422, res.get_json()
    error = res.get_json()["error"]
    assert error["code"] == "validation_error"
    assert sorted(error["fields"]) == fields
    assert all(m == ["Must not be before the person was repatriated."] for m in error["fields"].values())
    assert _records(case_client, tokens, returned) == []


def test_news_on_the_day_of_the_return_is_taken(case_client, tokens, returned):
    res = case_client.post(f"/api/v1/cases/{returned}/after-return", headers=tokens["caseworker"],
                           json={**NEWS, "effective_on": "2023-11-01", "learned_on": "2023-11-01"})
    assert res.status_code == 201, res.get_json()
    assert [r["effective_on"] for r in _records(case_client, tokens, returned)] == ["2023-11-01"]


def test_a_case_returned_twice_takes_news_after_either_return(case_client, tokens, settings, mongo):
    case_id = _open_case(settings, mongo)
    for to, on in (("detained", "2022-01-10"), ("repatriated", "2022-03-01"), ("whereabouts_unknown", "2022-09-01"),
                   ("repatriated", "2023-11-01")):
        _move(case_client, tokens, case_id, to, on)
    url = f"/api/v1/cases/{case_id}/after-return"
    between = case_client.post(url, headers=tokens["caseworker"],
                               json={**NEWS, "effective_on": "2022-05-01", "learned_on": "2022-06-01"})
    assert between.status_code == 201, between.get_json()
    before = case_client.post(url, headers=tokens["caseworker"],
                              json={**NEWS, "effective_on": "2022-02-01", "learned_on": "2022-02-15"})
    assert before.status_code == 422 and sorted(before.get_json()["error"]["fields"]) == ["effective_on", "learned_on"]
    assert [r["effective_on"] for r in _records(case_client, tokens, case_id)] == ["2022-05-01"]


@pytest.mark.parametrize("lang, message", [
    ("en", "Must not be before the person was repatriated."),
    ("ko", "사람이 강제송환된 날짜보다 앞설 수 없습니다."),
])
def test_the_form_says_beside_the_date_that_it_is_before_the_return(case_client, tokens, users, returned, lang,
                                                                     message):
    _login(case_client, users["caseworker"], lang=lang)
    page = f"/cases/{returned}"
    res = case_client.post(f"{page}/after-return", data={"csrf_token": _csrf(case_client, page), **NEWS_FORM,
                                                         "effective_on": "2023-10-20", "learned_on": "2023-10-25"})
    assert res.status_code == 422
    shown = _text(res)
    for field in ("effective_on", "learned_on"):
        assert f'id="after_return-{field}-error">{message}' in shown, field
    assert 'value="2023-10-20"' in shown  # what she typed is kept
    assert _records(case_client, tokens, returned) == []
