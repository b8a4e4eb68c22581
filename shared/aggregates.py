"""Aggregates (a case, an appeal) stored as immutable numbered versions.

Why: FerretDB v1 applies an update by reading the matching documents, changing them in Go and
writing them back by _id, without re-checking the filter (FerretDB issue #3040), so two
concurrent "update where rev = n" both succeed and one change is lost. An insert with a unique
_id is atomic on FerretDB and MongoDB alike, so a new state is written as the insert of version
n+1: of two writers racing from version n, exactly one wins and the other reads again.

Each version holds the whole state and the events its change emitted (the transactional outbox:
one document write). A projection (one document per aggregate, newest state) serves lists and
filters, and is the starting point to find the newest version: FerretDB v1 on SQLite only looks
documents up by plain `_id` without scanning the collection, so every hot read here is by `_id`
(the projection's `rev` is a hint; versions after it are probed by their `_id`).
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from shared.bus import Publisher, insert_with_outbox, publish_outbox, with_outbox
from shared.listindex import ChangeJournal


MAX_ATTEMPTS = 50

Decision = tuple[dict, list[dict]] | None


def version_id(aggregate_id: str, rev: int) -> str:
    """The _id of one version of an aggregate."""
    return f"{aggregate_id}:{rev:010d}"


class Conflict(Exception):
    """Another writer stored this version first; read the newest and decide again."""


class VersionedStore:
    """`<name>_versions` (immutable versions with their outbox), `<name>` (the projection) and
    `<name>_journal` (each projection written, for the lists: shared/listindex.py)."""

    def __init__(self, db: Database, name: str):
        self.versions = db[f"{name}_versions"]
        self.current = db[name]
        self.journal = ChangeJournal(db[f"{name}_journal"])

    def ensure_indexes(self) -> None:
        """Indexes for MongoDB deployments (FerretDB on SQLite reads by _id anyway); idempotent."""
        self.versions.create_index([("aggregate_id", ASCENDING), ("rev", DESCENDING)])

    def _latest(self, aggregate_id: str) -> tuple[dict | None, int]:
        """(the newest version document or None, the revision the projection is at: 0 if none)."""
        head = self.current.find_one({"_id": aggregate_id}, {"rev": 1})
        projected = rev = head["rev"] if head else 0
        doc = self.versions.find_one({"_id": version_id(aggregate_id, rev)}) if rev else None
        while True:
            following = self.versions.find_one({"_id": version_id(aggregate_id, rev + 1)})
            if following is None:
                return doc, projected
            doc, rev = following, rev + 1

    def latest_version(self, aggregate_id: str) -> dict | None:
        """The newest version document of an aggregate, or None."""
        return self._latest(aggregate_id)[0]

    def get(self, aggregate_id: str) -> dict | None:
        """The newest state of an aggregate, or None."""
        version = self.latest_version(aggregate_id)
        return version["state"] if version else None

    def append(self, aggregate_id: str, rev: int, state: dict, events: list[dict], now: dt.datetime) -> dict:
        """Store version `rev` with its events in one insert; Conflict if that version exists."""
        doc = with_outbox({"_id": version_id(aggregate_id, rev), "aggregate_id": aggregate_id, "rev": rev,
                           "state": {**state, "updated_at": now}}, events, now)
        if rev > 1:  # its events go out after the previous version's, whoever publishes them (shared/bus.py)
            doc["outbox_previous"] = version_id(aggregate_id, rev - 1)
        try:
            insert_with_outbox(self.versions, doc)
        except DuplicateKeyError:
            raise Conflict(aggregate_id) from None
        return doc

    def project(self, aggregate_id: str, version: dict | None = None) -> None:
        """Bring the projection up to the newest version. Each writer checks for a newer version
        after its own write, so whatever order concurrent writers finish in, the last check
        leaves the newest state."""
        version = version or self.latest_version(aggregate_id)
        for _ in range(MAX_ATTEMPTS):
            try:
                self.current.replace_one({"_id": aggregate_id}, {**version["state"], "rev": version["rev"]},
                                         upsert=True)
            except DuplicateKeyError:
                continue  # a concurrent first projection; write again over it
            following = self.versions.find_one({"_id": version_id(aggregate_id, version["rev"] + 1)})
            if following is None:
                self.journal.append(aggregate_id)  # after the write: a list reading it reads this state or newer
                return
            version = self.latest_version(aggregate_id)

    def save(self, aggregate_id: str, decide: Callable[[dict | None], Decision], *, publisher: Publisher,
             topic: str, now: dt.datetime) -> dict | None:
        """Read the newest state, decide (new state and events, or None: nothing to do), store it
        as the next version, refresh the projection and publish the events.

        A writer stopped between storing a version and projecting it (a consumer killed there)
        leaves the projection behind; the redelivered event then decides "nothing to do", and the
        projection is brought up to date here, so lists never miss the change."""
        for _ in range(MAX_ATTEMPTS):
            version, projected = self._latest(aggregate_id)
            current = version["state"] if version else None
            decision = decide(current)
            if decision is None:
                if version is not None and projected != version["rev"]:
                    self.project(aggregate_id, version)
                elif version is not None:
                    # Nothing to do, often because this is a repeat (an event redelivered, a request
                    # sent again) of a write whose journal entry was lost with the database after
                    # the projection was written: journal it again, so every list shows it.
                    self.journal.append(aggregate_id)
                return current
            state, events = decision
            try:
                doc = self.append(aggregate_id, (version["rev"] if version else 0) + 1, state, events, now)
            except Conflict:
                continue
            self.project(aggregate_id, doc)
            publish_outbox(self.versions, doc, topic, publisher)
            return doc["state"]
        raise RuntimeError(f"{aggregate_id}: gave up after {MAX_ATTEMPTS} conflicting writes")
