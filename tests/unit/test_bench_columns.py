"""bench.columns' pure helpers for its HTTP phase: the random filters given to a list's URL and to
its store in this process must ask the same question (the store's total picks the random page),
and a list's total is read from an API's JSON or a page's text."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from bench.columns import http_filters, page_total
from services.advocacy.schemas import AppealQuery, RequestQuery
from services.case.schemas import CaseQuery
from services.intake.schemas import AuditQuery

CASES = [f"case-{i}" for i in range(5)]
QUERIES = {"cases": CaseQuery, "audit": AuditQuery, "appeals": AppealQuery, "requests": RequestQuery}
STORE_NAMES = {"case_id": "case_id", "user": "user_id"}


@pytest.mark.parametrize("name", ["cases", "reports", "audit", "appeals", "requests"])
@pytest.mark.parametrize("via_page", [False, True])
def test_the_url_and_the_store_are_given_the_same_filters(name, via_page):
    lists = SimpleNamespace(rng=random.Random(3), case_ids=CASES)
    for _ in range(200):
        params, kwargs = http_filters(lists, name, via_page)
        if name in QUERIES:  # every parameter is one the API accepts
            loaded = QUERIES[name]().load(params)
        else:
            loaded = dict(params)
        if name == "cases":
            assert kwargs == {k: v for k, v in loaded.items() if k != "page"}
        elif name == "audit":
            assert kwargs == {STORE_NAMES.get(k, k): v for k, v in params.items()}
            assert not (via_page and "action" in params)  # the page has no action filter
        else:
            assert kwargs == {k: v for k, v in loaded.items() if k != "page"}


def answer(content_type: str, **body):
    return SimpleNamespace(headers={"Content-Type": content_type}, json=lambda: body.get("json"),
                           text=body.get("text", ""))


def test_a_total_is_read_from_the_api_or_from_the_page():
    assert page_total(answer("application/json", json={"total": 30100, "items": []})) == 30100
    assert page_total(answer("text/html; charset=utf-8", text="<p>10000 reports</p>")) == 10000
    assert page_total(answer("text/html; charset=utf-8", text="<p>no count here</p>")) == -1
