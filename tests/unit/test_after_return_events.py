"""The contract of case.after_return_recorded and case.asylum_recorded (issue 11 points 1-2): the
API's fields exactly, fixed choices, names of things only, strict for producers and tolerant for
consumers; their audit entries carry fixed words only."""

from __future__ import annotations

import datetime as dt

import pytest

from shared import audit_events
from shared.events import EventError, decode, encode, looks_like_contact, new_event, validate_event

NOW = dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)
AFTER_RETURN = {"record_id": "r-1", "learned_on": "2024-02-01", "effective_on": "2023-11-20",
                "source_type": "fellow_escapee", "source_reliability": "probable", "custody": "mss",
                "outcome": "kyohwaso", "sentence_years": 5.5, "forced_labour": "yes",
                "work": ["wigs_eyelashes", "mining"], "products": ["false eyelashes"],
                "facilities": ["Kyohwaso No. 12"], "companies": ["Example Hair Products Co."],
                "ill_treatment": ["torture"]}
ASYLUM = {"record_id": "a-1", "procedure": "art46", "step": "tic_issued", "effective_on": "2024-01-05",
          "source_type": "family", "source_reliability": "confirmed"}


def _event(event_type: str, payload: dict) -> dict:
    return new_event(event_type, producer="case", case_id="c-1", actor="u-1", payload=payload, now=NOW)


def test_an_after_return_record_travels_with_the_api_fields_exactly():
    event = _event("case.after_return_recorded", AFTER_RETURN)
    assert event["payload"] == AFTER_RETURN
    loaded = validate_event(decode(encode(event)))
    assert loaded["payload"]["effective_on"] == dt.date(2023, 11, 20)
    assert loaded["payload"]["sentence_years"] == 5.5


def test_an_asylum_record_travels_with_the_api_fields_exactly():
    assert _event("case.asylum_recorded", ASYLUM)["payload"] == ASYLUM


@pytest.mark.parametrize("change, where", [
    ({"full_name": "Synthmark Kim"}, "full_name"),  # a producer cannot add a field such as a name
    ({"notes": "met her brother"}, "notes"),
    ({"outcome": "prison"}, "outcome"),
    ({"custody": "police"}, "custody"),
    ({"work": ["sewing"]}, "work"),
    ({"ill_treatment": ["beaten"]}, "ill_treatment"),
    ({"sentence_years": 5.3}, "sentence_years"),
    ({"sentence_years": 51}, "sentence_years"),
    ({"products": ["call +86 138 0013 8000"]}, "products"),
    ({"companies": ["sales@example.org"]}, "companies"),
    ({"facilities": ["x" * 121]}, "facilities"),
    ({"learned_on": None}, "learned_on"),
])
def test_a_producer_cannot_send_an_after_return_record_outside_the_contract(change, where):
    with pytest.raises(EventError, match=where):
        _event("case.after_return_recorded", {**AFTER_RETURN, **change})


@pytest.mark.parametrize("change, where", [
    ({"step": "recognised"}, "step"),  # a step of another procedure
    ({"procedure": "unhcr"}, "procedure"),
    ({"effective_on": None}, "effective_on"),
    ({"reason": "typed"}, "reason"),
])
def test_a_producer_cannot_send_an_asylum_record_outside_the_contract(change, where):
    with pytest.raises(EventError, match=where):
        _event("case.asylum_recorded", {**ASYLUM, **change})


def test_a_consumer_ignores_fields_a_later_version_adds():
    event = _event("case.asylum_recorded", ASYLUM)
    event["payload"]["added_later"] = 1
    assert "added_later" not in validate_event(event)["payload"]


@pytest.mark.parametrize("text, kind", [
    ("+86 138 0013 8000", "phone number"), ("010-5555-0199", "phone number"), ("(02) 555 1234", "phone number"),
    ("someone@example.org", "e-mail address"), ("Kyohwaso No. 12", None), ("wigs, 2019 batch", None),
])
def test_what_looks_like_a_contact(text, kind):
    assert looks_like_contact(text) == kind


@pytest.mark.parametrize("action, detail", [("after_return_recorded", "kwanliso"),
                                            ("asylum_recorded", "unhcr_rsd recognised")])
def test_the_audit_entries_of_the_records_carry_fixed_words(action, detail):
    event = audit_events.recorded(action, producer="case", actor="u-1", case_ids=["c-1"], object_id="r-1",
                                  detail=detail, now=NOW)
    assert event["payload"]["detail"] == detail


@pytest.mark.parametrize("action, detail", [("after_return_recorded", "kwanliso with her brother"),
                                            ("asylum_recorded", "art46 applied 010-5555-0199")])
def test_the_audit_entries_of_the_records_refuse_other_words(action, detail):
    with pytest.raises(EventError, match="detail"):
        audit_events.recorded(action, producer="case", actor="u-1", case_ids=["c-1"], detail=detail, now=NOW)
