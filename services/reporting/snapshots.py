"""Snapshots of any size: the snapshot document holds what is bounded by the categories (figures,
series, questions, evidence, recommendations, case_count); the cases it counted, and each case's
upr.snapshot_taken, go into parts (collection `snapshot_parts`) of at most PART_SIZE case ids.

Parts: `<snapshot_id>:case_ids:<i>` (the cases counted by any measure, with the outbox of their
upr.snapshot_taken events) and `<snapshot_id>:counted-<measure>:<i>` (the cases each measure
counted, no events). Ids, event ids and the correlation id follow from the snapshot id and the
case id, so a retry with the same snapshot id and time writes identical parts.

What a reader sees is all or nothing:
1. the parts are written first, each with an outbox marker (even those without events), but
   gated (`outbox_after`): the relay publishes a part's events only once its snapshot exists;
2. the snapshot document is ONE write, with its audit event and `parts` (how many of each kind);
3. the writer then publishes the parts' events and the document's.
A failed attempt (no snapshot document) leaves parts that are never published: the relay DELETES
them, and their markers, once they are older than MARKER_ORPHAN_AFTER (shared/bus.py relay_once).
A writer slower than that re-creates, after its snapshot document, any part the relay removed.
No I/O here but through ReportingStore and the publisher.
"""

from __future__ import annotations

import datetime as dt
import uuid

from pymongo.errors import DuplicateKeyError

from shared import audit_events
from shared.bus import Publisher, publish_outbox, with_outbox
from shared.events import new_event

PART_SIZE = 1000  # case ids (and events) per part: a part stays well under 1 MB
CASE_IDS = "case_ids"
# Event ids of a snapshot's announcements: uuid5 of the snapshot and the case, in this namespace.
NAMESPACE = uuid.UUID("5b7c2a9e-3f1d-4c1e-9a57-12c0d0a0e512")
# How long the writer waits for the broker to take one part's events before leaving them to the relay.
PUBLISH_TIMEOUT_S = 10.0


def part_id(snapshot_id: str, kind: str, i: int) -> str:
    return f"{snapshot_id}:{kind}:{i}"


def chunks(ids: list[str], size: int = PART_SIZE) -> list[list[str]]:
    """ids in order, at most `size` a chunk (none for no ids)."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def announcement_id(snapshot_id: str, case_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{snapshot_id}:{case_id}"))


def announcement(snapshot: dict, case_id: str, *, actor: str, now: dt.datetime) -> dict:
    """The case's upr.snapshot_taken, with an id that a retry gives again."""
    event = new_event("upr.snapshot_taken", producer="reporting", case_id=case_id, actor=actor, now=now,
                      correlation_id=correlation_id(snapshot["snapshot_id"]),
                      payload={"snapshot_id": snapshot["snapshot_id"], "cycle": snapshot["cycle"],
                               "as_of": snapshot["as_of"]})
    return {**event, "event_id": announcement_id(snapshot["snapshot_id"], case_id)}


def correlation_id(snapshot_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, snapshot_id))


def split(doc: dict, *, actor: str, now: dt.datetime, size: int = PART_SIZE) -> tuple[dict, list[dict]]:
    """figures.snapshot's document -> (the snapshot document without case ids, its parts)."""
    snapshot_id = doc["snapshot_id"]
    head = {k: v for k, v in doc.items() if k not in ("counted", CASE_IDS)}
    gate = {"collection": "snapshots", "_id": snapshot_id}
    kinds = {CASE_IDS: doc[CASE_IDS], **{f"counted-{m}": ids for m, ids in (doc.get("counted") or {}).items()}}
    parts, counts = [], {}
    for kind, ids in kinds.items():
        pieces = chunks(ids, size)
        counts[kind] = len(pieces)
        for i, piece in enumerate(pieces):
            part = {"_id": part_id(snapshot_id, kind, i), "snapshot_id": snapshot_id, "kind": kind, "index": i,
                    "case_ids": piece, "outbox_after": gate}
            events = [announcement(doc, c, actor=actor, now=now) for c in piece] if kind == CASE_IDS else []
            parts.append(with_outbox(part, events, now))
    head["parts"] = counts
    head["case_count"] = len(doc[CASE_IDS])
    return head, parts


def write_parts(store, parts: list[dict]) -> None:
    """Step 1: the parts, their events not yet releasable (an existing identical part is kept)."""
    for part in parts:
        try:
            store.insert_snapshot_part(part)
        except DuplicateKeyError:
            pass  # a retry: ids and contents are deterministic, so the part stored is the same


def write_head(store, head: dict, parts: list[dict], *, actor: str, now: dt.datetime) -> dict:
    """Step 2: the snapshot document with its audit event (one write); then any part a relay
    removed meanwhile (the writer took longer than the orphan delay) is written again."""
    audit = audit_events.recorded("snapshot_taken", producer="reporting", actor=actor, object_id=head["snapshot_id"],
                                  detail=f"as_of={head['as_of']}", now=now,
                                  correlation_id=correlation_id(head["snapshot_id"]))
    head = with_outbox(head, [audit], now)
    store.insert_snapshot(head)
    write_parts(store, [p for p in parts if not store.has_snapshot_part(p["_id"])])
    return head


def release(store, head: dict, parts: list[dict], publisher: Publisher, topic: str) -> None:
    """Step 3: publish the parts' events, then the audit event (what fails stays for the relay)."""
    for part in parts:  # a part without events only has its marker deleted
        if not publish_outbox(store.snapshot_parts, part, topic, publisher, timeout_s=PUBLISH_TIMEOUT_S):
            break  # the broker is away: the relay sends the rest, the snapshot document now existing
    publish_outbox(store.snapshots, head, topic, publisher)


def take(doc: dict, *, store, publisher: Publisher, topic: str, actor: str, now: dt.datetime) -> dict:
    """Store figures.snapshot's document as a snapshot and its parts, then announce it. Returns
    the snapshot as the API shows it to analysts (with every counted case's id, no outbox)."""
    head, parts = split(doc, actor=actor, now=now)
    write_parts(store, parts)
    head = write_head(store, head, parts, actor=actor, now=now)
    release(store, head, parts, publisher, topic)
    return {**{k: v for k, v in head.items() if k != "outbox"}, CASE_IDS: doc[CASE_IDS]}


def case_ids(store, snapshot: dict, kind: str = CASE_IDS) -> list[str]:
    """The cases a snapshot counted (any measure, or `counted-<measure>`), read from its parts
    (an older snapshot keeps them in its document). For analysts' reads only."""
    if "parts" not in snapshot:
        if kind == CASE_IDS:
            return list(snapshot.get(CASE_IDS) or [])
        return list((snapshot.get("counted") or {}).get(kind.split("-", 1)[1]) or [])
    out: list[str] = []
    for i in range(snapshot["parts"].get(kind, 0)):
        part = store.get_snapshot_part(part_id(snapshot["snapshot_id"], kind, i))
        out.extend(part["case_ids"])
    return out
