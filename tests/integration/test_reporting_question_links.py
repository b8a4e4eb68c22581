"""The dashboard lists, under each UPR question it answers, the recommendations linked to that
question (issue 11 point 5): reference (cycle and number, or symbol and paragraph), China's response
and the start of the text in the reader's language, with a link to the recommendation's page; against
the real FerretDB and Kafka, in English and Korean."""

from __future__ import annotations

import re
import uuid

import pytest
from markupsafe import escape

from tests.integration.test_reporting_recommendation_texts import _login, _shipped_cat


@pytest.fixture(scope="module")
def own(reporting_app, tokens) -> dict:
    """A UPR recommendation of this module's own (a new number each run), linked to the question 'returned'."""
    body = {"mechanism": "upr", "cycle": "CN-4", "number": f"5.{uuid.uuid4().int % 9000 + 1}",
            "text": "Stop returns to the DPRK (synthetic dashboard test).", "measures": ["repatriated"],
            "questions": ["returned"]}
    res = reporting_app.test_client().post("/api/v1/recommendations", headers=tokens["analyst"], json=body)
    assert res.status_code == 201, res.get_json()
    return res.get_json()


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_dashboard_lists_under_each_question_its_recommendations_with_links(reporting_client, users, own, lang):
    _login(reporting_client, users["caseworker"], lang)
    res = reporting_client.get("/")
    page = res.get_data(as_text=True)
    assert res.status_code == 200, page[:500]

    def block(qid: str) -> str:
        return re.search(rf'<li data-question="{qid}">(.*?)</li>\s*(?:<li data-question|</ol>)', page, re.S).group(1)

    returned = block("returned")
    cat = _shipped_cat()
    link = re.search(rf'<li data-recommendation="{cat["recommendation_id"]}"><a href="([^"]+)">([^<]+)</a>',
                     returned)
    assert link and link.group(2) == ("CAT/C/CHN/CO/5, 문단 47" if lang == "ko" else "CAT/C/CHN/CO/5, para. 47")
    assert ("이 질문에 연결된 권고" in returned) == (lang == "ko")
    excerpt = (cat["text_ko"] if lang == "ko" else cat["text"]).split()[:5]
    assert f'lang="{lang}">{escape(" ".join(excerpt))}' in returned
    mine = re.search(rf'<li data-recommendation="{own["recommendation_id"]}">(.*?)</li>', returned).group(1)
    assert f"UPR CN-4, {own['number']}" in mine
    assert ("응답 기록 없음" if lang == "ko" else "response not recorded") in mine  # China's response, in words
    assert own["recommendation_id"] not in block("business")
    business = block("business")
    assert "28.131" in business and "28.133" in business
    followed = reporting_client.get(link.group(1))
    assert followed.status_code == 200 and "CAT/C/CHN/CO/5" in followed.get_data(as_text=True)
