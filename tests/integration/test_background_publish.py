"""A web process's BackgroundPublisher (shared/bus.py) against the real broker and FerretDB: it
leases what it is delivering (the relay leaves it alone), deletes a marker once its events are
acknowledged, and sends a version's pending predecessors first, so a case's events keep their
order even when an earlier version was left by another process."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from shared.aggregates import VersionedStore
from shared.bus import (BackgroundPublisher, Publisher, insert_with_outbox, outbox_pending, publish_outbox, relay_once,
                        with_outbox)
from shared.events import new_event
from shared.mongo import utcnow
from tests.support import read_topic


def _merged(case_id: str, into: str) -> dict:
    return new_event("case.merged", producer="intake", case_id=case_id, payload={"into_case_id": into})


def _on_topic(settings, case_id: str) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
            if r.key == case_id.encode()]


def test_a_handed_over_document_is_sent_once_and_its_marker_deleted_after_the_ack(settings, mongo):
    coll = mongo[settings.database_name("intake")]["background_probe"]
    case_id = f"bg-{uuid.uuid4().hex[:8]}"
    events = [_merged(case_id, "a"), _merged(case_id, "b")]
    doc = with_outbox({"_id": case_id}, events)
    insert_with_outbox(coll, doc)
    publisher = BackgroundPublisher(settings, principal="admin", client_id="it-background")
    try:
        assert publish_outbox(coll, doc, "intake.events", publisher) is True  # handed over, not sent yet
        assert publisher.wait_idle(30)
    finally:
        publisher.close()
    assert not outbox_pending(coll, case_id)
    assert [e["event_id"] for e in _on_topic(settings, case_id)] == [e["event_id"] for e in events]


def test_the_relay_leaves_a_leased_marker_alone_until_its_lease_ends(settings, mongo):
    coll = mongo[settings.database_name("intake")]["background_lease"]
    markers = mongo[settings.database_name("intake")]["background_lease_outbox"]
    case_id = f"lease-{uuid.uuid4().hex[:8]}"
    old = utcnow() - dt.timedelta(minutes=1)
    insert_with_outbox(coll, with_outbox({"_id": case_id}, [_merged(case_id, "x")], old))
    markers.update_one({"_id": case_id}, {"$set": {"lease_until": utcnow() + dt.timedelta(minutes=1)}})
    publisher = Publisher(settings, principal="admin", client_id="it-lease")
    try:
        assert relay_once([coll], "intake.events", publisher, grace_s=0) == 0  # a live process is delivering it
        markers.update_one({"_id": case_id}, {"$set": {"lease_until": utcnow() - dt.timedelta(seconds=1)}})
        assert relay_once([coll], "intake.events", publisher, grace_s=0) == 1  # the lease ended: the relay sends it
    finally:
        publisher.close()
    assert len(_on_topic(settings, case_id)) == 1 and not outbox_pending(coll, case_id)


def test_a_version_goes_out_after_the_earlier_versions_another_process_left_pending(settings, mongo):
    store = VersionedStore(mongo[settings.database_name("intake")], f"bg_versions_{uuid.uuid4().hex[:6]}")
    case_id = f"order-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    # Two versions stored by a process that died (or whose broker went away) before publishing.
    first = store.append(case_id, 1, {"n": 1}, [_merged(case_id, "v1")], now)
    second = store.append(case_id, 2, {"n": 2}, [_merged(case_id, "v2")], now)
    assert second["outbox_previous"] == first["_id"] and "outbox_previous" not in first
    publisher = BackgroundPublisher(settings, principal="admin", client_id="it-order")
    try:
        third = store.append(case_id, 3, {"n": 3}, [_merged(case_id, "v3")], now)
        publish_outbox(store.versions, third, "intake.events", publisher)
        assert publisher.wait_idle(30)
    finally:
        publisher.close()
    sent = [e["payload"]["into_case_id"] for e in _on_topic(settings, case_id)]
    assert sent == ["v1", "v2", "v3"]  # without outbox_previous v3 went first and v1, v2 waited for the relay
    assert not any(outbox_pending(store.versions, d["_id"]) for d in (first, second, third))


def test_a_version_handed_over_before_the_one_it_follows_still_goes_out_after_it(settings, mongo):
    """Two request threads of one process, one case: A stores v1, B reads it, stores v2 and hands it
    over before A's thread gets to hand over v1 (a thread switch between A's insert and its submit).
    The queue then holds v2 before v1; v1 is in flight in this process, but queued behind v2, so v2
    must not count on this process's producer to send v1 first (it did: v2's events went out first)."""
    store = VersionedStore(mongo[settings.database_name("intake")], f"bg_race_{uuid.uuid4().hex[:6]}")
    case_id = f"race-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    first = store.append(case_id, 1, {"n": 1}, [_merged(case_id, "v1")], now)
    second = store.append(case_id, 2, {"n": 2}, [_merged(case_id, "v2")], now)
    publisher = BackgroundPublisher(settings, principal="admin", client_id="it-race")
    start = publisher._start
    publisher._start = lambda: None  # both handed over before its threads take the first (the race, held still)
    try:
        publish_outbox(store.versions, second, "intake.events", publisher)  # B's thread
        publish_outbox(store.versions, first, "intake.events", publisher)  # A's thread, a moment late
        publisher._start = start
        start()
        assert publisher.wait_idle(30)
    finally:
        publisher.close()
    sent = [e["payload"]["into_case_id"] for e in _on_topic(settings, case_id)]
    assert sent.index("v1") < sent.index("v2"), sent  # v1 may come again after (consumers absorb it)
    assert not any(outbox_pending(store.versions, d["_id"]) for d in (first, second))
