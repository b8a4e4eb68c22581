"""The annex as PDF, laid out with reportlab in Debian's NanumGothic (registered once, in
shared/fonts.py, as for the advocacy letters) so that Hangul shows: headings, the dates, the
method, the questions, one table per measure and the charts as PNG images. The same annex gives
the same bytes (reportlab's invariant mode: no creation date, no random document id)."""

from __future__ import annotations

import html
import io

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import (Image, KeepTogether, ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer,
                                Table, TableStyle)

from services.reporting import wording
from shared import fonts

MARGIN = 20 * mm
FRAME_WIDTH = A4[0] - 2 * MARGIN


def build_pdf(annex, *, author: str) -> bytes:
    """The PDF's bytes, with the annex's title, author and language in its metadata."""
    font, bold = fonts.register_reportlab()
    styles = _styles(font, bold)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN,
                            bottomMargin=MARGIN, title=annex.title, author=author, subject=annex.title,
                            creator=author, lang=annex.lang, displayDocTitle=True, initialFontName=font,
                            invariant=True)

    def _footer(canvas, document):
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawCentredString(A4[0] / 2, 10 * mm, f"{annex.title} · {document.page}")
        canvas.restoreState()

    doc.build(_flowables(annex, styles, font, bold), onFirstPage=_footer, onLaterPages=_footer)
    return out.getvalue()


def _text(value) -> str:
    """Plain text as reportlab paragraph markup."""
    return html.escape(str(value), quote=False)


def _styles(font: str, bold: str) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=font, fontSize=10, leading=14.5, spaceAfter=6)
    return {
        "h1": ParagraphStyle("h1", parent=body, fontName=bold, fontSize=15, leading=20, spaceAfter=10),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=12.5, leading=17, spaceBefore=10, spaceAfter=6),
        "h3": ParagraphStyle("h3", parent=body, fontName=bold, fontSize=10.5, leading=14, spaceBefore=6, spaceAfter=3),
        "p": body,
        "small": ParagraphStyle("small", parent=body, fontSize=8.5, leading=12, textColor=colors.HexColor("#333333")),
        "cell": ParagraphStyle("cell", parent=body, fontSize=9, leading=11, spaceAfter=0),
    }


