"""The case's pure rules: the status state machine and how reports shape a case. No I/O."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from shared.events import ASYLUM_STEPS, ILL_TREATMENT, LABOUR_WORK, SENTENCED_OUTCOMES
from shared.i18n import N_

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("detained", "deportation_imminent", "repatriated", "released", "in_third_country",
                 "whereabouts_unknown", "closed_duplicate", "closed_unfounded"),
    "detained": ("deportation_imminent", "repatriated", "released", "in_third_country", "deceased",
                 "whereabouts_unknown"),
    "deportation_imminent": ("detained", "repatriated", "released", "in_third_country", "deceased",
                             "whereabouts_unknown"),
    "released": ("detained", "in_third_country", "resettled", "whereabouts_unknown"),
    "in_third_country": ("detained", "resettled", "whereabouts_unknown"),
    "whereabouts_unknown": ("detained", "deportation_imminent", "repatriated", "released", "in_third_country",
                            "resettled", "deceased"),
    "repatriated": ("whereabouts_unknown",),
    "resettled": (),
    "deceased": (),
    "closed_duplicate": (),
    "closed_unfounded": (),
}

STATUSES = tuple(TRANSITIONS)

FIRST_REPORT = "first report"  # the reasons the service writes itself; pages translate them
MERGED_INTO = "merged into another case"
MERGED_FROM = "another case merged into this one"

# Attributes a later report may change, as case.facts_updated carries them.
FACT_FIELDS = ("deportation_imminent", "detained_on", "province", "vulnerabilities", "consent_advocacy",
               "consent_statistics")


class IllegalTransition(Exception):
    """A move the transition table forbids; `allowed` lists the moves it permits."""

    def __init__(self, current: str, to: str):
        super().__init__(f"A case cannot move from {current} to {to}.")
        self.current = current
        self.to = to
        self.allowed = list(TRANSITIONS[current])


class InvalidDate(Exception):
    """A business date that cannot be right (in the future)."""


def allowed_moves(status: str) -> list[str]:
    """The statuses a case in `status` may move to."""
    return list(TRANSITIONS[status])


def open_case(case_id: str, reported: dict, now: dt.datetime) -> dict:
    """A new case from the non-identifying facts of its first report (a case.reported payload)."""
    return {
        "_id": case_id,
        "status": "reported",
        "sex": reported["sex"],
        "birth_year": reported.get("birth_year"),
        "nationality": reported["nationality"],
        "province": reported["province"],
        "detained_on": reported.get("detained_on"),
        "deportation_imminent": reported["deportation_imminent"],
        "expected_deportation_on": reported.get("expected_deportation_on"),
        "vulnerabilities": sorted(reported["vulnerabilities"]),
        "consent_advocacy": reported["consent_advocacy"],
        "consent_statistics": reported["consent_statistics"],
        "report_ids": [reported["report_id"]],
        "report_count": 1,
        "history": [{"status": "reported", "effective_on": reported.get("received_on") or now.date().isoformat(),
                     "recorded_at": now, "reason": FIRST_REPORT}],
        "upr_snapshots": [],
        "created_at": now,
    }


def opened_payload(case: dict) -> dict:
    """The case.opened payload: the case's non-identifying attributes."""
    keys = ("status", "sex", "birth_year", "nationality", "province", "detained_on", "deportation_imminent",
            "vulnerabilities", "consent_advocacy", "consent_statistics")
    return {k: case[k] for k in keys}


def attach_report(case: dict, reported: dict) -> tuple[dict, dict]:
    """The case with a later report about the same person attached, and the facts that changed."""
    if reported["report_id"] in case["report_ids"]:
        return case, {}
    case = dict(case)
    case["report_ids"] = case["report_ids"] + [reported["report_id"]]
    case["report_count"] = len(case["report_ids"])
    changes: dict = {}
    latest = {
        "deportation_imminent": reported["deportation_imminent"],
        "province": reported["province"],
        # A report never widens consent: it narrows it or leaves it (intake's consent.changed,
        # which follows it on the same partition, says whether the reports now disagree).
        **narrower_consent(case, reported),
        "vulnerabilities": sorted(set(case["vulnerabilities"]) | set(reported["vulnerabilities"])),
    }
    if reported.get("detained_on"):
        latest["detained_on"] = reported["detained_on"]
    for key, value in latest.items():
        if case.get(key) != value:
            case[key] = value
            changes[key] = value
    changes["report_count"] = case["report_count"]
    return case, changes


