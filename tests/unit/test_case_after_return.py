"""After return and asylum on a case (issue 11 points 1-2), the pure rules: validation across
fields, de-duplication, deterministic record ids, ordering, and only a returned case has news
after return. The API's schemas load the commands here as the route does."""

from __future__ import annotations

import datetime as dt

import pytest
from marshmallow import ValidationError

from services.case import domain
from services.case.schemas import AfterReturnIn, AsylumIn

NOW = dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)
TODAY = NOW.date()
REPORTED = {"report_id": "r-1", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
            "detained_on": "2023-04-18", "deportation_imminent": False, "vulnerabilities": [],
            "consent_advocacy": "anonymous", "consent_statistics": True, "received_on": "2023-04-20"}
NEWS = {"learned_on": "2024-02-01", "effective_on": "2023-11-20", "source_type": "fellow_escapee",
        "source_reliability": "probable", "custody": "mss", "outcome": "kyohwaso", "sentence_years": 5,
        "forced_labour": "yes", "work": ["wigs_eyelashes"], "products": ["false eyelashes"]}
STEP = {"procedure": "art46", "step": "applied", "effective_on": "2024-01-05", "source_type": "family",
        "source_reliability": "confirmed"}


def _returned_case() -> dict:
    case = domain.open_case("c-1", REPORTED, NOW)
    case, _ = domain.transition(case, "repatriated", dt.date(2023, 11, 1), None, NOW)
    return case


def _record(**change) -> dict:
    return domain.after_return_record("c-1", AfterReturnIn().load({**NEWS, **change}), TODAY)


def _errors(**change) -> dict:
    with pytest.raises(domain.InvalidRecord) as caught:
        _record(**change)
    return caught.value.fields


def test_a_record_has_the_api_fields_and_what_was_left_out_is_unknown():
    record = domain.after_return_record("c-1", AfterReturnIn().load(
        {"learned_on": "2024-02-01", "source_type": "family", "source_reliability": "unverified"}), TODAY)
    assert record == {"record_id": record["record_id"], "learned_on": "2024-02-01", "effective_on": None,
                      "source_type": "family", "source_reliability": "unverified", "custody": "unknown",
                      "outcome": "unknown", "sentence_years": None, "forced_labour": "unknown", "work": [],
                      "products": [], "facilities": [], "companies": [], "ill_treatment": []}


def test_the_same_record_has_the_same_id_and_another_record_or_case_another():
    assert _record()["record_id"] == _record()["record_id"]
    assert _record()["record_id"] != _record(custody="mps")["record_id"]
    other_case = domain.after_return_record("c-2", AfterReturnIn().load(NEWS), TODAY)
    assert other_case["record_id"] != _record()["record_id"]


def test_lists_are_de_duplicated_names_by_case_and_spacing():
    record = _record(work=["mining", "wigs_eyelashes", "mining"], ill_treatment=["other", "torture", "torture"],
                     products=["Wigs ", "wigs", "false  eyelashes", "False eyelashes"], companies=["A Co.", "a co."])
    assert record["work"] == ["mining", "wigs_eyelashes"]
    assert record["ill_treatment"] == ["torture", "other"]
    assert record["products"] == ["false eyelashes", "Wigs"]  # alphabetical, the first spelling kept
    assert record["companies"] == ["A Co."]
    assert record["record_id"] == _record(work=["wigs_eyelashes", "mining"], ill_treatment=["torture", "other"],
                                          products=["FALSE EYELASHES", "wigs"], companies=["a co."])["record_id"]
    assert record["record_id"] != _record(work=["wigs_eyelashes", "mining"], ill_treatment=["torture", "other"],
                                          products=["false eyelashes", "wig"], companies=["A Co."])["record_id"]


@pytest.mark.parametrize("change, field", [
    ({"learned_on": "2024-03-02"}, "learned_on"),  # tomorrow
    ({"effective_on": "2024-03-02"}, "effective_on"),
    ({"effective_on": "2024-02-02"}, "effective_on"),  # after it was learned
    ({"outcome": "released", "sentence_years": 1}, "sentence_years"),
    ({"outcome": "kwanliso", "sentence_years": 0}, "sentence_years"),
    ({"forced_labour": "no"}, "work"),
])
def test_contradictions_are_refused_naming_the_field(change, field):
    assert field in _errors(**change)


