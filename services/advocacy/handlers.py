"""The advocacy service's commands and event handlers: load, apply a domain rule, store the new
version with its events (one insert per record), publish. Events go out once per case."""

from __future__ import annotations

import datetime as dt
import uuid

from shared import audit_events
from shared.bus import Publisher, applied, mark_applied
from shared.config import TOPICS, Settings
from shared.events import new_event

from services.advocacy import domain
from services.advocacy.store import AdvocacyStore

TOPIC = TOPICS["advocacy"]


class NotFound(Exception):
    """No such appeal or request."""


class UnknownCases(Exception):
    """Case ids advocacy has not (yet) heard of from the case service."""

    def __init__(self, case_ids: list[str]):
        super().__init__("Unknown case ids: " + ", ".join(case_ids))
        self.case_ids = case_ids


class UnknownRecipients(Exception):
    """Recipients not on the maintained list."""

    def __init__(self, names: list[str]):
        super().__init__("Not on the list of recipients: " + ", ".join(names))
        self.names = names


def _per_case(event_type: str, record: dict, payload: dict, *, actor: str | None, now: dt.datetime,
              causation_id: str | None = None, correlation_id: str | None = None) -> list[dict]:
    """One event per case the record concerns (API.md: an event about several cases is emitted
    once per case), sharing one correlation id."""
    correlation = correlation_id or str(uuid.uuid4())
    return [new_event(event_type, producer="advocacy", case_id=case_id, actor=actor, payload=payload, now=now,
                      correlation_id=correlation, causation_id=causation_id) for case_id in record["case_ids"]]


def _cases_for(case_ids: list[str], store: AdvocacyStore) -> dict[str, dict]:
    cases = store.known_cases(case_ids)
    missing = [c for c in case_ids if c not in cases]
    if missing:
        raise UnknownCases(missing)
    return cases


def _check_recipients(names: list[str], store: AdvocacyStore) -> None:
    unknown = sorted(set(names) - store.recipient_names())
    if unknown:
        raise UnknownRecipients(unknown)


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


# --- UNHCR-access requests ----------------------------------------------------------------------


def create_request(cmd: dict, *, actor: str, store: AdvocacyStore, publisher: Publisher, settings: Settings,
                   now: dt.datetime) -> dict:
    """A UNHCR-access request for known cases whose consent allows advocacy."""
    cases = _cases_for(cmd["case_ids"], store)
    domain.check_consent(cmd["case_ids"], cases)
    request_id = str(uuid.uuid4())
    request = domain.new_request(request_id, cmd, follow_up_days=settings.follow_up_days, actor=actor, now=now)
    payload = {"request_id": request_id, "office": request["office"], "channel": request["channel"],
               "sent_on": request["sent_on"]}
    events = _per_case("unhcr_access.requested", request, payload, actor=actor, now=now)
    return store.requests.save(request_id, lambda current: None if current else (request, events),
                               publisher=publisher, topic=TOPIC, now=now)


def record_request_response(request_id: str, cmd: dict, *, actor: str, store: AdvocacyStore, publisher: Publisher,
                            settings: Settings, now: dt.datetime) -> dict:
    """A response to a request (domain.NotAllowed if it cannot take one)."""

    def decide(current: dict | None):
        if current is None:
            raise NotFound(request_id)
        request = domain.respond(current, outcome=cmd["outcome"], received_on=cmd["received_on"],
                                 follow_up_days=settings.follow_up_days, actor=actor, now=now)
        payload = {"request_id": request_id, "outcome": cmd["outcome"], "received_on": cmd["received_on"].isoformat()}
        return request, _per_case("unhcr_access.responded", request, payload, actor=actor, now=now)

    return store.requests.save(request_id, decide, publisher=publisher, topic=TOPIC, now=now)


# --- letters ------------------------------------------------------------------------------------


def record_letter(record: dict, letter: str, *, lang: str, fmt: str, actor: str, store: AdvocacyStore,
                  publisher: Publisher, now: dt.datetime) -> dict:
    """A letter was made for a request or an appeal: the record counts it in a new version whose
    outbox holds the audit.recorded of it (who made which letter, for which cases), so no letter
    is handed out that intake's audit trail will not show, even with intake or the broker down."""
    aggregates, record_id = (store.appeals, record["appeal_id"]) if letter == "appeal" \
        else (store.requests, record["request_id"])

    def decide(current: dict | None):
        if current is None:
            raise NotFound(record_id)
        audited = audit_events.recorded("letter_generated", producer="advocacy", actor=actor,
                                        case_ids=list(current["case_ids"]), object_id=record_id,
                                        detail=f"{letter} {lang} {fmt}", now=now)
        return {**current, "letters_made": int(current.get("letters_made") or 0) + 1}, [audited]

    return aggregates.save(record_id, decide, publisher=publisher, topic=TOPIC, now=now)


# --- appeals ------------------------------------------------------------------------------------


