"""A spreadsheet row as a report body: what organisations keep (dates written several ways, sex as
F or 여, empty cells, headers of their own through a column mapping). Pure: no I/O.

Every problem names the sheet's column and the field it feeds, never the value in the cell.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from marshmallow import ValidationError

FIELDS = (
    "person.full_name", "person.sex", "person.birth_year", "person.birth_date", "person.nationality",
    "person.hometown", "person.family_contact", "detention.detained_on", "detention.province", "detention.city",
    "detention.facility", "detention.authority", "risk.deportation_imminent", "risk.expected_deportation_on",
    "risk.vulnerabilities", "risk.trafficking_victim", "source.type", "source.reliability", "source.received_on",
    "consent.advocacy", "consent.statistics", "notes",
)
DATES = {"person.birth_date", "detention.detained_on", "risk.expected_deportation_on", "source.received_on"}
BOOLEANS = {"risk.deportation_imminent", "risk.trafficking_victim", "consent.statistics"}
YES = {"yes", "true", "1", "y", "예", "네"}
NO = {"no", "false", "0", "n", "아니오", "아니요"}
EMPTY = {"", "-", "–", "—"}  # a dash is how many sheets say "not known"
SEXES = {"female": "female", "f": "female", "여": "female", "여성": "female", "여자": "female",
         "male": "male", "m": "male", "남": "male", "남성": "male", "남자": "male",
         "unknown": "unknown", "미상": "unknown"}
DAY_FIRST, MONTH_FIRST = "day-first", "month-first"

_YEAR_FIRST = re.compile(r"(\d{4})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{1,2})\.?")
_KOREAN = re.compile(r"(\d{4})\s*년\s*(\d{1,2})\s*월\s*(\d{1,2})\s*일")
_YEAR_LAST = re.compile(r"(\d{1,2})\s*[-./]\s*(\d{1,2})\s*[-./]\s*(\d{4})")
_ISO_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2})?")  # a date cell read as text


class UnknownOrder(ValueError):
    """A date like 05/01/2023 in a sheet whose day-month order was not stated."""


def is_year_last(text: str) -> bool:
    """Whether a cell holds a date like 05/01/2023, whose reading needs the day-month order."""
    return _YEAR_LAST.fullmatch(text.strip()) is not None


def parse_date(text: str, order: str | None = None) -> dt.date:
    """A date as sheets write it: 2023-01-05, 2023-1-5, 2023.01.05, 2023. 1. 5., 2023년 1월 5일,
    and 05/01/2023 read with `order` (DAY_FIRST or MONTH_FIRST; UnknownOrder without it)."""
    text = text.strip()
    if match := _ISO_DATETIME.fullmatch(text):
        text = match.group(1)
    if match := (_YEAR_FIRST.fullmatch(text) or _KOREAN.fullmatch(text)):
        year, month, day = (int(g) for g in match.groups())
    elif match := _YEAR_LAST.fullmatch(text):
        if order not in (DAY_FIRST, MONTH_FIRST):
            raise UnknownOrder("Give the day-month order of dates like 05/01/2023 (--day-first or --month-first).")
        first, second, year = (int(g) for g in match.groups())
        day, month = (first, second) if order == DAY_FIRST else (second, first)
    else:
        raise ValueError("Not a date: write it as 2023-01-05, 2023.01.05, 2023년 1월 5일 or 05/01/2023.")
    try:
        return dt.date(year, month, day)
    except ValueError:
        reading = {DAY_FIRST: " (read day first)", MONTH_FIRST: " (read month first)"}.get(order or "", "")
        raise ValueError(f"No such date{reading}.") from None


def parse_sex(text: str) -> str:
    """female, male or unknown from the API's words, F/M, 여/남, 여성/남성 (any case)."""
    found = SEXES.get(text.strip().lower())
    if found is None:
        raise ValueError("Use female, male or unknown (or F, M, 여, 남, 여성, 남성).")
    return found


def _birth_year(text: str) -> int | str:
    cleaned = text.removesuffix("년").strip()
    if re.fullmatch(r"\d{4}(\.0+)?", cleaned):  # 1994.0: a number cell written out as text
        return int(cleaned.split(".")[0])
    return text  # the schema says what is wrong with it


