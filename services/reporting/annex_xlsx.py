"""The annex as an XLSX workbook (openpyxl): a first sheet with the title, dates and method, one
sheet per measure with its table (published counts as numbers, suppressed cells as the text "–",
never a number), a sheet of the questions and answers, a sheet of the snapshot's evidence register
(or a line saying it has none), a sheet of the recommendations it follows, and a sheet with the two charts as PNG."""

from __future__ import annotations

import datetime as dt
import io

from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from services.reporting.wording import SUPPRESSED_CELL
from shared.exports import xlsx_strings_as_text

CHART_WIDTH_PX = 800  # the PNGs are drawn at 1200 px; shown smaller, sharp when zoomed
ROW_PX = 20  # openpyxl's default row height (15 pt)
TITLE, BOLD, HEAD_FILL = Font(bold=True, size=14), Font(bold=True), PatternFill("solid", fgColor="F2F2F2")
THIN = Side(style="thin", color="BBBBBB")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
RIGHT = Alignment(horizontal="right")


def build_xlsx(annex, *, author: str, created=None) -> bytes:
    """The workbook's bytes."""
    wb = Workbook()
    sheets = annex.words["sheet"]
    _about(wb.active, annex, sheets["about"])
    for table in annex.tables:
        _table(wb.create_sheet(_unique(wb, table.sheet)), table, annex)
    if annex.questions:
        _questions(wb.create_sheet(_unique(wb, sheets["questions"])), annex)
    _evidence(wb.create_sheet(_unique(wb, annex.evidence_words["sheet"])), annex)
    if annex.recommendations:
        _recommendations(wb.create_sheet(_unique(wb, annex.recommendations_heading[:31])), annex)
    if annex.charts:
        _charts(wb.create_sheet(_unique(wb, sheets["charts"])), annex)
    wb.properties.title = annex.title
    wb.properties.creator = author
    wb.properties.language = annex.lang
    if isinstance(created, dt.datetime):  # when the figures were frozen, in UTC as openpyxl writes it
        if created.tzinfo is not None:
            created = created.astimezone(dt.timezone.utc).replace(tzinfo=None)
        wb.properties.created = created
    xlsx_strings_as_text(wb)  # a title beginning with '=' is shown, never run
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _unique(wb: Workbook, name: str) -> str:
    """A sheet name not taken yet (a measure's title could repeat another's once cut to 31)."""
    candidate, n = name, 2
    while candidate in wb.sheetnames:
        suffix = f" ({n})"
        candidate, n = name[:31 - len(suffix)] + suffix, n + 1
    return candidate


def _about(ws, annex, name: str) -> None:
    ws.title = name
    h = annex.words["heading"]
    ws.append([annex.title])
    ws["A1"].font = TITLE
    ws.append([])
    for label, value in annex.meta:
        ws.append([label, value])
        ws.cell(ws.max_row, 1).font = BOLD
    ws.append([])
    ws.append([h["method"]])
    ws.cell(ws.max_row, 1).font = BOLD
    for line in annex.method:
        ws.append(["•", line])
        ws.cell(ws.max_row, 2).alignment = WRAP
    ws.append([])
    ws.append([annex.footnote])
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 110


def _table(ws, table, annex) -> None:
    h = annex.words["heading"]
    ws.append([table.title])
    ws["A1"].font = TITLE
    ws.append([table.when])
    ws.append([])
    ws.append(annex.columns)
    header = ws.max_row
    for col in range(1, len(annex.columns) + 1):
        cell = ws.cell(header, col)
        cell.font, cell.fill, cell.border = BOLD, HEAD_FILL, BOX
    for _, label, counts in table.rows:
        ws.append([label, *(SUPPRESSED_CELL if c is None else c for c in counts)])
        ws.cell(ws.max_row, 1).font = BOLD
        for col in range(1, len(counts) + 2):
            ws.cell(ws.max_row, col).border = BOX
            if col > 1:
                ws.cell(ws.max_row, col).alignment = RIGHT
    ws.append([h["total"], table.total_text if table.total is None else table.total])
    ws.cell(ws.max_row, 1).font = BOLD
    ws.cell(ws.max_row, 2).alignment = RIGHT
    ws.append([])
    ws.append([f"{h['note']}: {table.note}"])
    ws.append([annex.footnote])
    ws.column_dimensions["A"].width = 22
    for col in range(2, len(annex.columns) + 1):
        ws.column_dimensions[get_column_letter(col)].width = 12


def _questions(ws, annex) -> None:
    h = annex.words["heading"]
    ws.append([h["question"], h["answer"]])
    for col in (1, 2):
        ws.cell(1, col).font, ws.cell(1, col).fill = BOLD, HEAD_FILL
    for question, answer in annex.questions:
        ws.append([question, answer])
        for col in (1, 2):
            ws.cell(ws.max_row, col).alignment = WRAP
    ws.column_dimensions["A"].width = 60
    ws.column_dimensions["B"].width = 90


def _evidence(ws, annex) -> None:
    """The snapshot's evidence register: per kind its names with their testimonies (numbers) and
    first and last months, and how many names were withheld; or the line saying there is none."""
    e = annex.evidence_words
    ws.append([e["heading"]])
    ws["A1"].font = TITLE
    ws.append([])
    if annex.evidence is None:
        ws.append([e["none"]])
    else:
        ws.append([e["intro"]])
        for kind in annex.evidence:
            ws.append([])
            ws.append([kind.title])
            ws.cell(ws.max_row, 1).font = BOLD
            if kind.items:
                ws.append(e["columns"])
                for col in range(1, len(e["columns"]) + 1):
                    cell = ws.cell(ws.max_row, col)
                    cell.font, cell.fill, cell.border = BOLD, HEAD_FILL, BOX
                for name, count, first, last in kind.items:
                    ws.append([name, SUPPRESSED_CELL if count is None else count, first, last])
            else:
                ws.append([e["empty"]])
            if kind.withheld_text:
                ws.append([kind.withheld_text])
    ws.column_dimensions["A"].width = 40
    for col in "BCD":
        ws.column_dimensions[col].width = 14


def _recommendations(ws, annex) -> None:
    """The recommendations followed, one under another: reference, response and date, the text in
    the annex's language (in Korean the unofficial translation, then the official English)."""
    ws.append([annex.recommendations_heading])
    ws["A1"].font = TITLE
    for rec in annex.recommendations:
        ws.append([])
        ws.append([rec.reference])
        ws.cell(ws.max_row, 1).font = BOLD
        ws.append([rec.facts])
        ws.append([rec.text + (f" ({rec.label})" if rec.label else "")])
        if rec.original:
            ws.append([f"{rec.original_label}: {rec.original}"])
        if rec.note:
            ws.append([rec.note])
    for row in ws.iter_rows():
        row[0].alignment = WRAP
    ws.column_dimensions["A"].width = 120


def _charts(ws, annex) -> None:
    row = 1
    for chart in annex.charts:
        ws.cell(row, 1, chart.title).font = BOLD
        image = Image(io.BytesIO(chart.image("png")))
        image.height = round(image.height * CHART_WIDTH_PX / image.width)
        image.width = CHART_WIDTH_PX
        ws.add_image(image, f"A{row + 1}")
        row += 2 + -(-image.height // ROW_PX)
        ws.cell(row, 1, chart.caption)
        row += 3