def create_appeal(cmd: dict, *, actor: str, store: AdvocacyStore, publisher: Publisher, settings: Settings,
                  now: dt.datetime) -> dict:
    """An appeal for known cases: refused (NoConsent) if any case's advocacy consent is none."""
    cases = _cases_for(cmd["case_ids"], store)
    domain.check_consent(cmd["case_ids"], cases)
    _check_recipients(cmd.get("recipients") or [], store)
    if cmd.get("issued_on") is not None and not cmd.get("recipients"):
        raise domain.NotAllowed("An issued appeal names at least one recipient.")
    appeal_id = str(uuid.uuid4())
    if cmd.get("issued_on") is None and cmd.get("due_by") is None:
        cmd = {**cmd, "due_by": now + dt.timedelta(hours=settings.appeal_due_hours)}
    appeal = domain.new_appeal(appeal_id, cmd, actor=actor, now=now)
    if appeal["status"] == "issued":
        events = _per_case("appeal.issued", appeal, {"appeal_id": appeal_id, "kind": appeal["kind"],
                                                     "recipients": appeal["recipients"],
                                                     "issued_on": appeal["issued_on"]}, actor=actor, now=now)
    else:
        events = _per_case("appeal.drafted", appeal, {"appeal_id": appeal_id, "kind": appeal["kind"],
                                                      "due_by": _iso(appeal["due_by"])}, actor=actor, now=now)
    return store.appeals.save(appeal_id, lambda current: None if current else (appeal, events),
                              publisher=publisher, topic=TOPIC, now=now)


def issue_appeal(appeal_id: str, cmd: dict, *, actor: str, store: AdvocacyStore, publisher: Publisher,
                 now: dt.datetime) -> dict:
    """Send a draft: its cases' consent is checked again as it stands today."""
    if cmd.get("recipients"):
        _check_recipients(cmd["recipients"], store)

    def decide(current: dict | None):
        if current is None:
            raise NotFound(appeal_id)
        domain.check_consent(current["case_ids"], _cases_for(current["case_ids"], store))
        appeal = domain.issue(current, issued_on=cmd["issued_on"], recipients=cmd.get("recipients"), actor=actor,
                              now=now)
        payload = {"appeal_id": appeal_id, "kind": appeal["kind"], "recipients": appeal["recipients"],
                   "issued_on": appeal["issued_on"]}
        return appeal, _per_case("appeal.issued", appeal, payload, actor=actor, now=now)

    return store.appeals.save(appeal_id, decide, publisher=publisher, topic=TOPIC, now=now)


def answer_appeal(appeal_id: str, cmd: dict, *, actor: str, store: AdvocacyStore, publisher: Publisher,
                  now: dt.datetime) -> dict:
    """Record the answer to an issued appeal, or that none came."""

    def decide(current: dict | None):
        if current is None:
            raise NotFound(appeal_id)
        appeal = domain.answer(current, outcome=cmd["outcome"], received_on=cmd["received_on"], actor=actor, now=now)
        payload = {"appeal_id": appeal_id, "outcome": cmd["outcome"], "received_on": cmd["received_on"].isoformat()}
        return appeal, _per_case("appeal.answered", appeal, payload, actor=actor, now=now)

    return store.appeals.save(appeal_id, decide, publisher=publisher, topic=TOPIC, now=now)


# --- the deportation clock (case events) --------------------------------------------------------


def on_case_event(event: dict, *, store: AdvocacyStore, publisher: Publisher, settings: Settings,
                  now: dt.datetime) -> None:
    """Keep advocacy's copy of the case; when the case becomes at imminent risk open a draft
    urgent appeal due in appeal_due_hours, and when it stops, note it on that draft.

    Safe to apply twice or to replay: the case copy records the events applied, and the draft's
    id comes from the event that started the episode, so the same episode never gets a second.
    """
    case_id = event["case_id"]
    before = store.get_case(case_id)
    if applied(before, event["event_id"]):
        return
    payload = {k: _iso(v) for k, v in event["payload"].items()}
    after = {**domain.apply_case_event(before, event["event_type"], payload), "_id": case_id}
    change = domain.clock_change(before, after)
    follow = {"causation_id": event["event_id"], "correlation_id": event["correlation_id"]}
    if change == "start":
        draft = domain.clock_draft(case_id, after, event["event_id"], event["occurred_at"],
                                   settings.appeal_due_hours, now)
        drafted = _per_case("appeal.drafted", draft, {"appeal_id": draft["appeal_id"], "kind": draft["kind"],
                                                      "due_by": draft["due_by"].isoformat()},
                            actor=None, now=now, **follow)
        store.appeals.save(draft["appeal_id"], lambda current: None if current else (draft, drafted),
                           publisher=publisher, topic=TOPIC, now=now)
        after["episode_appeal_id"] = draft["appeal_id"]
    elif change == "end" and after.get("episode_appeal_id"):
        ended_at = event["occurred_at"]

        def note_end(current: dict | None):
            changed = domain.end_episode(current, ended_at, now) if current else None
            return (changed, []) if changed else None

        store.appeals.save(after["episode_appeal_id"], note_end, publisher=publisher, topic=TOPIC, now=now)
        after["episode_appeal_id"] = None
    store.save_case(mark_applied(after, event["event_id"]))
