"""Intake's pure rules and strict schemas."""

import datetime as dt

import pytest
from marshmallow import ValidationError

from services.intake import domain
from services.intake.schemas import ReportIn
from shared.errors import flatten_messages
from shared.events import new_event
from tests.support import SYNTH, synthetic_report


@pytest.mark.parametrize("a, b", [
    ("Kim  Ok-sun", "kim ok-sun"),
    ("  KIM OK-SUN ", "Kim Ok-Sun"),
    ("Ｋｉｍ Ｏｋ－ｓｕｎ", "kim ok-sun"),        # full-width forms fold under NFKC
    ("김 옥선", "김  옥선"),                      # Hangul as entered, spacing normalised
])
def test_names_that_are_the_same_person_normalise_equal(a, b):
    assert domain.normalise_name(a) == domain.normalise_name(b)


def test_hangul_and_romanised_forms_stay_distinct():
    assert domain.normalise_name("김옥선") != domain.normalise_name("Kim Ok-sun")


def test_the_match_key_includes_the_birth_year():
    assert domain.person_match_key("Kim", 1990) != domain.person_match_key("Kim", 1991)
    assert domain.person_match_key("Kim", None).endswith("|?")


def test_identifying_fields_are_split_from_the_rest():
    report = ReportIn().dump(ReportIn().load(synthetic_report()))
    secret, clear = domain.split_identifying(report)
    assert SYNTH not in repr(clear)
    assert secret["person"]["full_name"].startswith(SYNTH) and secret["notes"].startswith(SYNTH)


def test_the_case_reported_payload_is_accepted_by_the_strict_event_schema_and_has_no_identifying_data():
    report = ReportIn().dump(ReportIn().load(synthetic_report()))
    payload = domain.case_reported_payload("r-1", False, report)
    event = new_event("case.reported", producer="intake", case_id="c-1", payload=payload)
    assert SYNTH not in repr(event)


def _errors(body):
    with pytest.raises(ValidationError) as err:
        ReportIn().load(body)
    return flatten_messages(err.value.messages)


def test_required_fields_are_named_with_dotted_paths():
    body = synthetic_report()
    del body["person"]["full_name"], body["consent"]
    body["detention"].pop("province")
    errors = _errors(body)
    assert set(errors) == {"person.full_name", "consent", "detention.province"}


@pytest.mark.parametrize("section, change, field", [
    ("person", {"sex": "other"}, "person.sex"),
    ("person", {"birth_year": 1899}, "person.birth_year"),
    ("person", {"birth_year": dt.date.today().year + 1}, "person.birth_year"),
    ("person", {"birth_year": "1990"}, "person.birth_year"),
    ("person", {"nationality": "XX"}, "person.nationality"),
    ("person", {"nationality": "kp"}, "person.nationality"),
    ("person", {"nickname": "x"}, "person.nickname"),
    ("detention", {"detained_on": (dt.date.today() + dt.timedelta(days=1)).isoformat()}, "detention.detained_on"),
    ("detention", {"detained_on": "18/04/2023"}, "detention.detained_on"),
    ("risk", {"vulnerabilities": ["minor", "tall"]}, "risk.vulnerabilities.1"),
    ("source", {"type": "rumour"}, "source.type"),
    ("consent", {"advocacy": "maybe"}, "consent.advocacy"),
])
def test_wrong_values_and_unknown_fields_are_refused_per_field(section, change, field):
    body = synthetic_report()
    body[section] = {**body[section], **change}
    assert field in _errors(body)


def test_an_unknown_top_level_field_is_refused():
    assert "extra" in _errors({**synthetic_report(), "extra": True})


def test_error_messages_never_echo_the_value():
    body = synthetic_report(person={"sex": f"{SYNTH}-sex", "nationality": f"{SYNTH}"})
    assert SYNTH not in repr(_errors(body))


