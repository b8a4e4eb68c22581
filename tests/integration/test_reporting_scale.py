"""Reporting at a size that fits CI (5,000 invented cases, their events applied in batches by the
consumer's own handler against the real FerretDB): the figures still equal an independent count,
and no request reads every record. The documents each request reads from the database are
counted with pymongo's command monitoring on a reporting app made for this test: after its first
request loads the records once, a statistic, the questions, the evidence register and the
dashboard each read a handful of documents, not thousands; a new event reaches the figures
through the journal."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import threading

import pytest
from pymongo import monitoring

from services.reporting import handlers
from services.reporting.store import ReportingStore
from shared.events import validate_event
from tests.integration.conftest import PASSWORD
from tests.integration.test_reporting_statistics import Person, events_of, expected, interleave, invent
from tests.support import page_login, wait_for

CASES = 5000
UTC = dt.timezone.utc
DAY = dt.date(2023, 12, 31)
FEW = 60  # documents a request may read: meta, journal entries, users, recommendations...


class DocumentsRead(monitoring.CommandListener):
    """Documents returned by find/getMore/aggregate on one database, per thread (a request)."""

    def __init__(self, database: str):
        self.database = database
        self.counts: dict[int, int] = {}
        self._names: dict[int, str] = {}
        self.on = False

    def started(self, event):
        if self.on and event.database_name == self.database:
            self._names[event.request_id] = event.command_name

    def succeeded(self, event):
        if self._names.pop(event.request_id, None) in ("find", "getMore", "aggregate"):
            cursor = event.reply.get("cursor", {})
            batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
            key = threading.get_ident()
            self.counts[key] = self.counts.get(key, 0) + len(batch)

    def failed(self, event):
        self._names.pop(event.request_id, None)

    def reading(self, call):
        """(documents read by `call()`, its result)."""
        key = threading.get_ident()
        self.counts[key] = 0
        self.on = True
        try:
            result = call()
        finally:
            self.on = False
        return self.counts.get(key, 0), result


@pytest.fixture(scope="module")
def world(settings, mongo):
    """5,000 invented cases, their events delivered in a shuffled order, in batches of 1,000 (some
    twice), as the consumer applies them."""
    rng = random.Random(5000)
    clock = (dt.datetime(2024, 7, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    people = invent(rng, CASES)
    streams = {"intake": [], "case": [], "advocacy": []}
    for p in people:
        for topic, evs in events_of(p, clock).items():
            streams[topic].extend(evs)
    store = ReportingStore(mongo[settings.database_name("reporting")])
    store.clear_records()
    delivered = [validate_event(json.loads(json.dumps(e))) for e in interleave(rng, list(streams.values()))]
    cache = handlers.RecordCache()
    for i in range(0, len(delivered), 1000):
        handlers.on_batch(delivered[i:i + 1000], store=store, cache=cache)
    handlers.on_batch(rng.sample(delivered, 500), store=store, cache=handlers.RecordCache())  # redelivered
    return {"people": people, "store": store, "clock": clock}


@pytest.fixture(scope="module")
def watched(settings, world):
    """A reporting app of its own whose database client is watched (made after the listener)."""
    listener = DocumentsRead(settings.database_name("reporting"))
    monitoring.register(listener)
    from services.reporting.app import create_app

    app = create_app(settings)
    app.testing = True
    return app, listener


def test_figures_at_scale_equal_an_independent_count_and_no_request_reads_every_record(watched, world, tokens,
                                                                                         users):
    app, listener = watched
    client = app.test_client()
    headers = tokens["analyst"]

    def stats(measure, by, since=None):
        query = {"measure": measure, "as_of": DAY.isoformat(), "by": ",".join(by), "disclosure": "internal"}
        if since:
            query["since"] = since.isoformat()
        res = client.get("/api/v1/statistics", headers=headers, query_string=query)
        assert res.status_code == 200, res.get_json()
        return res.get_json()

    listener.reading(lambda: stats("detained", []))
    # The process's first use loads the records once (in a thread it starts; the request waits for it).
    assert sum(listener.counts.values()) >= CASES

    since = dt.date(2023, 6, 30)
    for measure, by in itertools.product(("detained", "repatriated", "reported", "unhcr_access_requested"),
                                         (["sex", "age_group"], ["province", "status"])):
        read, got = listener.reading(lambda: stats(measure, by, since if measure != "detained" else None))
        assert read < FEW, (measure, by, read)
        total, cells = expected(world["people"], measure, DAY, since if measure != "detained" else None, by)
        assert got["total"] == total and total > 0, (measure, by)
        assert {tuple(c[d] for d in by): c["count"] for c in got["cells"] if c["count"]} == cells

    for path in ("/api/v1/upr/questions", "/api/v1/evidence/supply-chain"):
        read, res = listener.reading(lambda: client.get(path, headers=headers,
                                                        query_string={"as_of": DAY.isoformat(), "disclosure": "public"}))
        assert res.status_code == 200 and read < FEW, (path, read)
    page_login(client, users["analyst"], PASSWORD)
    read, page = listener.reading(lambda: client.get(f"/?as_of={DAY.isoformat()}"))
    assert page.status_code == 200 and read < FEW, read

    # A late report reaches the figures through the journal, still without reading every record.
    before = stats("detained", [])["total"]
    late = Person("7a1d0c55-0000-4000-8000-000000005001", "female", 1990, "KP", "Jilin", reported_on=dt.date(2023, 5, 1),
                  moves=[("detained", dt.date(2023, 9, 1))])
    handlers.on_batch([validate_event(json.loads(json.dumps(e))) for evs in events_of(late, world["clock"]).values()
                       for e in evs], store=world["store"], cache=handlers.RecordCache())
    world["people"].append(late)
    wait_for(lambda: stats("detained", [])["total"] == before + 1, timeout_s=10, what="the late report counted")
    read, got = listener.reading(lambda: stats("detained", []))
    assert got["total"] == before + 1 and read < FEW


def test_a_record_written_but_not_remembered_is_refused_then_applied_again(settings, mongo):
    """The consumer inserts the records of cases it knows are new; one stored by a batch whose
    end a crash cut short (so not remembered) is refused (store.save_many names it), and the
    batch is applied again to what is stored (handlers.on_batch: RetryLater), not lost."""
    store = ReportingStore(mongo[settings.database_name("reporting")])
    case_id = "7a1d0c55-0000-4000-8000-000000009001"
    store.save_many([{"_id": case_id, "sex": "female", "timeline": [], "rev": 1, "applied_event_ids": ["e1"]}],
                    new_ids={case_id})
    refused = store.save_many([{"_id": case_id, "sex": "male", "timeline": [], "rev": 1, "applied_event_ids": ["e1", "e2"]},
                               {"_id": case_id[:-1] + "2", "sex": "male", "timeline": [], "rev": 1,
                                "applied_event_ids": ["e3"]}],
                              new_ids={case_id, case_id[:-1] + "2"})
    assert refused == {case_id}
    assert store.get(case_id)["applied_event_ids"] == ["e1"]
    assert store.get(case_id[:-1] + "2")["sex"] == "male"
    assert store.save_many([{"_id": case_id, "sex": "male", "timeline": [], "rev": 2,
                             "applied_event_ids": ["e1", "e2"]}]) == set()
    assert store.get(case_id)["applied_event_ids"] == ["e1", "e2"]
    cache = handlers.RecordCache(track_ids=True)
    assert cache.new_ids([case_id]) == set()  # not bound to a collection yet: nothing is known new
    cache.take(store.pinned(), {case_id})
    assert cache.new_ids([case_id, "7a1d0c55-0000-4000-8000-000000009003"]) == {"7a1d0c55-0000-4000-8000-000000009003"}
