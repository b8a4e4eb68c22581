"""Intake's commands: one plain function each, given what it needs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import uuid

from pymongo.errors import DuplicateKeyError

from shared import audit_events
from shared.bus import Publisher, publish_outbox, with_outbox
from shared.config import TOPICS
from shared.crypto import Keyring
from shared.events import new_event

from services.intake import domain
from services.intake.datakeys import Erased
from services.intake.schemas import ReportIn
from services.intake.store import IntakeStore, find_account

TOPIC = TOPICS["intake"]
SERVICE_ROLE = "service"  # another service's own account (shared.auth), not a person
log = logging.getLogger(__name__)


# Report ids of submissions that carry a key: the same key from the same user, the same report.
SUBMISSION_NAMESPACE = uuid.UUID("5b1f0e36-7a53-4f0c-9a43-2f3b8d1c6e90")
SUBMISSION_PURPOSE = "submission"
SUBMISSION_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")


class SubmissionConflict(Exception):
    """A submission key used again for a different report."""


def _submission(report: dict, actor: str, key: str, keyring: Keyring) -> tuple[str, str]:
    """(report id, keyed fingerprint of the report) for a submission key: the fingerprint tells a
    repeat of the same report from a different one without storing anything readable."""
    canonical = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(SUBMISSION_NAMESPACE, f"{actor}\n{key}")), \
        keyring.blind_tokens([canonical], SUBMISSION_PURPOSE)[0]


def _already_submitted(store: IntakeStore, report_id: str, fingerprint: str) -> dict | None:
    """The answer given to the first submission of this key, or None if there was none."""
    stored = store.get_report(report_id)
    if stored is None:
        return None
    if stored.get("submission") != fingerprint:
        raise SubmissionConflict(report_id)
    # Journalled again: the first sending may have stored the report and lost the database before
    # its journal entry (its client got a 503 and sent it again), and the lists follow the journal.
    store.journal_report(report_id)
    return {"report_id": report_id, "case_id": stored["case_id"],
            "matched_existing_case": stored["matched_existing_case"], "replayed": True}


def submit_report(report: dict, *, actor: str, actor_name: str | None, store: IntakeStore, keyring: Keyring,
                  publisher: Publisher, now: dt.datetime, submission_key: str | None = None) -> dict:
    """Store a validated report (identifying fields encrypted) with its case.reported event, then
    publish the event. The broker being down never fails the save: the relay sends it later.
    Whoever files a new case's first report is its first assignee (`actor`, `actor_name`: their
    user id and username).

    With a submission key (the API's Idempotency-Key, the form's hidden submission id), sending
    the same report again answers what the first sending stored, so a client that got no answer
    (the database went away mid-request) can safely send it again; the same key with a different
    report raises SubmissionConflict. The result says `replayed` when it was such a repeat."""
    report = ReportIn().dump(report)  # dates as ISO strings, the form both storage and events use
    fingerprint = None
    if submission_key is not None:
        report_id, fingerprint = _submission(report, actor, submission_key, keyring)
        earlier = _already_submitted(store, report_id, fingerprint)
        if earlier is not None:
            return earlier
    else:
        report_id = str(uuid.uuid4())
    person_key = keyring.blind_index(domain.person_match_key(report["person"]["full_name"],
                                                             report["person"].get("birth_year")))
    case_id, matched = store.claim_person(person_key, str(uuid.uuid4()), now, report_id)
    if not matched:  # before the report: a case is never readable by nobody because of a crash here
        store.assign_first(case_id, _assignee(actor, actor_name, by_id=actor, by_name=actor_name, now=now,
                                              via="first_report"), now)
    secret, clear = domain.split_identifying(report)
    event = new_event("case.reported", producer="intake", case_id=case_id, actor=actor, now=now,
                      payload=domain.case_reported_payload(report_id, matched, report))
    doc = {
        "_id": report_id,
        "case_id": case_id,
        "matched_existing_case": matched,
        "person_key": person_key,
        "name_grams": keyring.blind_tokens(domain.name_bigrams(report["person"]["full_name"]), domain.NAME_GRAM_PURPOSE),
        **clear,
        "sealed": keyring.encrypt(secret, bound_to=report_id),
        "created_at": now,
        "created_by": actor,
        **({"submission": fingerprint} if fingerprint else {}),
    }
    events = [event]
    if matched:  # a later report: it may narrow the case's consent or disagree with it, never widen it
        events += _consent_after_report(case_id, report["consent"], store=store, actor=actor, now=now,
                                        causation_id=event["event_id"])
    doc = with_outbox(doc, events, now)
    try:
        store.insert_report(doc)
    except DuplicateKeyError:
        if fingerprint is None:
            raise
        return _already_submitted(store, report_id, fingerprint)  # the same key sent twice at once
    publish_outbox(store.reports, doc, TOPIC, publisher)
    return {"report_id": report_id, "case_id": case_id, "matched_existing_case": matched, "replayed": False}


class AccessRefused(Exception):
    """A read or a change of need-to-know refused; `status` and `code` say why, for the API and pages."""

    status = 403
    code = "forbidden"


class NoConsent(AccessRefused):
    """A name asked for a letter about a person whose reports do not all consent to be named."""

    code = "no_consent"


class PersonErased(AccessRefused):
    """The person's identifying data was erased: there is nothing left to read."""

    status = 410
    code = "erased"

    def __init__(self, message: str = "This person's identifying data was erased on request; it cannot be read."):
        super().__init__(message)


