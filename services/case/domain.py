"""The case's pure rules: the status state machine and how reports shape a case. No I/O."""

from __future__ import annotations

import datetime as dt

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
        "consent_advocacy": reported["consent_advocacy"],
        "consent_statistics": reported["consent_statistics"],
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


def transition(case: dict, to: str, effective_on: dt.date, reason: str | None, now: dt.datetime) -> tuple[dict, dict]:
    """The case moved to `to` on the business date `effective_on`, and the status_changed payload."""
    current = case["status"]
    if to not in TRANSITIONS.get(current, ()):
        raise IllegalTransition(current, to)
    if effective_on > now.date():
        raise InvalidDate("effective_on must not be in the future.")
    case = dict(case)
    case["status"] = to
    case["history"] = case["history"] + [{"status": to, "effective_on": effective_on.isoformat(), "recorded_at": now,
                                          "reason": reason}]
    return case, {"from": current, "to": to, "effective_on": effective_on.isoformat()}


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
