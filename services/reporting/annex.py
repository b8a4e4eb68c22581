"""The statistical annex of a UPR submission, from a frozen snapshot: Markdown, HTML, CSV, XLSX or
PDF, in English or Korean. Pure: no database, no network; the snapshot in, bytes out.

Every format says the same things, built once here (`build`): the title, cycle, as-of date and
period; the method; the submission's questions with their answers; the evidence register frozen
with the snapshot (`evidence`: names, testimonies, first and last month, how many names withheld;
or a line saying an older snapshot has none); one table per measure (sex by UNHCR age group) with
its suppression note; and the two charts (`charts.py`). Only the snapshot's
published figures are read (`figures`, `series`, `questions`): its exact tables and the ids of the
cases it counted are for analysts and never reach the annex. A suppressed cell is shown as "–" and
a suppressed total as "<5", never as a number; which suppressed cells were the small ones is not
said either, only how many, as each table's note does.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import re
from pathlib import Path

import jinja2
from markupsafe import Markup

from services.reporting import annex_pdf, annex_xlsx, charts, domain, wording
from services.reporting import recommendation_words as rw
from services.reporting.disclosure import THRESHOLD
from services.reporting.wording import SMALL_TOTAL, SUPPRESSED_CELL
from shared.events import SEXES
from shared.exports import csv_row
from shared.people import AGE_GROUPS

FORMATS = ("md", "html", "csv", "xlsx", "pdf", "docx")
MIME_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
CSV_COLUMNS = ("measure", "sex", "age_group", "count", "suppressed", "as_of", "since", "measure_title")
CSV_TOTAL = "total"  # the sex and age_group of a table's total row
# The evidence register's rows (issue 11 point 4) use the same columns and three more: measure
# "evidence_<kind>", count = a name's testimonies, the name and its first and last month; a kind's
# names withheld in public are one row with sex and age_group "names_withheld" and count = how many
# names; a snapshot without a register gives one row "evidence_register" whose title says so.
CSV_EVIDENCE_COLUMNS = ("evidence_name", "first_on", "last_on")
CSV_WITHHELD = "names_withheld"
EVIDENCE_KINDS = ("products", "facilities", "companies")
EVIDENCE_WORDS = {
    "en": {"heading": "Supply-chain evidence register",
           "intro": "Products, facilities and companies named in after-return testimonies, as published on the "
                    "snapshot's date (names given in testimonies; never a person).",
           "none": "This snapshot holds no evidence register (it was taken before snapshots froze one).",
           "kind": {"products": "Products", "facilities": "Facilities", "companies": "Companies"},
           "columns": ["Name", "Testimonies", "First month", "Last month"],
           "empty": "No name listed.",
           "withheld": "{count} more not listed in public: named by fewer than {threshold} documented persons.",
           "sheet": "Evidence register"},
    "ko": {"heading": "공급망 증거 목록",
           "intro": "송환 후 증언에 나온 제품, 시설, 기업: 스냅샷 시점에 공개된 목록 (증언에 나온 명칭; 사람은 기재하지 "
                    "않음).",
           "none": "이 스냅샷에는 증거 목록이 없습니다 (스냅샷이 증거 목록을 고정하기 전에 만들어졌습니다).",
           "kind": {"products": "제품", "facilities": "시설", "companies": "기업"},
           "columns": ["명칭", "증언 수", "처음 (월)", "마지막 (월)"],
           "empty": "기재된 명칭이 없습니다.",
           "withheld": "기록된 사람 {threshold}명 미만이 말한 {count}개는 공개 목록에 싣지 않았습니다.",
           "sheet": "증거 목록"},
}
AUTHOR = "Non-Refoulement Watch"
TEMPLATES = Path(__file__).resolve().parent / "annex_templates"


class AnnexError(ValueError):
    """A snapshot that cannot make an annex; the message names the part, never a case."""


@dataclasses.dataclass(frozen=True)
class Table:
    """One measure's published table: rows of (sex, label, [count or None = suppressed])."""

    measure: str
    title: str
    sheet: str
    as_of: str
    since: str | None
    when: str  # "As of 1 January 2024" for a measure on the date, else "Period: ..."
    rows: list[tuple[str, str, list[int | None]]]
    total: int | None
    note: str

    @property
    def total_text(self) -> str:
        return SMALL_TOTAL if self.total is None else str(self.total)


