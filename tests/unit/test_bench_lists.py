"""bench/lists.py's pure helpers: the case list's totals per filter, when a consumer group has caught
up, the budgeted timer, and the report's marks against issue 12's aim."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from kafka import TopicPartition

from bench import lists


class Cases:
    """A collection stand-in: find() gives the documents, whatever the filter and projection."""

    def __init__(self, docs):
        self.docs = docs

    def find(self, _query, _projection):
        return iter(self.docs)


def test_case_totals_count_each_filter_as_the_list_does():
    total = lists.case_totals(Cases([
        {"status": "reported", "province": "Jilin", "deportation_imminent": False},
        {"status": "reported", "province": "Jilin", "deportation_imminent": True},
        {"status": "detained", "province": "Jilin"},
        {"status": "detained", "province": "Yunnan", "deportation_imminent": True},
    ]))
    assert total({}) == 4
    assert total({"status": "reported"}) == 2
    assert total({"province": "Jilin"}) == 3
    assert total({"imminent": "1"}) == 2
    assert total({"status": "detained", "province": "Yunnan", "imminent": "1"}) == 1
    assert total({"status": "released"}) == 0


def test_caught_up_needs_every_partition_with_new_records_committed():
    a, b = TopicPartition("intake.events", 0), TopicPartition("intake.events", 1)
    end, start = {a: 10, b: 5}, {a: 4, b: 5}
    assert not lists.caught_up(None, end, start)  # the group has not joined
    assert not lists.caught_up({a: SimpleNamespace(offset=9)}, end, start)
    assert lists.caught_up({a: SimpleNamespace(offset=10)}, end, start)  # b had nothing new
    assert not lists.caught_up({a: SimpleNamespace(offset=10)}, end)  # without a start, b counts too
    assert lists.caught_up({a: SimpleNamespace(offset=10), b: SimpleNamespace(offset=5)}, end)


def test_timed_within_counts_what_was_not_200_and_stops_at_the_budget():
    answers = iter([200, 500, 200, 0])

    def call(_i):
        status = next(answers)
        if status == 0:
            raise requests.Timeout()
        return SimpleNamespace(status_code=status)

    out = lists.timed_within(call, 4, budget_s=60)
    assert out["n"] == 4 and out["failed"] == {"500": 1, "0": 1}
    assert out["p50_ms"] <= out["p95_ms"] <= out["max_ms"]
    short = lists.timed_within(lambda _i: SimpleNamespace(status_code=200), 50, budget_s=0)
    assert short["n"] == 3 and "failed" not in short  # three calls at least, then the budget stops it


def test_cached_asks_once_per_set_of_filters():
    asked = []
    total = lists.cached(lambda params: asked.append(params) or 7)
    assert total({"a": 1, "b": 2}) == total({"b": 2, "a": 1}) == 7
    assert total({}) == 7
    assert asked == [{"a": 1, "b": 2}, {}]


@pytest.mark.parametrize("p95, over", [(299.9, False), (300.0, True)])
def test_report_marks_a_p95_over_the_aim(p95, over):
    q = {"n": 20, "p50_ms": 100.0, "p95_ms": p95, "max_ms": 400.0}
    assert ("**over**" in lists._cell(q)) is over
    assert lists._cell({"error": "ReadTimeout: too slow"}).startswith("failed: ReadTimeout")
    assert "2 not 200" in lists._cell({**q, "failed": {"500": 2}})
