"""Intake's pure rules: name normalisation for duplicate matching, what an event may carry, and
who needs a reason to read a case (need to know) and in which hour a read counts."""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from typing import Callable

_SPACES = re.compile(r"\s+")


def normalise_name(name: str) -> str:
    """NFKC, case-folded, single-spaced: 'Kim  Ok-SUN ' and 'kim ok-sun' are the same name.

    Hangul and romanised forms stay as entered (they are different strings to match on).
    """
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def person_match_key(full_name: str, birth_year: int | None) -> str:
    """What the blind index is computed over: normalised name and birth year."""
    return f"{normalise_name(full_name)}|{birth_year if birth_year is not None else '?'}"


# Two names whose letter pairs overlap this much (Dice coefficient) are worth a caseworker's look:
# 김옥순 / 김옥선 score 0.5, "Kim Ok-sun" / "Kim Ok Son" about 0.8, unrelated names near 0.
NEAR_MATCH_THRESHOLD = 0.5
NAME_GRAM_PURPOSE = "name-bigram"


def name_bigrams(full_name: str) -> list[str]:
    """The letter pairs of a normalised name with spaces and punctuation dropped, padded at both
    ends, so that spacing, hyphens and word order matter little and one changed letter little."""
    letters = "".join(ch for ch in normalise_name(full_name) if ch.isalnum())
    if not letters:
        return []
    padded = f"^{letters}$"
    return sorted({padded[i:i + 2] for i in range(len(padded) - 1)})


def similarity(grams_a: list[str] | set[str], grams_b: list[str] | set[str]) -> float:
    """Dice coefficient of two sets of (hashed) letter pairs: 1.0 the same, 0.0 nothing shared."""
    a, b = set(grams_a), set(grams_b)
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def is_near_candidate(report: dict, other: dict) -> bool:
    """Near-match rule's second half: the same birth year or the same province (both known)."""
    year, other_year = report["person"].get("birth_year"), other.get("person", {}).get("birth_year")
    province, other_province = report["detention"].get("province"), other.get("detention", {}).get("province")
    return (year is not None and year == other_year) or (province is not None and province == other_province)


IDENTIFYING_PERSON_FIELDS = ("full_name", "hometown", "family_contact", "birth_date")
IDENTIFYING_DETENTION_FIELDS = ("city", "facility", "authority")


def split_identifying(report: dict) -> tuple[dict, dict]:
    """Split a loaded report into (identifying fields to encrypt, the rest to store in clear)."""
    person = dict(report["person"])
    detention = dict(report["detention"])
    secret = {
        "person": {k: person.pop(k, None) for k in IDENTIFYING_PERSON_FIELDS},
        "detention": {k: detention.pop(k, None) for k in IDENTIFYING_DETENTION_FIELDS},
        "notes": report.get("notes"),
    }
    clear = {k: v for k, v in report.items() if k not in ("person", "detention", "notes")}
    clear["person"] = person
    clear["detention"] = detention
    return secret, clear


def case_reported_payload(report_id: str, matched: bool, report: dict) -> dict:
    """The non-identifying facts of a report, as the case.reported event carries them."""
    person, detention, risk, source, consent = (report[k] for k in ("person", "detention", "risk", "source", "consent"))
    return {
        "report_id": report_id,
        "matched_existing_case": matched,
        "sex": person["sex"],
        "birth_year": person.get("birth_year"),
        "nationality": person.get("nationality", "KP"),
        "province": detention["province"],
        "detained_on": detention.get("detained_on"),
        "deportation_imminent": risk["deportation_imminent"],
        "expected_deportation_on": risk.get("expected_deportation_on"),
        "vulnerabilities": list(risk["vulnerabilities"]),
        "trafficking_victim": risk["trafficking_victim"],
        "source_type": source["type"],
        "source_reliability": source["reliability"],
        "received_on": source.get("received_on"),
        "consent_advocacy": consent["advocacy"],
        "consent_statistics": consent["statistics"],
    }


# --- need to know -------------------------------------------------------------------------------

REASON_MIN, REASON_MAX = 3, 200


def clean_reason(reason: str | None) -> str | None:
    """A reader's stated reason, trimmed; None if none was given."""
    reason = (reason or "").strip()
    return reason or None


