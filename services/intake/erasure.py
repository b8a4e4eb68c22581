"""Erasing a person on request (issue 10 point 7): an admin, with a reason, audited.

What is destroyed, for the case and every case merged into it: the key of each of its reports
and of each consent a caseworker recorded for it (services/intake/datakeys.py: a copy of the
database taken before the erasure then holds ciphertexts nothing can open), the ciphertexts
themselves, the keyed hashes of the name (the person index entry, the name's letter pairs in the
near-match buckets, a submission's fingerprint: each could confirm a guessed name) and the sealed
reasons of recorded consents. What stays: the reports' non-identifying facts (sex, birth year,
province, dates, consent), so the case goes on counting in statistics as its consent allows.

Published (intake.events, never the reason): `person.erased` {statistics_withdrawn,
merged_case_ids}, on which
intake's consumer clears the near-match buckets and the case service drops the case's sealed
status reasons; and `consent.changed` when the erasure changes the case's consent (advocacy at
most `anonymous`: no name is left to give; statistics false when withdrawn too).

Idempotent: one erasure record per case (its _id is the case id); asking again finishes whatever
an interrupted erasure left undone and answers the first erasure's facts.
"""

from __future__ import annotations

import datetime as dt
import logging

from cryptography.exceptions import InvalidTag
from pymongo.errors import DuplicateKeyError

from shared.bus import Publisher, publish_outbox, with_outbox
from shared.crypto import UnknownKeyError
from shared.events import new_event

from services.intake import domain
from services.intake.datakeys import IntakeKeyring
from services.intake.handlers import TOPIC, AccessRefused, case_consent
from services.intake.store import IntakeStore

log = logging.getLogger(__name__)