@dataclasses.dataclass(frozen=True)
class Chart:
    """A chart of the annex: its title (also its alternative text), caption and drawing."""

    key: str
    title: str
    caption: str
    draw: object  # (fmt) -> bytes

    def image(self, fmt: str) -> bytes:
        return self.draw(fmt)


@dataclasses.dataclass(frozen=True)
class EvidenceKind:
    """One kind of the snapshot's frozen evidence register: rows of (name, testimonies, first
    month, last month), and how many names were withheld in public (with its sentence)."""

    kind: str
    title: str
    items: list[tuple[str, int | None, str, str]]
    withheld: int
    withheld_text: str | None


@dataclasses.dataclass(frozen=True)
class RecommendationQuote:
    """A recommendation the snapshot follows, as the annex quotes it: its reference, China's
    response and date in words, and its text (recommendation_words.quoted: in Korean the unofficial
    translation, then the official English as `original`; or the English with a `note`)."""

    reference: str
    facts: str
    text: str
    text_lang: str
    label: str | None
    original: str | None
    original_label: str
    note: str | None


@dataclasses.dataclass(frozen=True)
class Annex:
    """What every format of the annex says, in one language."""

    lang: str
    title: str
    words: dict
    meta: list[tuple[str, str]]
    method: list[str]
    questions: list[tuple[str, str]]
    tables: list[Table]
    footnote: str
    charts: list[Chart]
    columns: list[str]  # the tables' column headings: the corner, then the age groups
    evidence: list[EvidenceKind] | None = None  # None: the snapshot holds no register
    evidence_words: dict = dataclasses.field(default_factory=lambda: EVIDENCE_WORDS["en"])
    as_of: str = ""  # the snapshot's date, YYYY-MM-DD
    recommendations: list[RecommendationQuote] = dataclasses.field(default_factory=list)
    recommendations_heading: str = ""


def render_annex(snapshot: dict, *, fmt: str, lang: str = "en") -> tuple[bytes, str]:
    """fmt in md | html | csv | xlsx | pdf | docx -> (bytes, MIME type)."""
    if fmt not in FORMATS:
        raise AnnexError(f"format must be one of {', '.join(FORMATS)}")
    if lang not in wording.LANGS:
        raise AnnexError(f"lang must be one of {', '.join(wording.LANGS)}")
    annex = build(snapshot, lang)
    if fmt == "md":
        body = to_markdown(annex).encode("utf-8")
    elif fmt == "html":
        body = to_html(annex).encode("utf-8")
    elif fmt == "csv":
        body = to_csv(annex).encode("utf-8")
    elif fmt == "xlsx":
        body = annex_xlsx.build_xlsx(annex, author=AUTHOR, created=snapshot.get("taken_at"))
    elif fmt == "docx":
        from services.reporting import annex_docx  # python-docx loads only when a draft is made

        body = annex_docx.build_docx(annex, snapshot, author=AUTHOR)
    else:
        body = annex_pdf.build_pdf(annex, author=AUTHOR)
    return body, MIME_TYPES[fmt]


def filename(snapshot: dict, *, fmt: str, lang: str = "en") -> str:
    """A download name without spaces: "upr-annex-CN-4-2024-01-01-en.pdf"."""
    cycle = re.sub(r"[^A-Za-z0-9-]+", "-", str(snapshot.get("cycle") or "upr")).strip("-") or "upr"
    return f"upr-annex-{cycle}-{str(snapshot.get('as_of'))[:10]}-{lang}.{fmt}"


# --- what the annex says --------------------------------------------------------------------------