def is_erased(doc: dict) -> bool:
    """True if a stored report's identifying data was erased."""
    return bool(doc.get("erased_at")) or doc.get("sealed", True) is None


class NotAssigned(AccessRefused):
    """A caseworker reading a case they are not assigned to, without a reason; or managing the
    assignees of such a case."""

    code = "not_assigned"


class ReadLimitReached(AccessRefused):
    """The reader has had as many identifying reads this hour as the limit allows."""

    status = 429
    code = "read_limit"

    def __init__(self, limit: int, retry_after: int):
        super().__init__(f"limit of {limit} identifying reads per hour reached")
        self.limit = limit
        self.retry_after = retry_after


class AssignmentRefused(AccessRefused):
    """An assignment that cannot be made (no such case, no such caseworker)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


def _needs_reason(doc: dict, reader: dict, store: IntakeStore, assigned_cache: dict | None = None) -> bool:
    """True if `reader` needs a reason to read this report (domain.needs_reason); whether they are
    assigned to its case is looked up only if it matters, once per case with a cache."""
    cache = assigned_cache if assigned_cache is not None else {}

    def assigned() -> bool:
        if doc["case_id"] not in cache:
            cache[doc["case_id"]] = store.is_assigned(doc["case_id"], reader["id"])
        return cache[doc["case_id"]]

    return domain.needs_reason(reader, author=doc.get("created_by") == reader["id"], assigned=assigned)


def _count_read(entry: dict, *, reader: dict, store: IntakeStore, now: dt.datetime, reads_per_hour: int) -> None:
    """Count one identifying read against the reader's hourly limit; past it, audit the refusal,
    raise the admins' alert and raise ReadLimitReached."""
    hour = domain.read_hour(now)
    if store.take_read(reader["id"], hour, reads_per_hour, {"at": now, "report_id": entry["report_id"],
                                                            "case_id": entry["case_id"]}):
        return
    store.record_access({**entry, "refused": "read_limit"})
    store.record_refusal(user_id=reader["id"], username=reader.get("username"), hour=hour, limit=reads_per_hour,
                         now=now, doc={"report_id": entry["report_id"], "case_id": entry["case_id"]})
    log.warning("identifying read refused: user %s is past the limit of %d reads in the hour from %s",
                reader["id"], reads_per_hour, hour.isoformat())
    raise ReadLimitReached(reads_per_hour, domain.seconds_to_next_hour(now))


