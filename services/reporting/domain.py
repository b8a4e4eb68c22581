"""Reporting's pure rules: each case's record built from events only (business-dated status
timeline, non-identifying attributes, UNHCR-access requests and appeals), and the measures of
API.md counted as of any date. No I/O.

A figure is reproducible: the same events give the same records and the same counts, whatever
order topics were read in, because every date used is a business date carried by an event
(effective_on, received_on, sent_on, issued_on), never the time of processing.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Callable, Iterable

from shared.events import SEXES
from shared.people import AGE_GROUPS, age_group

MEASURES = ("detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued")
# Measures of the after-return and asylum records (API.md): each read from the case's latest
# after-return record effective on or before as_of, or from the asylum steps reached by then.
AFTER_RETURN_MEASURES = ("returned_fate_known", "held_by_mss", "sent_to_kyohwaso", "sent_to_kwanliso",
                         "sent_to_labour_training_camp", "died_or_disappeared", "forced_labour_reported",
                         "ill_treatment_reported")
ASYLUM_MEASURE_STEPS = {"art46_applied": ("art46", None), "art46_tic_issued": ("art46", "tic_issued"),
                "art46_granted": ("art46", "granted"), "unhcr_recognised": ("unhcr_rsd", "recognised"),
                "china_status_granted": ("china_status", "granted")}  # measure -> (procedure, step; None: any)
ASYLUM_MEASURES = tuple(ASYLUM_MEASURE_STEPS)
ALL_MEASURES = MEASURES + AFTER_RETURN_MEASURES + ASYLUM_MEASURES
AFTER_RETURN_FIELDS = ("learned_on", "effective_on", "source_type", "source_reliability", "custody", "outcome",
                       "sentence_years", "forced_labour", "work", "products", "facilities", "companies",
                       "ill_treatment")
DIMENSIONS = ("sex", "age_group", "province", "nationality", "status")
DETAINED = ("detained", "deportation_imminent")
NOT_A_PERSON = ("closed_duplicate", "closed_unfounded")  # a merged duplicate, or a report found untrue

ATTRIBUTES = ("sex", "birth_year", "nationality", "province", "consent_statistics")


def _day(value) -> str | None:
    """A business date as ISO text (events carry dates; stored records keep text)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)[:10]


def new_record(case_id: str) -> dict:
    """An empty record: filled in by whichever event about the case arrives first."""
    return {"_id": case_id, "sex": "unknown", "birth_year": None, "nationality": "KP", "province": None,
            "consent_statistics": True, "reported_on": None, "timeline": [], "merged_into": None,
            "requests": {}, "appeals": {}, "upr_snapshots": [], "after_return": {}, "asylum": {}}