ADVOCACY_CONSENT_ORDER = ("none", "anonymous", "named")  # narrowest first


def narrower_consent(case: dict, reported: dict) -> dict:
    """The case's consent narrowed by a report's: none < anonymous < named, statistics false over true."""
    return {"consent_advocacy": min(case["consent_advocacy"], reported["consent_advocacy"],
                                    key=ADVOCACY_CONSENT_ORDER.index),
            "consent_statistics": bool(case["consent_statistics"]) and bool(reported["consent_statistics"])}


def apply_consent(case: dict, payload: dict) -> tuple[dict, dict]:
    """The case with the consent intake (the authority) holds for it, from a consent.changed
    payload, and the facts that changed (for case.facts_updated: advocacy's copy and reporting
    follow). `consent_disputed` is kept on the case but is not a fact other services copy."""
    updated = dict(case)
    changes = {}
    for key in ("consent_advocacy", "consent_statistics"):
        if case.get(key) != payload[key]:
            updated[key] = changes[key] = payload[key]
    updated["consent_disputed"] = bool(payload.get("disputed", False))
    if payload.get("given_by"):
        updated["consent_given_by"] = payload["given_by"]
    if not changes and updated == case:
        return case, {}
    return updated, changes


def transition(case: dict, to: str, effective_on: dt.date, reason: dict | None, now: dt.datetime) -> tuple[dict, dict]:
    """The case moved to `to` on the business date `effective_on`, and the status_changed payload.
    `reason` is the person's free text already sealed by the caller (stored as `reason_sealed`:
    free text about a person is never kept in the clear, nor sent on)."""
    current = case["status"]
    if to not in TRANSITIONS.get(current, ()):
        raise IllegalTransition(current, to)
    if effective_on > now.date():
        raise InvalidDate("effective_on must not be in the future.")
    case = dict(case)
    case["status"] = to
    case["history"] = case["history"] + [{"status": to, "effective_on": effective_on.isoformat(), "recorded_at": now,
                                          "reason": None, **({"reason_sealed": reason} if reason else {})}]
    return case, {"from": current, "to": to, "effective_on": effective_on.isoformat()}


SYSTEM_REASONS = (FIRST_REPORT, MERGED_INTO, MERGED_FROM)
REASON_READERS = {"caseworker", "admin"}  # who reads a status change's free text; analysts never


def history_for(case: dict, roles, opened: list[str | None]) -> list[dict]:
    """The case's history as a reader sees it: the service's own fixed reasons for all; a person's
    free text (opened from its seal: `opened[i]` for entry i) only for caseworkers and admins;
    a free text kept in the clear before sealing existed is treated the same way."""
    readable = bool(REASON_READERS & set(roles))
    out = []
    for entry, text in zip(case["history"], opened):
        entry = {k: v for k, v in entry.items() if k != "reason_sealed"}
        if entry.get("reason") not in SYSTEM_REASONS:
            entry["reason"] = (text or entry.get("reason")) if readable else None
        out.append(entry)
    return out


def close_as_duplicate(case: dict, into_case_id: str, effective_on: dt.date, now: dt.datetime) -> tuple[dict, dict | None]:
    """The case closed as `closed_duplicate` because a caseworker merged it into another, and the
    status_changed payload (None if it already was).

    A merge is a finding about identity, not a move in the person's story, so it closes the case
    from whatever status it had; the history keeps that status before the closing entry.
    """
    if case["status"] == "closed_duplicate" and case.get("merged_into") == into_case_id:
        return case, None
    current = case["status"]
    case = dict(case)
    case["status"] = "closed_duplicate"
    case["merged_into"] = into_case_id
    case["history"] = case["history"] + [{"status": "closed_duplicate", "effective_on": effective_on.isoformat(),
                                          "recorded_at": now, "reason": MERGED_INTO, "merged_into": into_case_id}]
    return case, {"from": current, "to": "closed_duplicate", "effective_on": effective_on.isoformat()}


