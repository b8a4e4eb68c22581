"""Figures from the case records: statistics tables (exact or safe to publish), monthly series,
the UPR questions answered, and frozen snapshots for a submission. Pure: records in, figures out."""

from __future__ import annotations

import datetime as dt

from babel.dates import format_date

from services.reporting import disclosure, domain

MEASURE_WORDS = {
    "detained": "detained in China",
    "deportation_imminent": "facing imminent deportation",
    "repatriated": "forcibly returned to the DPRK",
    "reported": "newly reported",
    "unhcr_access_requested": "the subject of a UNHCR-access request",
    "unhcr_access_granted": "granted UNHCR access",
    "appeals_issued": "the subject of an urgent appeal",
}


def table(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None, by: list[str],
          disclosure_level: str) -> dict:
    """One statistics table as API.md defines it. `internal`: exact counts; `public`: cells from 1
    to 4 suppressed, and enough others that none can be worked out; the note says what and why."""
    exact = domain.count(records, measure, as_of.isoformat(), since.isoformat() if since else None, by)
    head = {"measure": measure, "as_of": as_of.isoformat(), "since": since.isoformat() if since else None,
            "by": list(by), "disclosure": disclosure_level}
    if disclosure_level == "internal":
        return {**head, "total": exact["total"], "cells": exact["cells"], "suppressed": {"primary": 0, "secondary": 0},
                "note": None}
    protected = disclosure.protect(exact["cells"], list(by), exact["total"])
    # Which suppressed cells were the small ones is itself a disclosure: publish only "suppressed".
    cells = [{k: v for k, v in cell.items() if k != "reason"} for cell in protected["cells"]]
    return {**head, "total": protected["total"], "cells": cells, "suppressed": protected["suppressed"],
            "note": protected["note"]}


def counted_case_ids(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None) -> list[str]:
    """The cases a measure counts (internal only)."""
    return domain.count(records, measure, as_of.isoformat(), since.isoformat() if since else None, [])["case_ids"]


# --- over time ----------------------------------------------------------------------------------


def month_ends(as_of: dt.date, months: int = 24) -> list[tuple[str, dt.date, dt.date]]:
    """(label, first day, last day counted) of each of the `months` months up to as_of (fewer when
    the calendar starts sooner: a date in year 1 has no earlier months)."""
    out = []
    year, month = as_of.year, as_of.month
    for _ in range(months):
        if year < dt.MINYEAR:
            break
        first = dt.date(year, month, 1)
        following = dt.date(year + (month == 12), month % 12 + 1, 1)
        out.append((f"{year:04d}-{month:02d}", first, min(following - dt.timedelta(days=1), as_of)))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(out))


def series(records: list[dict], *, as_of: dt.date, months: int = 24, disclosure_level: str = "public") -> dict:
    """Monthly figures up to as_of: detained at each month's end, returned and reported within it.
    Public series are protected like a table whose total (their sum) is known."""
    spans = month_ends(as_of, months)
    out: dict = {"months": [label for label, _, _ in spans]}
    for measure in ("detained", "repatriated", "reported"):
        values = []
        for _, first, last in spans:
            since = None if measure == "detained" or first == dt.date.min else first - dt.timedelta(days=1)
            values.append(domain.count(records, measure, last.isoformat(), since.isoformat() if since else None,
                                       [])["total"])
        if disclosure_level == "public":
            cells = [{"month": label, "count": v} for label, v in zip(out["months"], values)]
            protected = disclosure.protect(cells, ["month"], sum(values))
            values = [c["count"] for c in protected["cells"]]
        out[measure] = values
    return out


# --- the UPR questions --------------------------------------------------------------------------

QUESTIONS = (
    ("detained_now", "How many North Korean nationals (disaggregated by age and gender) are currently detained in "
                     "China?", "detained"),
    ("facing_deportation", "How many of them will be deported to North Korea?", "deportation_imminent"),
    ("returned", "How many North Koreans were forcibly returned to the DPRK in the period?", "repatriated"),
    ("unhcr_access", "How many persons did UNHCR get access to, and how many requests for access were made?",
     "unhcr_access_requested"),
    ("appeals", "How many urgent appeals were issued to UN mechanisms and governments for persons at risk of "
                "return?", "appeals_issued"),
)


