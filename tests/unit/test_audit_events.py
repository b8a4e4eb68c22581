"""The audit.recorded contract and the checks around it (shared/audit_events.py), without I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest

from shared import audit_events
from shared.events import EventError, encode, new_event, validate_event

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def _record(topic: str, event) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, value=event if isinstance(event, bytes) else encode(event))


def test_an_audit_event_carries_who_what_which_and_when_only():
    case_id = str(uuid.uuid4())
    event = audit_events.recorded("status_changed", producer="case", actor="user-1", case_ids=[case_id],
                                  detail="reported > detained", now=NOW)
    assert (event["event_type"], event["case_id"], event["actor"], event["producer"]) == \
        ("audit.recorded", case_id, "user-1", "case")
    assert event["payload"] == {"action": "status_changed", "case_ids": [case_id], "object_id": None,
                                "detail": "reported > detained"}
    snapshot = audit_events.recorded("snapshot_taken", producer="reporting", actor="user-2", object_id="snap-1", now=NOW)
    assert snapshot["case_id"] == "snap-1" and snapshot["payload"]["case_ids"] == []


@pytest.mark.parametrize("action, detail", [
    ("status_changed", "held with her brother kim, 010-5555-0199"),  # typed text
    ("status_changed", "reported > detained, with her brother"),
    ("letter_generated", "appeal en md kim"),
    ("cases_merged", "merged"),
    ("anything_else", None),
])
def test_a_producer_cannot_put_free_text_or_unknown_actions_in_an_audit_event(action, detail):
    with pytest.raises(EventError):
        audit_events.recorded(action, producer="case", actor="u", case_ids=["c-1"], detail=detail, now=NOW)


def test_an_audit_event_has_no_field_for_a_reason():
    with pytest.raises(EventError):
        new_event("audit.recorded", producer="case", case_id="c-1", actor="u",
                  payload={"action": "status_changed", "case_ids": ["c-1"], "reason": "typed by someone"})


def test_an_audited_write_needs_its_verified_account():
    with pytest.raises(ValueError):
        audit_events.recorded("status_changed", producer="case", actor="", case_ids=["c-1"], now=NOW)


def test_an_audit_event_counts_only_from_the_topic_of_the_service_it_names():
    event = audit_events.recorded("status_changed", producer="case", actor="u", case_ids=["c-1"], now=NOW)
    assert audit_events.refusal(_record("case.events", event)) is None
    assert "refused on topic reporting.events" in audit_events.refusal(_record("reporting.events", event))
    assert "'intake' refused on topic case.events" in audit_events.refusal(
        _record("case.events", {**event, "producer": "intake"}))
    assert "refused" in audit_events.refusal(_record("case.events", {**event, "producer": "nobody"}))
    assert "without an actor" in audit_events.refusal(_record("case.events", {**event, "actor": None}))


def test_other_records_are_left_to_the_consumers_own_checks():
    other = {"event_type": "case.status_changed", "producer": "intake"}
    assert audit_events.refusal(_record("case.events", other)) is None
    assert audit_events.refusal(_record("case.events", b"\x00poison")) is None
    assert audit_events.refusal(_record("case.events", b"[1, 2]")) is None


def test_the_entry_of_an_event_names_the_account_and_the_service():
    event = validate_event(audit_events.recorded("cases_merged", producer="intake", actor="u-9", case_ids=["a", "b"],
                                                 now=NOW))
    entry = audit_events.entry_of(event, "caseworker-1", NOW)
    assert {k: entry[k] for k in ("user_id", "username", "action", "what", "case_id", "case_ids", "service")} == {
        "user_id": "u-9", "username": "caseworker-1", "action": "cases_merged", "what": "merge", "case_id": "a",
        "case_ids": ["a", "b"], "service": "intake"}
    assert entry["event_id"] == event["event_id"] and entry["at"] == NOW and entry["reason"] is None


def test_an_unknown_login_name_is_kept_as_a_keyed_hash():
    key, other_key = b"k" * 32, b"o" * 32
    digest = audit_events.unknown_username_digest(key, "Correct-Horse-Battery")
    assert digest == audit_events.unknown_username_digest(key, " correct-horse-battery ")  # as the throttle counts it
    assert digest != audit_events.unknown_username_digest(other_key, "correct-horse-battery")
    assert len(digest) == 32 and "horse" not in digest


def test_a_commands_entry_names_the_server_login_and_the_account_it_acts_as():
    entry = audit_events.command_entry("reports_imported", detail="rows=3 sha256=ab", account={
        "_id": "caseworker-1", "user_id": "u-1"}, now=NOW)
    assert (entry["via"], entry["what"], entry["username"], entry["user_id"]) == \
        ("command", "import", "caseworker-1", "u-1")
    assert entry["operator"]
    rotation = audit_events.command_entry("keys_rotated", detail="reseal", now=NOW)
    assert rotation["user_id"] is None and rotation["operator"] and rotation["what"] == "keys"
