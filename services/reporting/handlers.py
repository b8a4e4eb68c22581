"""Reporting's event handler: every event about a case updates that case's record, once."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict

from shared.bus import Batch, Publisher, RetryLater, applied, mark_applied
from shared.config import TOPICS

from services.reporting import domain, figures, recommendations, snapshots
from services.reporting.recommendation_store import RecommendationStore
from services.reporting.store import PartitionFence, ReportingStore, live_population

TOPIC = TOPICS["reporting"]

# What the read model is built from: intake's, the case service's and advocacy's events.
EVENT_TYPES = ("case.reported", "consent.changed", "case.merged", "case.opened", "case.status_changed",
               "case.facts_updated", "unhcr_access.requested", "unhcr_access.responded", "appeal.issued",
               "appeal.answered", "case.after_return_recorded", "case.asylum_recorded")


def on_event(event: dict, *, store: ReportingStore) -> None:
    """Apply one event to its case's record (skipped if the record has it already)."""
    on_batch([event], store=store)


class RecordCache:
    """The records the consumer wrote last, so that a case's next events need no read. Bounded;
    emptied when the records in use change, and when a write finds that another consumer instance
    changed a record (`forget`): what it remembers is then read again.

    With `track_ids`, it also knows which cases have a record at all (their ids, read once when
    it meets a collection): a case met for the first time then costs no read either, where a
    read that finds nothing costs as much as one that finds something."""

    def __init__(self, size: int = 20000, track_ids: bool = False):
        self.size = size
        self.track_ids = track_ids
        self.collection: str | None = None
        self.ids: set[str] | None = None
        self._records: OrderedDict[str, dict] = OrderedDict()
        self.trusted = False  # the last batch wrote without reading revs (trust)

    def take(self, store: ReportingStore, case_ids: set[str]) -> dict[str, dict]:
        """The records of these cases that exist, from memory where it can."""
        if store.records_name != self.collection:
            self._records.clear()
            self.collection = store.records_name
            self.ids = store.ids() if self.track_ids else None
        known = {c: self._records[c] for c in case_ids if c in self._records}
        missing = [c for c in case_ids if c not in known and (self.ids is None or c in self.ids)]
        return {**known, **store.get_many(missing)}

    def forget(self) -> None:
        """Remember nothing: the next take reads the records (and the ids) again."""
        self._records.clear()
        self.collection = self.ids = None

    def trust(self, alone: bool) -> None:
        """Say whether this batch writes without reading revs; records remembered while it did
        not (another writer could change them meanwhile: a rebuild catching up) are dropped
        before one that does (the ids of records stored stay known: a record is never removed)."""
        if alone and not self.trusted:
            self._records.clear()
        self.trusted = alone

    def new_ids(self, case_ids) -> set[str]:
        """Of these cases, those known to have no record stored yet (none unless it tracks ids)."""
        return set() if self.ids is None else {c for c in case_ids if c not in self.ids}

    def keep(self, records: list[dict]) -> None:
        """Remember records just written."""
        for record in records:
            self._records[record["_id"]] = record
            self._records.move_to_end(record["_id"])
            if self.ids is not None:
                self.ids.add(record["_id"])
        while len(self._records) > self.size:
            self._records.popitem(last=False)


def on_batch(events: list[dict], *, store: ReportingStore, cache: RecordCache | None = None,
             fence: PartitionFence | None = None, batch: Batch | None = None, private: bool = False) -> int:
    """Apply a batch of events (each partition's in order) to their cases' records: one read of
    each record the batch touches, one write of those it changed. An event a record already has
    is skipped, so a batch delivered again changes nothing. Returns how many records changed.

    Safe with several consumer instances, whatever partitions each gets: a record is stored only
    over the version it was made from (store.save_many); if another instance stored a newer one
    first, the cache is emptied and RetryLater has the batch delivered again, to be applied to
    what is stored (its events already there are skipped). The read of each record's stored
    version is left out when this instance alone writes these records: it holds the fences of the
    batch's partitions (PartitionFence) and no rebuild is catching up into them, or (`private`) a
    rebuild fills records no other process uses yet."""
    store = store.pinned()
    cache = cache or RecordCache(size=0)
    alone = private or (fence is not None and fence.holds(batch, cache.forget) and not store.shared)
    cache.trust(alone)
    records = cache.take(store, {e["case_id"] for e in events})
    base = {case_id: (record or {}).get("rev") for case_id, record in records.items()}
    changed: dict[str, dict] = {}
    for event in events:
        record = records.get(event["case_id"])
        if applied(record, event["event_id"]):
            continue
        records[event["case_id"]] = changed[event["case_id"]] = mark_applied(domain.apply_event(record, event),
                                                                                 event["event_id"])
    for case_id, record in changed.items():
        record["rev"] = (base.get(case_id) or 0) + 1
    refused = store.save_many(list(changed.values()), new_ids=cache.new_ids(changed), checked=not alone)
    if refused:
        cache.forget()
        raise RetryLater(f"{len(refused)} records were changed by another consumer instance; applying again")
    cache.keep(list(changed.values()))
    return len(changed)


def take_snapshot(cmd: dict, *, actor: str, store: ReportingStore, publisher: Publisher, now: dt.datetime) -> dict:
    """Freeze the figures as of a date for a submission; each counted case hears of it through
    upr.snapshot_taken (one event per case, in the snapshot's parts, released once it exists)."""
    snapshot_id = str(uuid.uuid4())
    records = live_population(store.db)
    doc = figures.snapshot(records, snapshot_id=snapshot_id, cycle=cmd["cycle"], as_of=cmd["as_of"],
                           since=cmd.get("since"), title=cmd.get("title") or "", actor=actor, now=now)
    # The recommendations followed, each with its figures since its date, as of the snapshot.
    doc["recommendations"] = recommendations.snapshot_part(records, RecommendationStore(store.db).all(),
                                                           as_of=cmd["as_of"])
    # The snapshot document (with the audit event of who froze it: no title, typed text) stays
    # small; the counted cases and their upr.snapshot_taken go into parts (snapshots.py).
    return snapshots.take(doc, store=store, publisher=publisher, topic=TOPIC, actor=actor, now=now)
