"""Intake's commands: one plain function each, given what it needs."""

from __future__ import annotations

import datetime as dt
import uuid

from shared.bus import Publisher, publish_outbox, with_outbox
from shared.crypto import Keyring
from shared.events import new_event

from services.intake import domain
from services.intake.schemas import ReportIn
from services.intake.store import IntakeStore

TOPIC = "intake.events"


def submit_report(report: dict, *, actor: str, store: IntakeStore, keyring: Keyring, publisher: Publisher,
                  now: dt.datetime) -> dict:
    """Store a validated report (identifying fields encrypted) with its case.reported event, then
    publish the event. The broker being down never fails the save: the relay sends it later."""
    report = ReportIn().dump(report)  # dates as ISO strings, the form both storage and events use
    report_id = str(uuid.uuid4())
    person_key = keyring.blind_index(domain.person_match_key(report["person"]["full_name"],
                                                             report["person"].get("birth_year")))
    case_id, matched = store.claim_person(person_key, str(uuid.uuid4()), now)
    secret, clear = domain.split_identifying(report)
    event = new_event("case.reported", producer="intake", case_id=case_id, actor=actor, now=now,
                      payload=domain.case_reported_payload(report_id, matched, report))
    doc = {
        "_id": report_id,
        "case_id": case_id,
        "matched_existing_case": matched,
        "person_key": person_key,
        **clear,
        "sealed": keyring.encrypt(secret, bound_to=report_id),
        "created_at": now,
        "created_by": actor,
    }
    doc = with_outbox(doc, [event], now)
    store.insert_report(doc)
    publish_outbox(store.reports, doc, TOPIC, publisher)
    return {"report_id": report_id, "case_id": case_id, "matched_existing_case": matched}


def read_report(report_id: str, *, reader: dict, reason: str | None, remote_addr: str | None, store: IntakeStore,
                keyring: Keyring, now: dt.datetime) -> dict | None:
    """A report with its identifying data decrypted; the read is written to the audit trail first."""
    doc = store.get_report(report_id)
    if doc is None:
        return None
    store.record_access({
        "at": now,
        "user_id": reader["id"],
        "username": reader["username"],
        "report_id": report_id,
        "case_id": doc["case_id"],
        "reason": reason,
        "remote_addr": remote_addr,
        "what": "report",
    })
    secret = keyring.decrypt(doc["sealed"], bound_to=report_id)
    report = {k: v for k, v in doc.items() if k not in ("_id", "sealed", "outbox", "outbox_pending", "rev",
                                                         "person_key", "updated_at")}
    report["report_id"] = report_id
    report["person"] = {**doc["person"], **{k: v for k, v in secret["person"].items() if v is not None}}
    report["detention"] = {**doc["detention"], **{k: v for k, v in secret["detention"].items() if v is not None}}
    report["notes"] = secret.get("notes")
    return report