def read_report(report_id: str, *, reader: dict, reason: str | None, remote_addr: str | None, store: IntakeStore,
                keyring: Keyring, now: dt.datetime, reads_per_hour: int, fallback_reason: str | None = None) -> dict | None:
    """A report with its identifying data decrypted; the read is written to the audit trail first.

    Need to know: a caseworker neither assigned to the report's case nor its author must give a
    `reason` (else NotAssigned), and the read is then flagged out of assignment. Every read counts
    against the reader's hourly limit (ReadLimitReached past it: the refusal is audited and the
    admins alerted). `fallback_reason` is what the audit says when the reader gave none.
    """
    doc = store.get_report(report_id)
    if doc is None:
        return None
    if is_erased(doc):
        raise PersonErased()
    reason = domain.clean_reason(reason)
    out_of_assignment = _needs_reason(doc, reader, store)
    if out_of_assignment and not domain.valid_reason(reason):
        raise NotAssigned(doc["case_id"])
    entry = {
        "at": now,
        "user_id": reader["id"],
        "username": reader["username"],
        "report_id": report_id,
        "case_id": doc["case_id"],
        "reason": reason or fallback_reason,
        "remote_addr": remote_addr,
        "what": "report",
        "action": "read",
        "out_of_assignment": out_of_assignment,
    }
    _count_read(entry, reader=reader, store=store, now=now, reads_per_hour=reads_per_hour)
    store.record_access(entry)
    try:
        secret = keyring.decrypt(doc["sealed"], bound_to=report_id)
    except Erased:
        raise PersonErased() from None
    report = {k: v for k, v in doc.items() if k not in ("_id", "sealed", "outbox", "rev",
                                                         "person_key", "updated_at")}
    report["report_id"] = report_id
    report["person"] = {**doc["person"], **{k: v for k, v in secret["person"].items() if v is not None}}
    report["detention"] = {**doc["detention"], **{k: v for k, v in secret["detention"].items() if v is not None}}
    report["notes"] = secret.get("notes")
    report["out_of_assignment"] = out_of_assignment
    return report


MAX_POSSIBLE_DUPLICATES = 5


def possible_duplicates(report_id: str, *, store: IntakeStore) -> list[dict] | None:
    """Other cases whose reports name someone similar with the same birth year or province, best
    first (one entry per case, its closest report), leaving out pairs a caseworker has ruled
    out. Works on hashed letter pairs only: nothing is decrypted. None if no such report.

    Reads the report's two near-match buckets (kept by intake's consumer within seconds of a
    report); a case merged since an entry was filed counts as the case it was merged into.
    """
    doc = store.get_report(report_id)
    if doc is None:
        return None
    grams = doc.get("name_grams") or []
    year, province = doc["person"].get("birth_year"), doc["detention"].get("province")
    own_case = store.current_case(doc["case_id"])
    scored = sorted(((domain.similarity(grams, entry["g"]), entry) for entry in store.near_entries(year, province)
                     if entry["r"] != report_id), key=lambda pair: (-pair[0], pair[1]["r"]))
    current: dict[str, str] = {}
    shown: list[dict] = []
    seen: set[str] = set()
    for score, entry in scored:  # best first; lookups by _id only for as many as are shown
        if score < domain.NEAR_MATCH_THRESHOLD or len(shown) == MAX_POSSIBLE_DUPLICATES:
            break
        case_id = current.setdefault(entry["c"], store.current_case(entry["c"]))
        if case_id == own_case or case_id in seen:
            continue
        seen.add(case_id)
        if store.is_distinct(own_case, case_id):
            continue
        shown.append({"case_id": case_id, "report_id": entry["r"], "similarity": round(score, 2),
                      "birth_year": entry["y"], "province": entry["p"],
                      "same_birth_year": year is not None and entry["y"] == year,
                      "same_province": bool(province) and entry["p"] == province})
    return shown


def on_case_reported(event: dict, *, store: IntakeStore) -> None:
    """intake.events / case.reported (intake's own): file the report in its near-match buckets.
    Safe to apply twice (the same entry is added once)."""
    doc = store.get_report(event["payload"]["report_id"])
    if doc is not None and not is_erased(doc):
        store.add_to_near_buckets(doc)


