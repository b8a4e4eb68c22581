"""Recommendations (issue 11 point 5) and the DOCX submission draft (point 6), without I/O: the
shipped file holds the reference document's recommendations with its texts word for word, loads
into ids that do not change, validation by mechanism, analysts' edits, figures since a date, and
the draft read back with python-docx in English and Korean."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import docx
import pytest
from marshmallow import ValidationError

from services.reporting import recommendations as recs
from services.reporting.annex import MIME_TYPES, build, render_annex
from tests.unit.test_reporting_annex import CASE_IDS, SNAPSHOT, SYNTH, TITLE

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_shipped_file_holds_the_reference_documents_recommendations():
    shipped = recs.shipped()
    upr3 = {r["number"]: r for r in shipped if r["cycle"] == "CN-3"}
    assert sorted(upr3) == ["28.131", "28.132", "28.133", "28.134", "28.135"]
    assert {n: r["recommending_state"] for n, r in upr3.items()} == {
        "28.131": "Peru", "28.132": "Republic of Korea", "28.133": "State of Palestine", "28.134": "Haiti",
        "28.135": "Kenya"}
    # The document does not say how China responded, nor when: left null, not invented.
    assert all(r["response"] is None and r["issued_on"] is None for r in shipped)
    cat = [r for r in shipped if r["mechanism"] == "treaty_body"]
    assert [(r["symbol"], r["paragraph"]) for r in cat] == [("CAT/C/CHN/CO/5", "47")] * 2
    proposed = [r for r in shipped if r["kind"] == "proposed"]
    assert len(proposed) == 6 and all(r["cycle"] == "CN-4" and r["number"] is None for r in proposed)
    assert len({r["recommendation_id"] for r in shipped}) == len(shipped) == 13


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference document is kept beside the repository")
def test_every_shipped_text_is_quoted_word_for_word_from_the_reference():
    document = _flat(" ".join(p.read_text(encoding="utf-8") for p in REFERENCE.glob("*.txt")))
    for rec in recs.shipped():
        assert _flat(rec["text"]) in document, rec["text"][:60]
        if rec["number"]:
            assert f"{rec['number']} {_flat(rec['text'])} ({rec['recommending_state']})" in document


def test_ids_come_from_what_identifies_a_recommendation():
    first = recs.shipped()
    again = recs.shipped()
    assert [r["recommendation_id"] for r in first] == [r["recommendation_id"] for r in again]
    one = first[0]
    assert recs.recommendation_id({**one, "text": "Another text", "recommending_state": "X"}) == \
        one["recommendation_id"]  # a UPR recommendation is its cycle and number
    cat = next(r for r in first if r["mechanism"] == "treaty_body")
    assert recs.recommendation_id({**cat, "text": "  " + cat["text"].upper() + " "}) == cat["recommendation_id"]
    assert recs.recommendation_id({**cat, "text": "another sentence of the paragraph"}) != cat["recommendation_id"]


def test_a_broken_shipped_file_fails_loudly(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"items": [{"mechanism": "upr", "cycle": "third", "number": "28.131", "text": "x"}]}))
    with pytest.raises(ValueError, match="entry 0"):
        recs.shipped(path)
    item = {"mechanism": "upr", "cycle": "CN-3", "number": "28.131", "text": "x"}
    path.write_text(json.dumps({"items": [item, {**item, "text": "y"}]}))
    with pytest.raises(ValueError, match="repeats"):
        recs.shipped(path)


GOOD = {"mechanism": "upr", "cycle": "CN-4", "number": "9.12", "text": "Cease forcible repatriation.",
        "recommending_state": "Synthetic State", "response": "noted", "issued_on": "2024-07-01",
        "measures": ["repatriated", "repatriated"], "questions": ["returned"]}


@pytest.mark.parametrize("change, field", [
    ({"mechanism": "committee"}, "mechanism"),
    ({"cycle": None}, "cycle"),
    ({"cycle": "fourth"}, "cycle"),
    ({"number": None}, "number"),
    ({"number": "28.131; drop"}, "number"),
    ({"symbol": "CAT/C/CHN/CO/5"}, "symbol"),
    ({"response": "accepted"}, "response"),
    ({"issued_on": "2999-01-01"}, "issued_on"),
    ({"issued_on": "01/07/2024"}, "issued_on"),
    ({"measures": ["repatriated", "not_a_measure"]}, "measures"),
    ({"questions": ["nine"]}, "questions"),
    ({"text": ""}, "text"),
    ({"text": "x" * 4001}, "text"),
    ({"kind": "proposed"}, "response"),
    ({"surprise": 1}, "surprise"),
])
def test_validation_names_the_field(change, field):
    with pytest.raises(ValidationError) as caught:
        recs.RecommendationIn().load({**GOOD, **change})
    assert field in json.dumps(caught.value.messages)


def test_a_treaty_body_recommendation_needs_symbol_and_paragraph_and_has_no_response():
    base = {"mechanism": "treaty_body", "symbol": "CAT/C/CHN/CO/6", "paragraph": "31 (b)", "text": "Do it."}
    state = recs.new_state(recs.RecommendationIn().load(base))
    assert state["cycle"] is None and state["response"] is None
    for change, field in (({"paragraph": None}, "paragraph"), ({"response": "noted"}, "response"),
                          ({"cycle": "CN-4"}, "cycle")):
        with pytest.raises(ValidationError) as caught:
            recs.RecommendationIn().load({**base, **change})
        assert field in caught.value.messages


def test_a_loaded_recommendation_keeps_links_once_and_dates_as_text():
    state = recs.new_state(recs.RecommendationIn().load(GOOD))
    assert state["measures"] == ["repatriated"] and state["issued_on"] == "2024-07-01"
    assert set(recs.public(state)) >= {"recommendation_id", "mechanism", "cycle", "number", "symbol", "paragraph",
                                       "text", "recommending_state", "response", "issued_on"}


def test_an_edit_changes_what_it_names_and_nothing_else():
    state = recs.new_state(recs.RecommendationIn().load(GOOD))
    changes = recs.RecommendationEdit().load({"response": "supported", "issued_on": "2024-08-01"})
    new = recs.edited(state, changes)
    assert new["response"] == "supported" and new["issued_on"] == "2024-08-01"
    assert new["recommendation_id"] == state["recommendation_id"] and new["text"] == state["text"]
    assert recs.edited(new, recs.RecommendationEdit().load({"response": "supported"})) is None
    with pytest.raises(ValidationError):
        recs.RecommendationEdit().load({"number": "1.1"})  # what identifies it stays
    cat = next(r for r in recs.shipped() if r["mechanism"] == "treaty_body")
    with pytest.raises(ValidationError):
        recs.edited(cat, {"response": "noted"})


def _record(case_id: str, repatriated_on: str) -> dict:
    """A case record as reporting's domain keeps it (built through its own event handler)."""
    from services.reporting import domain
    from shared.events import new_event

    now = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    common = {"sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin"}
    record = None
    for kind, payload in (
            ("case.opened", {"status": "reported", **common, "detained_on": None, "deportation_imminent": False,
                             "vulnerabilities": [], "consent_advocacy": "anonymous", "consent_statistics": True}),
            ("case.status_changed", {"from": "reported", "to": "detained", "effective_on": "2020-01-01"}),
            ("case.status_changed", {"from": "detained", "to": "repatriated", "effective_on": repatriated_on})):
        record = domain.apply_event(record, new_event(kind, producer="case", case_id=case_id, payload=payload,
                                                      now=now))
    return record


