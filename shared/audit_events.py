"""How writes reach intake's audit trail (shared/audit.py), from wherever they happen.

- Another service's write (a status change, a snapshot, a letter, and intake's own merges):
  an `audit.recorded` event is stored in the SAME document write as the change it describes (the
  outbox of the version or record; shared/aggregates.py, shared/bus.py), so neither can exist
  without the other, and goes out on the producing service's own topic when the broker is there
  (the relay sends it later otherwise). Intake's consumer appends it to the chain once: an entry
  is claimed under the event id (`audit_events`, _id = event id) before it is appended, so a
  replayed or redelivered event adds nothing. It takes an audit event only from the topic of the
  service the event names as its producer (only that service's principal may write there), and
  names the account the event's `actor` is (the producer put the verified account's id there,
  from the token, never from a request body). Nothing typed travels: who, which action, which ids,
  when, and `detail` made of fixed words.
- Intake's own web process (failed logins, lockouts, ruling out a duplicate) and intake's
  commands on the server (key rotation, import, dead-letter replay) append directly: they hold
  audit.key. A command writes its entry BEFORE it acts and does nothing if it cannot, so no such
  write happens unaudited; its user is the server's login that ran it (`operator`), the only
  identity a command has verified.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import logging
import socket

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from shared.audit import AuditTrail
from shared.bus import RetryLater
from shared.config import TOPICS
from shared.events import AUDIT_EVENT, decode, new_event

log = logging.getLogger(__name__)

CLAIMS = "audit_events"  # intake's database: event id -> the position its entry took
# A claim without a position is an append under way (another consumer) or cut short (a crash):
# younger than this, wait for it; older, look for its entry and append it if it is not there.
CLAIM_PENDING_SECONDS = 30
# What each audited action is about (the entry's `what`).
WHAT = {"status_changed": "case", "cases_merged": "merge", "snapshot_taken": "snapshot",
        "letter_generated": "letter", "after_return_recorded": "after return", "asylum_recorded": "asylum",
        "login_failed": "login", "login_locked": "login",
        "duplicate_ruled_out": "duplicate review", "keys_rotated": "keys", "reports_imported": "import",
        "dead_letter_replayed": "dead letters", "recommendation_saved": "recommendation"}

# The actions of the trail's entries that are writes (every other entry is a read): "write"
# (assignments, consent, erasure), account changes (shared/accounts.py) and the writes above.
WRITE_ACTIONS = ("write", "user_created", "user_changed", "user_deleted", "password_reset", "password_changed",
                 "second_factor_reset", "second_factor_enrolled", "recovery_code_used", *WHAT)


def recorded(action: str, *, producer: str, actor: str, case_ids: list[str] | tuple = (), object_id: str | None = None,
             detail: str | None = None, now: dt.datetime | None = None, correlation_id: str | None = None,
             causation_id: str | None = None) -> dict:
    """The `audit.recorded` event of a write, to be stored in the write's own outbox. `actor` is
    the verified account's user id; `detail` fixed words only (the schema refuses anything else)."""
    if not actor:
        raise ValueError("an audited write needs the verified account that made it")
    key = case_ids[0] if case_ids else object_id
    return new_event(AUDIT_EVENT, producer=producer, case_id=key or producer, actor=actor, now=now,
                     correlation_id=correlation_id, causation_id=causation_id,
                     payload={"action": action, "case_ids": list(case_ids), "object_id": object_id, "detail": detail})


def refusal(record) -> str | None:
    """Why a consumed record may not be taken as an audit event (None if it may, or if it is not
    one): an `audit.recorded` counts only from the topic of the service it names as producer."""
    try:
        event = decode(record.value)
    except Exception:
        return None  # not an event at all: the consumer's own checks dead-letter it
    if not isinstance(event, dict) or event.get("event_type") != AUDIT_EVENT:
        return None
    producer = event.get("producer")
    if not isinstance(producer, str) or TOPICS.get(producer) != record.topic:
        return f"{AUDIT_EVENT} naming producer {str(producer)[:32]!r} refused on topic {record.topic}"
    if not event.get("actor"):
        return f"{AUDIT_EVENT} without an actor refused"
    return None


def entry_of(event: dict, username: str | None, now: dt.datetime) -> dict:
    """The trail entry of a consumed (validated) audit event."""
    payload = event["payload"]
    case_ids = list(payload.get("case_ids") or [])
    return {"at": event["occurred_at"], "recorded_at": now, "user_id": event["actor"], "username": username,
            "what": WHAT.get(payload["action"], payload["action"]), "action": payload["action"],
            "case_id": case_ids[0] if case_ids else "", "case_ids": case_ids, "object_id": payload.get("object_id"),
            "detail": payload.get("detail"), "service": event["producer"], "event_id": str(event["event_id"]),
            "report_id": None, "reason": None, "remote_addr": None, "out_of_assignment": False}


def append_once(trail: AuditTrail, claims: Collection, entry: dict, now: dt.datetime) -> dict | None:
    """Append an event's entry unless the event was appended before; the stored entry or None.

    The claim (_id = event id) is inserted first, atomically: of two consumers given the same event
    one claims it. A claim left without a position (a crash between claim and append) is finished
    after CLAIM_PENDING_SECONDS: its entry is looked for (a scan, on this rare path only) and
    appended if it is not there."""
    event_id = entry["event_id"]
    try:
        claims.insert_one({"_id": event_id, "at": now})
    except DuplicateKeyError:
        claim = claims.find_one({"_id": event_id}) or {}
        if claim.get("seq"):
            return None
        at = claim.get("at")
        if at is not None and (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)) > \
                now - dt.timedelta(seconds=CLAIM_PENDING_SECONDS):
            raise RetryLater(f"audit event {event_id} is being appended by another consumer") from None
        found = trail.entries.find_one({"event_id": event_id}, {"seq": 1})
        if found is not None:
            claims.update_one({"_id": event_id}, {"$set": {"seq": found.get("seq")}})
            return None
    doc = trail.append(entry)
    claims.update_one({"_id": event_id}, {"$set": {"seq": doc["seq"]}})
    return doc


def unknown_username_digest(key: bytes, username: str) -> str:
    """What the trail keeps of a login name that is no account (it may be a password typed in the
    wrong field): a keyed hash, so the same name is seen again without being readable."""
    from shared.throttle import normalise_username

    return hmac.new(key, b"audit-unknown-username\0" + normalise_username(username).encode(),
                    hashlib.sha256).hexdigest()[:32]


def command_entry(action: str, *, detail: str | None = None, case_id: str = "", object_id: str | None = None,
                  account: dict | None = None, now: dt.datetime | None = None) -> dict:
    """The entry a command run on the server writes before it acts: the server login that ran it
    (`operator`), and the account it acts as, when it names one (the importer's --as)."""
    return {"at": now or dt.datetime.now(dt.timezone.utc), "user_id": (account or {}).get("user_id"),
            "username": (account or {}).get("_id"), "operator": getpass.getuser(), "host": socket.gethostname(),
            "via": "command", "what": WHAT[action], "action": action, "case_id": case_id, "object_id": object_id,
            "detail": detail, "report_id": None, "reason": None, "remote_addr": None, "out_of_assignment": False}


def append_for_command(settings, entries: list[dict]) -> None:
    """Append a command's entries to intake's trail (it needs audit.key and intake's database; a
    KeyMissing or database error stops the command before it acts)."""
    from shared.audit import audit_trail
    from shared.mongo import connect

    client = connect(settings, "intake")
    try:
        audit_trail(client[settings.database_name("intake")], settings).append_many(entries)
    finally:
        client.close()