def name_for_letter(case_id: str, *, reader: dict, reason: str, remote_addr: str | None, store: IntakeStore,
                    keyring: Keyring, now: dt.datetime, reads_per_hour: int) -> str | None:
    """The name on a case's newest report, for a letter naming the person (advocacy asks, with
    the person's consent to be named); audited like every read. None if intake has no report.
    A person (an admin may call this too) has the read counted against their hourly limit; the
    service account has its own rules."""
    doc = store.latest_report_of_case(case_id)
    if doc is None:
        return None
    if is_erased(doc) or store.get_erasure(case_id) is not None:
        raise PersonErased()
    # Intake is the authority on consent, whoever asks: the case's consent as intake's own records
    # hold it (the consent a caseworker recorded, narrowed by any report since; without one, the
    # most restrictive of its reports) must be `named`, not what another service's copy says.
    consent = case_consent(case_id, store=store)
    if consent is None or consent["advocacy"] != "named":
        raise NoConsent("This person has not consented to be named in letters.")
    entry = {"at": now, "user_id": reader["id"], "username": reader["username"], "report_id": doc["_id"],
             "case_id": case_id, "reason": reason, "remote_addr": remote_addr, "what": "name for letter",
             "action": "read", "out_of_assignment": False}
    if SERVICE_ROLE not in reader.get("roles", ()):
        _count_read(entry, reader=reader, store=store, now=now, reads_per_hour=reads_per_hour)
    store.record_access(entry)
    try:
        return keyring.decrypt(doc["sealed"], bound_to=doc["_id"])["person"]["full_name"]
    except Erased:
        raise PersonErased() from None


def names_for_review(report_ids: list[str], *, reader: dict, context: str, reason: str | None,
                     remote_addr: str | None, store: IntakeStore, keyring: Keyring, now: dt.datetime,
                     reads_per_hour: int) -> dict[str, str]:
    """The names on a few reports, for a caseworker comparing possible duplicates; each read is
    in the audit trail (written before anything is decrypted). The name of a case the reader may
    not read without a reason is left out unless they gave one (`reason`; the read is then
    flagged out of assignment) and counts against the reader's hourly limit like any read of
    another person's case: past the limit it is withheld (the refusal audited, admins alerted).
    The names of the reader's own cases are part of the page's one counted read."""
    docs = [d for d in (store.get_report(r) for r in report_ids) if d is not None and not is_erased(d)]
    reason, assigned = domain.clean_reason(reason), {}
    entries, shown = [], []
    for doc in docs:
        out = _needs_reason(doc, reader, store, assigned)
        if out and not domain.valid_reason(reason):
            continue
        entry = {"at": now, "user_id": reader["id"], "username": reader["username"], "report_id": doc["_id"],
                 "case_id": doc["case_id"], "reason": f"{context}: {reason}" if out else context,
                 "remote_addr": remote_addr, "what": "duplicate review", "action": "read", "out_of_assignment": out}
        if out:
            try:
                _count_read(entry, reader=reader, store=store, now=now, reads_per_hour=reads_per_hour)
            except ReadLimitReached:
                continue
        entries.append(entry)
        shown.append(doc)
    store.record_accesses(entries)
    names = {}
    for doc in shown:
        try:
            names[doc["_id"]] = keyring.decrypt(doc["sealed"], bound_to=doc["_id"])["person"]["full_name"]
        except Erased:
            continue  # erased between the look-up and now
    return names


# --- assignments ----------------------------------------------------------------------------------


def _assignee(user_id: str, username: str | None, *, by_id: str, by_name: str | None, now: dt.datetime,
              via: str) -> dict:
    return {"user_id": user_id, "username": username, "assigned_by": by_name, "assigned_by_id": by_id,
            "assigned_at": now, "via": via}


