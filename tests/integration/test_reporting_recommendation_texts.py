"""Korean texts of recommendations and the recommendations under each UPR question (issue 11,
points 5-6), against the real FerretDB and Kafka: analysts set, change and remove a recommendation's
unofficial Korean text through the API's PATCH and through its page, validated as the English text
is (422 naming the field); the Korean page puts the Korean text first, then "원문:" and the English;
a recommendation stored before Korean texts existed gets the shipped translation at the next start;
GET /api/v1/upr/questions lists, under each question, the recommendations linked to it with the
address of each."""

from __future__ import annotations

import re
import uuid

import pytest
from markupsafe import escape

from services.reporting import recommendations
from services.reporting.recommendation_store import RecommendationStore
from shared.aggregates import VersionedStore
from shared.mongo import utcnow
from tests.support import page_login as support_page_login

PASSWORD = "integration-password-1"  # the users fixture's
KOREAN = "북한 출신 비호 신청자의 강제송환을 중단할 것 (통합 시험)"
UNOFFICIAL, ORIGINAL, NO_TRANSLATION = "비공식 번역", "원문:", "한국어 번역이 없어 공식 영어 원문을 싣습니다."


def _shipped_cat() -> dict:
    """The shipped CAT/C/CHN/CO/5 para. 47 recommendation to cease forcible repatriation."""
    return next(r for r in recommendations.shipped() if r["mechanism"] == "treaty_body" and "cease" in r["text"])


@pytest.fixture(scope="module")
def own(reporting_app, tokens) -> dict:
    """A recommendation of this module's own (a new number each run), linked to the question 'returned'."""
    body = {"mechanism": "upr", "cycle": "CN-4", "number": f"7.{uuid.uuid4().int % 9000 + 1}",
            "text": "End forcible returns (synthetic text test).", "recommending_state": "Synthetic State",
            "measures": ["repatriated"], "questions": ["returned"]}
    res = reporting_app.test_client().post("/api/v1/recommendations", headers=tokens["analyst"], json=body)
    assert res.status_code == 201, res.get_json()
    assert res.get_json()["text_ko"] is None
    return res.get_json()


def _login(client, username: str, lang: str) -> None:
    res = support_page_login(client, username, PASSWORD, lang=lang)
    assert res.status_code == 302, res.get_data(as_text=True)


def test_an_analyst_sets_changes_and_removes_the_korean_text_through_the_api(reporting_app, tokens, own):
    client = reporting_app.test_client()
    path = f"/api/v1/recommendations/{own['recommendation_id']}"
    res = client.patch(path, headers=tokens["analyst"], json={"text_ko": KOREAN})
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["text_ko"] == KOREAN and res.get_json()["text"] == own["text"]
    assert client.get(path, headers=tokens["caseworker"]).get_json()["text_ko"] == KOREAN
    listed = client.get("/api/v1/recommendations", headers=tokens["advocate"]).get_json()["items"]
    assert next(r for r in listed if r["recommendation_id"] == own["recommendation_id"])["text_ko"] == KOREAN
    # Validated as the English text is: each error names its field, and nothing changes.
    for body, field in (({"text_ko": ""}, "text_ko"), ({"text_ko": "가" * 4001}, "text_ko"),
                        ({"text_ko": 12}, "text_ko"), ({"text_ko": "좋음", "text": ""}, "text"),
                        ({"text_kr": "x"}, "text_kr")):
        bad = client.patch(path, headers=tokens["analyst"], json=body)
        assert bad.status_code == 422, (body, bad.get_json())
        error = bad.get_json()["error"]
        assert error["code"] == "validation_error" and field in error["fields"], (body, error)
    assert client.get(path, headers=tokens["analyst"]).get_json()["text_ko"] == KOREAN
    assert client.patch(path, headers=tokens["caseworker"], json={"text_ko": "다른 번역"}).status_code == 403
    removed = client.patch(path, headers=tokens["analyst"], json={"text_ko": None})
    assert removed.status_code == 200 and removed.get_json()["text_ko"] is None
    # Added with one from the start, too.
    body = {"mechanism": "upr", "cycle": "CN-4", "number": f"6.{uuid.uuid4().int % 9000 + 1}",
            "text": "Allow UNHCR access (synthetic text test).", "text_ko": "UNHCR의 접근을 허용할 것 (시험)"}
    added = client.post("/api/v1/recommendations", headers=tokens["analyst"], json=body)
    assert added.status_code == 201 and added.get_json()["text_ko"] == body["text_ko"]
    too_long = client.post("/api/v1/recommendations", headers=tokens["analyst"],
                           json={**body, "number": "6.0", "text_ko": "가" * 4001})
    assert too_long.status_code == 422 and set(too_long.get_json()["error"]["fields"]) == {"text_ko"}