def test_defaults_nationality_and_risk():
    body = synthetic_report()
    del body["person"]["nationality"], body["risk"]
    loaded = ReportIn().load(body)
    assert loaded["person"]["nationality"] == "KP"
    assert loaded["risk"] == {"deportation_imminent": False, "expected_deportation_on": None,
                              "vulnerabilities": [], "trafficking_victim": False}


def test_the_web_form_and_the_spreadsheet_become_the_same_report_body():
    from werkzeug.datastructures import MultiDict

    from services.intake.importer import row_to_report
    from services.intake.web import form_to_report

    form = MultiDict([("csrf_token", "t"), ("person.full_name", " Synthmark A "), ("person.sex", "female"),
                      ("person.birth_year", "1990"), ("detention.province", "Jilin"), ("risk.vulnerabilities", "ill"),
                      ("risk.vulnerabilities", "minor"), ("risk.deportation_imminent", "on"), ("source.type", "family"),
                      ("source.reliability", "confirmed"), ("consent.advocacy", "none"), ("notes", "")])
    row = {"person.full_name": "Synthmark A", "person.sex": "female", "person.birth_year": "1990",
           "detention.province": "Jilin", "risk.vulnerabilities": "ill, minor", "risk.deportation_imminent": "yes",
           "risk.trafficking_victim": "no", "consent.statistics": "0", "source.type": "family",
           "source.reliability": "confirmed", "consent.advocacy": "none", "notes": ""}
    from_form, from_row = ReportIn().load(form_to_report(form)), ReportIn().load(row_to_report(row))
    assert from_form == from_row
    assert from_form["person"]["birth_year"] == 1990 and from_form["risk"]["deportation_imminent"] is True
    assert from_form["risk"]["vulnerabilities"] == ["ill", "minor"] and from_form["consent"]["statistics"] is False


def test_a_spreadsheet_yes_no_column_with_anything_else_is_refused_by_name():
    from services.intake.importer import row_to_report

    with pytest.raises(ValidationError) as err:
        row_to_report({"consent.statistics": "Synthmark"})
    assert err.value.messages == {"consent.statistics": ["Use yes or no."]}


@pytest.mark.parametrize("a, b, near", [
    ("김옥순", "김옥선", True),                    # one syllable differs
    ("Kim Ok-sun", "Kim Ok Son", True),          # romanisation and spacing vary
    ("Kim Ok-sun", "kimoksun", True),            # the same letters, spaced otherwise
    ("Ok-sun Kim", "Kim Ok-sun", True),          # order of family and given name
    ("Kim Ok-sun", "Pak Chol-ho", False),
    ("김옥순", "리철호", False),
])
def test_similar_names_score_above_the_near_match_threshold_and_others_below(a, b, near):
    score = domain.similarity(domain.name_bigrams(a), domain.name_bigrams(b))
    assert (score >= domain.NEAR_MATCH_THRESHOLD) is near, score


def test_similarity_is_symmetric_and_one_for_the_same_letters():
    a, b = domain.name_bigrams("Ri Yong-ho"), domain.name_bigrams("Ri Yongho")
    assert domain.similarity(a, b) == domain.similarity(b, a) == 1.0
    assert domain.similarity([], a) == 0.0 and domain.name_bigrams("  -- ") == []


def test_hashed_letter_pairs_keep_the_similarity_and_hide_the_letters():
    from shared.crypto import Keyring
    keyring = Keyring({"k1": b"\x01" * 32}, "k1", b"\x02" * 32)
    other = Keyring({"k1": b"\x01" * 32}, "k1", b"\x03" * 32)
    plain_a, plain_b = domain.name_bigrams("김옥순"), domain.name_bigrams("김옥선")
    hashed_a = keyring.blind_tokens(plain_a, domain.NAME_GRAM_PURPOSE)
    hashed_b = keyring.blind_tokens(plain_b, domain.NAME_GRAM_PURPOSE)
    assert domain.similarity(hashed_a, hashed_b) == domain.similarity(plain_a, plain_b)
    assert not set(hashed_a) & set(plain_a)
    assert not set(hashed_a) & set(other.blind_tokens(plain_a, domain.NAME_GRAM_PURPOSE))  # another key, other tokens
    assert not set(hashed_a) & set(keyring.blind_tokens(plain_a, "another purpose"))


