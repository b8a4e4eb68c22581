"""The submission draft as DOCX (issue 11 point 6): a starting point an analyst edits in Word, in
English or Korean, from the snapshot's published parts only (as every annex format): the questions
with their answers and tables, the post-return evidence, the recommendations followed with their
figures since their dates, and every measure's table. Pure: the annex and the snapshot in, bytes out.

Everything is written as text runs (python-docx escapes XML itself; nothing is a field or a
formula), and nothing identifying is in a snapshot's published parts to begin with."""

from __future__ import annotations

import io

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn

from services.reporting import charts
from services.reporting import recommendation_words as rw
from services.reporting.wording import SMALL_TOTAL, SUPPRESSED_CELL
from shared.events import SEXES

PATTERN = ("returned_fate_known", "held_by_mss", "sent_to_kyohwaso", "sent_to_kwanliso",
           "sent_to_labour_training_camp", "died_or_disappeared", "forced_labour_reported", "ill_treatment_reported")
EVIDENCE_KINDS = ("products", "facilities", "companies")

DRAFT = {
    "en": {"draft": "Draft submission for editing. The figures are of cases documented by Non-Refoulement "
                    "Watch, frozen in the snapshot below; check every sentence before it is sent.",
           "questions": "The questions to China, answered from documented cases",
           "tables_of": "Tables behind the answer",
           "evidence": "Evidence after return",
           "evidence_intro": "Of the persons documented as returned whose fate after return is known: the latest "
                             "news of each, by sex.",
           "register": "Supply-chain evidence register (names given in testimonies; never a person)",
           "register_none": "The snapshot holds no evidence register; the counts below are those the answer to "
                            "the business question gives.",
           "kind": {"products": "Products", "facilities": "Facilities", "companies": "Companies"},
           "listed": "Names listed", "name": "Name", "testimonies": "Testimonies", "first": "First",
           "last": "Last", "withheld": "{count} more not listed: named by fewer than 5 documented persons.",
           "recs": "Recommendations followed", "recs_none": "The snapshot records no recommendation.",
           "tables": "Tables of the snapshot"},
    "ko": {"draft": "편집용 제출 초안입니다. 수치는 Non-Refoulement Watch가 기록한 사례에 관한 것으로, 아래 스냅샷 "
                    "시점에 고정되었습니다. 제출 전에 모든 문장을 확인하십시오.",
           "questions": "중국에 대한 질문과 기록 사례에 근거한 답변",
           "tables_of": "답변의 근거 표",
           "evidence": "송환 후 증거",
           "evidence_intro": "송환된 것으로 기록된 사람 중 송환 후 행방이 확인된 사람: 각 사람의 최신 소식 기준, 성별.",
           "register": "공급망 증거 목록 (증언에 나온 명칭; 사람은 기재하지 않음)",
           "register_none": "이 스냅샷에는 증거 목록이 없습니다. 아래 수는 기업 관련 질문의 답변에 나온 수입니다.",
           "kind": {"products": "제품", "facilities": "시설", "companies": "기업"},
           "listed": "기재된 명칭 수", "name": "명칭", "testimonies": "증언 수", "first": "처음",
           "last": "마지막", "withheld": "기록된 사람 5명 미만이 말한 {count}개는 싣지 않았습니다.",
           "recs": "권고 이행 추적", "recs_none": "이 스냅샷에는 기록된 권고가 없습니다.",
           "tables": "스냅샷의 표"},
}


def _count(value) -> str:
    return SUPPRESSED_CELL if value is None else str(value)


def _total(value) -> str:
    return SMALL_TOTAL if value is None else str(value)


def _set_language(document, lang: str) -> None:
    """Word's proofing language (and East Asian font language for Korean) on the Normal style."""
    rpr = document.styles["Normal"].element.get_or_add_rPr()
    el = rpr.find(qn("w:lang"))
    if el is None:
        el = rpr.makeelement(qn("w:lang"), {})
        rpr.append(el)
    el.set(qn("w:val"), "ko-KR" if lang == "ko" else "en-GB")
    el.set(qn("w:eastAsia"), "ko-KR")


def _table(document, header: list[str], rows: list[list[str]]):
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header):
        cell.text = ""
        cell.paragraphs[0].add_run(str(text)).bold = True
    for row in rows:
        cells = table.add_row().cells
        for i, (cell, text) in enumerate(zip(cells, row)):
            cell.text = str(text)
            if i:
                cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
    return table


def _by_sex_rows(tables: dict, names, lang: str) -> list[list[str]]:
    """One row per measure: its count per sex and its total, from published tables by sex."""
    rows = []
    for name in names:
        tab = tables.get(name)
        if not tab:
            continue
        cells = {c.get("sex"): charts.published_count(c) for c in tab.get("cells") or ()}
        rows.append([rw.measure_label(name, lang), *(_count(cells.get(sex, 0)) for sex in SEXES),
                     _total(tab.get("total"))])
    return rows


def _sex_header(lang: str, first: str) -> list[str]:
    w = rw.words(lang)
    return [first, *(w[sex] for sex in SEXES), w["total"]]