def test_figures_follow_a_recommendation_from_its_date():
    records = [_record("before", "2024-06-15"), _record("after", "2024-07-15")]
    state = recs.new_state(recs.RecommendationIn().load(GOOD))
    followed = recs.followed(records, state, as_of=dt.date(2024, 12, 31), disclosure_level="internal")
    (repatriated,) = followed["measures"]
    assert followed["since"] == "2024-07-01" and repatriated["total"] == 1 and repatriated["case_ids"] == ["after"]
    undated = recs.followed(records, {**state, "issued_on": None}, as_of=dt.date(2024, 12, 31),
                            disclosure_level="internal")
    assert undated["measures"][0]["total"] == 2 and undated["note"]
    early = recs.followed(records, state, as_of=dt.date(2024, 6, 30), disclosure_level="internal")
    assert early["measures"] == []
    public = recs.followed(records, state, as_of=dt.date(2024, 12, 31), disclosure_level="public")
    assert public["measures"][0]["total"] is None and "case_ids" not in public["measures"][0]  # 1: suppressed


# --- the DOCX draft -------------------------------------------------------------------------------


def _with_recommendations() -> dict:
    records = [_record(f"c{i}", "2024-07-15") for i in range(6)]
    states = [recs.new_state(recs.RecommendationIn().load(GOOD)), *recs.shipped()[5:7]]
    return {**SNAPSHOT, "recommendations": recs.snapshot_part(records, states, as_of=dt.date(2024, 12, 31))}


