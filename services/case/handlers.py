"""The case service's commands and event handlers: domain rule -> a new version of the case with
its events (one insert) -> publish. A write that lost a race reads the newest version and decides again."""

from __future__ import annotations

import datetime as dt

from shared import audit_events
from shared.bus import Publisher, RetryLater, applied, mark_applied
from shared.config import TOPICS
from shared.crypto import Keyring
from shared.events import new_event

from services.case import domain
from services.case.store import CaseStore


TOPIC = TOPICS["case"]


class NotFound(Exception):
    """No case with that id."""


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

    store.save(case_id, decide, publisher=publisher, topic=TOPIC, now=now)


def on_case_merged(event: dict, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """case.merged: the merged case closes as closed_duplicate (from then on it refuses new
    records), then the surviving case takes its reports and, as its own records with their
    case.after_return_recorded / case.asylum_recorded and audit, its after-return and asylum
    records. The closing and the taking in are each applied once (the event id is kept on each
    case); records are carried under deterministic ids, so a redelivery adds none twice."""
    closing, into = event["case_id"], event["payload"]["into_case_id"]
    if store.get(closing) is None or store.get(into) is None:
        raise RetryLater("a case of this merge has not been opened yet")
    effective_on = event["occurred_at"].date()
    follow = {"actor": event.get("actor"), "correlation_id": event["correlation_id"],
              "causation_id": event["event_id"], "now": now}

    def close(case: dict | None):
        if applied(case, event["event_id"]):
            return None
        case, payload = domain.close_as_duplicate(case, into, effective_on, now)
        events = [new_event("case.status_changed", producer="case", case_id=closing, payload=payload, **follow)] \
            if payload else []
        return mark_applied(case, event["event_id"]), events

    store.save(closing, close, publisher=publisher, topic=TOPIC, now=now)
    merged = store.get(closing)  # closed: every record it will ever hold (a later one is refused)

    def take_in(case: dict | None):
        fresh, events = not applied(case, event["event_id"]), []
        if fresh:
            case, changes = domain.absorb(case, merged, effective_on, now)
            case = mark_applied(case, event["event_id"])
            if changes:  # none when the same merge comes again under another id
                events.append(new_event("case.facts_updated", producer="case", case_id=into, payload=changes,
                                        **follow))
        case, carried = domain.carry_records(case, merged, now)  # also for a redelivery: what is missing
        if not fresh and not carried:
            return None
        return case, events + [e for kind, record in carried for e in _record_events(into, kind, record, follow)]

    store.save(into, take_in, publisher=publisher, topic=TOPIC, now=now)


def on_consent_changed(event: dict, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """consent.changed (intake's): the case takes the consent intake holds, and whether its reports
    disagree; a change of consent goes out as case.facts_updated so that advocacy's copy and
    reporting follow. Applied once per event id; an event for a case not opened yet waits."""

    def change(case: dict, payload: dict):
        updated, changes = domain.apply_consent(case, payload)
        follow = {"actor": event.get("actor"), "correlation_id": event["correlation_id"],
                  "causation_id": event["event_id"], "now": now}
        return updated, [new_event("case.facts_updated", producer="case", case_id=event["case_id"], payload=changes,
                                   **follow)] if changes else []

    _apply_news(event, change, store=store, publisher=publisher, now=now)


def on_person_erased(event: dict, *, store: CaseStore) -> None:
    """person.erased (intake's): the person's identifying data is destroyed, so the free text
    about them this service keeps (status reasons, sealed with its own key) goes too, from the
    case and from the cases merged into it; the non-identifying facts stay. Safe to apply twice.
    (Consent follows through consent.changed, which intake sends with it.)"""
    for case_id in (event["case_id"], *event["payload"].get("merged_case_ids", [])):
        store.forget_sealed_reasons(case_id)


def _note_on_case(event: dict, note, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """Apply another service's news that changes no status (note(case, payload) -> the case, the
    same object if nothing changes), so nothing is emitted."""
    _apply_news(event, lambda case, payload: (note(case, payload), []), store=store, publisher=publisher, now=now)


def _apply_news(event: dict, change, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """Apply another service's event to a case: change(case, payload) -> (the case, the same object
    if nothing changes; the events it causes). Applied once per event id; an event for a case not
    opened here yet waits (RetryLater), and one that adds nothing is not stored again."""
    case_id, payload = event["case_id"], event_payload_json(event)

    def decide(case: dict | None):
        if case is None:
            raise RetryLater(f"case {case_id} has not been opened yet")
        if applied(case, event["event_id"]):
            return None
        updated, events = change(case, payload)
        return None if updated is case else (mark_applied(updated, event["event_id"]), events)

    store.save(case_id, decide, publisher=publisher, topic=TOPIC, now=now)


def on_advocacy_event(event: dict, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """unhcr_access.* and appeal.*: keep the case's requests and appeals in step with advocacy."""
    _note_on_case(event, lambda case, payload: domain.record_advocacy(case, event["event_type"], payload, now),
                  store=store, publisher=publisher, now=now)


def on_snapshot_taken(event: dict, *, store: CaseStore, publisher: Publisher, now: dt.datetime) -> None:
    """upr.snapshot_taken: the case lists the submission snapshot that counted it."""
    _note_on_case(event, domain.record_snapshot, store=store, publisher=publisher, now=now)


def notes_keyring(key: bytes) -> Keyring:
    """The case service's own sealing of free text about a person (AES-256-GCM, its own key)."""
    return Keyring({"n1": key}, "n1", b"")


def change_status(case_id: str, *, to: str, effective_on: dt.date, reason: str | None, actor: str,
                  store: CaseStore, publisher: Publisher, now: dt.datetime, notes: Keyring) -> dict:
    """Move a case to a new status (IllegalTransition if the table forbids it). The reason, free
    text that may name someone, is sealed with the case service's key before it is stored, and
    never goes into the event. The version also holds the change's audit.recorded (who moved it
    where), so the status cannot change without intake's trail hearing of it."""
    sealed = notes.encrypt({"reason": reason}, bound_to=case_id) if reason else None

    def decide(case: dict | None):
        if case is None:
            raise NotFound(case_id)
        case, payload = domain.transition(case, to, effective_on, sealed, now)
        changed = new_event("case.status_changed", producer="case", case_id=case_id, actor=actor,
                            payload=payload, now=now)
        audited = audit_events.recorded("status_changed", producer="case", actor=actor, case_ids=[case_id],
                                        detail=f"{payload['from']} > {payload['to']}", now=now,
                                        correlation_id=changed["correlation_id"], causation_id=changed["event_id"])
        return case, [changed, audited]

    return store.save(case_id, decide, publisher=publisher, topic=TOPIC, now=now)


def event_payload_json(event: dict) -> dict:
    """A consumed event's payload with dates back in their ISO string form (as stored)."""
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in event["payload"].items()}


def readable_history(case: dict, roles, notes: Keyring) -> dict:
    """The case with its history as a reader with `roles` may see it (free text only for
    caseworkers and admins, opened from its seal)."""
    may_read = bool(domain.REASON_READERS & set(roles))
    opened = [notes.decrypt(e["reason_sealed"], bound_to=case["_id"])["reason"]
              if may_read and e.get("reason_sealed") else None for e in case["history"]]
    return {**case, "history": domain.history_for(case, roles, opened)}


def record_after_return(case_id: str, cmd: dict, *, actor: str, store: CaseStore, publisher: Publisher,
                        now: dt.datetime) -> tuple[dict, bool]:
    """Add what became known of a returned person to the case, with its case.after_return_recorded
    and its audit.recorded in the same version: (the stored record, True if the case already held
    it: the same command again adds nothing). NotFound, domain.MergedDuplicate, domain.NotReturned,
    domain.InvalidRecord (a date in the future, or before every repatriation of the case)."""
    record = domain.after_return_record(case_id, cmd, now.date())
    return _record(case_id, "after_return", record, domain.add_after_return, actor=actor, store=store,
                   publisher=publisher, now=now)


def record_asylum(case_id: str, cmd: dict, *, actor: str, store: CaseStore, publisher: Publisher,
                  now: dt.datetime) -> tuple[dict, bool]:
    """Add a step of an asylum procedure to the case, with its case.asylum_recorded and its
    audit.recorded in the same version: (the stored record, True if it was already there)."""
    record = domain.asylum_record(case_id, cmd, now.date())
    return _record(case_id, "asylum", record, domain.add_asylum, actor=actor, store=store, publisher=publisher,
                   now=now)


_AUDIT_ACTION = {"after_return": "after_return_recorded", "asylum": "asylum_recorded"}
_EVENT_TYPE = {"after_return": "case.after_return_recorded", "asylum": "case.asylum_recorded"}


def _audit_detail(kind: str, record: dict) -> str:
    return record["outcome"] if kind == "after_return" else f"{record['procedure']} {record['step']}"


def _record_events(case_id: str, kind: str, record: dict, follow: dict) -> list[dict]:
    """A record's event and its audit.recorded (when an account made the write: a record carried
    by a merge names the caseworker who merged)."""
    recorded = new_event(_EVENT_TYPE[kind], producer="case", case_id=case_id, payload=domain.record_payload(record),
                         **follow)
    if not follow.get("actor"):
        return [recorded]
    audited = audit_events.recorded(_AUDIT_ACTION[kind], producer="case", actor=follow["actor"], case_ids=[case_id],
                                    object_id=record["record_id"], detail=_audit_detail(kind, record),
                                    now=follow["now"], correlation_id=recorded["correlation_id"],
                                    causation_id=recorded["event_id"])
    return [recorded, audited]


def _record(case_id: str, key: str, record: dict, add, *, actor: str, store: CaseStore, publisher: Publisher,
            now: dt.datetime) -> tuple[dict, bool]:
    held = False  # whether the case already held the record, as of the decision that stood

    def decide(case: dict | None):
        nonlocal held
        if case is None:
            raise NotFound(case_id)
        updated = add(case, record, now)
        held = updated is case
        if held:
            return None
        return updated, _record_events(case_id, key, record, {"actor": actor, "now": now})

    case = store.save(case_id, decide, publisher=publisher, topic=TOPIC, now=now)
    return domain.find_record(case, key, record["record_id"]), held
