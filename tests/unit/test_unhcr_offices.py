"""The UNHCR office is a fixed choice, and the UPR cycle a fixed form: what a producer or a form
is handed never travels as typed text (issue 10 point 5)."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from services.advocacy.schemas import RequestIn, RequestOut
from services.reporting.schemas import SnapshotIn
from shared import unhcr_offices
from shared.events import EventError, new_event, validate_event

TYPED = "Synthmark Kim, brother's phone +86 138 0013 8000"


def test_an_office_is_found_by_code_or_either_name_whatever_the_case_and_spacing():
    assert unhcr_offices.code_for("beijing") == "beijing"
    assert unhcr_offices.code_for("  unhcr   BEIJING ") == "beijing"
    assert unhcr_offices.code_for("유엔난민기구 베이징 사무소") == "beijing"
    assert unhcr_offices.code_for("UNHCR Geneva") == unhcr_offices.code_for("UNHCR Geneva (headquarters)") == "geneva"
    assert [unhcr_offices.code_for(v) for v in (TYPED, "UNHCR", "", None, 7)] == [None] * 5
    assert len(set(unhcr_offices.CODES)) == len(unhcr_offices.OFFICES) and unhcr_offices.UNLISTED not in unhcr_offices.CODES
    assert all(names["en"] and names["ko"] for names in unhcr_offices.OFFICES.values())


def test_a_stored_office_is_shown_by_its_name_and_typed_text_never():
    assert unhcr_offices.name("seoul", "ko") == "유엔난민기구 한국대표부"
    assert unhcr_offices.name("UNHCR Seoul", "en") == "UNHCR Seoul"
    assert unhcr_offices.name(TYPED, "en") == "an office not on the list"
    assert unhcr_offices.listed(TYPED) == "unlisted" and unhcr_offices.listed(None) is None
    assert RequestOut().dump({"office": TYPED}) == {"office": "unlisted", "office_name": "an office not on the list"}


def test_the_api_takes_a_code_or_a_name_and_refuses_anything_else_without_echoing_it():
    body = {"case_ids": ["c-1"], "sent_on": "2024-01-02", "channel": "email"}
    assert RequestIn().load({**body, "office": "UNHCR Beijing"})["office"] == "beijing"
    with pytest.raises(ValidationError) as refused:
        RequestIn().load({**body, "office": TYPED})
    assert refused.value.messages == {"office": ["Choose an office from the list of UNHCR offices."]}


def test_the_event_carries_only_a_code_of_the_list_whatever_it_is_handed():
    def requested(office):
        return new_event("unhcr_access.requested", producer="advocacy", case_id="c-1", payload={
            "request_id": "r-1", "office": office, "channel": "email", "sent_on": "2024-01-02"})

    assert requested("UNHCR Bangkok")["payload"]["office"] == "bangkok"
    assert requested(TYPED)["payload"]["office"] == "unlisted"
    older = {**requested("beijing"), "payload": {"request_id": "r-1", "office": TYPED, "channel": "email",
                                                "sent_on": "2024-01-02"}}
    assert validate_event(older)["payload"]["office"] == "unlisted"  # a consumer keeps no older typed text


@pytest.mark.parametrize("cycle", ["CN-4", "KP-1", "CN-12"])
def test_a_cycle_is_a_country_code_and_a_number(cycle):
    assert SnapshotIn().load({"cycle": cycle, "as_of": "2024-01-01"})["cycle"] == cycle
    taken = new_event("upr.snapshot_taken", producer="reporting", case_id="c-1",
                      payload={"snapshot_id": "s-1", "cycle": cycle, "as_of": "2024-01-01"})
    assert taken["payload"]["cycle"] == cycle


@pytest.mark.parametrize("cycle", [TYPED, "CN-4 " + TYPED, "cn-4", "CN-0", "CN-100", "CHN-4", "Kim-4", ""])
def test_anything_else_as_a_cycle_is_refused_by_the_api_and_by_the_event_contract(cycle):
    with pytest.raises(ValidationError) as refused:
        SnapshotIn().load({"cycle": cycle, "as_of": "2024-01-01"})
    assert list(refused.value.messages) == ["cycle"]
    with pytest.raises(EventError):
        new_event("upr.snapshot_taken", producer="reporting", case_id="c-1",
                  payload={"snapshot_id": "s-1", "cycle": cycle, "as_of": "2024-01-01"})
