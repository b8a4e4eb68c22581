"""A snapshot's counted cases and their announcements are split into parts of bounded size, with
ids and event ids that a retry gives again (services/reporting/snapshots.py)."""

from __future__ import annotations

import datetime as dt
import uuid

import bson

from services.reporting import domain, snapshots
from shared.events import validate_event

NOW = dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
MB = 1024 * 1024


def _doc(n: int, snapshot_id: str = "3f0c4e52-8d7a-4b1e-9c2f-5a6b7c8d9e0f") -> dict:
    """figures.snapshot's document for n synthetic counted cases (figures left small)."""
    ids = sorted(str(uuid.UUID(int=i + 1, version=4)) for i in range(n))
    counted = {m: ids[k::2] for k, m in enumerate(domain.MEASURES)}
    return {"_id": snapshot_id, "snapshot_id": snapshot_id, "cycle": "CN-4", "as_of": "2024-06-30", "since": None,
            "title": "", "taken_at": NOW, "taken_by": "analyst-id", "figures": {"detained": {"total": n}},
            "exact": {}, "counted": counted, "case_ids": ids, "case_count": n, "series": {}, "questions": []}


def _size(doc: dict) -> int:
    return len(bson.encode(doc))


def test_thirty_thousand_cases_make_parts_each_under_one_megabyte_and_a_small_snapshot_document():
    small_head, small_parts = snapshots.split(_doc(3000), actor="analyst-id", now=NOW)
    head, parts = snapshots.split(_doc(30000), actor="analyst-id", now=NOW)
    assert max(_size(p) for p in parts) < MB and max(_size(p) for p in small_parts) < MB
    assert max(_size(p) for p in parts) <= max(_size(p) for p in small_parts) * 1.01  # the bound does not grow
    assert _size(head) < 2048 and abs(_size(head) - _size(small_head)) < 64
    assert "case_ids" not in head and "counted" not in head and head["case_count"] == 30000
    assert head["parts"]["case_ids"] == 30 and head["parts"]["counted-detained"] == 15


def test_every_counted_case_is_announced_once_in_exactly_one_part():
    doc = _doc(4321)
    head, parts = snapshots.split(doc, actor="analyst-id", now=NOW)
    announced = [e for p in parts for e in p.get("outbox", [])]
    assert sorted(e["case_id"] for e in announced) == doc["case_ids"]
    assert len({e["event_id"] for e in announced}) == 4321
    for event in announced[:50]:
        validate_event(dict(event), strict=True)
        assert event["payload"] == {"snapshot_id": doc["snapshot_id"], "cycle": "CN-4", "as_of": "2024-06-30"}
    # Only the case_ids parts carry events, and every part waits for its snapshot document.
    assert all(bool(p.get("outbox")) == (p["kind"] == "case_ids") for p in parts)
    assert all(p["outbox_after"] == {"collection": "snapshots", "_id": doc["snapshot_id"]} for p in parts)
    by_kind = {}
    for p in parts:
        by_kind.setdefault(p["kind"], []).extend(p["case_ids"])
    assert by_kind["case_ids"] == doc["case_ids"]
    assert {k: v for k, v in by_kind.items() if k != "case_ids"} == {f"counted-{m}": ids for m, ids in
                                                                     doc["counted"].items() if ids}


def test_parts_have_deterministic_ids_and_a_retry_makes_identical_parts():
    first = snapshots.split(_doc(2500), actor="analyst-id", now=NOW)
    again = snapshots.split(_doc(2500), actor="analyst-id", now=NOW)
    assert first == again
    ids = [p["_id"] for p in first[1] if p["kind"] == "case_ids"]
    assert ids == [f"3f0c4e52-8d7a-4b1e-9c2f-5a6b7c8d9e0f:case_ids:{i}" for i in range(3)]
    other = snapshots.split(_doc(2500, snapshot_id="9d1e2f30-0000-4000-8000-000000000001"), actor="analyst-id", now=NOW)
    assert not {e["event_id"] for p in first[1] for e in p.get("outbox", [])} & \
        {e["event_id"] for p in other[1] for e in p.get("outbox", [])}


def test_no_counted_case_makes_no_part():
    head, parts = snapshots.split(_doc(0), actor="analyst-id", now=NOW)
    assert parts == [] and head["case_count"] == 0 and head["parts"]["case_ids"] == 0


def test_an_older_snapshot_keeps_its_case_ids_in_its_document():
    old = _doc(3)
    assert snapshots.case_ids(None, old) == old["case_ids"]
    assert snapshots.case_ids(None, old, "counted-detained") == old["counted"]["detained"]