def build(snapshot: dict, lang: str) -> Annex:
    """The annex's content in one language, from the snapshot's published parts only."""
    w = wording.words(lang)
    try:
        as_of, since = str(snapshot["as_of"])[:10], snapshot.get("since")
        figures = snapshot["figures"]
    except KeyError as exc:
        raise AnnexError(f"the snapshot has no {exc.args[0]}") from None
    since = str(since)[:10] if since else None
    date, period = wording.date_text(as_of, lang), wording.period_text(as_of, since, lang)
    meta = [(w["meta"]["cycle"], str(snapshot.get("cycle") or "")), (w["meta"]["as_of"], date),
            (w["meta"]["period"], period)]
    if snapshot.get("taken_at"):
        meta.append((w["meta"]["frozen"], wording.date_text(snapshot["taken_at"], lang)))
    if snapshot.get("snapshot_id"):
        meta.append((w["meta"]["snapshot"], str(snapshot["snapshot_id"])))
    measures = [m for m in domain.MEASURES if m in figures] + sorted(set(figures) - set(domain.MEASURES))
    tables = [_table(measure, figures[measure], lang) for measure in measures]
    questions = [wording.question_text(q, as_of=as_of, since=since, lang=lang) for q in snapshot.get("questions") or ()]
    return Annex(
        lang=lang, title=str(snapshot.get("title") or "").strip() or w["heading"]["default_title"], words=w,
        meta=meta, method=[line.format(as_of=date, period=period) for line in w["method"]], questions=questions,
        tables=tables, footnote=w["footnote"].format(cell=SUPPRESSED_CELL, small=SMALL_TOTAL),
        charts=_charts(snapshot, lang), columns=[w["heading"]["sex_by_age"], *(wording.age_label(a, lang)
                                                                               for a in AGE_GROUPS)],
        evidence=_evidence(snapshot, lang), as_of=as_of, evidence_words=EVIDENCE_WORDS["ko" if lang == "ko" else "en"],
        recommendations=_recommendations(snapshot, lang), recommendations_heading=rw.words(lang)["recommendations"],
    )


def _recommendations(snapshot: dict, lang: str) -> list[RecommendationQuote]:
    """The recommendations the snapshot keeps, quoted in the annex's language (older snapshots: none)."""
    w, out = rw.words(lang), []
    for rec in snapshot.get("recommendations") or ():
        if not isinstance(rec, dict) or not rec.get("mechanism"):
            continue
        facts = f"{w['issued_on']}: {rec.get('issued_on') or w['no_date']}"
        if rec["mechanism"] == "upr":
            facts = f"{w['response']}: {rw.response_text(rec, lang)} · {facts}"
        q = rw.quoted(rec, lang)
        out.append(RecommendationQuote(reference=rw.reference(rec, lang), facts=facts, text=q["text"],
                                       text_lang=q["lang"], label=q["label"], original=q["original"],
                                       original_label=q["original_label"], note=q["note"]))
    return out


def _evidence(snapshot: dict, lang: str) -> list[EvidenceKind] | None:
    """The snapshot's frozen public register, kind by kind; None when it has none (older ones).
    Only names, counts and months are read: a register holds nothing about a person."""
    register = snapshot.get("evidence")
    if not isinstance(register, dict):
        return None
    w = EVIDENCE_WORDS["ko" if lang == "ko" else "en"]
    out = []
    for kind in EVIDENCE_KINDS:
        items = [(str(i.get("name") or ""), i.get("testimonies"), str(i.get("first_on") or "—"),
                  str(i.get("last_on") or "—")) for i in register.get(kind) or () if isinstance(i, dict)]
        withheld = int((register.get("withheld") or {}).get(kind) or 0)
        out.append(EvidenceKind(kind=kind, title=w["kind"][kind], items=items, withheld=withheld,
                                withheld_text=w["withheld"].format(count=withheld, threshold=THRESHOLD)
                                if withheld else None))
    return out


def _table(measure: str, table: dict, lang: str) -> Table:
    if set(table.get("by") or ()) != {"sex", "age_group"}:
        raise AnnexError(f"the table of {measure} must be by sex and age_group")
    cells = {(c.get("sex"), c.get("age_group")): c for c in table.get("cells") or ()}
    rows = []
    for sex in SEXES:
        counts = []
        for age in AGE_GROUPS:
            if (sex, age) not in cells:
                raise AnnexError(f"the table of {measure} has no cell for {sex}, {age}")
            counts.append(charts.published_count(cells[(sex, age)]))
        rows.append((sex, wording.sex_label(sex, lang), counts))
    as_of, since = str(table.get("as_of"))[:10], table.get("since")
    w = wording.words(lang)
    when = (w["table_on"].format(date=wording.date_text(as_of, lang)) if measure in wording.STOCK_MEASURES
            else w["table_period"].format(period=wording.period_text(as_of, since, lang)))
    total = table.get("total")
    return Table(measure=measure, title=wording.measure_title(measure, lang), sheet=_sheet_name(measure, lang),
                 as_of=as_of, since=str(since)[:10] if since else None, when=when,
                 rows=rows, total=None if total is None else int(total), note=wording.suppression_note(table, lang))


