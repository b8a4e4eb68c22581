"""Recommendations followed across cycles (issue 11 point 5) and the DOCX draft (point 6) against
the real FerretDB and Kafka: the reference document's recommendations are there after a fresh
start, and a restart neither adds them twice nor undoes an analyst's edit; analysts add one (422
naming the field, 409 for a duplicate, 403 for a caseworker); a recommendation counts a case
returned after its date and not one returned before; its page in English and Korean; the form;
a snapshot carries the recommendations with their figures and its DOCX reads back with them.

The invented cases live in 2011, before any other module's data, so the figures of that year are
this module's alone."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import uuid

import docx
import pytest

from services.reporting import handlers, recommendations
from services.reporting.store import ReportingStore
from shared.events import new_event, validate_event
from tests.support import page_login as support_page_login

PASSWORD = "integration-password-1"  # the users fixture's
UTC = dt.timezone.utc
ISSUED, AS_OF = "2011-06-01", "2011-12-31"
CAT_CEASE = "immediately cease forcible repatriation of undocumented migrants"


def _events(case_id: str, repatriated_on: str, clock) -> list[dict]:
    def ev(kind, producer, payload):
        return new_event(kind, producer=producer, case_id=case_id, payload=payload, now=next(clock))

    common = {"sex": "female", "birth_year": 1980, "nationality": "KP", "province": "Jilin"}
    return [
        ev("case.reported", "intake", {
            "report_id": str(uuid.uuid4()), "matched_existing_case": False, **common, "detained_on": None,
            "deportation_imminent": False, "expected_deportation_on": None, "vulnerabilities": [],
            "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
            "received_on": "2011-01-05", "consent_advocacy": "anonymous", "consent_statistics": True}),
        ev("case.opened", "case", {"status": "reported", **common, "detained_on": None, "deportation_imminent": False,
                                   "vulnerabilities": [], "consent_advocacy": "anonymous", "consent_statistics": True}),
        ev("case.status_changed", "case", {"from": "reported", "to": "detained", "effective_on": "2011-02-01"}),
        ev("case.status_changed", "case", {"from": "detained", "to": "repatriated", "effective_on": repatriated_on}),
    ]


@pytest.fixture(scope="module")
def world(settings, mongo, reporting_app):
    """One woman returned before the recommendation's date, one after; applied by reporting's handler."""
    store = ReportingStore(mongo[settings.database_name("reporting")])
    start = dt.datetime(2024, 7, 1, tzinfo=UTC)
    clock = (start + dt.timedelta(seconds=i) for i in range(1000))
    cases = {"before": str(uuid.uuid4()), "after": str(uuid.uuid4())}
    for which, day in (("before", "2011-04-10"), ("after", "2011-09-20")):
        for event in _events(cases[which], day, clock):
            handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)
    return cases


def _fresh_app(settings):
    from services.reporting.app import create_app

    app = create_app(settings)
    app.testing = True
    return app


def _db(mongo, settings):
    return mongo[settings.database_name("reporting")]


def test_the_reference_documents_recommendations_are_there_after_a_fresh_start(settings, mongo, tokens):
    db = _db(mongo, settings)
    db["recommendations"].drop()
    db["recommendations_versions"].drop()
    items = _fresh_app(settings).test_client().get("/api/v1/recommendations", headers=tokens["caseworker"])
    assert items.status_code == 200
    listed = items.get_json()["items"]
    shipped = recommendations.shipped()
    assert {r["recommendation_id"] for r in listed} >= {r["recommendation_id"] for r in shipped}
    by_number = {r["number"]: r for r in listed if r["mechanism"] == "upr" and r["cycle"] == "CN-3"}
    assert by_number["28.131"]["recommending_state"] == "Peru" and by_number["28.131"]["response"] is None
    assert by_number["28.134"]["text"].startswith("Establish a regulatory framework to assess the human rights")
    cat = [r for r in listed if r["symbol"] == "CAT/C/CHN/CO/5"]
    assert {r["paragraph"] for r in cat} == {"47"} and any(r["text"].startswith(CAT_CEASE) for r in cat)
    for item in listed:
        assert set(item) >= {"recommendation_id", "mechanism", "cycle", "number", "symbol", "paragraph", "text",
                             "recommending_state", "response", "issued_on"}

    # An analyst dates one and links it; a restart adds nothing twice and keeps the edit.
    target = next(r for r in cat if r["text"].startswith(CAT_CEASE))
    res = _fresh_app(settings).test_client().patch(f"/api/v1/recommendations/{target['recommendation_id']}",
                                                    headers=tokens["analyst"], json={"issued_on": ISSUED})
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["issued_on"] == ISSUED
    again = _fresh_app(settings).test_client().get("/api/v1/recommendations", headers=tokens["analyst"])
    relisted = again.get_json()["items"]
    assert len(relisted) == len(listed) == db["recommendations"].count_documents({})
    assert next(r for r in relisted if r["recommendation_id"] == target["recommendation_id"])["issued_on"] == ISSUED
    assert db["recommendations_versions"].count_documents({"aggregate_id": target["recommendation_id"]}) == 2


GOOD = {"mechanism": "upr", "cycle": "CN-4", "number": "8.77", "text": "Cease forcible returns (synthetic test).",
        "recommending_state": "Synthetic State", "response": "noted", "issued_on": ISSUED,
        "measures": ["repatriated"], "questions": ["returned"]}


@pytest.fixture(scope="module")
def added(reporting_app, tokens) -> dict:
    """A recommendation an analyst added through the API."""
    client = reporting_app.test_client()
    res = client.post("/api/v1/recommendations", headers=tokens["analyst"], json=GOOD)
    if res.status_code == 409:  # a second run on the same database
        rid = res.get_json()["error"]["fields"]["recommendation_id"][0]
        return client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def test_an_analyst_adds_a_recommendation_and_others_may_not(reporting_app, tokens, added, settings, mongo):
    client = reporting_app.test_client()
    assert added["response"] == "noted" and added["measures"] == ["repatriated"]
    dup = client.post("/api/v1/recommendations", headers=tokens["admin"], json={**GOOD, "text": "Reworded."})
    assert dup.status_code == 409 and dup.get_json()["error"]["code"] == "recommendation_exists"
    refused = client.post("/api/v1/recommendations", headers=tokens["caseworker"], json={**GOOD, "number": "8.78"})
    assert refused.status_code == 403
    assert client.post("/api/v1/recommendations", headers=tokens["advocate"], json=GOOD).status_code == 403
    bad = client.post("/api/v1/recommendations", headers=tokens["analyst"],
                      json={**GOOD, "number": None, "response": "accepted", "measures": ["everything"]})
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"response", "measures.0"}
    unnumbered = client.post("/api/v1/recommendations", headers=tokens["analyst"], json={**GOOD, "number": None})
    assert unnumbered.status_code == 422 and set(unnumbered.get_json()["error"]["fields"]) == {"number"}
    assert client.post("/api/v1/recommendations", headers=tokens["analyst"],
                       json={**GOOD, "number": "8.79", "secret": 1}).status_code == 422
    listed = client.get("/api/v1/recommendations", headers=tokens["caseworker"]).get_json()["items"]
    assert added["recommendation_id"] in {r["recommendation_id"] for r in listed}
    # Its audit event, in the same write, names the action and the id, never the text.
    version = _db(mongo, settings)["recommendations_versions"].find_one({"aggregate_id": added["recommendation_id"],
                                                                          "rev": 1})
    (event,) = version["outbox"]
    assert event["event_type"] == "audit.recorded" and event["payload"]["action"] == "recommendation_saved"
    assert event["payload"]["object_id"] == added["recommendation_id"] and GOOD["text"] not in json.dumps(event)


def test_a_recommendation_counts_a_return_after_its_date_and_not_one_before(reporting_app, tokens, added, world):
    client = reporting_app.test_client()
    rid = added["recommendation_id"]
    exact = client.get(f"/api/v1/recommendations/{rid}?as_of={AS_OF}&disclosure=internal", headers=tokens["analyst"])
    assert exact.status_code == 200, exact.get_json()
    body = exact.get_json()
    assert body["figures"]["since"] == ISSUED and body["text"] == GOOD["text"]
    (repatriated,) = body["figures"]["measures"]
    assert repatriated["measure"] == "repatriated" and repatriated["total"] == 1
    assert repatriated["case_ids"] == [world["after"]]
    # Undated, it follows every documented return up to the date: both.
    undated = client.patch(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"], json={"issued_on": None})
    assert undated.status_code == 200
    both = client.get(f"/api/v1/recommendations/{rid}?as_of={AS_OF}&disclosure=internal",
                      headers=tokens["analyst"]).get_json()
    assert sorted(both["figures"]["measures"][0]["case_ids"]) == sorted(world.values())
    assert client.patch(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"],
                        json={"issued_on": ISSUED}).status_code == 200
    public = client.get(f"/api/v1/recommendations/{rid}?as_of={AS_OF}", headers=tokens["caseworker"]).get_json()
    assert public["figures"]["measures"][0]["total"] is None  # one case: not published
    assert "case_ids" not in public["figures"]["measures"][0]
    assert client.get(f"/api/v1/recommendations/{rid}?disclosure=internal",
                      headers=tokens["caseworker"]).status_code == 403
    assert client.get("/api/v1/recommendations/rec-none", headers=tokens["analyst"]).status_code == 404
    assert client.patch(f"/api/v1/recommendations/{rid}", headers=tokens["caseworker"],
                        json={"response": "supported"}).status_code == 403


def _page_login(client, username: str, lang: str = "en") -> None:
    res = support_page_login(client, username, PASSWORD, lang=lang)
    assert res.status_code == 302, res.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_page_of_a_recommendation_shows_the_case_counted_against_it(reporting_client, users, added, world, lang):
    _page_login(reporting_client, users["analyst"], lang=lang)
    listing = reporting_client.get("/recommendations")
    assert listing.status_code == 200
    text = listing.get_data(as_text=True)
    assert f'data-recommendation="{added["recommendation_id"]}"' in text and "28.131" in text
    assert ("권고 이행 추적" in text) == (lang == "ko") and ("Recommendations followed" in text) == (lang == "en")
    res = reporting_client.get(f"/recommendations/{added['recommendation_id']}?as_of={AS_OF}&disclosure=internal")
    page = res.get_data(as_text=True)
    assert res.status_code == 200, page[:500]
    row = re.search(r'<tr data-measure="repatriated">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'class="num total">1<', row)
    assert world["after"] in page and world["before"] not in page
    assert ("북한으로 강제송환" in row) == (lang == "ko")
    assert ISSUED in page and "repatriated<" not in page  # a label, never the code
    assert reporting_client.get(f"/recommendations/{added['recommendation_id']}?as_of=2999-01-01").status_code == 422


def test_an_analyst_adds_one_through_the_form_and_a_caseworker_cannot(reporting_client, users):
    _page_login(reporting_client, users["analyst"])
    listing = reporting_client.get("/recommendations").get_data(as_text=True)
    token = re.search(r'id="recommendation-form"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                      listing).group(1)
    number = f"9.{uuid.uuid4().int % 9000 + 1}"
    bad = reporting_client.post("/recommendations", data={"csrf_token": token, "mechanism": "upr", "cycle": "CN-4",
                                                          "text": "", "measures": ["repatriated"]})
    assert bad.status_code == 422
    bad_page = bad.get_data(as_text=True)
    assert 'id="text-error"' in bad_page and 'id="error-summary"' in bad_page
    assert 'value="repatriated" checked' in bad_page  # what was chosen comes back
    unnumbered = reporting_client.post("/recommendations", data={"csrf_token": token, "mechanism": "upr",
                                                                 "cycle": "CN-4", "text": "Some text."})
    assert unnumbered.status_code == 422 and 'id="number-error"' in unnumbered.get_data(as_text=True)
    res = reporting_client.post("/recommendations", data={
        "csrf_token": token, "mechanism": "upr", "kind": "made", "cycle": "CN-4", "number": number,
        "text": "Allow UNHCR access (synthetic form test).", "recommending_state": "Synthetic State",
        "response": "supported", "issued_on": ISSUED, "measures": ["unhcr_access_requested", "unhcr_access_granted"],
        "questions": ["unhcr_access"]})
    assert res.status_code == 302, res.get_data(as_text=True)[:800]
    page = reporting_client.get(res.headers["Location"]).get_data(as_text=True)
    assert "The recommendation was added." in page and "Allow UNHCR access (synthetic form test)." in page
    again = reporting_client.post("/recommendations", data={"csrf_token": token, "mechanism": "upr", "cycle": "CN-4",
                                                            "number": number, "text": "Again."})
    assert again.status_code == 409
    _page_login(reporting_client, users["caseworker"])
    listing = reporting_client.get("/recommendations").get_data(as_text=True)
    assert 'id="recommendation-form"' not in listing
    assert reporting_client.post("/recommendations", data={"csrf_token": token, "mechanism": "upr"}).status_code in (
        400, 403)


def test_a_snapshot_carries_the_recommendations_and_its_docx_reads_back(reporting_app, tokens, added, world,
                                                                         reporting_client, users):
    client = reporting_app.test_client()
    snap = client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                       json={"cycle": "CN-4", "as_of": AS_OF, "title": "Draft with recommendations"})
    assert snap.status_code == 201, snap.get_json()
    sid = snap.get_json()["snapshot_id"]
    stored = client.get(f"/api/v1/upr/snapshots/{sid}", headers=tokens["caseworker"]).get_json()
    ours = next(r for r in stored["recommendations"] if r["recommendation_id"] == added["recommendation_id"])
    assert ours["figures"]["since"] == ISSUED and ours["figures"]["measures"][0]["measure"] == "repatriated"
    assert len(stored["recommendations"]) >= 14
    for lang, returned_label in (("en", "Returned to the DPRK (in the period)"), ("ko", "북한으로 강제송환 (기간 중)")):
        res = client.get(f"/api/v1/upr/snapshots/{sid}/annex?format=docx&lang={lang}", headers=tokens["advocate"])
        assert res.status_code == 200 and res.mimetype == \
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        assert res.headers["Content-Disposition"].endswith(f'-{lang}.docx"')
        document = docx.Document(io.BytesIO(res.data))
        text = "\n".join(p.text for p in document.paragraphs)
        tables = [[[c.text for c in row.cells] for row in t.rows] for t in document.tables]
        assert "Draft with recommendations" in text and GOOD["text"] in text
        for q in stored["questions"]:
            assert (q["question"] in text) == (lang == "en")
        assert any(row[0] == returned_label for t in tables for row in t)
        assert ("권고 이행 추적" in text) == (lang == "ko")
        for case_id in world.values():
            assert case_id not in text and case_id not in json.dumps(tables)
    # Its page shows them too, each with its figures since its date, in the reader's language.
    for lang, heading in (("en", "Recommendations followed"), ("ko", "권고 이행 추적")):
        _page_login(reporting_client, users["caseworker"], lang=lang)
        page = reporting_client.get(f"/snapshots/{sid}").get_data(as_text=True)
        section = page.split('id="snapshot-recommendations"', 1)[1]
        assert heading in section and GOOD["text"] in section and "28.131" in section
        ours = section.split(f'data-recommendation="{added["recommendation_id"]}"', 1)[1].split("</article>", 1)[0]
        assert re.search(r'<tr data-measure="repatriated">.*?<td class="num">[^<]+</td>', ours)
        assert ISSUED in ours


def test_the_forms_errors_are_in_korean_on_a_korean_page(reporting_client, users):
    _page_login(reporting_client, users["analyst"], lang="ko")
    listing = reporting_client.get("/recommendations").get_data(as_text=True)
    token = re.search(r'id="recommendation-form"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                      listing).group(1)
    res = reporting_client.post("/recommendations", data={"csrf_token": token, "mechanism": "treaty_body",
                                                          "symbol": "CAT/C/CHN/CO/6", "text": "Some text.",
                                                          "response": "noted"})
    page = res.get_data(as_text=True)
    assert res.status_code == 422 and '<html lang="ko">' in page
    assert "조약기구 권고에는 문서 기호와 문단이 필요합니다." in page
    assert "주기, 번호, 권고 국가, 응답은 UPR 권고에만 있습니다." in page
    assert "needs its symbol" not in page


def test_an_analyst_dates_a_shipped_recommendation_through_its_page(reporting_client, users, tokens):
    listed = reporting_client.get("/api/v1/recommendations", headers=tokens["analyst"]).get_json()["items"]
    rid = next(r for r in listed if r["number"] == "28.135" and r["cycle"] == "CN-3")["recommendation_id"]
    _page_login(reporting_client, users["analyst"])
    page = reporting_client.get(f"/recommendations/{rid}").get_data(as_text=True)
    token = re.search(r'id="edit-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"', page).group(1)
    bad = reporting_client.post(f"/recommendations/{rid}", data={
        "csrf_token": token, "issued_on": "2999-01-01", "response": "noted", "measures": ["forced_labour_reported"]})
    assert bad.status_code == 422 and 'id="issued_on-error"' in bad.get_data(as_text=True)
    assert reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()["response"] is None
    res = reporting_client.post(f"/recommendations/{rid}", data={
        "csrf_token": token, "issued_on": "2019-03-15", "response": "supported", "recommending_state": "Kenya",
        "measures": ["forced_labour_reported", "sent_to_kyohwaso"], "questions": ["business"]})
    assert res.status_code == 302, res.get_data(as_text=True)[:500]
    after = reporting_client.get(res.headers["Location"]).get_data(as_text=True)
    assert "The recommendation was saved." in after and "2019-03-15" in after
    api = reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()
    assert (api["issued_on"], api["response"], api["measures"]) == (
        "2019-03-15", "supported", ["forced_labour_reported", "sent_to_kyohwaso"])
    _page_login(reporting_client, users["caseworker"])
    assert 'id="edit-form"' not in reporting_client.get(f"/recommendations/{rid}").get_data(as_text=True)
    assert reporting_client.post(f"/recommendations/{rid}", data={"csrf_token": token, "response": "noted"}
                                 ).status_code in (400, 403)
    assert reporting_client.get(f"/api/v1/recommendations/{rid}", headers=tokens["analyst"]).get_json()[
        "response"] == "supported"


def test_a_snapshot_freezes_the_evidence_register_and_its_annex_prints_it(reporting_app, tokens, mongo, settings):
    """Issue 11 point 4: six returned women each name a product after their return; the snapshot's
    answer carries the public register and its CSV annex prints the product with its six
    testimonies, in English and Korean, and no case id."""
    store = ReportingStore(_db(mongo, settings))
    clock = (dt.datetime(2024, 8, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in range(1000))
    # Letters only: a hex tag can hold seven digits in a row, which the contract refuses as a phone number.
    product = "Synthetic wigs " + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])
    case_ids = [str(uuid.uuid4()) for _ in range(6)]
    for n, case_id in enumerate(case_ids):
        events = _events(case_id, "2011-03-15", clock)
        events.append(new_event("case.after_return_recorded", producer="case", case_id=case_id, now=next(clock),
                                payload={"record_id": f"news-{n}", "learned_on": "2011-06-01",
                                         "effective_on": f"2011-0{4 + n % 2}-10", "source_type": "fellow_escapee",
                                         "source_reliability": "probable", "custody": "mss", "outcome": "kyohwaso",
                                         "sentence_years": None, "forced_labour": "yes", "work": ["wigs_eyelashes"],
                                         "products": [product], "facilities": [], "companies": [],
                                         "ill_treatment": []}))
        for event in events:
            handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)
    client = reporting_app.test_client()
    snap = client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                       json={"cycle": "CN-4", "as_of": AS_OF, "title": "Annex with the register"})
    assert snap.status_code == 201, snap.get_json()
    sid = snap.get_json()["snapshot_id"]
    stored = client.get(f"/api/v1/upr/snapshots/{sid}", headers=tokens["caseworker"]).get_json()
    listed = next(i for i in stored["evidence"]["products"] if i["name"] == product)
    # Six testimonies, published by the cell key method as a multiple of 5 within 4 of them.
    assert (listed["first_on"], listed["last_on"]) == ("2011-04", "2011-05") and listed["testimonies"] in (5, 10)
    assert stored["evidence"]["disclosure"] == "public"
    for lang, heading in (("en", "Supply-chain evidence register: Products"), ("ko", "공급망 증거 목록: 제품")):
        res = client.get(f"/api/v1/upr/snapshots/{sid}/annex?format=csv&lang={lang}", headers=tokens["advocate"])
        assert res.status_code == 200 and res.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
        ours = [r for r in rows if r["evidence_name"] == product]
        assert [(r["measure"], r["count"], r["first_on"], r["last_on"], r["measure_title"]) for r in ours] == [
            ("evidence_products", str(listed["testimonies"]), "2011-04", "2011-05", heading)]
        for case_id in case_ids:
            assert case_id not in res.get_data(as_text=True)