@pytest.mark.parametrize("other, expected", [
    ({"person": {"birth_year": 1990}, "detention": {"province": "Yunnan"}}, True),
    ({"person": {"birth_year": 1985}, "detention": {"province": "Jilin"}}, True),
    ({"person": {"birth_year": 1985}, "detention": {"province": "Yunnan"}}, False),
    ({"person": {"birth_year": None}, "detention": {"province": "Yunnan"}}, False),
])
def test_a_near_candidate_shares_the_birth_year_or_the_province(other, expected):
    report = {"person": {"birth_year": 1990}, "detention": {"province": "Jilin"}}
    assert domain.is_near_candidate(report, other) is expected


# --- need to know ---------------------------------------------------------------------------------


def _never_asked() -> bool:
    raise AssertionError("the assignment lookup was not needed")


@pytest.mark.parametrize("roles, author, assigned, needed", [
    (["caseworker"], False, False, True),
    (["caseworker"], False, True, False),
    (["caseworker"], True, False, False),      # the report's author knows what is in it
    (["admin"], False, False, False),          # admins read every case
    (["caseworker", "admin"], False, False, False),
])
def test_who_needs_a_reason_to_read_a_case(roles, author, assigned, needed):
    assert domain.needs_reason({"roles": roles}, author=author, assigned=lambda: assigned) is needed


def test_the_assignment_is_looked_up_only_when_it_decides():
    assert domain.needs_reason({"roles": ["admin"]}, author=False, assigned=_never_asked) is False
    assert domain.needs_reason({"roles": ["caseworker"]}, author=True, assigned=_never_asked) is False


@pytest.mark.parametrize("reason, ok", [(None, False), ("", False), ("ab", False), ("abc", True),
                                        ("x" * 200, True), ("x" * 201, False)])
def test_a_reason_has_3_to_200_characters(reason, ok):
    assert domain.valid_reason(domain.clean_reason(reason)) is ok
    assert domain.clean_reason("  why  ") == "why" and domain.clean_reason("   ") is None


def test_reads_count_per_clock_hour_and_retry_after_reaches_the_next():
    utc = dt.timezone.utc
    at = dt.datetime(2026, 11, 28, 14, 59, 30, 250000, tzinfo=utc)
    assert domain.read_hour(at) == dt.datetime(2026, 11, 28, 14, tzinfo=utc)
    assert domain.seconds_to_next_hour(at) == 30
    assert domain.seconds_to_next_hour(dt.datetime(2026, 11, 28, 15, tzinfo=utc)) == 3600
    assert domain.seconds_to_next_hour(dt.datetime(2026, 11, 28, 15, 59, 59, 999000, tzinfo=utc)) == 1
    seoul = dt.timezone(dt.timedelta(hours=9))
    assert domain.read_hour(dt.datetime(2026, 11, 29, 0, 10, tzinfo=seoul)) == dt.datetime(2026, 11, 28, 15, tzinfo=utc)


@pytest.mark.parametrize("risk", [{"trafficking_victim": True}, {"vulnerabilities": ["ill", "trafficking_victim"]},
                                  {"trafficking_victim": True, "vulnerabilities": ["ill"]}])
def test_trafficking_victim_and_the_vulnerability_of_that_name_say_one_thing(risk):
    loaded = ReportIn().load(synthetic_report(risk=risk))["risk"]
    assert loaded["trafficking_victim"] is True and loaded["vulnerabilities"].count("trafficking_victim") == 1


def test_without_either_trafficking_answer_neither_is_set():
    loaded = ReportIn().load(synthetic_report(risk={"trafficking_victim": False, "vulnerabilities": ["ill"]}))["risk"]
    assert loaded["trafficking_victim"] is False and loaded["vulnerabilities"] == ["ill"]