def absorb(case: dict, merged: dict, effective_on: dt.date, now: dt.datetime) -> tuple[dict, dict]:
    """The surviving case with a merged duplicate's reports and facts added, and what changed.

    Its status stays: the history gains an entry saying which case was merged in.
    """
    if merged["_id"] in case.get("merged_from", []):
        return case, {}
    case = dict(case)
    case["report_ids"] = case["report_ids"] + [r for r in merged["report_ids"] if r not in case["report_ids"]]
    case["report_count"] = len(case["report_ids"])
    case["merged_from"] = case.get("merged_from", []) + [merged["_id"]]
    case["history"] = case["history"] + [{"status": case["status"], "effective_on": effective_on.isoformat(),
                                          "recorded_at": now, "reason": MERGED_FROM, "merged_from": merged["_id"]}]
    changes: dict = {"report_count": case["report_count"]}
    vulnerabilities = sorted(set(case["vulnerabilities"]) | set(merged.get("vulnerabilities", [])))
    if vulnerabilities != case["vulnerabilities"]:
        case["vulnerabilities"] = changes["vulnerabilities"] = vulnerabilities
    for key in ("birth_year", "detained_on"):  # fill what the surviving case did not know
        if case.get(key) is None and merged.get(key) is not None:
            case[key] = merged[key]
            if key in FACT_FIELDS:
                changes[key] = merged[key]
    return case, changes


# --- advocacy: what the advocacy service did for the case (its events, kept on the case) ---------

REQUEST_EVENTS = ("unhcr_access.requested", "unhcr_access.responded")
APPEAL_EVENTS = ("appeal.drafted", "appeal.issued", "appeal.answered")
ADVOCACY_EVENTS = REQUEST_EVENTS + APPEAL_EVENTS

REQUEST_SENT = "sent"  # a request's status until its first response
FINAL_OUTCOMES = ("granted", "denied", "no_response")  # "acknowledged" leaves a request open
APPEAL_STAGES = ("draft", "issued", "answered")  # an appeal only moves forward


def record_advocacy(case: dict, event_type: str, payload: dict, recorded_at: dt.datetime) -> dict:
    """The case with one advocacy event (its payload, dates as ISO strings) in `case["advocacy"]`,
    or the very same case when the event adds nothing new (a redelivery, by content).

    Order-tolerant: an event about a request or appeal not seen yet starts its entry, and the
    entries come out the same whatever order the events came in (but `recorded_at`: when the
    entry was first learned of)."""
    if event_type not in ADVOCACY_EVENTS:
        raise ValueError(f"not an advocacy event: {event_type}")
    if event_type in REQUEST_EVENTS:
        key, id_field, new, apply, order = "requests", "request_id", _new_request, _apply_request, _request_order
    else:
        key, id_field, new, apply, order = "appeals", "appeal_id", _new_appeal, _apply_appeal, _appeal_order
    advocacy = {"requests": [], "appeals": [], **(case.get("advocacy") or {})}
    entry_id = payload[id_field]
    found = next((e for e in advocacy[key] if e[id_field] == entry_id), None)
    entry = apply(found or new(entry_id, recorded_at), event_type, payload)
    if entry == found:
        return case
    others = [e for e in advocacy[key] if e[id_field] != entry_id]
    return {**case, "advocacy": {**advocacy, key: sorted(others + [entry], key=order)}}


def _new_request(request_id: str, recorded_at: dt.datetime) -> dict:
    return {"request_id": request_id, "office": None, "channel": None, "sent_on": None, "status": REQUEST_SENT,
            "responses": [], "recorded_at": recorded_at}


def _apply_request(request: dict, event_type: str, payload: dict) -> dict:
    request = dict(request)
    if event_type == "unhcr_access.requested":
        request.update({k: payload[k] for k in ("office", "channel", "sent_on")})
        return request
    response = {"outcome": payload["outcome"], "received_on": payload["received_on"]}
    if response not in request["responses"]:
        # Oldest first; on the same day a final outcome comes after an acknowledgement.
        request["responses"] = sorted(request["responses"] + [response], key=_response_order)
    request["status"] = request["responses"][-1]["outcome"]
    return request


def _response_order(response: dict) -> tuple:
    return response["received_on"], response["outcome"] in FINAL_OUTCOMES, response["outcome"]