def _may_manage_assignees(case_id: str, reader: dict, store: IntakeStore) -> None:
    """Admins and the case's assigned caseworkers see and change its assignees; 404 for an unknown
    case, NotAssigned for anyone else."""
    if not store.case_exists(case_id):
        raise AssignmentRefused(404, "not_found", "Intake knows no case with that id.")
    if "admin" not in reader.get("roles", ()) and not store.is_assigned(case_id, reader["id"]):
        raise NotAssigned(case_id)


def case_assignees(case_id: str, *, reader: dict, store: IntakeStore) -> list[dict]:
    """Who is assigned to a case (admins and the case's assignees may ask)."""
    _may_manage_assignees(case_id, reader, store)
    return store.assignees(case_id) or []


def assign_caseworker(case_id: str, username: str, *, actor: dict, store: IntakeStore, accounts,
                      remote_addr: str | None, now: dt.datetime) -> list[dict]:
    """An admin or an assigned caseworker adds a caseworker to a case's assignees (once: adding
    someone already assigned changes nothing). The change is written to the audit trail.
    `accounts` is the identity database's users collection. Returns the assignees."""
    _may_manage_assignees(case_id, actor, store)
    user = find_account(accounts, username)
    if user is None or user.get("active") is False:
        raise AssignmentRefused(422, "unknown_user", "There is no active user with that username.")
    if "caseworker" not in user.get("roles", ()):
        raise AssignmentRefused(422, "not_a_caseworker", "Only caseworkers are assigned to cases.")
    added = store.add_assignees(case_id, [_assignee(user["user_id"], username, by_id=actor["id"],
                                                    by_name=actor.get("username"), now=now, via="assigned")], now)
    if added:
        store.record_access({"at": now, "user_id": actor["id"], "username": actor.get("username"), "report_id": None,
                             "case_id": case_id, "reason": None, "remote_addr": remote_addr, "what": "assignment",
                             "action": "write", "detail": f"assigned {username}", "out_of_assignment": False})
    return store.assignees(case_id) or []


def rule_out_duplicate(case_id: str, other_case_id: str, *, actor: dict, remote_addr: str | None, store: IntakeStore,
                       now: dt.datetime) -> None:
    """A caseworker's finding that two cases are different people ("not the same person"): the pair
    leaves the review of possible duplicates. Audited first, so the finding is never stored unaudited."""
    store.record_access({"at": now, "user_id": actor["id"], "username": actor.get("username"), "report_id": None,
                         "case_id": case_id, "case_ids": [case_id, other_case_id], "reason": None,
                         "remote_addr": remote_addr, "what": audit_events.WHAT["duplicate_ruled_out"],
                         "action": "duplicate_ruled_out", "out_of_assignment": False})
    store.mark_distinct(case_id, other_case_id, actor=actor["id"], now=now)


def on_audit_recorded(event: dict, *, trail, claims, usernames, now: dt.datetime) -> None:
    """audit.recorded (any service's, taken only from its own topic: the consumer checks): append
    it to the audit trail once, naming the account its actor is."""
    user_id = event["actor"]
    entry = audit_events.entry_of(event, usernames({user_id}).get(user_id), now)
    if audit_events.append_once(trail, claims, entry, now) is not None:
        log.info("audit: appended %s %s action=%s", event["event_id"], event["event_type"], entry["action"])