def test_a_sentence_goes_with_a_labour_training_camp_or_a_kyohwaso_and_may_be_unknown():
    assert _record(outcome="labour_training_camp", sentence_years=0.5)["sentence_years"] == 0.5
    assert _record(outcome="kwanliso", sentence_years=None)["sentence_years"] is None
    assert _record(effective_on=None)["effective_on"] is None
    assert _record(effective_on="2024-02-01")["effective_on"] == "2024-02-01"  # the same day it was learned


@pytest.mark.parametrize("change, field", [
    ({"sentence_years": 5.3}, "sentence_years"), ({"sentence_years": 50.5}, "sentence_years"),
    ({"sentence_years": -1}, "sentence_years"), ({"work": ["sewing"]}, "work"),
    ({"outcome": "prison"}, "outcome"), ({"learned_on": "01/02/2024"}, "learned_on"),
    ({"products": ["call 010-5555-0199"]}, "products"), ({"facilities": ["boss@example.org"]}, "facilities"),
    ({"companies": ["   "]}, "companies"), ({"companies": ["x" * 121]}, "companies"),
    ({"companies": ["c"] * 21}, "companies"), ({"notes": "anything"}, "notes"),
])
def test_the_api_schema_refuses_values_one_by_one(change, field):
    with pytest.raises(ValidationError) as caught:
        AfterReturnIn().load({**NEWS, **change})
    assert field in caught.value.messages


def test_a_contact_refused_says_why_without_repeating_it():
    with pytest.raises(ValidationError) as caught:
        AfterReturnIn().load({**NEWS, "products": ["wigs", "+86 138 0013 8000"]})
    message = str(caught.value.messages)
    assert "looks like a phone number" in message and "138" not in message


def test_only_a_case_that_has_been_repatriated_has_news_after_return():
    detained = domain.open_case("c-1", REPORTED, NOW)
    with pytest.raises(domain.NotReturned):
        domain.add_after_return(detained, _record(), NOW)
    moved_on, _ = domain.transition(_returned_case(), "whereabouts_unknown", dt.date(2024, 1, 2), None, NOW)
    assert domain.add_after_return(moved_on, _record(), NOW)["after_return"][0]["record_id"] == _record()["record_id"]


def test_records_are_kept_once_ordered_by_effective_then_learned_date():
    later = _record(effective_on="2024-01-10", learned_on="2024-01-20", outcome="kwanliso", sentence_years=None)
    undated = _record(effective_on=None, learned_on="2023-12-01", outcome="unknown", sentence_years=None)
    same_day = _record(effective_on="2023-11-20", learned_on="2023-12-15", custody="mps")
    case = _returned_case()
    for record in (later, _record(), undated, same_day):
        case = domain.add_after_return(case, record, NOW)
    again = domain.add_after_return(case, _record(), NOW)
    assert again is case  # the same command again changes nothing
    assert [r["record_id"] for r in case["after_return"]] == \
        [same_day["record_id"], _record()["record_id"], undated["record_id"], later["record_id"]]
    assert domain.record_payload(case["after_return"][0]) == same_day


def test_asylum_steps_belong_to_their_procedure_and_are_kept_once_in_date_order():
    def step(**change):
        return domain.asylum_record("c-1", AsylumIn().load({**STEP, **change}), TODAY)

    with pytest.raises(domain.InvalidRecord) as caught:
        step(step="recognised")
    assert "step" in caught.value.fields
    with pytest.raises(domain.InvalidRecord) as caught:
        step(effective_on="2024-03-02")
    assert "effective_on" in caught.value.fields
    case = domain.open_case("c-1", REPORTED, NOW)  # any case, returned or not
    tic = step(step="tic_issued", effective_on="2024-02-01")
    rsd = step(procedure="unhcr_rsd", step="recognised", effective_on="2023-12-01")
    for record in (tic, step(), rsd, step()):
        case = domain.add_asylum(case, record, NOW)
    assert [(r["procedure"], r["step"]) for r in case["asylum"]] == \
        [("unhcr_rsd", "recognised"), ("art46", "applied"), ("art46", "tic_issued")]
    assert step()["record_id"] == step()["record_id"] != tic["record_id"]