def _quote(document, quoted: dict) -> None:
    """A recommendation's text: in Korean its unofficial translation (marked so), then "원문:" and
    the official English; or the English with a note that no translation is available."""
    quote = document.add_paragraph()
    quote.add_run(quoted["text"]).italic = True
    if quoted["label"]:
        quote.add_run(f" ({quoted['label']})")
    if quoted["original"]:
        original = document.add_paragraph()
        original.add_run(f"{quoted['original_label']}: ").bold = True
        original.add_run(quoted["original"]).italic = True
    if quoted["note"]:
        document.add_paragraph(quoted["note"])


def build_docx(annex, snapshot: dict, *, author: str) -> bytes:
    """The draft in the annex's language."""
    lang = annex.lang
    d, w = DRAFT["ko" if lang == "ko" else "en"], rw.words(lang)
    document = Document()
    _set_language(document, lang)
    document.core_properties.author = author
    document.core_properties.title = annex.title
    document.core_properties.language = "ko-KR" if lang == "ko" else "en-GB"
    document.add_heading(annex.title, level=0)
    document.add_paragraph(d["draft"]).runs[0].italic = True
    for label, value in annex.meta:
        p = document.add_paragraph()
        p.add_run(f"{label}: ").bold = True
        p.add_run(str(value))
    document.add_heading(annex.words["heading"]["method"], level=1)
    for line in annex.method:
        document.add_paragraph(line, style="List Bullet")

    # The questions, each with its answer and the tables behind it.
    document.add_heading(d["questions"], level=1)
    by_id = {q.get("id"): q for q in snapshot.get("questions") or ()}
    for (question, answer), qid in zip(annex.questions, [q.get("id") for q in snapshot.get("questions") or ()]):
        document.add_heading(question, level=2)
        document.add_paragraph(answer)
        tables = {k: v for k, v in (by_id.get(qid, {}).get("figures") or {}).items()
                  if isinstance(v, dict) and "cells" in v and "total" in v and v.get("by") == ["sex"]}
        if tables:
            document.add_paragraph(d["tables_of"]).runs[0].bold = True
            _table(document, _sex_header(lang, w["measure"]), _by_sex_rows(tables, tables, lang))

    # The post-return evidence.
    document.add_heading(d["evidence"], level=1)
    document.add_paragraph(d["evidence_intro"])
    pattern = (by_id.get("pattern_after_return") or {}).get("figures") or {}
    pattern_tables = {name: pattern.get(f"{name}_by_sex") or pattern.get(name) for name in PATTERN}
    pattern_tables = {k: v for k, v in pattern_tables.items() if isinstance(v, dict) and v.get("by") == ["sex"]}
    if pattern_tables:
        _table(document, _sex_header(lang, w["measure"]), _by_sex_rows(pattern_tables, PATTERN, lang))
    document.add_heading(d["register"], level=2)
    register = snapshot.get("evidence") if isinstance(snapshot.get("evidence"), dict) else None
    if register:
        for kind in EVIDENCE_KINDS:
            items = register.get(kind) or []
            document.add_heading(d["kind"][kind], level=3)
            _table(document, [d["name"], d["testimonies"], d["first"], d["last"]],
                   [[str(i.get("name")), _count(i.get("testimonies")), str(i.get("first_on") or "—"),
                     str(i.get("last_on") or "—")] for i in items])
            withheld = (register.get("withheld") or {}).get(kind)
            if withheld:
                document.add_paragraph(d["withheld"].format(count=withheld))
    else:
        document.add_paragraph(d["register_none"])
        counts = ((by_id.get("business") or {}).get("figures") or {}).get("evidence_register") or {}
        _table(document, [d["name"], d["listed"]], [[d["kind"][k], _count(counts.get(k))] for k in EVIDENCE_KINDS])

    # The recommendations followed, with their figures since their dates.
    document.add_heading(d["recs"], level=1)
    recs = snapshot.get("recommendations") or []
    if not recs:
        document.add_paragraph(d["recs_none"])
    for rec in recs:
        document.add_heading(rw.reference(rec, lang), level=2)
        _quote(document, rw.quoted(rec, lang))
        facts = document.add_paragraph()
        facts.add_run(f"{w['response']}: ").bold = True
        facts.add_run(rw.response_text(rec, lang) if rec.get("mechanism") == "upr" else "—")
        facts.add_run(f"  {w['issued_on']}: ").bold = True
        facts.add_run(str(rec.get("issued_on") or w["no_date"]))
        followed = rec.get("figures") or {}
        if followed.get("measures"):
            when = (w["since"].format(since=followed["since"], as_of=followed["as_of"]) if followed.get("since")
                    else w["since_undated"].format(as_of=followed["as_of"]))
            document.add_paragraph(when)
            tables = {m["measure"]: m for m in followed["measures"]}
            _table(document, _sex_header(lang, w["measure"]), _by_sex_rows(tables, tables, lang))
        elif rec.get("measures") and followed.get("as_of"):
            document.add_paragraph(w["not_yet"].format(as_of=followed["as_of"]))

    # Every measure's table, sex by age group, as the other formats give them.
    document.add_heading(d["tables"], level=1)
    document.add_paragraph(annex.footnote)
    for table in annex.tables:
        document.add_heading(table.title, level=2)
        document.add_paragraph(table.when)
        rows = [[label, *(_count(c) for c in counts)] for _, label, counts in table.rows]
        _table(document, annex.columns, rows)
        document.add_paragraph(annex.words["total_line"].format(total=table.total_text)).runs[0].bold = True
        document.add_paragraph(f"{annex.words['heading']['note']}: {table.note}")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()