def valid_reason(reason: str | None) -> bool:
    """A reason to read a case one is not assigned to: 3 to 200 characters."""
    return reason is not None and REASON_MIN <= len(reason) <= REASON_MAX


def needs_reason(reader: dict, *, author: bool, assigned: Callable[[], bool]) -> bool:
    """True if this reader must give a reason to read a report's identifying data: a caseworker who
    neither wrote the report (they know what is in it) nor is assigned to its case (`assigned` is
    asked only when that decides). Admins read any case."""
    return "admin" not in reader.get("roles", ()) and not author and not assigned()


def read_hour(now: dt.datetime) -> dt.datetime:
    """The clock hour (UTC) a read is counted in."""
    return now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def seconds_to_next_hour(now: dt.datetime) -> int:
    """Whole seconds until the next clock hour begins (at least 1): the Retry-After of a read refused
    for the hourly limit."""
    following = read_hour(now) + dt.timedelta(hours=1)
    return max(1, math.ceil((following - now).total_seconds()))


# --- consent -------------------------------------------------------------------------------------

ADVOCACY_ORDER = ("none", "anonymous", "named")  # narrowest first
GIVEN_BY = ("person", "family", "representative")


def narrowest(a: dict, b: dict) -> dict:
    """The more restrictive of two consents ({"advocacy", "statistics"}): none < anonymous < named,
    statistics false over true."""
    return {"advocacy": min(a["advocacy"], b["advocacy"], key=ADVOCACY_ORDER.index),
            "statistics": bool(a["statistics"]) and bool(b["statistics"])}


def _pair(consent: dict) -> tuple[str, bool]:
    return consent["advocacy"], bool(consent["statistics"])


def effective_consent(command: dict | None, reports_since: list[dict]) -> dict | None:
    """A case's consent: the last command's (if a caseworker recorded one), narrowed by every
    report filed since; without a command, the most restrictive of all its reports. A report never
    widens it. `disputed` is true when the consents that count (the command's and the reports'
    since) do not all say the same. `commanded` tells whether a command stands behind it.
    None when there is nothing to go on (no command, no report)."""
    counted = ([command] if command else []) + list(reports_since)
    if not counted:
        return None
    effective = counted[0]
    for consent in counted[1:]:
        effective = narrowest(effective, consent)
    return {"advocacy": effective["advocacy"], "statistics": bool(effective["statistics"]),
            "disputed": len({_pair(c) for c in counted}) > 1, "commanded": command is not None}


def consent_changed(before: dict | None, after: dict) -> bool:
    """True if a case's effective consent or whether its reports disagree changed (a new case's
    first report changes nothing worth a consent.changed: case.reported carries it)."""
    if before is None:
        return False
    return (before["advocacy"], before["statistics"], before["disputed"]) != \
        (after["advocacy"], after["statistics"], after["disputed"])


def consent_payload(consent: dict, given_by: str | None) -> dict:
    """The consent.changed payload: never the reason, nor anything else typed about the person."""
    return {"consent_advocacy": consent["advocacy"], "consent_statistics": consent["statistics"],
            "given_by": given_by, "disputed": consent["disputed"]}


# --- erasure -------------------------------------------------------------------------------------

ERASED_ADVOCACY = "anonymous"  # no name is left to give: letters can describe the person, not name them


def consent_after_erasure(consent: dict, *, statistics_withdrawn: bool) -> dict:
    """A case's consent once its person was erased: advocacy at most `anonymous`; statistics as
    they were unless the erasure withdrew them too."""
    advocacy = min(consent["advocacy"], ERASED_ADVOCACY, key=ADVOCACY_ORDER.index)
    return {**consent, "advocacy": advocacy, "statistics": bool(consent["statistics"]) and not statistics_withdrawn}


def erasure_withdraws_statistics(erasure: dict, command: dict | None) -> bool:
    """Whether an erasure's withdrawal of statistics consent still holds: a consent a caseworker
    recorded after the erasure is the person's newer word."""
    return bool(erasure.get("statistics_withdrawn")) and (command is None or command["at"] <= erasure["at"])