def _sheet_name(measure: str, lang: str) -> str:
    name = wording.words(lang)["sheet"].get(measure, measure)
    return re.sub(r"[\[\]:*?/\\]", "_", name)[:31]


def _charts(snapshot: dict, lang: str) -> list[Chart]:
    w, out = wording.words(lang)["chart"], []
    series = snapshot.get("series")
    if series and series.get("months"):
        months = series["months"]
        out.append(Chart("over_time", w["over_time_title"].format(first=wording.month_text(months[0], lang),
                                                                  last=wording.month_text(months[-1], lang)),
                         w["over_time_caption"], lambda fmt: charts.chart_over_time(series, fmt=fmt, lang=lang)))
    detained = snapshot["figures"].get("detained")
    if detained:
        when = w["on"].format(date=wording.date_text(detained["as_of"], lang))
        measure = wording.measure_title("detained", lang, qualified=False)
        out.append(Chart("by_age", w["by_age_title"].format(measure=measure, when=when),
                         w["by_age_caption"].format(measure=measure, when=when),
                         lambda fmt: charts.chart_by_age_and_sex(detained, fmt=fmt, lang=lang)))
    return out


def cell_text(count: int | None) -> str:
    """A published count, or the mark of a suppressed cell."""
    return SUPPRESSED_CELL if count is None else str(count)


# --- Markdown -------------------------------------------------------------------------------------

_MD_SPECIALS = re.compile(r"([\\`*_\[\]|])")
_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")
_MD_BLOCK_START = re.compile(r"^(?:[#>+-]|\d+(?=[.)]))")


def _md(value) -> str:
    """Text written into Markdown as text: one line, its marks escaped, and what could open an
    HTML tag or entity written as an entity; "<5" and "60+" stay as they are read."""
    text = " ".join(str(value).split())
    text = _MD_HTML.sub(lambda m: "&lt;" if m.group(0) == "<" else "&amp;", text)
    text = _MD_SPECIALS.sub(r"\\\1", text)
    # A value opening a line must not open a heading, a quote or a list: "\#", "\-", "1\."
    return _MD_BLOCK_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0), text)


def to_markdown(annex: Annex) -> str:
    """The annex as Markdown, the charts as SVG images in data URIs."""
    h = annex.words["heading"]
    lines = [f"# {_md(annex.title)}", ""]
    lines += [f"- **{_md(label)}:** {_md(value)}" for label, value in annex.meta] + ["", f"## {_md(h['method'])}", ""]
    lines += [f"- {_md(line)}" for line in annex.method] + [""]
    if annex.questions:
        lines += [f"## {_md(h['questions'])}", ""]
        for question, answer in annex.questions:
            lines += [f"### {_md(question)}", "", _md(answer), ""]
    lines += _markdown_evidence(annex)
    lines += _markdown_recommendations(annex)
    lines += [f"## {_md(h['tables'])}", "", _md(annex.footnote), ""]
    for table in annex.tables:
        lines += [f"### {_md(table.title)}", "", _md(table.when), ""]
        lines += ["| " + " | ".join(_md(c) for c in annex.columns) + " |",
                  "| --- |" + " ---: |" * len(AGE_GROUPS)]
        lines += ["| " + " | ".join([_md(label), *(_md(cell_text(c)) for c in counts)]) + " |"
                  for _, label, counts in table.rows]
        lines += ["", f"**{_md(annex.words['total_line'].format(total=table.total_text))}**", "",
                  f"*{_md(h['note'])}:* {_md(table.note)}", ""]
    if annex.charts:
        lines += [f"## {_md(h['charts'])}", ""]
        for chart in annex.charts:
            data = base64.b64encode(chart.image("svg")).decode("ascii")
            lines += [f"![{_md(chart.title)}](data:image/svg+xml;base64,{data})", "", f"*{_md(chart.caption)}*", ""]
    return "\n".join(lines)