def _amount(value: int | None) -> str:
    """A published total in words: a total is suppressed only when it is from 1 to 4."""
    return "fewer than 5" if value is None else str(value)


def _by_sex(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None,
            disclosure_level: str) -> str:
    """'12 women or girls, 30 men or boys' from the measure's own table by sex (a suppressed cell
    may be a secondary one, so it is not called small: just unpublished)."""
    by_sex = table(records, measure=measure, as_of=as_of, since=since, by=["sex"], disclosure_level=disclosure_level)
    words = {"female": "women or girls", "male": "men or boys", "unknown": "of unrecorded sex"}
    parts = [f"{'an unpublished number of' if c['count'] is None else c['count']} {words[c['sex']]}"
             for c in by_sex["cells"] if c["count"] != 0]
    return ", ".join(parts) or "none"


def questions(records: list[dict], *, as_of: dt.date, since: dt.date | None, disclosure_level: str) -> list[dict]:
    """The submission's questions to China that case data can answer, each with a sentence ready
    to paste and the tables behind it (the same tables the statistics endpoint gives)."""
    when = format_date(as_of, "long", locale="en")
    period = (f"between {format_date(since + dt.timedelta(days=1), 'long', locale='en')} and {when}" if since
              else f"up to {when}")
    items = []
    for qid, question, measure in QUESTIONS:
        main = table(records, measure=measure, as_of=as_of, since=since, by=["sex", "age_group"],
                     disclosure_level=disclosure_level)
        figures = {measure: main}
        total = _amount(main["total"])
        if qid == "detained_now":
            sexes = _by_sex(records, measure=measure, as_of=as_of, since=since, disclosure_level=disclosure_level)
            text = (f"As of {when}, the cases documented by Non-Refoulement Watch include {total} North Korean "
                    f"nationals detained in China ({sexes}); the age breakdown is in the table.")
        elif qid == "facing_deportation":
            text = f"As of {when}, {total} of the documented detainees faced imminent deportation to the DPRK."
        elif qid == "returned":
            sexes = _by_sex(records, measure=measure, as_of=as_of, since=since, disclosure_level=disclosure_level)
            text = f"{total} documented persons were forcibly returned to the DPRK {period} ({sexes})."
        elif qid == "unhcr_access":
            granted = table(records, measure="unhcr_access_granted", as_of=as_of, since=since, by=["sex", "age_group"],
                            disclosure_level=disclosure_level)
            figures["unhcr_access_granted"] = granted
            text = (f"UNHCR access was requested for {total} documented persons {period}; access was granted for "
                    f"{_amount(granted['total'])} of them.")
        else:
            text = f"Urgent appeals were issued for {total} documented persons at risk of return {period}."
        items.append({"id": qid, "question": question, "answer_text": text, "figures": figures})
    return items


# --- snapshots ----------------------------------------------------------------------------------


def snapshot(records: list[dict], *, snapshot_id: str, cycle: str, as_of: dt.date, since: dt.date | None,
             title: str, actor: str, now: dt.datetime) -> dict:
    """Frozen figures for a submission: every measure by sex and age (public, and exact for
    analysts), the monthly series, the questions answered, and the cases counted."""
    public, exact, counted = {}, {}, {}
    for measure in domain.MEASURES:
        args = {"measure": measure, "as_of": as_of, "since": since, "by": ["sex", "age_group"]}
        public[measure] = table(records, disclosure_level="public", **args)
        exact[measure] = table(records, disclosure_level="internal", **args)
        counted[measure] = counted_case_ids(records, measure=measure, as_of=as_of, since=since)
    case_ids = sorted({c for ids in counted.values() for c in ids})
    return {
        "_id": snapshot_id, "snapshot_id": snapshot_id, "cycle": cycle, "as_of": as_of.isoformat(),
        "since": since.isoformat() if since else None, "title": title, "taken_at": now, "taken_by": actor,
        "figures": public, "exact": exact, "counted": counted, "case_ids": case_ids, "case_count": len(case_ids),
        "series": series(records, as_of=as_of), "questions": questions(records, as_of=as_of, since=since,
                                                                        disclosure_level="public"),
    }