def apply_event(record: dict | None, event: dict) -> dict:
    """The case's record after one event (intake, case or advocacy). Idempotency by event id is
    the caller's (the record keeps the ids applied); the changes here are also safe to repeat."""
    record = dict(record or new_record(event["case_id"]))
    kind, payload = event["event_type"], event["payload"]
    occurred = _day(event["occurred_at"])
    if kind == "case.reported":
        received = _day(payload.get("received_on")) or occurred
        first = record["reported_on"] is None or received < record["reported_on"]
        if first:
            record["reported_on"] = received
        if first or not record.get("attributes_from_case"):
            record.update({k: payload[k] for k in ("sex", "birth_year", "nationality", "province") if k in payload})
        # A report never widens statistics consent (a later one may narrow it); intake's
        # consent.changed, which follows on the same partition, is the authority.
        record["consent_statistics"] = bool(record["consent_statistics"]) and \
            payload.get("consent_statistics", record["consent_statistics"])
    elif kind == "case.opened":
        record.update({k: payload[k] for k in ("sex", "birth_year", "nationality", "province", "consent_statistics")
                       if k in payload})
        record["attributes_from_case"] = True
        if record["reported_on"] is None:
            record["reported_on"] = occurred  # until the report's own date arrives
    elif kind == "case.status_changed":
        recorded = event["occurred_at"]
        entry = {"status": payload["to"], "effective_on": _day(payload["effective_on"]),
                 "recorded_at": recorded.isoformat() if isinstance(recorded, dt.datetime) else str(recorded),
                 "event_id": event["event_id"]}
        if all(e["event_id"] != entry["event_id"] for e in record["timeline"]):
            record["timeline"] = record["timeline"] + [entry]
    elif kind == "case.facts_updated":
        record.update({k: payload[k] for k in ("province", "consent_statistics", "birth_year") if k in payload})
    elif kind == "consent.changed":
        record["consent_statistics"] = payload["consent_statistics"]
    elif kind == "case.merged":
        record["merged_into"] = payload["into_case_id"]
    elif kind == "unhcr_access.requested":
        request = record["requests"].get(payload["request_id"], {"outcomes": []})
        record["requests"] = {**record["requests"], payload["request_id"]: {**request, "sent_on": _day(payload["sent_on"])}}
    elif kind == "unhcr_access.responded":
        request = record["requests"].get(payload["request_id"], {"sent_on": None, "outcomes": []})
        outcome = {"outcome": payload["outcome"], "received_on": _day(payload["received_on"])}
        if outcome not in request["outcomes"]:
            request = {**request, "outcomes": request["outcomes"] + [outcome]}
        record["requests"] = {**record["requests"], payload["request_id"]: request}
    elif kind == "appeal.issued":
        appeal = record["appeals"].get(payload["appeal_id"], {"answers": []})
        record["appeals"] = {**record["appeals"], payload["appeal_id"]: {**appeal, "issued_on": _day(payload["issued_on"])}}
    elif kind == "appeal.answered":
        appeal = record["appeals"].get(payload["appeal_id"], {"issued_on": None, "answers": []})
        answer = {"outcome": payload["outcome"], "received_on": _day(payload["received_on"])}
        if answer not in appeal["answers"]:
            appeal = {**appeal, "answers": appeal["answers"] + [answer]}
        record["appeals"] = {**record["appeals"], payload["appeal_id"]: appeal}
    elif kind == "case.after_return_recorded":
        # Keyed by record id: a redelivery rewrites the same entry, and the order news arrives in
        # does not matter (which record is latest is decided by its business date when counting).
        entry = {k: payload.get(k) for k in AFTER_RETURN_FIELDS}
        entry.update({k: _day(entry[k]) for k in ("learned_on", "effective_on")})
        entry.update({k: list(entry[k] or []) for k in ("work", "products", "facilities", "companies", "ill_treatment")})
        record["after_return"] = {**record.get("after_return", {}), payload["record_id"]: entry}
    elif kind == "case.asylum_recorded":
        entry = {"procedure": payload["procedure"], "step": payload["step"], "effective_on": _day(payload["effective_on"]),
                 "source_reliability": payload.get("source_reliability")}
        record["asylum"] = {**record.get("asylum", {}), payload["record_id"]: entry}
    elif kind == "upr.snapshot_taken":
        mark = {"snapshot_id": payload["snapshot_id"], "cycle": payload["cycle"], "as_of": _day(payload["as_of"])}
        if mark not in record["upr_snapshots"]:
            record["upr_snapshots"] = record["upr_snapshots"] + [mark]
    return record


# --- as of a date -------------------------------------------------------------------------------


def status_on(record: dict, day: str) -> str | None:
    """The case's status on a business date: its latest move effective on or before it (moves on
    the same day in the order they were recorded), 'reported' from the report's date, else None."""
    moves = sorted((e for e in record["timeline"] if e["effective_on"] <= day),
                   key=lambda e: (e["effective_on"], e["recorded_at"]))
    if moves:
        return moves[-1]["status"]
    return "reported" if record["reported_on"] is not None and record["reported_on"] <= day else None


def with_after_return(records) -> list[dict]:
    """The records holding after-return records: all that the evidence register and the
    after-return facts read (a Population keeps them apart)."""
    if hasattr(records, "with_after_return"):
        return records.with_after_return()
    return [r for r in records if r.get("after_return")]


def counts_as_person(record: dict) -> bool:
    """Counted at all: statistics consent given, and not a merged duplicate or an untrue report."""
    if not record.get("consent_statistics", True) or record.get("merged_into"):
        return False
    return not any(e["status"] in NOT_A_PERSON for e in record["timeline"])


def _within(day: str | None, since: str | None, as_of: str) -> bool:
    return day is not None and day <= as_of and (since is None or day > since)


def after_return_on(entry: dict) -> str | None:
    """The business date of an after-return record: when the outcome happened, or, not known, when
    the organisation learned of it (the first date it can be said to hold)."""
    return entry.get("effective_on") or entry.get("learned_on")


def latest_after_return(record: dict, as_of: str) -> tuple[str, dict] | None:
    """(record id, record) of the case's latest after-return record effective on or before as_of;
    ties by the date learned, then the record id, so every delivery order gives the same one."""
    dated = [(after_return_on(e), e.get("learned_on") or "", rid, e) for rid, e in (record.get("after_return") or {}).items()
             if after_return_on(e) is not None and after_return_on(e) <= as_of]
    if not dated:
        return None
    _, _, rid, entry = max(dated, key=lambda t: t[:3])
    return rid, entry


AFTER_RETURN_TESTS = {
    "returned_fate_known": lambda e: e.get("outcome") not in (None, "unknown"),
    "held_by_mss": lambda e: e.get("custody") == "mss",
    "sent_to_kyohwaso": lambda e: e.get("outcome") == "kyohwaso",
    "sent_to_kwanliso": lambda e: e.get("outcome") == "kwanliso",
    "sent_to_labour_training_camp": lambda e: e.get("outcome") == "labour_training_camp",
    "died_or_disappeared": lambda e: e.get("outcome") in ("died_in_custody", "disappeared"),
    "forced_labour_reported": lambda e: e.get("forced_labour") == "yes",
    "ill_treatment_reported": lambda e: bool(e.get("ill_treatment")),
}


