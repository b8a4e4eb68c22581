"""Reading what organisations keep in their spreadsheets: dates written several ways, sex as F or
여, empty cells, headers of their own through a column mapping (services/intake/sheet.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from marshmallow import ValidationError

from services.intake.schemas import ReportIn
from services.intake.sheet import (DAY_FIRST, MONTH_FIRST, ColumnMap, UnknownOrder, parse_date, parse_sex,
                                   row_to_report, year_last_columns)
from tests.support import SYNTH

JAN_5 = dt.date(2023, 1, 5)


@pytest.mark.parametrize("text", ["2023-01-05", "2023-1-5", "2023.01.05", "2023.1.5", "2023. 1. 5.", "2023/01/05",
                                  "2023년 1월 5일", "2023년1월5일", " 2023-01-05 ", "2023-01-05 00:00:00"])
def test_dates_as_sheets_write_them(text):
    assert parse_date(text) == JAN_5


def test_a_day_month_date_is_read_in_the_stated_order_and_refused_without_one():
    assert parse_date("05/01/2023", DAY_FIRST) == JAN_5
    assert parse_date("01/05/2023", MONTH_FIRST) == JAN_5
    assert parse_date("5.1.2023", DAY_FIRST) == JAN_5
    with pytest.raises(UnknownOrder, match="--day-first or --month-first"):
        parse_date("05/01/2023")
    with pytest.raises(ValueError, match="No such date .read month first"):
        parse_date("25/01/2023", MONTH_FIRST)


@pytest.mark.parametrize("text", ["2023-02-30", "2023년 13월 1일", "yesterday", "5 Jan 2023", "23-1-5", "20230105"])
def test_what_is_not_a_date_is_refused_without_echoing_it(text):
    with pytest.raises(ValueError) as err:
        parse_date(text, DAY_FIRST)
    assert text not in str(err.value)


@pytest.mark.parametrize("text, sex", [("F", "female"), ("M", "male"), ("여", "female"), ("남", "male"),
                                       ("여성", "female"), ("남성", "male"), ("female", "female"), ("Male", "male"),
                                       ("f", "female"), ("unknown", "unknown"), ("미상", "unknown")])
def test_sex_spellings(text, sex):
    assert parse_sex(text) == sex


def test_another_sex_spelling_is_refused_by_its_column():
    with pytest.raises(ValidationError) as err:
        row_to_report({"person.sex": "X"})
    assert err.value.messages == {"person.sex": ["Use female, male or unknown (or F, M, 여, 남, 여성, 남성)."]}


def test_empty_cells_are_missing_not_wrong():
    row = {"person.full_name": f"{SYNTH} A", "person.sex": "여", "person.birth_year": "", "person.birth_date": " ",
           "detention.detained_on": "-", "detention.province": "Jilin", "detention.city": "",
           "risk.deportation_imminent": "", "risk.vulnerabilities": "", "source.type": "family",
           "source.reliability": "confirmed", "source.received_on": "", "consent.advocacy": "none",
           "consent.statistics": "", "notes": ""}
    report = ReportIn().load(row_to_report(row))
    assert report["person"]["birth_year"] is None and report["detention"]["detained_on"] is None
    assert report["risk"]["deportation_imminent"] is False and report["risk"]["vulnerabilities"] == []
    assert report["notes"] is None and "city" not in row_to_report(row)["detention"]


def test_a_birth_year_written_with_its_unit_or_as_a_number_cell():
    assert row_to_report({"person.birth_year": "1994년"})["person"]["birth_year"] == 1994
    assert row_to_report({"person.birth_year": "1994.0"})["person"]["birth_year"] == 1994


def test_korean_yes_and_no():
    body = row_to_report({"risk.deportation_imminent": "예", "consent.statistics": "아니오"})
    assert body["risk"]["deportation_imminent"] is True and body["consent"]["statistics"] is False


MAPPING = """
성명: person.full_name
성별: person.sex
출생연도: person.birth_year
체포일: detention.detained_on
지역: detention.province
취약성: risk.vulnerabilities
정보원: source.type
신뢰도: source.reliability
옹호 동의: consent.advocacy
통계 동의: consent.statistics
담당자 메모: null
"""


def test_a_column_mapping_feeds_fields_from_the_sheets_own_headers():
    columns = ColumnMap.from_text(MAPPING, "columns.yaml")
    row = {"성명": f"{SYNTH} B", "성별": "남성", "출생연도": "1980", "체포일": "2023년 1월 5일", "지역": "Jilin",
           "취약성": "ill; minor", "정보원": "family", "신뢰도": "probable", "옹호 동의": "anonymous",
           "통계 동의": "예", "담당자 메모": f"{SYNTH} private"}
    report = ReportIn().load(row_to_report(row, columns))
    assert report["person"] == {**report["person"], "full_name": f"{SYNTH} B", "sex": "male", "birth_year": 1980}
    assert report["detention"]["detained_on"] == JAN_5 and report["risk"]["vulnerabilities"] == ["ill", "minor"]
    assert report["consent"] == {"advocacy": "anonymous", "statistics": True} and report["notes"] is None
    headers = list(row)
    assert columns.describe("person.sex", headers) == "성별 (person.sex)"
    assert columns.describe("risk.vulnerabilities.1", headers) == "취약성 (risk.vulnerabilities.1)"
    assert columns.describe("detention.city", headers) == "detention.city (no column)"
    assert columns.describe("person.sex", ["person.sex"]) == "person.sex"  # a field's own name as header


def test_the_mapping_plan_names_unknown_missing_and_doubled_columns():
    columns = ColumnMap.from_pairs([("성명", "person.full_name"), ("메모", None)])
    plan, problems = columns.plan(["성명", "메모", "person.sex", "기타"])
    assert plan == [("성명", "person.full_name"), ("메모", None), ("person.sex", "person.sex"), ("기타", None)]
    assert problems == ["column '기타' is not a field of a report: map it to one in the column mapping "
                        "(or to null to leave it out)"]
    _, problems = columns.plan(["성명", "person.full_name"])
    assert problems == ["more than one column feeds person.full_name"]
    _, problems = ColumnMap.from_pairs([("이름", "person.full_name")]).plan(["성명"])
    assert problems[-1] == "the mapping names a column '이름' that the sheet does not have"


@pytest.mark.parametrize("text, why", [("성명: person.name\n", "no field of a report"),
                                       ("a: person.sex\nb: person.sex\n", "more than one column feeds person.sex"),
                                       ("- person.sex\n", "must map each header"), ("a: [\n", "not valid JSON or YAML")])
def test_a_bad_mapping_file_is_refused_with_why(text, why):
    with pytest.raises(ValueError, match=why):
        ColumnMap.from_text(text, "columns.yaml")


def test_json_mapping_files():
    assert ColumnMap.from_text('{"Name": "person.full_name", "Memo": null}', "c.json").pairs() == [
        ("Name", "person.full_name"), ("Memo", None)]


def test_date_columns_needing_an_order_are_found_by_header():
    columns = ColumnMap.from_pairs([("체포일", "detention.detained_on"), ("접수일", "source.received_on")])
    rows = [{"체포일": "05/01/2023", "접수일": "2023-01-06", "지역": "05/01/2023"},
            {"체포일": "25/01/2023", "접수일": "06.01.2023"}]
    assert year_last_columns(rows, columns) == {"체포일": 2, "접수일": 1}
    with pytest.raises(ValidationError) as err:
        row_to_report(rows[0], columns)
    assert err.value.messages == {"detention.detained_on": [
        "Give the day-month order of dates like 05/01/2023 (--day-first or --month-first)."]}
    assert row_to_report(rows[1], columns, DAY_FIRST)["source"]["received_on"] == "2023-01-06"