def _request_order(request: dict) -> tuple:
    return request["sent_on"] is None, request["sent_on"] or "", request["request_id"]


def _new_appeal(appeal_id: str, recorded_at: dt.datetime) -> dict:
    return {"appeal_id": appeal_id, "kind": None, "status": APPEAL_STAGES[0], "due_by": None, "issued_on": None,
            "recipients": [], "outcome": None, "received_on": None, "recorded_at": recorded_at}


def _apply_appeal(appeal: dict, event_type: str, payload: dict) -> dict:
    appeal = dict(appeal)
    if event_type == "appeal.drafted":
        appeal["due_by"] = payload["due_by"]
        appeal["kind"] = appeal["kind"] or payload["kind"]  # the issued letter's kind, if known, stands
        stage = "draft"
    elif event_type == "appeal.issued":
        appeal.update(kind=payload["kind"], recipients=list(payload["recipients"]), issued_on=payload["issued_on"])
        stage = "issued"
    else:
        appeal.update(outcome=payload["outcome"], received_on=payload["received_on"])
        stage = "answered"
    appeal["status"] = max(appeal["status"], stage, key=APPEAL_STAGES.index)
    return appeal


def _appeal_order(appeal: dict) -> tuple:
    when = appeal["issued_on"] or (appeal["due_by"] or "")[:10] or appeal["received_on"]
    return when is None, when or "", appeal["appeal_id"]


def advocacy_summary(case: dict) -> dict:
    """What the case page and API show of a case's advocacy: its requests and appeals, with counts
    of the requests still awaiting a final outcome, the appeals issued (answered or not) and the
    drafts."""
    advocacy = case.get("advocacy") or {}
    requests, appeals = advocacy.get("requests", []), advocacy.get("appeals", [])
    return {
        "requests": requests,
        "appeals": appeals,
        "open_requests": sum(1 for r in requests if r["status"] not in FINAL_OUTCOMES),
        "appeals_issued": sum(1 for a in appeals if a["status"] != "draft"),
        "drafts": sum(1 for a in appeals if a["status"] == "draft"),
    }


def record_snapshot(case: dict, payload: dict) -> dict:
    """The case listing a UPR snapshot that counted it (once per snapshot)."""
    mark = {"snapshot_id": payload["snapshot_id"], "cycle": payload["cycle"], "as_of": payload["as_of"]}
    if any(s["snapshot_id"] == mark["snapshot_id"] for s in case.get("upr_snapshots", [])):
        return case
    return {**case, "upr_snapshots": case.get("upr_snapshots", []) + [mark]}


# --- after return and asylum: what became known of a returned person, and asylum procedures -------

RECORD_NAMESPACE = uuid.UUID("3f0c7a52-5d0e-4c39-9a53-2d6b1e1f6a11")
NAMED_LISTS = ("products", "facilities", "companies")
NOT_RETURNED = N_("Only a case that has been repatriated has news after return.")
FUTURE_DATE = N_("Must not be in the future.")
EFFECTIVE_AFTER_LEARNED = N_("Cannot be after the date it was learned.")
SENTENCE_WITHOUT_CAMP = N_("A sentence goes only with a labour training camp or a kyohwaso.")
LABOUR_DENIED = N_("Forced labour is recorded as no: leave the kinds of work and products empty.")
NOT_A_STEP = N_("Not a step of this procedure.")
BEFORE_RETURN = N_("Must not be before the person was repatriated.")
MERGED_ELSEWHERE = N_("This case was merged into case %(case_id)s as a duplicate: record it on that case.")


class NotReturned(Exception):
    """News after return for a case that has never been repatriated."""


class MergedDuplicate(Exception):
    """A new record for a case closed as a duplicate of another: `into` is the surviving case,
    which holds the person's records from the merge on (records are refused here, not forwarded,
    so that what a caseworker sees recorded is where she recorded it)."""

    def __init__(self, case_id: str, into: str | None):
        super().__init__(f"{case_id} was merged into {into}")
        self.into = into