def _docx_text(body: bytes) -> tuple[str, list[list[list[str]]]]:
    document = docx.Document(io.BytesIO(body))
    text = "\n".join(p.text for p in document.paragraphs)
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in document.tables]
    return text, tables


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_docx_draft_has_the_answers_tables_evidence_and_recommendations(lang):
    snapshot = _with_recommendations()
    body, mime = render_annex(snapshot, fmt="docx", lang=lang)
    assert mime == MIME_TYPES["docx"] and body[:2] == b"PK"
    text, tables = _docx_text(body)
    assert TITLE in text
    annex = build(snapshot, lang)
    for question, answer in annex.questions:  # every question with its answer, in the draft's language
        assert question in text and answer in text
    # Headings and labels in the reader's language.
    if lang == "ko":
        assert "권고 이행 추적" in text and "송환 후 증거" in text and "구금 (기준일 현재)" in text
        assert re.search("[가-힣]", text)
    else:
        assert "Recommendations followed" in text and "Evidence after return" in text
        assert "Detained (on the date)" in text
    # The recommendations with their texts and their figures since their dates.
    assert GOOD["text"] in text and "CAT/C/CHN/CO/5" in text
    # 6 returned, published by the cell key method as a multiple of 5 within 4 of it.
    assert any(row[0] in ("Returned to the DPRK (in the period)", "북한으로 강제송환 (기간 중)") and row[-1] in ("5", "10")
               for t in tables for row in t)
    # Every measure's table, sex by age group, as the annex gives it ("–" for a suppressed cell).
    for table in annex.tables:
        rows = [[label, *("–" if c is None else str(c) for c in counts)] for _, label, counts in table.rows]
        assert [annex.columns, *rows] in tables, table.measure


def test_the_docx_holds_nothing_kept_for_analysts():
    for lang in ("en", "ko"):
        body, _ = render_annex(_with_recommendations(), fmt="docx", lang=lang)
        text, tables = _docx_text(body)
        flat = text + json.dumps(tables, ensure_ascii=False)
        for secret in (*CASE_IDS, SYNTH, "primary", "secondary", "c0"):
            assert secret not in flat, secret


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_docx_prints_the_snapshots_evidence_register(lang):
    register = {"as_of": "2024-01-01", "disclosure": "public", "withheld": {"products": 3, "facilities": 0,
                                                                            "companies": 1},
                "products": [{"name": "false eyelashes", "testimonies": 7, "first_on": "2021-03", "last_on": "2023-11"}],
                "facilities": [{"name": "Kyohwaso No. 12", "testimonies": 5, "first_on": "2020-01",
                                "last_on": "2022-06"}], "companies": []}
    body, _ = render_annex({**_with_recommendations(), "evidence": register}, fmt="docx", lang=lang)
    text, tables = _docx_text(body)
    header = ["Name", "Testimonies", "First", "Last"] if lang == "en" else ["명칭", "증언 수", "처음", "마지막"]
    assert [header, ["false eyelashes", "7", "2021-03", "2023-11"]] in tables
    assert [header, ["Kyohwaso No. 12", "5", "2020-01", "2022-06"]] in tables
    assert ("3 more not listed" in text) == (lang == "en") and ("5명 미만이 말한 3개" in text) == (lang == "ko")