def _flowables(annex, styles: dict, font: str, bold: str) -> list:
    h = annex.words["heading"]
    flow = [Paragraph(_text(annex.title), styles["h1"])]
    meta = Table([[Paragraph(_text(label), styles["cell"]), Paragraph(_text(value), styles["cell"])]
                  for label, value in annex.meta], colWidths=[40 * mm, FRAME_WIDTH - 40 * mm], hAlign="LEFT")
    meta.setStyle(TableStyle([("FONTNAME", (0, 0), (0, -1), bold), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                              ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    flow += [meta, Paragraph(_text(h["method"]), styles["h2"])]
    flow.append(ListFlowable([ListItem(Paragraph(_text(line), styles["p"]), leftIndent=12) for line in annex.method],
                             bulletType="bullet", leftIndent=12, bulletFontName=font, bulletFontSize=8))
    if annex.questions:
        flow.append(Paragraph(_text(h["questions"]), styles["h2"]))
        for question, answer in annex.questions:
            flow += [Paragraph(_text(question), styles["h3"]), Paragraph(_text(answer), styles["p"])]
    flow += _evidence(annex, styles, font, bold)
    flow += _recommendations(annex, styles)
    flow += [Paragraph(_text(h["tables"]), styles["h2"]), Paragraph(_text(annex.footnote), styles["small"])]
    for table in annex.tables:
        flow.append(KeepTogether([
            Paragraph(_text(table.title), styles["h3"]), Paragraph(_text(table.when), styles["small"]),
            _grid(annex, table, font, bold), Spacer(1, 3),
            Paragraph(_text(f"{h['note']}: {table.note}"), styles["small"]),
        ]))
    if annex.charts:
        flow.append(Paragraph(_text(h["charts"]), styles["h2"]))
        for chart in annex.charts:
            png = chart.image("png")
            width, height = ImageReader(io.BytesIO(png)).getSize()
            flow.append(KeepTogether([
                Image(io.BytesIO(png), width=FRAME_WIDTH, height=FRAME_WIDTH * height / width),
                Paragraph(_text(chart.caption), styles["small"]),
            ]))
    return flow


def _evidence(annex, styles: dict, font: str, bold: str) -> list:
    """The snapshot's evidence register, kind by kind, or the line saying it has none."""
    e = annex.evidence_words
    flow = [Paragraph(_text(e["heading"]), styles["h2"])]
    if annex.evidence is None:
        return flow + [Paragraph(_text(e["none"]), styles["p"])]
    flow.append(Paragraph(_text(e["intro"]), styles["p"]))
    for kind in annex.evidence:
        flow.append(Paragraph(_text(kind.title), styles["h3"]))
        if kind.items:
            rows = [list(e["columns"])]
            rows += [[Paragraph(_text(name), styles["cell"]), wording.SUPPRESSED_CELL if n is None else str(n), first,
                      last] for name, n, first, last in kind.items]
            grid = Table(rows, colWidths=[FRAME_WIDTH - 90 * mm, 30 * mm, 30 * mm, 30 * mm], hAlign="LEFT",
                         repeatRows=1)
            grid.setStyle(TableStyle([
                ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("FONTNAME", (0, 0), (-1, 0), bold), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#F2F2F2")),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#BBBBBB")),
            ]))
            flow.append(grid)
        else:
            flow.append(Paragraph(_text(e["empty"]), styles["p"]))
        if kind.withheld_text:
            flow.append(Paragraph(_text(kind.withheld_text), styles["small"]))
    return flow


def _recommendations(annex, styles: dict) -> list:
    """The recommendations followed: reference, response and date, the text in the annex's language
    (in Korean the unofficial translation, then "원문:" and the official English)."""
    if not annex.recommendations:
        return []
    flow = [Paragraph(_text(annex.recommendations_heading), styles["h2"])]
    for rec in annex.recommendations:
        flow += [Paragraph(_text(rec.reference), styles["h3"]), Paragraph(_text(rec.facts), styles["small"]),
                 Paragraph(f"<i>{_text(rec.text)}</i>" + (f" ({_text(rec.label)})" if rec.label else ""), styles["p"])]
        if rec.original:
            flow.append(Paragraph(f"<b>{_text(rec.original_label)}:</b> <i>{_text(rec.original)}</i>", styles["p"]))
        if rec.note:
            flow.append(Paragraph(_text(rec.note), styles["small"]))
    return flow


def _grid(annex, table, font: str, bold: str) -> Table:
    """A measure's table: sex rows by age-group columns, a total row below."""
    rows = [list(annex.columns)]
    rows += [[label, *(wording.SUPPRESSED_CELL if c is None else str(c) for c in counts)]
             for _, label, counts in table.rows]
    rows.append([annex.words["heading"]["total"], table.total_text] + [""] * (len(annex.columns) - 2))
    first = 34 * mm
    grid = Table(rows, colWidths=[first] + [(FRAME_WIDTH - first) / (len(annex.columns) - 1)] *
                 (len(annex.columns) - 1), hAlign="LEFT", repeatRows=1)
    last = len(rows) - 1
    grid.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("FONTNAME", (0, 0), (-1, 0), bold), ("FONTNAME", (0, 0), (0, -1), bold),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#F2F2F2")),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("GRID", (0, 0), (-1, last - 1), 0.5, colors.HexColor("#BBBBBB")),
        ("SPAN", (1, last), (-1, last)), ("BOX", (0, last), (-1, last), 0.5, colors.HexColor("#BBBBBB")),
    ]))
    return grid