def _markdown_recommendations(annex: Annex) -> list[str]:
    if not annex.recommendations:
        return []
    lines = [f"## {_md(annex.recommendations_heading)}", ""]
    for rec in annex.recommendations:
        lines += [f"### {_md(rec.reference)}", "", _md(rec.facts), ""]
        quote = f"> *{_md(rec.text)}*" + (f" ({_md(rec.label)})" if rec.label else "")
        lines += [quote, ""]
        if rec.original:
            lines += [f"> **{_md(rec.original_label)}:** *{_md(rec.original)}*", ""]
        if rec.note:
            lines += [_md(rec.note), ""]
    return lines


def _markdown_evidence(annex: Annex) -> list[str]:
    e = annex.evidence_words
    lines = [f"## {_md(e['heading'])}", ""]
    if annex.evidence is None:
        return lines + [_md(e["none"]), ""]
    lines += [_md(e["intro"]), ""]
    for kind in annex.evidence:
        lines += [f"### {_md(kind.title)}", ""]
        if kind.items:
            lines += ["| " + " | ".join(_md(c) for c in e["columns"]) + " |", "| --- | ---: | --- | --- |"]
            lines += ["| " + " | ".join(_md(c) for c in (name, cell_text(n), first, last)) + " |"
                      for name, n, first, last in kind.items]
        else:
            lines.append(_md(e["empty"]))
        lines.append("")
        if kind.withheld_text:
            lines += [_md(kind.withheld_text), ""]
    return lines


# --- HTML -----------------------------------------------------------------------------------------

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                          autoescape=True, trim_blocks=True, lstrip_blocks=True)
_SVG_IDS = re.compile(r'(\bid="|url\(#|xlink:href="#)')


def to_html(annex: Annex) -> str:
    """The annex as one HTML page, the charts as inline SVG."""
    svgs = {chart.key: _inline_svg(chart.image("svg"), chart.key, chart.title) for chart in annex.charts}
    return _ENV.get_template("annex.html.j2").render(annex=annex, svgs=svgs, cell_text=cell_text,
                                                     author=AUTHOR)


def _inline_svg(svg: bytes, prefix: str, title: str) -> Markup:
    """matplotlib's SVG as an element of the page: no XML prolog, its ids prefixed (two charts on
    one page must not share an id), and a role and label for screen readers."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    text = _SVG_IDS.sub(lambda m: f"{m.group(1)}{prefix}-", text)
    label = str(Markup.escape(title))
    return Markup(text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1))


# --- CSV ------------------------------------------------------------------------------------------


def to_csv(annex: Annex) -> str:
    """Long format, one row per cell and one per table total: measure, sex, age_group, count (empty
    when suppressed), suppressed (true/false), as_of, since, and the measure's title; then the
    evidence register's rows (CSV_EVIDENCE_COLUMNS filled, see above)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS + CSV_EVIDENCE_COLUMNS)
    for table in annex.tables:
        tail = (table.as_of, table.since or "", table.title)
        for sex, _, counts in table.rows:
            for age, count in zip(AGE_GROUPS, counts):
                writer.writerow(csv_row((table.measure, sex, age, "" if count is None else count,
                                         "true" if count is None else "false", *tail, "", "", "")))
        writer.writerow(csv_row((table.measure, CSV_TOTAL, CSV_TOTAL, "" if table.total is None else table.total,
                                 "true" if table.total is None else "false", *tail, "", "", "")))
    as_of = annex.as_of
    if annex.evidence is None:
        writer.writerow(csv_row(("evidence_register", "", "", "", "false", as_of, "", annex.evidence_words["none"],
                                 "", "", "")))
    for kind in annex.evidence or ():
        title = f"{annex.evidence_words['heading']}: {kind.title}"
        for name, count, first, last in kind.items:
            writer.writerow(csv_row((f"evidence_{kind.kind}", "", "", "" if count is None else count,
                                     "true" if count is None else "false", as_of, "", title, name, first, last)))
        writer.writerow(csv_row((f"evidence_{kind.kind}", CSV_WITHHELD, CSV_WITHHELD, kind.withheld, "false", as_of,
                                 "", title, "", "", "")))
    return out.getvalue()
