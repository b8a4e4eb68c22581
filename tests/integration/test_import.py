"""Importing an organisation's spreadsheet: 1,000 synthetic rows, 20 of them bad, into the real
database and broker; a dry run first, then the import; no bad row is half imported."""

from __future__ import annotations

import datetime as dt

import pytest
from openpyxl import Workbook

from services.intake.importer import main
from tests.support import SYNTH, synthetic_report

COLUMNS = ["person.full_name", "person.sex", "person.birth_year", "person.nationality", "person.hometown",
           "detention.detained_on", "detention.province", "risk.deportation_imminent", "risk.vulnerabilities",
           "source.type", "source.reliability", "consent.advocacy", "consent.statistics", "notes"]
FUTURE = (dt.date.today() + dt.timedelta(days=30)).isoformat()
BAD = [  # (column, value, why it is refused)
    ("person.full_name", "", "person.full_name"),
    ("person.sex", "x", "person.sex"),
    ("person.birth_year", "1800", "person.birth_year"),
    ("detention.detained_on", FUTURE, "detention.detained_on"),
    ("risk.vulnerabilities", "minor, tall", "risk.vulnerabilities.1"),
    ("risk.deportation_imminent", "maybe", "risk.deportation_imminent"),
    ("person.nationality", "XX", "person.nationality"),
    ("consent.advocacy", "", "consent.advocacy"),
    ("detention.province", "", "detention.province"),
    ("source.reliability", "rumour", "source.reliability"),
]


def _row(body: dict) -> list:
    p, d, r, s, c = body["person"], body["detention"], body["risk"], body["source"], body["consent"]
    return [p["full_name"], p["sex"], p["birth_year"], p["nationality"], p["hometown"],
            dt.date.fromisoformat(d["detained_on"]), d["province"], "yes" if r["deportation_imminent"] else "no",
            ", ".join(r["vulnerabilities"]), s["type"], s["reliability"], c["advocacy"],
            "yes" if c["statistics"] else "no", body["notes"]]