def step_reached_on(record: dict, measure: str) -> str | None:
    """The first business date on which the case reached an asylum measure's step, or None."""
    procedure, step = ASYLUM_MEASURE_STEPS[measure]
    days = [e["effective_on"] for e in (record.get("asylum") or {}).values()
            if e["procedure"] == procedure and (step is None or e["step"] == step) and e.get("effective_on")]
    return min(days) if days else None


def in_measure(record: dict, measure: str, as_of: str, since: str | None) -> bool:
    """Whether a (countable) case is in a measure: on `as_of`, or for event measures in (since, as_of]."""
    if measure == "detained":
        return status_on(record, as_of) in DETAINED
    if measure == "deportation_imminent":
        return status_on(record, as_of) == "deportation_imminent"
    if measure == "repatriated":
        return any(e["status"] == "repatriated" and _within(e["effective_on"], since, as_of) for e in record["timeline"])
    if measure == "reported":
        return _within(record["reported_on"], since, as_of)
    if measure == "unhcr_access_requested":
        return any(_within(r.get("sent_on"), since, as_of) for r in record["requests"].values())
    if measure == "unhcr_access_granted":
        return any(o["outcome"] == "granted" and _within(o["received_on"], since, as_of)
                   for r in record["requests"].values() for o in r["outcomes"])
    if measure == "appeals_issued":
        return any(_within(a.get("issued_on"), since, as_of) for a in record["appeals"].values())
    if measure in AFTER_RETURN_TESTS:
        latest = latest_after_return(record, as_of)
        return latest is not None and _within(after_return_on(latest[1]), since, as_of) and \
            AFTER_RETURN_TESTS[measure](latest[1])
    if measure in ASYLUM_MEASURE_STEPS:
        return _within(step_reached_on(record, measure), since, as_of)
    raise ValueError(f"unknown measure {measure!r}")


def dimension_value(record: dict, dim: str, as_of: str) -> str:
    """A case's category in one dimension, as of the date."""
    if dim == "age_group":
        return age_group(record.get("birth_year"), int(as_of[:4]))
    if dim == "status":
        return status_on(record, as_of) or "unknown"
    value = record.get(dim)
    return value if value not in (None, "") else "unknown"


def categories(records: Iterable[dict], dim: str, as_of: str) -> list[str]:
    """The categories a table shows for a dimension: the fixed ones for sex and age, else those
    present among the countable cases (so a table's shape does not give away who is in it)."""
    if dim == "sex":
        return list(SEXES)
    if dim == "age_group":
        return list(AGE_GROUPS)
    return sorted({dimension_value(r, dim, as_of) for r in records})


def count(records: list[dict], measure: str, as_of: str, since: str | None, by: list[str],
          record_key: Callable[[str], int] | None = None, with_ids: bool = True) -> dict:
    """The exact table: {"total", "cells": [{dim: value, ..., "count"}], "case_ids": [...]}, with a
    cell for every combination of categories (zeros included).

    With ``record_key`` (case id -> its secret record key, 0..255; public figures only), each cell
    also has ``"key"``: the sum of its cases' record keys mod 256, and the result ``"total_key"``,
    the same over every counted case (the cell key method, disclosure.py). The same cases give the
    same key in any table. Without it (internal figures) neither field is there.

    `records` may be a Population (population.py): the same result from its columns, without
    the case ids unless `with_ids` (their sorting is most of a big table's cost).
    """
    if hasattr(records, "with_after_return"):
        return records.count(measure, as_of, since, by, record_key=record_key, with_ids=with_ids)
    people = [r for r in records if counts_as_person(r)]
    counted = [r for r in people if in_measure(r, measure, as_of, since)]
    cells = []
    if by:
        axes = [categories(people, dim, as_of) for dim in by]
        tally: dict[tuple, int] = {}
        key_sums: dict[tuple, int] = {}
        for r in counted:
            key = tuple(dimension_value(r, dim, as_of) for dim in by)
            tally[key] = tally.get(key, 0) + 1
            if record_key is not None:
                key_sums[key] = (key_sums.get(key, 0) + record_key(r["_id"])) % 256
        cells = [{**dict(zip(by, key)), "count": tally.get(key, 0)} for key in itertools.product(*axes)]
        if record_key is not None:
            for cell, key in zip(cells, itertools.product(*axes)):
                cell["key"] = key_sums.get(key, 0)
    out = {"total": len(counted), "cells": cells, "case_ids": sorted(r["_id"] for r in counted) if with_ids else None}
    if record_key is not None:
        out["total_key"] = sum(record_key(r["_id"]) for r in counted) % 256
    return out
