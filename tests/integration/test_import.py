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
    ("person.sex", "f", "person.sex"),
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