class InvalidRecord(Exception):
    """A record whose fields contradict each other or the calendar; `fields` maps each field to
    its messages (fixed words, never the value)."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields


def _in_order(values, choices: tuple[str, ...]) -> list[str]:
    """Fixed choices de-duplicated, in the list's own order (so the same record reads the same)."""
    return [c for c in choices if c in set(values)]


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _distinct_names(names) -> list[str]:
    """Names of things de-duplicated regardless of case and spacing (the first spelling kept), in
    alphabetical order: the order they were typed in says nothing."""
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(_name_key(name), " ".join(name.split()))
    return [out[key] for key in sorted(out)]


def record_id(case_id: str, kind: str, record: dict) -> str:
    """A record's id from its case and its content (names of things regardless of case): the
    same command sent again (a retry, a double click, a replay) names the same record, which the
    case then already holds."""
    content = {k: ([_name_key(n) for n in v] if k in NAMED_LISTS else v) for k, v in record.items()}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(RECORD_NAMESPACE, f"{case_id}\n{kind}\n{canonical}"))


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def after_return_record(case_id: str, cmd: dict, today: dt.date) -> dict:
    """A validated after-return record (the API's fields, dates as ISO strings, lists
    de-duplicated, its deterministic record_id) from a loaded command (dates as dates, choices
    and names already checked one by one); InvalidRecord says what contradicts what."""
    errors: dict[str, list[str]] = {}
    learned_on, effective_on = cmd["learned_on"], cmd.get("effective_on")
    for name, value in (("learned_on", learned_on), ("effective_on", effective_on)):
        if value is not None and value > today:
            errors.setdefault(name, []).append(FUTURE_DATE)
    if effective_on is not None and effective_on > learned_on and "effective_on" not in errors:
        errors["effective_on"] = [EFFECTIVE_AFTER_LEARNED]
    outcome = cmd.get("outcome", "unknown")
    if cmd.get("sentence_years") is not None and outcome not in SENTENCED_OUTCOMES:
        errors["sentence_years"] = [SENTENCE_WITHOUT_CAMP]
    forced_labour = cmd.get("forced_labour", "unknown")
    if forced_labour == "no":
        for name in ("work", "products"):
            if cmd.get(name):
                errors[name] = [LABOUR_DENIED]
    if errors:
        raise InvalidRecord(errors)
    sentence = cmd.get("sentence_years")
    record = {
        "learned_on": learned_on.isoformat(), "effective_on": _iso(effective_on),
        "source_type": cmd["source_type"], "source_reliability": cmd["source_reliability"],
        "custody": cmd.get("custody", "unknown"), "outcome": outcome,
        "sentence_years": float(sentence) if sentence is not None else None, "forced_labour": forced_labour,
        "work": _in_order(cmd.get("work", []), LABOUR_WORK),
        **{name: _distinct_names(cmd.get(name, [])) for name in NAMED_LISTS},
        "ill_treatment": _in_order(cmd.get("ill_treatment", []), ILL_TREATMENT),
    }
    return {"record_id": record_id(case_id, "after_return", record), **record}


def asylum_record(case_id: str, cmd: dict, today: dt.date) -> dict:
    """A validated asylum record (the API's fields, its deterministic record_id); InvalidRecord
    for a step of another procedure or a date in the future."""
    errors: dict[str, list[str]] = {}
    if cmd["step"] not in ASYLUM_STEPS[cmd["procedure"]]:
        errors["step"] = [NOT_A_STEP]
    if cmd["effective_on"] > today:
        errors["effective_on"] = [FUTURE_DATE]
    if errors:
        raise InvalidRecord(errors)
    record = {"procedure": cmd["procedure"], "step": cmd["step"], "effective_on": cmd["effective_on"].isoformat(),
              "source_type": cmd["source_type"], "source_reliability": cmd["source_reliability"]}
    return {"record_id": record_id(case_id, "asylum", record), **record}


def has_been_returned(case: dict) -> bool:
    """Whether the case was ever repatriated (it may have moved on, to whereabouts_unknown)."""
    return any(entry["status"] == "repatriated" for entry in case["history"])


def _after_return_order(record: dict) -> tuple:
    # By the date it happened (a record without one where it was learned), then when learned.
    return record["effective_on"] or record["learned_on"], record["learned_on"], record["record_id"]


def _asylum_order(record: dict) -> tuple:
    steps = ASYLUM_STEPS[record["procedure"]]
    return record["effective_on"], tuple(ASYLUM_STEPS).index(record["procedure"]), steps.index(record["step"]), \
        record["record_id"]


