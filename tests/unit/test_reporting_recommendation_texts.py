"""Recommendations' Korean texts (issue 11 points 5-6), without I/O: every shipped recommendation
has a careful unofficial Korean translation; the Korean text is validated as the English one and
edited alone; the DOCX, Markdown, HTML, XLSX and PDF annexes in Korean quote the Korean text first,
marked "비공식 번역", then "원문:" and the official English, or the English with a note that no
translation exists; and the recommendations linked to each UPR question, in the list's order."""

from __future__ import annotations

import datetime as dt
import io
import re

import docx
import pytest
from marshmallow import ValidationError
from markupsafe import escape

from services.reporting import recommendations as recs
from services.reporting.annex import render_annex
from tests.unit.test_reporting_annex import SNAPSHOT, _pdf_text, needs_poppler
from tests.unit.test_reporting_recommendations import GOOD



HANGUL = re.compile("[가-힣]")


def test_every_shipped_recommendation_has_its_korean_text():
    for rec in recs.shipped():
        assert rec["text_ko"] and HANGUL.search(rec["text_ko"]) and rec["text_ko"] != rec["text"], rec["text"][:40]
        assert not re.search("[A-Za-z]{4,}", rec["text_ko"].replace("UNHCR", "")), rec["text_ko"]  # no English left
    assert "text_ko" in recs.public(recs.shipped()[0])


@pytest.mark.parametrize("value, ok", [("", False), ("x" * 4001, False), (None, True), ("비호 절차를 마련할 것", True)])
def test_the_korean_text_is_validated_like_the_english_text(value, ok):
    for schema, body in ((recs.RecommendationIn(), {**GOOD, "text_ko": value}), (recs.RecommendationEdit(),
                                                                                  {"text_ko": value})):
        if ok:
            assert schema.load(body)["text_ko"] == value
        else:
            with pytest.raises(ValidationError) as caught:
                schema.load(body)
            assert "text_ko" in caught.value.messages
    with pytest.raises(ValidationError) as caught:
        recs.RecommendationIn().load({**GOOD, "text": "", "text_ko": ""})
    assert set(caught.value.messages) == {"text", "text_ko"}  # each beside its own field


def test_an_edit_sets_and_removes_the_korean_text_and_nothing_else():
    state = recs.new_state(recs.RecommendationIn().load(GOOD))
    assert state["text_ko"] is None
    new = recs.edited(state, recs.RecommendationEdit().load({"text_ko": "강제송환을 중단할 것"}))
    assert new["text_ko"] == "강제송환을 중단할 것" and new["text"] == state["text"]
    assert new["recommendation_id"] == state["recommendation_id"]  # a translation is not another recommendation
    assert recs.edited(new, recs.RecommendationEdit().load({"text_ko": None}))["text_ko"] is None


def test_the_recommendations_of_each_question_in_the_lists_order():
    shipped = recs.shipped()
    linked = recs.by_question(list(reversed(shipped)))
    assert set(linked) == set(recs.QUESTION_IDS)
    returned = linked["returned"]
    assert [r["recommendation_id"] for r in returned] == [r["recommendation_id"] for r in sorted(
        shipped, key=recs.sort_key) if "returned" in r["questions"]]
    assert {(r["symbol"], r["paragraph"]) for r in returned if r["mechanism"] == "treaty_body"} == {
        ("CAT/C/CHN/CO/5", "47")}
    assert all("text" not in r and "text_ko" not in r for r in returned)  # identification, not the texts
    assert [r["number"] for r in linked["business"] if r["cycle"] == "CN-3"] == ["28.131", "28.133", "28.134",
                                                                                "28.135"]
    assert linked["detained_by_age_sex"] == []


def _korean_snapshot() -> dict:
    cat = next(r for r in recs.shipped() if r["mechanism"] == "treaty_body" and "cease" in r["text"])
    good = recs.new_state(recs.RecommendationIn().load(GOOD))  # no Korean text
    return {**SNAPSHOT, "recommendations": recs.snapshot_part([], [cat, good], as_of=dt.date(2024, 12, 31))}, cat