def test_the_korean_page_gives_the_korean_text_first_then_the_original(reporting_client, users, tokens):
    cat = _shipped_cat()
    _login(reporting_client, users["caseworker"], "ko")
    page = reporting_client.get(f"/recommendations/{cat['recommendation_id']}").get_data(as_text=True)
    korean = page.index(f'<p>{escape(cat["text_ko"])} <span class="unofficial">({UNOFFICIAL})</span></p>')
    assert 'id="recommendation-text" class="recommendation-text" lang="ko"' in page
    original = page.index(f'<strong>{ORIGINAL}</strong> <span lang="en">{escape(cat["text"])}</span>')
    assert korean < original
    _login(reporting_client, users["caseworker"], "en")
    english = reporting_client.get(f"/recommendations/{cat['recommendation_id']}").get_data(as_text=True)
    assert escape(cat["text"]) in english and cat["text_ko"] not in english and UNOFFICIAL not in english


def test_an_analyst_sets_the_korean_text_through_the_page(reporting_client, users, tokens, own):
    rid = own["recommendation_id"]
    _login(reporting_client, users["analyst"], "ko")
    page = reporting_client.get(f"/recommendations/{rid}").get_data(as_text=True)
    assert NO_TRANSLATION in page  # no Korean text yet: the English, and a note saying so
    token = re.search(r'id="edit-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page).group(1)
    form = {"csrf_token": token, "measures": ["repatriated"], "questions": ["returned"]}
    bad = reporting_client.post(f"/recommendations/{rid}", data={**form, "text_ko": "가" * 4001})
    bad_page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="text_ko-error"' in bad_page and 'id="error-summary"' in bad_page
    assert reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()[
        "text_ko"] is None
    res = reporting_client.post(f"/recommendations/{rid}", data={**form, "text_ko": f"  {KOREAN}  "})
    assert res.status_code == 302, res.get_data(as_text=True)[:500]
    after = reporting_client.get(res.headers["Location"]).get_data(as_text=True)
    assert after.index(KOREAN) < after.index(f"<strong>{ORIGINAL}</strong>") and NO_TRANSLATION not in after
    assert reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()[
        "text_ko"] == KOREAN
    emptied = reporting_client.post(f"/recommendations/{rid}", data={**form, "text_ko": ""})
    assert emptied.status_code == 302
    assert reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()[
        "text_ko"] is None


def test_a_recommendation_stored_before_korean_texts_gets_the_shipped_one_at_the_next_start(
        settings, mongo, tokens, reporting_app):
    from services.reporting.app import create_app

    cat = _shipped_cat()
    db = mongo[settings.database_name("reporting")]
    versioned = VersionedStore(db, "recommendations")
    # As an older release stored it: no text_ko at all.
    stored = versioned.save(cat["recommendation_id"], lambda current: (
        {k: v for k, v in current.items() if k != "text_ko"}, []), publisher=None, topic="reporting.events",
        now=utcnow())
    assert "text_ko" not in stored
    app = create_app(settings)
    app.testing = True
    got = app.test_client().get(f"/api/v1/recommendations/{cat['recommendation_id']}", headers=tokens["analyst"])
    assert got.get_json()["text_ko"] == cat["text_ko"]
    # An analyst's removal (null) is an edit, and a start keeps it.
    store = RecommendationStore(db)
    store.edit(cat["recommendation_id"], {"text_ko": None}, actor="test", publisher=reporting_app.extensions[
        "nrw"].publisher, now=utcnow())
    assert store.load_shipped(utcnow()) == 0 and store.get(cat["recommendation_id"])["text_ko"] is None
    store.edit(cat["recommendation_id"], {"text_ko": cat["text_ko"]}, actor="test",
               publisher=reporting_app.extensions["nrw"].publisher, now=utcnow())


def test_the_questions_api_lists_the_recommendations_linked_to_each_question(reporting_client, tokens, own):
    res = reporting_client.get("/api/v1/upr/questions", headers=tokens["caseworker"])
    assert res.status_code == 200
    items = {q["id"]: q for q in res.get_json()["items"]}
    for item in items.values():
        assert {"id", "question", "answer_text", "figures", "recommendations"} <= set(item)
    returned = {r["recommendation_id"]: r for r in items["returned"]["recommendations"]}
    cat = _shipped_cat()
    assert own["recommendation_id"] in returned and cat["recommendation_id"] in returned
    assert (returned[cat["recommendation_id"]]["symbol"], returned[cat["recommendation_id"]]["paragraph"]) == (
        "CAT/C/CHN/CO/5", "47")
    assert returned[own["recommendation_id"]]["number"] == own["number"]
    assert own["recommendation_id"] not in {r["recommendation_id"] for r in items["business"]["recommendations"]}
    followed = reporting_client.get(returned[cat["recommendation_id"]]["href"], headers=tokens["caseworker"])
    assert followed.status_code == 200 and followed.get_json()["recommendation_id"] == cat["recommendation_id"]
