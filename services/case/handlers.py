"""The case service's commands and event handlers: domain rule -> one document write (+ outbox)
-> publish. Optimistic concurrency: a write that lost a race reads again and retries."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable

from shared.bus import Publisher, applied, mark_applied, publish_outbox, with_outbox
from shared.events import new_event

from services.case import domain
from services.case.store import CaseStore, Conflict

log = logging.getLogger(__name__)

TOPIC = "case.events"
MAX_ATTEMPTS = 20


class NotFound(Exception):
    """No case with that id."""


def _save_with_retry(store: CaseStore, case_id: str, decide: Callable[[dict | None], tuple[dict, list[dict]] | None],
                     publisher: Publisher, now: dt.datetime) -> dict | None:
    """Read, decide (new state + events, or None for nothing to do), write with the outbox; publish."""
    for _ in range(MAX_ATTEMPTS):
        current = store.get(case_id)
        decision = decide(current)
        if decision is None:
            return current
        new, events = decision
        new = with_outbox(new, events, now)
        try:
            if current is None:
                store.insert(new)
            else:
                store.replace(new, current["rev"])
        except Conflict:
            continue
        publish_outbox(store.cases, new, TOPIC, publisher)
        return new
    raise RuntimeError(f"case {case_id}: too much contention, gave up after {MAX_ATTEMPTS} attempts")


def on_case_reported(event: dict, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """case.reported: open the case on its first report; later reports update its facts."""
    case_id, payload = event["case_id"], event_payload_json(event)

    def decide(case: dict | None):
        if applied(case, event["event_id"]):
            return None
        follow = {"actor": event.get("actor"), "correlation_id": event["correlation_id"],
                  "causation_id": event["event_id"], "now": now}
        if case is None:
            case = domain.open_case(case_id, payload, now)
            opened = new_event("case.opened", producer="case", case_id=case_id,
                               payload=domain.opened_payload(case), **follow)
            return mark_applied(case, event["event_id"]), [opened]
        case, changes = domain.attach_report(case, payload)
        events = [new_event("case.facts_updated", producer="case", case_id=case_id, payload=changes, **follow)] \
            if changes else []
        return mark_applied(case, event["event_id"]), events

    _save_with_retry(store, case_id, decide, publisher, now)


def change_status(case_id: str, *, to: str, effective_on: dt.date, reason: str | None, actor: str,
                  store: CaseStore, publisher: Publisher, now: dt.datetime) -> dict:
    """Move a case to a new status (IllegalTransition if the table forbids it)."""

    def decide(case: dict | None):
        if case is None:
            raise NotFound(case_id)
        case, payload = domain.transition(case, to, effective_on, reason, now)
        return case, [new_event("case.status_changed", producer="case", case_id=case_id, actor=actor,
                                payload=payload, now=now)]

    return _save_with_retry(store, case_id, decide, publisher, now)


def event_payload_json(event: dict) -> dict:
    """A consumed event's payload with dates back in their ISO string form (as stored)."""
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in event["payload"].items()}