def test_the_korean_docx_gives_the_korean_text_then_the_original_or_says_there_is_none():
    snapshot, cat = _korean_snapshot()
    body, _ = render_annex(snapshot, fmt="docx", lang="ko")
    paragraphs = [p.text for p in docx.Document(io.BytesIO(body)).paragraphs]
    korean = paragraphs.index(f"{cat['text_ko']} (비공식 번역)")
    assert paragraphs[korean + 1] == f"원문: {cat['text']}"  # Korean first, then the official English
    untranslated = paragraphs.index(GOOD["text"])
    assert paragraphs[untranslated + 1] == "한국어 번역이 없어 공식 영어 원문을 싣습니다."
    body, _ = render_annex(snapshot, fmt="docx", lang="en")
    english = [p.text for p in docx.Document(io.BytesIO(body)).paragraphs]
    assert cat["text"] in english and GOOD["text"] in english
    assert not any(HANGUL.search(p) or p.startswith("Original") for p in english)


def test_the_korean_annex_quotes_the_korean_text_then_the_original_in_md_and_html():
    snapshot, cat = _korean_snapshot()
    md = render_annex(snapshot, fmt="md", lang="ko")[0].decode("utf-8")
    start = md.index("\n## 권고 이행 추적")
    section = md[start:md.index("\n## ", start + 1)]
    assert "### CAT/C/CHN/CO/5, 문단 47" in section
    korean, original = section.index(cat["text_ko"]), section.index(f"**원문:** *{cat['text']}")
    assert korean < original and "(비공식 번역)" in section[korean:original]
    assert GOOD["text"].replace(".", "") in section and "한국어 번역이 없어 공식 영어 원문을 싣습니다." in section
    page = render_annex(snapshot, fmt="html", lang="ko")[0].decode("utf-8")
    part = page[page.index('<section id="recommendations">'):page.index('<section id="tables">')]
    assert (f'<blockquote lang="ko"><p>{cat["text_ko"]} <span class="unofficial">(비공식 번역)</span></p></blockquote>'
            in part)
    original = f'<strong>원문:</strong> <span lang="en">{escape(cat["text"])}</span>'
    assert part.index(cat["text_ko"]) < part.index(original)
    assert f'<blockquote lang="en"><p>{GOOD["text"]}</p></blockquote>' in part
    english = render_annex(snapshot, fmt="md", lang="en")[0].decode("utf-8")
    assert "## Recommendations followed" in english and cat["text_ko"] not in english and "원문" not in english


def test_the_korean_xlsx_carries_the_korean_text_then_the_original():
    import openpyxl

    snapshot, cat = _korean_snapshot()
    sheet = openpyxl.load_workbook(io.BytesIO(render_annex(snapshot, fmt="xlsx", lang="ko")[0]))["권고 이행 추적"]
    cells = [row[0] for row in sheet.iter_rows(values_only=True) if row and row[0]]
    assert cells.index(f"{cat['text_ko']} (비공식 번역)") + 1 == cells.index(f"원문: {cat['text']}")
    assert cells.index(GOOD["text"]) + 1 == cells.index("한국어 번역이 없어 공식 영어 원문을 싣습니다.")


@needs_poppler
def test_the_korean_pdf_carries_the_korean_text_then_the_original():
    snapshot, cat = _korean_snapshot()
    text = " ".join(_pdf_text(render_annex(snapshot, fmt="pdf", lang="ko")[0]).split())
    start = text.index("권고 이행 추적")
    korean, original = text.index(" ".join(cat["text_ko"].split()[:4]), start), text.index("원문:", start)
    assert korean < text.index("(비공식 번역)", korean) < original
    assert "한국어 번역이 없어 공식 영어 원문을 싣습니다." in text


def test_every_character_of_the_korean_texts_has_a_glyph_in_the_pdf_font():
    from reportlab.pdfbase import pdfmetrics

    from shared import fonts

    font = pdfmetrics.getFont(fonts.register_reportlab()[0]).face
    missing = {c for r in recs.shipped() for c in r["text_ko"] + r["text"] if ord(c) not in font.charToGlyph}
    assert not missing, sorted(missing)
