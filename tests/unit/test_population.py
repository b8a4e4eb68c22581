"""The columns (services/reporting/population.py) count exactly as domain.count does: random
synthetic populations built through domain.apply_event, every measure, dates, periods and
breakdowns compared cell by cell."""

from __future__ import annotations

import datetime as dt
import threading
import time
import itertools
import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from services.reporting import domain
from services.reporting.population import Population, day_number

STATUSES = ("detained", "deportation_imminent", "repatriated", "released", "whereabouts_unknown",
            "closed_duplicate", "closed_unfounded", "in_third_country")
DAYS = [dt.date(2023, 12, 20) + dt.timedelta(days=i) for i in range(0, 60, 3)]
SEX = st.sampled_from(["female", "male", "unknown", "x-odd"])


def _event(kind: str, case_id: str, payload: dict, day: dt.date, n: int) -> dict:
    return {"event_id": str(uuid.UUID(int=n)), "event_type": kind, "case_id": case_id, "payload": payload,
            "occurred_at": dt.datetime.combine(day, dt.time(9, n % 60), tzinfo=dt.timezone.utc)}


@st.composite
def populations(draw):
    records, n = [], 0
    for i in range(draw(st.integers(0, 25))):
        case_id = str(uuid.UUID(int=10**6 + i))
        events = [_event("case.reported", case_id, {
            "received_on": draw(st.sampled_from(DAYS)).isoformat(), "sex": draw(SEX),
            "birth_year": draw(st.one_of(st.none(), st.integers(1950, 2025))),
            "nationality": draw(st.sampled_from(["KP", "CN", "RU"])),
            "province": draw(st.sampled_from([None, "", "Jilin", "Liaoning"])),
            "consent_statistics": draw(st.booleans()) or draw(st.booleans())}, DAYS[0], n := n + 1)]
        for _ in range(draw(st.integers(0, 4))):
            day = draw(st.sampled_from(DAYS))
            events.append(_event("case.status_changed", case_id, {"to": draw(st.sampled_from(STATUSES)),
                                                                  "effective_on": day.isoformat()}, day, n := n + 1))
        for _ in range(draw(st.integers(0, 2))):
            rid, day = f"r{draw(st.integers(0, 2))}", draw(st.sampled_from(DAYS))
            events.append(_event("unhcr_access.requested", case_id, {"request_id": rid, "sent_on": day.isoformat()},
                                 day, n := n + 1))
            events.append(_event("unhcr_access.responded", case_id, {
                "request_id": rid, "outcome": draw(st.sampled_from(["granted", "denied"])),
                "received_on": draw(st.sampled_from(DAYS)).isoformat()}, day, n := n + 1))
        for _ in range(draw(st.integers(0, 2))):
            day = draw(st.sampled_from(DAYS))
            events.append(_event("appeal.issued", case_id, {"appeal_id": f"a{draw(st.integers(0, 2))}",
                                                            "issued_on": day.isoformat()}, day, n := n + 1))
        for _ in range(draw(st.integers(0, 3))):
            learned = draw(st.sampled_from(DAYS))
            events.append(_event("case.after_return_recorded", case_id, {
                "record_id": f"ar{draw(st.integers(0, 3))}", "learned_on": learned.isoformat(),
                "effective_on": draw(st.one_of(st.none(), st.sampled_from(DAYS).map(dt.date.isoformat))),
                "custody": draw(st.sampled_from([None, "mss", "mps"])),
                "outcome": draw(st.sampled_from([None, "unknown", "kyohwaso", "kwanliso", "labour_training_camp",
                                                 "died_in_custody", "disappeared", "released"])),
                "forced_labour": draw(st.sampled_from([None, "yes", "no"])),
                "ill_treatment": draw(st.sampled_from([[], ["torture"]]))}, learned, n := n + 1))
        for _ in range(draw(st.integers(0, 3))):
            procedure, step = draw(st.sampled_from([("art46", "applied"), ("art46", "tic_issued"), ("art46", "granted"),
                                                    ("unhcr_rsd", "recognised"), ("china_status", "granted")]))
            day = draw(st.sampled_from(DAYS))
            events.append(_event("case.asylum_recorded", case_id, {
                "record_id": f"as{draw(st.integers(0, 3))}", "procedure": procedure, "step": step,
                "effective_on": day.isoformat()}, day, n := n + 1))
        if draw(st.integers(0, 9)) == 0:
            events.append(_event("case.merged", case_id, {"into_case_id": str(uuid.UUID(int=10**6))}, DAYS[1],
                                 n := n + 1))
        record = None
        for event in draw(st.permutations(events)):
            record = domain.apply_event(record, event)
        records.append(record)
    return records