class ErasureRefused(AccessRefused):
    """An erasure that cannot be done (no such case, a case merged into another)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


def erase_person(case_id: str, cmd: dict, *, actor: dict, remote_addr: str | None, store: IntakeStore,
                 keyring: IntakeKeyring, publisher: Publisher, now: dt.datetime) -> dict:
    """Destroy the identifying data of a case's person (admins only: the route checks the role).
    `cmd`: {"reason", "withdraw_statistics"}. The reason is sealed under the master key in the
    erasure record (it must outlive the erasure: the audit shows it to admins), never in an event,
    a log or the audit entry in clear. Returns what was done."""
    if not store.case_exists(case_id):
        raise ErasureRefused(404, "not_found", "Intake knows no case with that id.")
    merge = store.get_merge(case_id)
    if merge is not None:
        raise ErasureRefused(409, "merged", f"This case was merged into {merge['into_case_id']}; erase that case.")
    erasure, first = store.get_erasure(case_id), False
    if erasure is None:
        erasure, first = _record(case_id, cmd, actor=actor, remote_addr=remote_addr, store=store, keyring=keyring,
                                 now=now)
    done = forget(case_id, store=store, keyring=keyring, now=now)
    if first:
        publish_outbox(store.erasures, erasure, TOPIC, publisher)
        log.info("case %s erased by user %s: %d report(s), %d key(s) destroyed", case_id, actor["id"],
                 done["reports"], done["keys_destroyed"])
    return {"case_id": case_id, "erased_at": erasure["at"], "erased_by": erasure.get("by_username"),
            "already_erased": not first, "statistics_withdrawn": bool(erasure.get("statistics_withdrawn")),
            "reports_erased": done["reports"], "consent": case_consent(case_id, store=store)}


def _record(case_id: str, cmd: dict, *, actor: dict, remote_addr: str | None, store: IntakeStore,
            keyring: IntakeKeyring, now: dt.datetime) -> tuple[dict, bool]:
    """Store the erasure with its events (one write) and audit it; (the record, True), or the
    record a colleague stored the same moment and False."""
    withdraw = bool(cmd.get("withdraw_statistics"))
    before = case_consent(case_id, store=store)
    events = [new_event("person.erased", producer="intake", case_id=case_id, actor=actor["id"], now=now,
                        payload={"statistics_withdrawn": withdraw,
                                 "merged_case_ids": store.cases_merged_into(case_id)})]
    if before is not None:
        after = domain.consent_after_erasure(before, statistics_withdrawn=withdraw)
        if (after["advocacy"], after["statistics"]) != (before["advocacy"], before["statistics"]):
            events.append(new_event("consent.changed", producer="intake", case_id=case_id, actor=actor["id"],
                                    now=now, correlation_id=events[0]["event_id"],
                                    causation_id=events[0]["event_id"], payload=domain.consent_payload(after, None)))
    doc = with_outbox({"_id": case_id, "by": actor["id"], "by_username": actor.get("username"), "at": now,
                       "statistics_withdrawn": withdraw,
                       "reason_sealed": keyring.encrypt_lasting({"reason": cmd["reason"].strip()},
                                                                bound_to=f"erasure:{case_id}")}, events, now)
    try:
        store.insert_erasure(doc)
    except DuplicateKeyError:
        return store.get_erasure(case_id), False
    store.record_access({"at": now, "user_id": actor["id"], "username": actor.get("username"), "report_id": None,
                         "case_id": case_id, "reason": None, "remote_addr": remote_addr, "what": "erasure",
                         "action": "write", "out_of_assignment": False, "erasure_id": case_id,
                         "detail": "identifying data erased; statistics consent "
                                   f"{'withdrawn' if withdraw else 'unchanged'}"})
    return doc, True


def forget(case_id: str, *, store: IntakeStore, keyring: IntakeKeyring, now: dt.datetime) -> dict:
    """Destroy what identifies the person of a case (and of the cases merged into it); every step
    can be repeated. The keys go first and again last: a key made meanwhile for one of these
    records (an old record re-sealed by a migration) does not survive."""
    cases = [case_id, *store.cases_merged_into(case_id)]
    reports = [r for c in cases for r in store.reports_of_case(c)]
    commands = store.consent_command_ids(cases)
    records = [r["_id"] for r in reports] + commands
    destroyed = sum(keyring.destroy(record_id) for record_id in records)
    for report in reports:
        store.forget_report(report["_id"], now)
    store.forget_persons(cases, [r["person_key"] for r in reports if r.get("person_key")])
    store.forget_consent_reasons(commands)
    destroyed += sum(keyring.destroy(record_id) for record_id in records)
    return {"reports": len(reports), "keys_destroyed": destroyed}


def on_person_erased(event: dict, *, store: IntakeStore) -> None:
    """intake.events / person.erased (intake's own): take the case's reports out of the near-match
    buckets (their hashed name pairs). Safe to apply twice."""
    case_id = event["case_id"]
    reports = [r for c in (case_id, *store.cases_merged_into(case_id)) for r in store.reports_of_case(c)]
    buckets = {b for r in reports for b in store.near_bucket_ids(r["person"].get("birth_year"),
                                                                 r["detention"].get("province"))}
    store.drop_from_near_buckets([r["_id"] for r in reports], sorted(buckets))


def erasure_reason(case_id: str, *, store: IntakeStore, keyring: IntakeKeyring) -> str | None:
    """The reason an admin gave for erasing a case (for the audit's readers: admins), or None."""
    doc = store.erasures.find_one({"_id": case_id}, {"reason_sealed": 1})
    if not doc or not doc.get("reason_sealed"):
        return None
    try:
        return keyring.decrypt_lasting(doc["reason_sealed"], bound_to=f"erasure:{case_id}")["reason"]
    except (UnknownKeyError, InvalidTag):  # its master key retired before a rotation re-sealed it
        log.warning("erasure reason of case %s cannot be opened with the configured master keys", case_id)
        return None


def with_erasure_reasons(entries: list[dict], *, store: IntakeStore, keyring: IntakeKeyring) -> list[dict]:
    """Audit entries as an admin reads them: an erasure's entry shows the reason given."""
    return [{**e, "reason": erasure_reason(e["erasure_id"], store=store, keyring=keyring)}
            if e.get("what") == "erasure" and e.get("erasure_id") else e for e in entries]