def repatriated_on(case: dict, day: str) -> str | None:
    """The case's latest repatriation effective on or before `day` (ISO), or None: news after
    return follows some return (a person returned twice may have news from either)."""
    returns = [e["effective_on"] for e in case["history"] if e["status"] == "repatriated" and e["effective_on"] <= day]
    return max(returns) if returns else None


def before_return_errors(case: dict, record: dict) -> dict[str, list[str]]:
    """The dates of an after-return record (learned_on, effective_on) that no repatriation of the
    case precedes (on the same day is after it)."""
    return {name: [BEFORE_RETURN] for name in ("learned_on", "effective_on")
            if record.get(name) is not None and repatriated_on(case, record[name]) is None}


def add_after_return(case: dict, record: dict, now: dt.datetime) -> dict:
    """The case with an after-return record, or the very same case if it already holds that
    record (the same command again). MergedDuplicate on a case merged into another, NotReturned
    unless it was ever repatriated, InvalidRecord for a date before every repatriation."""
    if find_record(case, "after_return", record["record_id"]) is not None:
        return case
    _refuse_if_merged(case)
    if not has_been_returned(case):
        raise NotReturned(case["_id"])
    if errors := before_return_errors(case, record):
        raise InvalidRecord(errors)
    return _add(case, "after_return", record, now, _after_return_order)


def add_asylum(case: dict, record: dict, now: dt.datetime) -> dict:
    """The case with an asylum record, or the very same case if it already holds it;
    MergedDuplicate on a case merged into another."""
    if find_record(case, "asylum", record["record_id"]) is not None:
        return case
    _refuse_if_merged(case)
    return _add(case, "asylum", record, now, _asylum_order)


def _refuse_if_merged(case: dict) -> None:
    if case["status"] == "closed_duplicate":
        raise MergedDuplicate(case["_id"], case.get("merged_into"))


RECORD_KINDS = (("after_return", _after_return_order), ("asylum", _asylum_order))


def carried_record_id(case_id: str, kind: str, original_id: str) -> str:
    """The id a record of a merged duplicate takes on the surviving case `case_id`: from that
    case and the original id only, so a replay or a redelivered merge names the same record."""
    return str(uuid.uuid5(RECORD_NAMESPACE, f"{case_id}\ncarried {kind}\n{original_id}"))


def carry_records(case: dict, merged: dict, now: dt.datetime) -> tuple[dict, list[tuple[str, dict]]]:
    """The surviving case with the after-return and asylum records of a case merged into it, and
    the records it gained as (kind, record). Each keeps its business dates, source and
    reliability under a new deterministic id (carried_record_id; `carried_from` says whence);
    a record already carried, or one whose content the case already holds, is not added again.
    Neither the return check nor the dates' check applies: the news was checked on its own case."""
    added: list[tuple[str, dict]] = []
    for kind, order in RECORD_KINDS:
        for original in merged.get(kind) or []:
            record = {**record_payload(original), "record_id": carried_record_id(case["_id"], kind,
                                                                                 original["record_id"])}
            held = case.get(kind) or []
            if any(r["record_id"] == record["record_id"] or _content(r) == _content(record) for r in held):
                continue
            record["carried_from"] = {"case_id": merged["_id"], "record_id": original["record_id"]}
            case = _add(case, kind, record, now, order)
            added.append((kind, find_record(case, kind, record["record_id"])))
    return case, added


def _content(record: dict) -> dict:
    return {k: v for k, v in record_payload(record).items() if k != "record_id"}


def _add(case: dict, key: str, record: dict, now: dt.datetime, order) -> dict:
    held = case.get(key) or []
    if any(r["record_id"] == record["record_id"] for r in held):
        return case
    return {**case, key: sorted(held + [{**record, "recorded_at": now}], key=order)}


def find_record(case: dict, key: str, record_id: str) -> dict | None:
    """One of the case's after_return or asylum records by its id."""
    return next((r for r in case.get(key) or [] if r["record_id"] == record_id), None)


def record_payload(record: dict) -> dict:
    """A stored record as its event carries it (the API's fields and the record_id, no more)."""
    return {k: v for k, v in record.items() if k not in ("recorded_at", "carried_from")}
