"""Reporting's recommendations in MongoDB: `recommendations_versions` (each version with its
outbox: who added or changed it, for intake's audit trail) and `recommendations` (the newest)."""

from __future__ import annotations

import datetime as dt
import logging

from pymongo.database import Database

from shared import audit_events
from shared.aggregates import VersionedStore
from shared.bus import Publisher
from shared.config import TOPICS

from services.reporting import recommendations

log = logging.getLogger(__name__)

TOPIC = TOPICS["reporting"]
SHIPPED_BY = "reporting"  # the versions the shipped file made: no account made them


class Duplicate(Exception):
    """A recommendation with that id exists."""


class RecommendationStore:
    """Recommendations: added by the shipped file or an analyst, changed by analysts."""

    def __init__(self, db: Database):
        self.versioned = VersionedStore(db, "recommendations")

    def all(self) -> list[dict]:
        """Every recommendation, in the list's order."""
        found = [{k: v for k, v in d.items() if k not in ("_id", "rev")} for d in self.versioned.current.find({})]
        return sorted(found, key=recommendations.sort_key)

    def get(self, recommendation_id: str) -> dict | None:
        """One recommendation's newest state, or None."""
        return self.versioned.get(recommendation_id)

    def load_shipped(self, now: dt.datetime) -> int:
        """Add each shipped recommendation not stored yet (by id): a restart adds nothing twice and
        an analyst's edits stay. A stored one that predates Korean texts (no `text_ko` at all, not
        even an analyst's null) gets the shipped translation. Returns how many were added. No
        event: no one made them."""
        added = 0
        for state in recommendations.shipped():
            def decide(current, state=state):
                if current is None:
                    return {**state, "added_by": SHIPPED_BY}, []
                if "text_ko" not in current and state.get("text_ko"):
                    return {**current, "text_ko": state["text_ko"]}, []
                return None
            before = self.versioned.latest_version(state["recommendation_id"])
            if before is None or ("text_ko" not in before["state"] and state.get("text_ko")):
                self.versioned.save(state["recommendation_id"], decide, publisher=_NoPublisher(), topic=TOPIC,
                                    now=now)
                added += before is None
        if added:
            log.info("recommendations: %s shipped recommendation(s) added", added)
        return added

    def add(self, state: dict, *, actor: str, publisher: Publisher, now: dt.datetime) -> dict:
        """Store a new recommendation and its audit event in one write; Duplicate if its id exists."""
        rid = state["recommendation_id"]
        made = []

        def decide(current):
            if current is not None:
                return None
            made.append(True)
            return {**state, "added_by": actor}, [_audit("added", rid, actor, now)]

        stored = self.versioned.save(rid, decide, publisher=publisher, topic=TOPIC, now=now)
        if not made:
            raise Duplicate(rid)
        return stored

    def edit(self, recommendation_id: str, changes: dict, *, actor: str, publisher: Publisher,
             now: dt.datetime) -> dict | None:
        """Apply an analyst's changes (None: no such recommendation); unchanged writes nothing."""
        def decide(current):
            if current is None:
                return None
            new = recommendations.edited(current, changes)
            return None if new is None else ({**new, "changed_by": actor},
                                             [_audit("changed", recommendation_id, actor, now)])

        return self.versioned.save(recommendation_id, decide, publisher=publisher, topic=TOPIC, now=now)


def _audit(what: str, recommendation_id: str, actor: str, now: dt.datetime) -> dict:
    return audit_events.recorded("recommendation_saved", producer="reporting", actor=actor,
                                 object_id=recommendation_id, detail=what, now=now)


class _NoPublisher:
    """The shipped versions have no events to publish."""

    def publish(self, *_args, **_kwargs):  # pragma: no cover - never called: no events
        raise AssertionError("shipped recommendations publish nothing")