class MergeRefused(Exception):
    """A merge that cannot be done; `code` and `status` say why, for the API and the page."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


def merge_cases(case_id: str, into_case_id: str, *, actor: dict, store: IntakeStore, publisher: Publisher,
                now: dt.datetime) -> dict:
    """A caseworker confirmed two cases are one person: `case_id`'s reports move to `into_case_id`
    and `case.merged` tells the case service to close `case_id` as a duplicate. `actor` is the
    user: an admin, or a caseworker assigned to both cases (a merge moves one case's identifying
    data into the other and its assignees with it, so it is not a way around need to know).

    The merge record and its event are one write (unique per merged case, so two caseworkers
    confirming at once merge it once); carrying the merged case's assignees over to `into_case_id`
    and moving the reports are idempotent and are finished by repeating the same merge if it was
    interrupted.
    """
    if case_id == into_case_id:
        raise MergeRefused(422, "same_case", "A case cannot be merged into itself.")
    merged_into = store.get_merge(into_case_id)
    if merged_into is not None:
        raise MergeRefused(409, "already_merged",
                           f"Case {into_case_id} was itself merged into {merged_into['into_case_id']}; merge into that one.")
    previous, doc = store.get_merge(case_id), None
    if previous is None and (not store.case_known(case_id) or not store.case_known(into_case_id)):
        raise MergeRefused(404, "not_found", "No reports are filed under one of these cases.")
    if "admin" not in actor.get("roles", ()) and not all(store.is_assigned(c, actor["id"])
                                                         for c in (case_id, into_case_id)):
        raise MergeRefused(403, "not_assigned", "Only an admin or a caseworker assigned to both cases merges them.")
    if previous is None and any(store.get_erasure(c) is not None for c in (case_id, into_case_id)):
        raise MergeRefused(409, "erased", "One of these cases was erased: nothing can be known to be the same person.")
    if previous is None:
        event = new_event("case.merged", producer="intake", case_id=case_id, actor=actor["id"], now=now,
                          payload={"into_case_id": into_case_id})
        audited = audit_events.recorded("cases_merged", producer="intake", actor=actor["id"],
                                        case_ids=[case_id, into_case_id], now=now,
                                        correlation_id=event["correlation_id"], causation_id=event["event_id"])
        doc = with_outbox({"_id": case_id, "into_case_id": into_case_id, "merged_by": actor["id"], "merged_at": now},
                          [event, audited], now)
        try:
            store.insert_merge(doc)
        except DuplicateKeyError:
            previous = store.get_merge(case_id)  # a colleague confirmed the same moments ago
        else:
            previous = doc
    if previous["into_case_id"] != into_case_id:
        raise MergeRefused(409, "already_merged", f"Case {case_id} was already merged into {previous['into_case_id']}.")
    carried = store.assignees(case_id) or []  # before the reports move: they stay readable by the same people
    if carried:
        store.add_assignees(into_case_id, [{**a, "via": "merge", "from_case_id": case_id} for a in carried], now)
    moved = store.move_reports(case_id, into_case_id)
    if doc is not None and previous is doc:  # the writer publishes its own event; a repeat leaves any unsent one to the relay
        publish_outbox(store.merges, doc, TOPIC, publisher)
    return {"case_id": case_id, "into_case_id": into_case_id, "moved_reports": moved,
            "merged_at": previous["merged_at"]}


# --- consent --------------------------------------------------------------------------------------


def _consent_inputs(case_id: str, store: IntakeStore) -> tuple[dict | None, list[dict]]:
    """The newest consent recorded for a case (or None) and the consents of the reports filed
    since, oldest first (every report of the case when none was recorded)."""
    command = store.latest_consent_command(case_id)
    covered = set(command["covers"]) if command else set()
    since = sorted((r for r in store.reports_of_case(case_id) if r["_id"] not in covered and r.get("consent")),
                   key=lambda r: r["created_at"])
    return command, [{"advocacy": r["consent"]["advocacy"], "statistics": r["consent"]["statistics"]} for r in since]


def _effective(command: dict | None, consents: list[dict], erasure: dict | None = None) -> dict | None:
    effective = domain.effective_consent(
        {"advocacy": command["advocacy"], "statistics": command["statistics"]} if command else None, consents)
    if effective is not None:
        effective.update(given_by=command["given_by"] if command else None,
                         recorded_at=command["at"] if command else None)
        if erasure is not None:  # no name is left to give, and statistics as the erasure left them
            effective = domain.consent_after_erasure(
                effective, statistics_withdrawn=domain.erasure_withdraws_statistics(erasure, command))
    return effective


def case_consent(case_id: str, *, store: IntakeStore) -> dict | None:
    """A case's consent as intake holds it (domain.effective_consent): the newest consent a
    caseworker recorded, narrowed by the reports filed since (those it did not cover); without
    one, the most restrictive of all the case's reports. None if intake knows neither."""
    return _effective(*_consent_inputs(case_id, store), store.get_erasure(case_id))


