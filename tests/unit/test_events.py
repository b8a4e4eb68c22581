"""The event contract: strict for producers, tolerant for consumers, never identifying data."""

import json

import pytest

from shared.events import PAYLOAD_SCHEMAS, EventError, decode, encode, new_event, validate_event

REPORTED = {
    "report_id": "r-1", "matched_existing_case": False, "sex": "female", "birth_year": 1994,
    "nationality": "KP", "province": "Jilin", "detained_on": "2023-04-18", "deportation_imminent": False,
    "expected_deportation_on": None, "vulnerabilities": ["pregnant"], "trafficking_victim": False,
    "source_type": "family", "source_reliability": "confirmed", "received_on": "2023-04-20",
    "consent_advocacy": "named", "consent_statistics": True,
}


def test_new_event_has_the_full_envelope_and_round_trips_as_json():
    event = new_event("case.reported", producer="intake", case_id="c-1", payload=REPORTED, actor="u-1")
    assert set(event) == {"event_id", "event_type", "schema_version", "occurred_at", "producer", "case_id",
                          "correlation_id", "causation_id", "actor", "payload"}
    assert event["correlation_id"] == event["event_id"]
    loaded = validate_event(decode(encode(event)))
    assert loaded["payload"]["province"] == "Jilin"
    assert json.loads(encode(event))["payload"]["detained_on"] == "2023-04-18"


@pytest.mark.parametrize("field", ["full_name", "hometown", "family_contact", "notes", "birth_date"])
def test_a_producer_cannot_put_identifying_fields_in_a_payload(field):
    with pytest.raises(EventError) as err:
        new_event("case.reported", producer="intake", case_id="c-1", payload={**REPORTED, field: "Synthmark X"})
    assert field in err.value.reason
    assert "Synthmark" not in err.value.reason  # the reason names the field, never the value


def test_a_consumer_ignores_fields_added_later_but_a_producer_refuses_them():
    event = new_event("case.reported", producer="intake", case_id="c-1", payload=REPORTED)
    event["payload"]["added_in_v2"] = 1
    event["added_to_envelope"] = 1
    assert "added_in_v2" not in validate_event(event)["payload"]
    with pytest.raises(EventError):
        validate_event(event, strict=True)


def test_unknown_event_types_pass_consumers_and_fail_producers():
    event = new_event("case.reported", producer="intake", case_id="c-1", payload=REPORTED)
    event["event_type"] = "something.new"
    assert validate_event(event)["event_type"] == "something.new"
    with pytest.raises(EventError, match="unknown event type"):
        validate_event(event, strict=True)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (None, "no value"),
])
def test_undecodable_records_say_why(raw, reason):
    with pytest.raises(EventError, match=reason):
        decode(raw)


@pytest.mark.parametrize("mutate, where", [
    (lambda e: e.pop("case_id"), "case_id"),
    (lambda e: e.update(event_id="not-a-uuid"), "event_id"),
    (lambda e: e.update(occurred_at="yesterday"), "occurred_at"),
    (lambda e: e["payload"].update(sex="other"), "payload of case.reported invalid at: sex"),
])
def test_envelopes_failing_their_schema_are_refused_with_the_field(mutate, where):
    event = new_event("case.reported", producer="intake", case_id="c-1", payload=REPORTED)
    mutate(event)
    with pytest.raises(EventError, match=where):
        validate_event(event)


def test_a_json_value_that_is_not_an_object_is_refused():
    with pytest.raises(EventError, match="not a JSON object"):
        validate_event([1, 2])


def test_every_event_type_of_the_contract_has_a_schema():
    assert set(PAYLOAD_SCHEMAS) == {
        "case.reported", "consent.changed", "case.merged", "person.erased", "case.opened", "case.status_changed",
        "case.facts_updated", "case.after_return_recorded", "case.asylum_recorded", "unhcr_access.requested",
        "unhcr_access.responded", "appeal.drafted", "appeal.issued", "appeal.answered", "upr.snapshot_taken", "audit.recorded"}
