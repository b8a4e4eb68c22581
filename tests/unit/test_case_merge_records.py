"""Issue 11, the two gaps (pure rules): a merge carries the duplicate's after-return and asylum
records to the surviving case (deterministic ids, same business dates, sources and reliability,
nothing twice), a merged duplicate refuses new records naming the surviving case, and news after
return is never dated before the person's return (a case returned twice: after either)."""

from __future__ import annotations

import datetime as dt

import pytest

from services.case import domain
from services.case.schemas import AfterReturnIn, AsylumIn
from shared.events import new_event
from tests.unit.test_case_after_return import NEWS, NOW, REPORTED, STEP, TODAY


def _case(case_id: str, *moves: tuple[str, str]) -> dict:
    case = domain.open_case(case_id, {**REPORTED, "report_id": f"r-{case_id}"}, NOW)
    for to, on in moves:
        case, _ = domain.transition(case, to, dt.date.fromisoformat(on), None, NOW)
    return case


def _news(case_id: str, **change) -> dict:
    return domain.after_return_record(case_id, AfterReturnIn().load({**NEWS, **change}), TODAY)


def _step(case_id: str, **change) -> dict:
    return domain.asylum_record(case_id, AsylumIn().load({**STEP, **change}), TODAY)


def _before_return(case: dict, **change) -> dict:
    with pytest.raises(domain.InvalidRecord) as caught:
        domain.add_after_return(case, _news(case["_id"], **change), NOW)
    return caught.value.fields


# --- B. news after return is dated on or after a return -------------------------------------------

def test_news_dated_before_the_return_is_refused_naming_each_date():
    returned = _case("c-1", ("detained", "2023-05-01"), ("repatriated", "2023-11-01"))
    assert _before_return(returned, effective_on="2023-10-31") == {"effective_on": [domain.BEFORE_RETURN]}
    assert _before_return(returned, effective_on="2023-09-01", learned_on="2023-10-01") == \
        {"learned_on": [domain.BEFORE_RETURN], "effective_on": [domain.BEFORE_RETURN]}
    assert _before_return(returned, effective_on=None, learned_on="2023-10-31") == \
        {"learned_on": [domain.BEFORE_RETURN]}
    on_the_day = domain.add_after_return(returned, _news("c-1", effective_on="2023-11-01", learned_on="2023-11-01"),
                                         NOW)
    assert [r["effective_on"] for r in on_the_day["after_return"]] == ["2023-11-01"]


def test_a_case_returned_twice_takes_news_after_either_return_but_not_before_the_first():
    twice = _case("c-2", ("detained", "2022-01-10"), ("repatriated", "2022-03-01"), ("whereabouts_unknown", "2022-09-01"),
                  ("repatriated", "2023-11-01"))
    assert domain.repatriated_on(twice, "2022-02-28") is None
    assert domain.repatriated_on(twice, "2022-03-01") == "2022-03-01"
    assert domain.repatriated_on(twice, "2023-10-31") == "2022-03-01"
    assert domain.repatriated_on(twice, "2024-01-01") == "2023-11-01"
    between = domain.add_after_return(twice, _news("c-2", effective_on="2022-06-01", learned_on="2022-07-01"), NOW)
    assert len(between["after_return"]) == 1
    assert _before_return(twice, effective_on="2022-02-01", learned_on="2022-02-20") == \
        {"learned_on": [domain.BEFORE_RETURN], "effective_on": [domain.BEFORE_RETURN]}


# --- A. a merge carries the records; a merged duplicate takes no new one --------------------------

def _merged_pair():
    """X (returned, with news and an asylum step) closed as a duplicate of Y (returned too)."""
    x = _case("x", ("detained", "2023-05-01"), ("repatriated", "2023-11-01"))
    x = domain.add_after_return(x, _news("x"), NOW)
    x = domain.add_asylum(x, _step("x"), NOW)
    x, _ = domain.close_as_duplicate(x, "y", TODAY, NOW)
    y = _case("y", ("detained", "2023-05-02"), ("repatriated", "2023-11-01"))
    return x, y


def test_the_surviving_case_takes_the_records_under_ids_of_its_own_with_the_same_facts():
    x, y = _merged_pair()
    taken, added = domain.carry_records(y, x, NOW)
    assert [kind for kind, _ in added] == ["after_return", "asylum"]
    (news,), (step,) = taken["after_return"], taken["asylum"]
    original_news, original_step = x["after_return"][0], x["asylum"][0]
    assert news["record_id"] == domain.carried_record_id("y", "after_return", original_news["record_id"])
    assert step["record_id"] == domain.carried_record_id("y", "asylum", original_step["record_id"])
    assert len({news["record_id"], step["record_id"], original_news["record_id"], original_step["record_id"]}) == 4
    assert {k: v for k, v in domain.record_payload(news).items() if k != "record_id"} == \
        {k: v for k, v in domain.record_payload(original_news).items() if k != "record_id"}
    assert (step["effective_on"], step["source_type"], step["source_reliability"]) == ("2024-01-05", "family",
                                                                                    "confirmed")
    assert news["carried_from"] == {"case_id": "x", "record_id": original_news["record_id"]}
    # The events are the usual ones, with the API's fields only (a producer validates strictly).
    for kind, record in added:
        event_type = "case.after_return_recorded" if kind == "after_return" else "case.asylum_recorded"
        event = new_event(event_type, producer="case", case_id="y", payload=domain.record_payload(record), now=NOW)
        assert "carried_from" not in event["payload"] and event["payload"]["record_id"] == record["record_id"]


def test_carrying_again_adds_nothing_and_the_ids_do_not_depend_on_when():
    x, y = _merged_pair()
    taken, _ = domain.carry_records(y, x, NOW)
    again, added = domain.carry_records(taken, x, NOW + dt.timedelta(days=3))
    assert added == [] and again is taken
    later, _ = domain.carry_records(y, x, NOW + dt.timedelta(days=3))  # a replay, another day
    assert [r["record_id"] for r in later["after_return"] + later["asylum"]] == \
        [r["record_id"] for r in taken["after_return"] + taken["asylum"]]


def test_news_the_surviving_case_already_holds_is_not_carried_twice():
    x, y = _merged_pair()
    y = domain.add_after_return(y, _news("y"), NOW)  # the same testimony recorded on both cases
    taken, added = domain.carry_records(y, x, NOW)
    assert [kind for kind, _ in added] == ["asylum"] and len(taken["after_return"]) == 1


def test_records_carry_even_to_a_case_not_known_here_as_returned():
    x, _ = _merged_pair()
    y = _case("y", ("detained", "2023-05-02"))
    taken, added = domain.carry_records(y, x, NOW)
    assert len(added) == 2 and taken["after_return"][0]["outcome"] == "kyohwaso"


def test_a_merged_duplicate_refuses_new_records_naming_the_surviving_case():
    x, _ = _merged_pair()
    with pytest.raises(domain.MergedDuplicate) as caught:
        domain.add_after_return(x, _news("x", outcome="kwanliso", sentence_years=None), NOW)
    assert caught.value.into == "y"
    with pytest.raises(domain.MergedDuplicate) as caught:
        domain.add_asylum(x, _step("x", step="tic_issued", effective_on="2024-02-01"), NOW)
    assert caught.value.into == "y"
    # The same command sent again (a retry of one stored before the merge) still answers the record.
    assert domain.add_after_return(x, _news("x"), NOW) is x and domain.add_asylum(x, _step("x"), NOW) is x