def _key(case_id: str) -> int:
    """A record key (the cell key method's) for the test: any fixed function of the case id."""
    return int(uuid.UUID(case_id)) * 2654435761 % 256


BREAKDOWNS = [[]] + [[d] for d in domain.DIMENSIONS] + [list(p) for p in itertools.combinations(domain.DIMENSIONS, 2)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(populations(), st.sampled_from(DAYS), st.one_of(st.none(), st.sampled_from(DAYS)))
def test_the_columns_count_exactly_as_the_records_rules_do(records, as_of, since):
    population = Population(records)
    for measure in domain.ALL_MEASURES:
        for by in BREAKDOWNS:
            expected = domain.count(records, measure, as_of.isoformat(), since and since.isoformat(), by)
            got = population.count(measure, as_of.isoformat(), since and since.isoformat(), by)
            assert got == expected, (measure, by)
            keyed = domain.count(records, measure, as_of.isoformat(), since and since.isoformat(), by, _key)
            assert population.count(measure, as_of.isoformat(), since and since.isoformat(), by,
                                    record_key=_key) == keyed, (measure, by)
        assert population.count(measure, as_of.isoformat(), None, ["sex"], with_ids=False) == \
            domain.count(records, measure, as_of.isoformat(), None, ["sex"], with_ids=False)


def test_a_changed_record_replaces_the_old_one_and_ids_are_only_given_when_asked():
    record = domain.apply_event(None, _event("case.reported", "c1", {"received_on": "2024-01-02", "sex": "female"},
                                             DAYS[0], 1))
    population = Population([record])
    assert population.count("reported", "2024-01-05", None, [])["case_ids"] == ["c1"]
    assert population.count("detained", "2024-01-05", None, [])["total"] == 0
    moved = domain.apply_event(record, _event("case.status_changed", "c1",
                                              {"to": "detained", "effective_on": "2024-01-03"}, DAYS[0], 2))
    population.put(moved)
    assert len(population) == 1
    assert population.count("detained", "2024-01-05", None, ["sex"], with_ids=False) == {
        "total": 1, "case_ids": None,
        "cells": [{"sex": "female", "count": 1}, {"sex": "male", "count": 0}, {"sex": "unknown", "count": 0}]}
    assert population.count("detained", "2024-01-02", None, [])["total"] == 0


def test_a_population_is_counted_through_domain_count_too():
    record = domain.apply_event(None, _event("case.reported", str(uuid.UUID(int=7)),
                                             {"received_on": "2024-01-02", "sex": "male"}, DAYS[0], 1))
    population = Population([record])
    assert domain.count(population, "reported", "2024-01-05", None, ["sex"], _key) == \
        domain.count([record], "reported", "2024-01-05", None, ["sex"], _key)
    assert domain.count(population, "reported", "2024-01-05", None, [], with_ids=False)["case_ids"] is None
    assert domain.with_after_return(population) == domain.with_after_return([record]) == []


def test_an_empty_population_counts_nothing():
    assert Population().count("detained", "2024-01-05", None, ["sex", "province"]) == \
        domain.count([], "detained", "2024-01-05", None, ["sex", "province"])


def test_day_numbers_order_as_iso_dates_do():
    days = ["0001-01-01", "1999-12-31", "2024-02-29", "2024-03-01", "9999-12-31"]
    assert [day_number(d) for d in days] == sorted(day_number(d) for d in days)
    assert day_number(None) > day_number("9999-12-31")


def test_above_the_sync_size_a_change_is_counted_once_the_columns_are_rebuilt_in_the_background():
    first = domain.apply_event(None, _event("case.reported", "c1", {"received_on": "2024-01-02"}, DAYS[0], 1))
    second = domain.apply_event(None, _event("case.reported", "c2", {"received_on": "2024-01-02"}, DAYS[0], 2))
    population = Population([first, second])
    population.SYNC_REBUILD_MAX = 1
    assert population.count("detained", "2024-01-05", None, [])["total"] == 0  # first build: at once
    population.put(domain.apply_event(first, _event("case.status_changed", "c1",
                                                    {"to": "detained", "effective_on": "2024-01-03"}, DAYS[0], 3)))
    deadline = time.monotonic() + 10
    while population.count("detained", "2024-01-05", None, [])["total"] != 1:  # the old columns meanwhile
        assert time.monotonic() < deadline, "the columns were never rebuilt"
        threading.Event().wait(0.01)
    assert population.count("detained", "2024-01-05", None, [])["case_ids"] == ["c1"]