@pytest.fixture
def spreadsheet(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(COLUMNS)
    bad_rows = {}
    for i in range(1000):
        row = _row(synthetic_report())
        if i % 50 == 7:  # 20 bad rows, spread through the file
            column, value, field = BAD[len(bad_rows) % len(BAD)]
            row[COLUMNS.index(column)] = value
            bad_rows[i + 2] = field  # spreadsheet row number (row 1 is the header)
        sheet.append(row)
    path = tmp_path / "cases.xlsx"
    book.save(path)
    return path, bad_rows


@pytest.fixture
def same_databases(settings, monkeypatch):
    """The command reads its settings from the environment: point it at this session's databases."""
    monkeypatch.setenv("NRW_DB_PREFIX", settings.db_prefix)


def test_a_dry_run_then_the_import_of_1000_rows_with_20_bad(spreadsheet, users, settings, mongo, capsys,
                                                            same_databases):
    path, bad_rows = spreadsheet
    reports = mongo[settings.database_name("intake")]["reports"]
    before = reports.count_documents({})

    assert main([str(path), "--as", users["caseworker"], "--dry-run"]) == 1
    dry = capsys.readouterr().out
    assert reports.count_documents({}) == before  # nothing saved
    assert "980 would create" in dry and "20 rejected" in dry and "nothing saved" in dry
    for number, field in bad_rows.items():
        assert f"row {number}: rejected: {field}" in dry

    assert main([str(path), "--as", users["caseworker"], "--report", str(path.with_suffix(".csv"))]) == 1
    out = capsys.readouterr().out
    assert "980 created" in out and "20 rejected" in out
    assert reports.count_documents({}) == before + 980
    rejected = [line for line in out.splitlines() if ": rejected: " in line]
    assert sorted(int(line.split()[1].rstrip(":")) for line in rejected) == sorted(bad_rows)
    assert SYNTH not in out  # reasons name columns, never what was in them
    outcome = path.with_suffix(".csv").read_text().splitlines()
    assert len(outcome) == 1001 and outcome[0] == "row,action,detail"


def test_the_importer_refuses_an_unknown_user(spreadsheet, same_databases):
    path, _ = spreadsheet
    with pytest.raises(SystemExit):
        main([str(path), "--as", "nobody-at-all", "--dry-run"])


def test_the_importer_refuses_too_many_rows_or_too_large_a_file_and_imports_nothing(spreadsheet, same_databases,
                                                                                     users, settings, mongo, capsys):
    path, _ = spreadsheet
    reports = mongo[settings.database_name("intake")]["reports"]
    before = reports.count_documents({})
    for limit in (["--max-rows", "100"], ["--max-bytes", "1000"]):
        with pytest.raises(SystemExit) as stop:
            main([str(path), "--as", users["caseworker"], *limit])
        assert stop.value.code == 2
        assert "nothing imported" in capsys.readouterr().err
    assert reports.count_documents({}) == before



KOREAN_MAPPING = """# the sheet's headers -> the report's fields
성명: person.full_name
성별: person.sex
출생연도: person.birth_year
국적: person.nationality
체포일: detention.detained_on
지역: detention.province
송환 임박: risk.deportation_imminent
정보원: source.type
신뢰도: source.reliability
접수일: source.received_on
옹호 동의: consent.advocacy
통계 동의: consent.statistics
담당자 메모: null
"""
KOREAN_HEADERS = ["성명", "성별", "출생연도", "국적", "체포일", "지역", "송환 임박", "정보원", "신뢰도", "접수일",
                  "옹호 동의", "통계 동의", "담당자 메모"]
KOREAN_BAD = [  # (header, value, what the refusal names)
    ("성별", "X", "성별 (person.sex)"),
    ("체포일", "2023년 2월 30일", "체포일 (detention.detained_on)"),
    ("접수일", "내일", "접수일 (source.received_on)"),
    ("출생연도", "1800", "출생연도 (person.birth_year)"),
    ("지역", "", "지역 (detention.province)"),
    ("송환 임박", "아마", "송환 임박 (risk.deportation_imminent)"),
]


@pytest.fixture
def korean_sheet(tmp_path):
    """A sheet as a Korean organisation keeps it: its own headers, dates written four ways, sex as
    여/남/F/M/여성/남성, empty cells; every 10th row has one bad cell."""
    dates = ["2023.01.05", "2023-1-5", "2023년 1월 5일", "05/01/2023", dt.date(2023, 1, 5)]
    sexes = ["여", "남", "F", "M", "여성", "남성", "female", "unknown"]
    book = Workbook()
    sheet = book.active
    sheet.append(KOREAN_HEADERS)
    bad_rows = {}
    for i in range(60):
        body = synthetic_report()
        row = [body["person"]["full_name"], sexes[i % len(sexes)], "" if i % 3 else body["person"]["birth_year"],
               "KP" if i % 4 else None, dates[i % len(dates)], body["detention"]["province"],
               "예" if i % 5 == 0 else ("" if i % 2 else "아니오"), "family", "probable",
               None if i % 2 else dates[(i + 1) % len(dates)], "anonymous", "" if i % 7 else "예",
               f"{SYNTH} memo {i}"]
        if i % 10 == 9:
            header, value, named = KOREAN_BAD[len(bad_rows) % len(KOREAN_BAD)]
            row[KOREAN_HEADERS.index(header)] = value
            bad_rows[i + 2] = named
        sheet.append(row)
    path = tmp_path / "사례.xlsx"
    book.save(path)
    mapping = tmp_path / "columns.yaml"
    mapping.write_text(KOREAN_MAPPING, encoding="utf-8")
    return path, mapping, bad_rows


def test_a_korean_sheet_through_a_column_mapping_files_every_valid_row(korean_sheet, users, settings, mongo, capsys,
                                                                     same_databases):
    path, mapping, bad_rows = korean_sheet
    reports = mongo[settings.database_name("intake")]["reports"]
    before = reports.count_documents({})
    common = [str(path), "--as", users["caseworker"], "--columns", str(mapping)]

    with pytest.raises(SystemExit) as stop:  # 05/01/2023 is 5 January or 1 May: the sheet must say which
        main([*common, "--dry-run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--day-first or --month-first" in err and "'체포일' (12 rows)" in err and "nothing imported" in err

    assert main([*common, "--day-first", "--dry-run"]) == 1
    dry = capsys.readouterr().out
    assert "column '성별' -> person.sex" in dry and "column '체포일' -> detention.detained_on" in dry
    assert "column '담당자 메모' -> left out" in dry
    assert f"{60 - len(bad_rows)} would create" in dry and f"{len(bad_rows)} rejected" in dry
    assert reports.count_documents({}) == before

    assert main([*common, "--day-first"]) == 1
    out = capsys.readouterr().out
    assert f"{60 - len(bad_rows)} created" in out and reports.count_documents({}) == before + 60 - len(bad_rows)
    rejected = {int(line.split()[1].rstrip(":")): line for line in out.splitlines() if ": rejected: " in line}
    assert sorted(rejected) == sorted(bad_rows)
    for number, named in bad_rows.items():
        assert f"row {number}: rejected: {named}: " in rejected[number]
    assert SYNTH not in dry + out and "아마" not in out and "내일" not in out  # never a cell's value
