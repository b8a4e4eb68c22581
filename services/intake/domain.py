"""Intake's pure rules: name normalisation for duplicate matching, and what an event may carry."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalise_name(name: str) -> str:
    """NFKC, case-folded, single-spaced: 'Kim  Ok-SUN ' and 'kim ok-sun' are the same name.

    Hangul and romanised forms stay as entered (they are different strings to match on).
    """
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def person_match_key(full_name: str, birth_year: int | None) -> str:
    """What the blind index is computed over: normalised name and birth year."""
    return f"{normalise_name(full_name)}|{birth_year if birth_year is not None else '?'}"


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
