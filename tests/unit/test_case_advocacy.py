"""A case's UNHCR-access requests and appeals, kept from advocacy's events: every event type,
redeliveries, events out of order, the summary the API and page show, and the handler."""

import datetime as dt
import itertools

import pytest

from services.case import domain, handlers
from shared.bus import RetryLater
from shared.events import new_event, validate_event

NOW = dt.datetime(2024, 1, 10, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(hours=1)
REPORTED = {"report_id": "r-1", "sex": "female", "birth_year": 1990, "nationality": "KP", "province": "Jilin",
            "detained_on": "2023-12-01", "deportation_imminent": True, "vulnerabilities": [],
            "consent_advocacy": "named", "consent_statistics": True, "received_on": "2023-12-02"}

REQUESTED = {"request_id": "q-1", "office": "UNHCR Beijing", "channel": "email", "sent_on": "2024-01-02"}
ACKNOWLEDGED = {"request_id": "q-1", "outcome": "acknowledged", "received_on": "2024-01-04"}
GRANTED = {"request_id": "q-1", "outcome": "granted", "received_on": "2024-01-08"}
DRAFTED = {"appeal_id": "a-1", "kind": "urgent_appeal", "due_by": "2024-01-10T18:00:00+00:00"}
ISSUED = {"appeal_id": "a-1", "kind": "urgent_appeal", "recipients": ["UN WGEID", "SR DPRK"], "issued_on": "2024-01-10"}
ANSWERED = {"appeal_id": "a-1", "outcome": "response_received", "received_on": "2024-01-20"}


def _case():
    return domain.open_case("c-1", REPORTED, NOW)


def _record(case, *events, at=NOW):
    for event_type, payload in events:
        case = domain.record_advocacy(case, event_type, payload, at)
    return case


def test_a_request_is_sent_until_its_first_response():
    case = _record(_case(), ("unhcr_access.requested", REQUESTED))
    assert case["advocacy"] == {"appeals": [], "requests": [
        {"request_id": "q-1", "office": "UNHCR Beijing", "channel": "email", "sent_on": "2024-01-02",
         "status": "sent", "responses": [], "recorded_at": NOW}]}
    assert case["status"] == "reported" and case["history"] == _case()["history"]  # advocacy leaves the status


def test_responses_update_the_status_to_the_latest_outcome():
    case = _record(_case(), ("unhcr_access.requested", REQUESTED), ("unhcr_access.responded", ACKNOWLEDGED))
    assert case["advocacy"]["requests"][0]["status"] == "acknowledged"
    case = _record(case, ("unhcr_access.responded", GRANTED))
    [request] = case["advocacy"]["requests"]
    assert request["status"] == "granted"
    assert request["responses"] == [{"outcome": "acknowledged", "received_on": "2024-01-04"},
                                    {"outcome": "granted", "received_on": "2024-01-08"}]


def test_a_late_acknowledgement_does_not_reopen_a_granted_request():
    case = _record(_case(), ("unhcr_access.requested", REQUESTED), ("unhcr_access.responded", GRANTED),
                   ("unhcr_access.responded", ACKNOWLEDGED))
    assert case["advocacy"]["requests"][0]["status"] == "granted"
    same_day = {**ACKNOWLEDGED, "received_on": GRANTED["received_on"]}
    case = _record(_case(), ("unhcr_access.responded", GRANTED), ("unhcr_access.responded", same_day))
    assert case["advocacy"]["requests"][0]["status"] == "granted"


def test_a_response_before_its_request_starts_the_entry_and_the_request_fills_it_in():
    case = _record(_case(), ("unhcr_access.responded", GRANTED))
    [request] = case["advocacy"]["requests"]
    assert request["status"] == "granted" and request["office"] is None and request["sent_on"] is None
    case = _record(case, ("unhcr_access.requested", REQUESTED))
    [request] = case["advocacy"]["requests"]
    assert (request["office"], request["channel"], request["sent_on"], request["status"]) == \
        ("UNHCR Beijing", "email", "2024-01-02", "granted")


def test_an_appeal_goes_from_draft_to_issued_to_answered():
    case = _record(_case(), ("appeal.drafted", DRAFTED))
    assert case["advocacy"]["appeals"] == [
        {"appeal_id": "a-1", "kind": "urgent_appeal", "status": "draft", "due_by": "2024-01-10T18:00:00+00:00",
         "issued_on": None, "recipients": [], "outcome": None, "received_on": None, "recorded_at": NOW}]
    case = _record(case, ("appeal.issued", ISSUED))
    [appeal] = case["advocacy"]["appeals"]
    assert appeal["status"] == "issued" and appeal["issued_on"] == "2024-01-10"
    assert appeal["recipients"] == ["UN WGEID", "SR DPRK"]
    case = _record(case, ("appeal.answered", ANSWERED))
    [appeal] = case["advocacy"]["appeals"]
    assert appeal["status"] == "answered"
    assert (appeal["outcome"], appeal["received_on"]) == ("response_received", "2024-01-20")


def test_issued_before_drafted_stays_issued_with_its_due_time_added():
    case = _record(_case(), ("appeal.issued", ISSUED))
    assert case["advocacy"]["appeals"][0]["status"] == "issued"
    case = _record(case, ("appeal.drafted", {**DRAFTED, "kind": "draft_kind"}))
    [appeal] = case["advocacy"]["appeals"]
    assert appeal["status"] == "issued" and appeal["kind"] == "urgent_appeal"  # the issued letter's kind stands
    assert appeal["due_by"] == DRAFTED["due_by"]


def test_the_same_events_in_any_order_give_the_same_case():
    events = [("unhcr_access.requested", REQUESTED), ("unhcr_access.responded", ACKNOWLEDGED),
              ("unhcr_access.responded", GRANTED), ("appeal.drafted", DRAFTED), ("appeal.issued", ISSUED),
              ("appeal.answered", ANSWERED)]
    expected = _record(_case(), *events)
    for order in itertools.permutations(events):
        assert _record(_case(), *order) == expected, [event_type for event_type, _ in order]


@pytest.mark.parametrize("event_type, payload", [
    ("unhcr_access.requested", REQUESTED), ("unhcr_access.responded", GRANTED), ("appeal.drafted", DRAFTED),
    ("appeal.issued", ISSUED), ("appeal.answered", ANSWERED)])
def test_a_redelivered_event_changes_nothing(event_type, payload):
    case = _record(_case(), ("unhcr_access.requested", REQUESTED), ("appeal.drafted", DRAFTED),
                   (event_type, payload))
    assert domain.record_advocacy(case, event_type, payload, LATER) is case


def test_several_requests_and_appeals_are_kept_apart_oldest_first():
    case = _record(_case(), ("unhcr_access.requested", {**REQUESTED, "request_id": "q-2", "sent_on": "2024-01-05"}),
                   ("unhcr_access.requested", REQUESTED), ("appeal.drafted", DRAFTED),
                   ("appeal.issued", {**ISSUED, "appeal_id": "a-0", "issued_on": "2024-01-03"}))
    assert [r["request_id"] for r in case["advocacy"]["requests"]] == ["q-1", "q-2"]
    assert [a["appeal_id"] for a in case["advocacy"]["appeals"]] == ["a-0", "a-1"]


def test_the_summary_counts_open_requests_issued_appeals_and_drafts():
    assert domain.advocacy_summary(_case()) == {"requests": [], "appeals": [], "open_requests": 0,
                                                "appeals_issued": 0, "drafts": 0}
    case = _record(_case(),
                   ("unhcr_access.requested", REQUESTED),  # granted below: closed
                   ("unhcr_access.responded", GRANTED),
                   ("unhcr_access.requested", {**REQUESTED, "request_id": "q-2"}),  # acknowledged: still open
                   ("unhcr_access.responded", {**ACKNOWLEDGED, "request_id": "q-2"}),
                   ("unhcr_access.requested", {**REQUESTED, "request_id": "q-3"}),  # sent: open
                   ("appeal.drafted", DRAFTED),
                   ("appeal.issued", {**ISSUED, "appeal_id": "a-2"}),
                   ("appeal.issued", {**ISSUED, "appeal_id": "a-3"}),
                   ("appeal.answered", {**ANSWERED, "appeal_id": "a-3"}))
    summary = domain.advocacy_summary(case)
    assert (summary["open_requests"], summary["appeals_issued"], summary["drafts"]) == (2, 2, 1)
    assert summary["requests"] == case["advocacy"]["requests"] and summary["appeals"] == case["advocacy"]["appeals"]


def test_only_advocacy_events_are_recorded():
    with pytest.raises(ValueError):
        domain.record_advocacy(_case(), "case.merged", {"into_case_id": "c-2"}, NOW)


# --- the handler, with an in-memory store ------------------------------------------------------


class MemoryCaseStore:
    """VersionedStore.save's contract in memory: decide on the newest state; None stores nothing."""

    def __init__(self, *cases):
        self.versions = {c["_id"]: [c] for c in cases}
        self.emitted = []

    def get(self, case_id):
        return self.versions.get(case_id, [None])[-1]

    def save(self, case_id, decide, *, publisher, topic, now):
        decision = decide(self.get(case_id))
        if decision is None:
            return self.get(case_id)
        state, events = decision
        self.versions.setdefault(case_id, []).append({**state, "updated_at": now})
        self.emitted.extend((topic, e) for e in events)
        return state


def _event(event_type, payload, case_id="c-1"):
    """An advocacy event as the consumer hands it over: produced strictly, then loaded tolerantly."""
    produced = new_event(event_type, producer="advocacy", case_id=case_id, payload=payload, actor="u-1")
    return validate_event(produced), produced


def test_the_handler_stores_each_event_once_and_emits_nothing():
    store = MemoryCaseStore(_case())
    drafted, _ = _event("appeal.drafted", DRAFTED)
    assert isinstance(drafted["payload"]["due_by"], dt.datetime)  # the consumer's loaded form
    for _ in range(2):  # the second is a redelivery of the same event
        handlers.on_advocacy_event(drafted, store=store, publisher=None, now=NOW)
    assert len(store.versions["c-1"]) == 2 and store.emitted == []
    case = store.get("c-1")
    assert case["applied_event_ids"][-1] == drafted["event_id"]
    assert case["advocacy"]["appeals"][0]["due_by"] == "2024-01-10T18:00:00+00:00"  # stored as an ISO string
    assert case["status"] == "reported"


def test_the_same_fact_under_a_new_event_id_is_not_stored_again():
    store = MemoryCaseStore(_case())
    first, _ = _event("unhcr_access.requested", REQUESTED)
    again, _ = _event("unhcr_access.requested", REQUESTED)
    handlers.on_advocacy_event(first, store=store, publisher=None, now=NOW)
    handlers.on_advocacy_event(again, store=store, publisher=None, now=LATER)
    assert len(store.versions["c-1"]) == 2
    assert store.get("c-1")["advocacy"]["requests"][0]["sent_on"] == "2024-01-02"


def test_an_event_for_a_case_not_opened_yet_waits():
    store = MemoryCaseStore()
    issued, _ = _event("appeal.issued", ISSUED, case_id="c-unknown")
    with pytest.raises(RetryLater):
        handlers.on_advocacy_event(issued, store=store, publisher=None, now=NOW)
    assert store.versions == {}


def test_the_consumer_maps_every_advocacy_event_type():
    from services.case import consumer

    assert "advocacy.events" in consumer.TOPICS and "intake.events" in consumer.TOPICS
    wired = consumer.make_handlers({"cases_versions": None, "cases": None, "cases_journal": None}, publisher=None)
    assert set(domain.ADVOCACY_EVENTS) <= set(wired)
    assert set(domain.ADVOCACY_EVENTS) == {"unhcr_access.requested", "unhcr_access.responded", "appeal.drafted",
                                           "appeal.issued", "appeal.answered"}
