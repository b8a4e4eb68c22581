"""Exports never execute: a string a person typed (a snapshot's title, a cell of an import) is
written as text in every spreadsheet and CSV, so that a leading `=`, `+`, `-`, `@`, tab or
carriage return cannot start a formula when a partner opens the file (OWASP's CSV injection)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value):
    """A CSV cell that a spreadsheet reads as text: a string that could start a formula gets a
    leading apostrophe (the convention spreadsheets hide); numbers and other values as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values) -> list:
    """A row of csv_text cells."""
    return [csv_text(v) for v in values]


def xlsx_strings_as_text(workbook) -> None:
    """Every string cell of every sheet stored as a string (openpyxl makes a formula of any
    string beginning with '='): what was typed is shown, never run."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