@dataclass
class ColumnMap:
    """Which header of the sheet feeds which field of a report (a header that is a field's name
    feeds that field); `ignored` headers are left out on purpose."""

    fields: dict[str, str] = field(default_factory=dict)  # header -> field
    ignored: set[str] = field(default_factory=set)

    @classmethod
    def from_text(cls, text: str, name: str = "mapping") -> "ColumnMap":
        """A mapping file (JSON or YAML): {"header": "person.full_name", "other header": null}."""
        import yaml  # JSON is YAML too

        try:
            data = json.loads(text) if name.lower().endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{name} is not valid JSON or YAML ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{name} must map each header of the sheet to a field (header: field)")
        return cls.from_pairs(data.items(), name)

    @classmethod
    def from_pairs(cls, pairs, name: str = "mapping") -> "ColumnMap":
        """A mapping from (header, field or None) pairs, checked: known fields, each fed once."""
        mapping = cls()
        for header, target in pairs:
            header = str(header).strip()
            if target in (None, "", "-"):
                mapping.ignored.add(header)
            elif target not in FIELDS:
                raise ValueError(f"{name}: column {header!r} is mapped to {target!r}, which is no field of a report "
                                 f"(fields: {', '.join(FIELDS)})")
            else:
                mapping.fields[header] = str(target)
        fed = list(mapping.fields.values())
        twice = sorted({t for t in fed if fed.count(t) > 1})
        if twice:
            raise ValueError(f"{name}: more than one column feeds {', '.join(twice)}")
        return mapping

    def pairs(self) -> list[tuple[str, str | None]]:
        """(header, field), and (header, None) for each header left out."""
        return [*self.fields.items(), *((h, None) for h in sorted(self.ignored))]

    def field_of(self, header: str) -> str | None:
        """The field a header feeds (None: left out)."""
        if header in self.ignored:
            return None
        return self.fields.get(header, header if header in FIELDS else None)

    def plan(self, headers: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
        """(header, field or None) for each header of the sheet, and the problems: a header that
        is neither a field nor mapped, a mapped header the sheet lacks, a field fed twice."""
        problems = []
        plan = [(h, self.field_of(h)) for h in headers if h]
        for header, target in plan:
            if target is None and header not in self.ignored:
                problems.append(f"column {header!r} is not a field of a report: map it to one in the column "
                                "mapping (or to null to leave it out)")
        for header in self.fields:
            if header not in headers:
                problems.append(f"the mapping names a column {header!r} that the sheet does not have")
        fed = [t for _, t in plan if t]
        for target in sorted({t for t in fed if fed.count(t) > 1}):
            problems.append(f"more than one column feeds {target}")
        return plan, problems

    def header_of(self, path: str, headers) -> str | None:
        """The sheet's header behind an error's field path (person.sex, risk.vulnerabilities.1)."""
        for header in headers:
            target = self.field_of(header)
            if target and (path == target or path.startswith(target + ".")):
                return header
        return None

    def describe(self, path: str, headers) -> str:
        """An error's field path as the sheet names it: '성별 (person.sex)', the field itself when
        that is the header, or 'person.full_name (no column)'."""
        header = self.header_of(path, headers)
        if header is None:
            return f"{path} (no column)" if path in FIELDS else path
        return path if self.field_of(header) == header else f"{header} ({path})"


IDENTITY = ColumnMap()


def year_last_columns(rows: list[dict], columns: ColumnMap = IDENTITY) -> dict[str, int]:
    """Date columns holding dates like 05/01/2023, with how many: they need a stated order."""
    found: dict[str, int] = {}
    for row in rows:
        for header, text in row.items():
            if columns.field_of(header) in DATES and is_year_last(text):
                found[header] = found.get(header, 0) + 1
    return found


def row_to_report(row: dict, columns: ColumnMap = IDENTITY, order: str | None = None) -> dict:
    """A report body from a row {header: text} (types converted, empty cells left out); a
    ValidationError keyed by field path for a cell that cannot be read."""
    body: dict = {}
    problems: dict[str, list[str]] = {}
    for header, text in row.items():
        column = columns.field_of(header)
        if column is None:
            continue
        text = text.strip()
        if text in EMPTY:
            continue  # missing: the schema's default, or its "Missing data" for a required field
        try:
            value = _value(column, text, order)
        except ValueError as exc:
            problems[column] = [str(exc)]
            continue
        section, dot, name = column.partition(".")
        if dot:
            body.setdefault(section, {})[name] = value
        else:
            body[section] = value
    if problems:
        raise ValidationError(problems)
    return body


def _value(column: str, text: str, order: str | None):
    if column in BOOLEANS:
        if text.lower() not in YES | NO:
            raise ValueError("Use yes or no.")
        return text.lower() in YES
    if column in DATES:
        return parse_date(text, order).isoformat()
    if column == "person.sex":
        return parse_sex(text)
    if column == "risk.vulnerabilities":
        return [v.strip() for v in re.split(r"[,;、]", text) if v.strip()]
    if column == "person.birth_year":
        return _birth_year(text)
    return text