def _consent_after_report(case_id: str, consent: dict, *, store: IntakeStore, actor: str, now: dt.datetime,
                          causation_id: str) -> list[dict]:
    """The consent.changed event a new report of an existing case calls for: when it narrows the
    case's consent or makes the consents that count disagree (none otherwise). Consumers then need
    not recompute; the reports themselves stay the record intake decides from.

    Two reports of one case filed at the same instant may each miss the other here, so one
    consent.changed may be missing: the event is a convenience, the name endpoint recomputes."""
    command, consents = _consent_inputs(case_id, store)
    erasure = store.get_erasure(case_id)
    before = _effective(command, consents, erasure)
    after = _effective(command, consents + [{"advocacy": consent["advocacy"], "statistics": consent["statistics"]}],
                       erasure)
    if not domain.consent_changed(before, after):
        return []
    return [new_event("consent.changed", producer="intake", case_id=case_id, actor=actor, now=now,
                      correlation_id=causation_id, causation_id=causation_id,
                      payload=domain.consent_payload(after, None))]


class ConsentRefused(AccessRefused):
    """A consent that cannot be recorded (no such case, a case merged into another)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


def record_consent(case_id: str, cmd: dict, *, actor: dict, remote_addr: str | None, store: IntakeStore,
                   keyring: Keyring, publisher: Publisher, now: dt.datetime) -> dict:
    """A caseworker records the consent the person (or their family or representative) gave: from
    now on it is the case's consent, widening or narrowing it, and later reports only ever narrow
    it. An admin, or a caseworker assigned to the case (NotAssigned otherwise; 404 for a case
    intake does not know, 409 for a case merged into another).

    The reason is free text about a person: it is sealed in the command's record under a key of
    its own (services/intake/datakeys.py: erasing the person destroys it) and goes neither into
    the event, nor the audit entry, nor a log. The audit entry says
    who recorded which consent, given by whom; consent.changed goes out with the record (one write).
    """
    if not store.case_known(case_id):
        raise ConsentRefused(404, "not_found", "Intake knows no case with that id.")
    merge = store.get_merge(case_id)
    if merge is not None:
        raise ConsentRefused(409, "merged", f"This case was merged into {merge['into_case_id']}; record the "
                                            "consent there.")
    if "admin" not in actor.get("roles", ()) and not store.is_assigned(case_id, actor["id"]):
        raise NotAssigned(case_id)
    command_id = str(uuid.uuid4())
    consent = {"advocacy": cmd["advocacy"], "statistics": bool(cmd["statistics"]), "disputed": False}
    if store.get_erasure(case_id) is not None:  # the person was erased: there is no name to consent to give
        consent = domain.consent_after_erasure(consent, statistics_withdrawn=False)
    event = new_event("consent.changed", producer="intake", case_id=case_id, actor=actor["id"], now=now,
                      payload=domain.consent_payload(consent, cmd["given_by"]))
    doc = with_outbox({
        "_id": command_id, "case_id": case_id, "advocacy": consent["advocacy"], "statistics": consent["statistics"],
        "given_by": cmd["given_by"], "covers": [r["_id"] for r in store.reports_of_case(case_id)],
        "reason_sealed": keyring.encrypt({"reason": cmd["reason"]}, bound_to=command_id),
        "by": actor["id"], "by_username": actor.get("username"), "at": now,
    }, [event], now)
    store.insert_consent_command(doc)
    store.record_access({"at": now, "user_id": actor["id"], "username": actor.get("username"), "report_id": None,
                         "case_id": case_id, "reason": None, "remote_addr": remote_addr, "what": "consent",
                         "action": "write", "out_of_assignment": False, "consent_command_id": command_id,
                         "detail": f"advocacy {consent['advocacy']}, statistics "
                                   f"{'yes' if consent['statistics'] else 'no'}, given by {cmd['given_by']}"})
    publish_outbox(store.consent_commands, doc, TOPIC, publisher)
    return {"case_id": case_id, **(case_consent(case_id, store=store) or {})}
