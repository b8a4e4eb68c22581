"""Figures from the case records: statistics tables (exact or safe to publish), monthly series,
the UPR questions answered, and frozen snapshots for a submission. Pure: records in, figures out."""

from __future__ import annotations

import datetime as dt

from babel.dates import format_date

from services.reporting import cellkey, disclosure, domain, evidence

MEASURE_WORDS = {
    "detained": "detained in China",
    "deportation_imminent": "facing imminent deportation",
    "repatriated": "forcibly returned to the DPRK",
    "reported": "newly reported",
    "unhcr_access_requested": "the subject of a UNHCR-access request",
    "unhcr_access_granted": "granted UNHCR access",
    "appeals_issued": "the subject of an urgent appeal",
}


def _keys(record_key, disclosure_level: str):
    """The record keys public figures are perturbed with (this process's unless given); None for internal."""
    if disclosure_level != "public":
        return None
    return record_key or cellkey.process_record_key()


def table(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None, by: list[str],
          disclosure_level: str, record_key=None) -> dict:
    """One statistics table as API.md defines it. `internal`: exact counts; `public`: cells from 1
    to 4 suppressed, and enough others that none can be worked out, then the published cells and
    the total perturbed by the cell key method (disclosure.py; ``record_key`` defaults to this
    process's secret keys); the note says what and why."""
    record_key = _keys(record_key, disclosure_level)
    exact = domain.count(records, measure, as_of.isoformat(), since.isoformat() if since else None, by, record_key,
                         with_ids=False)
    head = {"measure": measure, "as_of": as_of.isoformat(), "since": since.isoformat() if since else None,
            "by": list(by), "disclosure": disclosure_level}
    if disclosure_level == "internal":
        return {**head, "total": exact["total"], "cells": exact["cells"], "suppressed": {"primary": 0, "secondary": 0},
                "note": None}
    # A cell's key is never published (with the record keys it would tell who is in the cell).
    cell_keys = [cell.pop("key") for cell in exact["cells"]]
    protected = disclosure.perturbed(disclosure.protect(exact["cells"], list(by), exact["total"]), cell_keys,
                                     exact["total_key"])
    # Which suppressed cells were the small ones is itself a disclosure: publish only "suppressed".
    cells = [{k: v for k, v in cell.items() if k != "reason"} for cell in protected["cells"]]
    return {**head, "total": protected["total"], "cells": cells, "suppressed": protected["suppressed"],
            "note": f"{protected['note']} {PERTURBED_NOTE}"}


PERTURBED_NOTE = ("Published counts are rounded to a multiple of 5 by a fixed rule (off by at most 4), the same "
                  "for the same people in every table.")


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


def series(records: list[dict], *, as_of: dt.date, months: int = 24, disclosure_level: str = "public",
           record_key=None) -> dict:
    """Monthly figures up to as_of: detained at each month's end, returned and reported within it.
    Public series are protected like a table whose total (their sum) is known, then each month's
    published value perturbed by its own cell key (the same as that month's table total)."""
    record_key = _keys(record_key, disclosure_level)
    spans = month_ends(as_of, months)
    out: dict = {"months": [label for label, _, _ in spans]}
    for measure in ("detained", "repatriated", "reported"):
        values, keys = [], []
        for _, first, last in spans:
            since = None if measure == "detained" or first == dt.date.min else first - dt.timedelta(days=1)
            month = domain.count(records, measure, last.isoformat(), since.isoformat() if since else None, [],
                                 record_key, with_ids=False)
            values.append(month["total"])
            keys.append(month.get("total_key"))
        if disclosure_level == "public":
            cells = [{"month": label, "count": v} for label, v in zip(out["months"], values)]
            protected = disclosure.perturbed(disclosure.protect(cells, ["month"], sum(values)), keys, 0)
            values = [c["count"] for c in protected["cells"]]
        out[measure] = values
    return out


# --- the UPR questions --------------------------------------------------------------------------

QUESTIONS = (
    ("detained_by_age_sex", "How many North Korean nationals (disaggregated by age and gender) are currently "
                            "detained in China?", "detained"),
    ("facing_deportation", "How many of them will be deported to North Korea?", "deportation_imminent"),
    ("returned", "How many North Koreans were forcibly returned to the DPRK in the period?", "repatriated"),
    ("pattern_after_return", "For the purpose of article 3 of the Convention against Torture, is there no "
                             "consistent pattern of gross, flagrant or mass violations of human rights in North "
                             "Korea?", "returned_fate_known"),
    ("art46", "How many persons, disaggregated by nationality, have applied for refugee status under article 46 of "
              "the Exit and Entry Administration Law, been issued temporary identity certificates, been granted "
              "refugee status?", "art46_applied"),
    ("unhcr_recognition", "How many persons, disaggregated by nationality, have been granted refugee status "
                          "through UNHCR review since 2018?", "unhcr_recognised"),
    ("unhcr_access", "How many persons did UNHCR get access to, and how many requests for access were made?",
     "unhcr_access_requested"),
    ("appeals", "How many urgent appeals were issued to UN mechanisms and governments for persons at risk of "
                "return?", "appeals_issued"),
    ("business", "How many Chinese businesses have trade and/or investment interests in North Korea, what is the "
                 "volume and type of that trade, and how does the government ensure that its corporations abide "
                 "by the Guiding Principles on Business and Human Rights?", None),
)
PATTERN = ("held_by_mss", "sent_to_kyohwaso", "sent_to_kwanliso", "sent_to_labour_training_camp",
           "died_or_disappeared", "forced_labour_reported", "ill_treatment_reported")
ART46 = ("art46_applied", "art46_tic_issued", "art46_granted", "china_status_granted")
UNHCR_SINCE = dt.date(2017, 12, 31)  # "since 2018": the period (31 December 2017, as_of]
WORK_WORDS = {"mining": "mining", "logging": "logging", "farming": "farming", "construction": "construction",
              "textiles": "textiles", "wigs_eyelashes": "wigs and false eyelashes", "other": "other work"}


def _amount(value: int | None) -> str:
    """A published total in words: a total is suppressed only when it is from 1 to 4."""
    return "fewer than 5" if value is None else str(value)


def _by_sex(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None,
            disclosure_level: str, record_key=None) -> str:
    """'12 women or girls, 30 men or boys' from the measure's own table by sex (a suppressed cell
    may be a secondary one, so it is not called small: just unpublished)."""
    by_sex = table(records, measure=measure, as_of=as_of, since=since, by=["sex"], disclosure_level=disclosure_level,
                   record_key=record_key)
    return _sexes_of(by_sex)


def _sexes_of(by_sex: dict) -> str:
    words = {"female": "women or girls", "male": "men or boys", "unknown": "of unrecorded sex"}
    parts = [f"{'an unpublished number of' if c['count'] is None else c['count']} {words[c['sex']]}"
             for c in by_sex["cells"] if c["count"] != 0]
    return ", ".join(parts) or "none"


def after_return_facts(records: list[dict], *, as_of: dt.date, since: dt.date | None, disclosure_level: str,
                       record_key=None) -> dict:
    """What the tables cannot hold: the median kyohwaso sentence and the kinds of forced labour,
    from the latest after-return record of each counted case (the records the measures read).
    Public: each count stands alone, so 1 to 4 is unpublished and the others are perturbed by the
    cell key of the cases behind them (disclosure.py)."""
    record_key = _keys(record_key, disclosure_level)
    day, start = as_of.isoformat(), since.isoformat() if since else None
    sentences, work = [], dict.fromkeys(WORK_WORDS, 0)
    key_sums = dict.fromkeys(("sentences", *WORK_WORDS), 0)  # of the cases behind each count (public)
    for record in domain.with_after_return(records):
        if not domain.counts_as_person(record):
            continue
        if domain.in_measure(record, "sent_to_kyohwaso", day, start):
            years = domain.latest_after_return(record, day)[1].get("sentence_years")
            if years is not None:
                sentences.append(float(years))
                key_sums["sentences"] += record_key(record["_id"]) if record_key else 0
        if domain.in_measure(record, "forced_labour_reported", day, start):
            for kind in set(domain.latest_after_return(record, day)[1].get("work") or []):
                if kind in work:
                    work[kind] += 1
                    key_sums[kind] += record_key(record["_id"]) if record_key else 0

    def shown(count: int, name: str) -> int | None:
        if disclosure_level != "public":
            return count
        return None if 0 < count < disclosure.THRESHOLD else disclosure.perturb(count, key_sums[name] % disclosure.KEYS)

    known = len(sentences)
    hidden = disclosure_level == "public" and 0 < known < disclosure.THRESHOLD
    ordered = sorted(sentences)
    median = None if not ordered or hidden else (
        ordered[known // 2] if known % 2 else (ordered[known // 2 - 1] + ordered[known // 2]) / 2)
    return {"median_sentence": {"years": median, "sentences": shown(known, "sentences"), "suppressed": hidden},
            "work": {"cells": [{"work": k, "count": shown(v, k), **({"suppressed": True} if shown(v, k) is None else {})}
                               for k, v in work.items()],
                     "note": "A case may name several kinds of work; each count 1 to 4 is unpublished in public."}}


def _years(value: float) -> str:
    return f"{value:g}"


def questions(records: list[dict], *, as_of: dt.date, since: dt.date | None, disclosure_level: str,
              record_key=None) -> list[dict]:
    """The submission's questions to China, each with a sentence ready to paste that says the
    figures are of documented cases, and the tables behind it (the same tables the statistics
    endpoint gives, keyed by measure); the business question says what case data cannot answer."""
    when = format_date(as_of, "long", locale="en")
    period = (f"between {format_date(since + dt.timedelta(days=1), 'long', locale='en')} and {when}" if since
              else f"up to {when}")
    register = evidence.register(records, as_of=as_of.isoformat(), disclosure_level=disclosure_level)
    items = []
    for qid, question, measure in QUESTIONS:
        def tab(name, by=("sex", "age_group"), start=since):
            return table(records, measure=name, as_of=as_of, since=start, by=list(by), disclosure_level=disclosure_level,
                         record_key=record_key)

        figures: dict = {}
        if measure is not None:
            main = tab(measure, by=("nationality",) if qid in ("art46", "unhcr_recognition") else ("sex", "age_group"),
                       start=(since or UNHCR_SINCE) if qid == "unhcr_recognition" else since)
            figures[measure] = main
            total = _amount(main["total"])
        if qid == "detained_by_age_sex":
            sexes = _by_sex(records, measure=measure, as_of=as_of, since=since, disclosure_level=disclosure_level,
                            record_key=record_key)
            text = (f"As of {when}, the cases documented by Non-Refoulement Watch include {total} North Korean "
                    f"nationals detained in China ({sexes}); the age breakdown is in the table.")
        elif qid == "facing_deportation":
            text = f"As of {when}, {total} of the documented detainees faced imminent deportation to the DPRK."
        elif qid == "returned":
            sexes = _by_sex(records, measure=measure, as_of=as_of, since=since, disclosure_level=disclosure_level,
                            record_key=record_key)
            text = f"{total} documented persons were forcibly returned to the DPRK {period} ({sexes})."
        elif qid == "pattern_after_return":
            figures[f"{measure}_by_sex"] = tab(measure, by=("sex",))
            for name in PATTERN:
                figures[name] = tab(name, by=("sex",))
            facts = after_return_facts(records, as_of=as_of, since=since, disclosure_level=disclosure_level,
                                       record_key=record_key)
            figures.update(facts)
            figures["products"] = {"names": [p["name"] for p in register["products"]],
                                   "source": "/api/v1/evidence/supply-chain"}
            n = {name: _amount(figures[name]["total"]) for name in PATTERN}
            median = facts["median_sentence"]
            sentence = ("" if not median["sentences"] and not median["suppressed"] else
                        " Too few kyohwaso sentences are documented to publish their median." if median["years"] is None
                        else f" The median kyohwaso sentence documented is {_years(median['years'])} years "
                             f"({median['sentences']} sentences known).")
            kinds = [WORK_WORDS[c["work"]] for c in facts["work"]["cells"] if c["count"] != 0]
            products = figures["products"]["names"]
            text = (f"Of the persons documented by Non-Refoulement Watch as forcibly returned to the DPRK whose fate "
                    f"after return was known as of {when}{' (the latest news dated ' + period + ')' if since else ''}, {total} in all ({_sexes_of(figures[f'{measure}_by_sex'])}"
                    f"), according to the latest news of each: {n['held_by_mss']} were held by the Ministry of State "
                    f"Security; {n['sent_to_kyohwaso']} were sent to a kyohwaso (reform-through-labour prison), "
                    f"{n['sent_to_kwanliso']} to a kwanliso (political prison camp) and "
                    f"{n['sent_to_labour_training_camp']} to a labour training camp; {n['died_or_disappeared']} died "
                    f"in custody or disappeared.{sentence} {n['forced_labour_reported']} were reported to have been "
                    f"made to do forced labour" + (f" ({', '.join(kinds)})" if kinds else "")
                    + (f", producing goods including {', '.join(products)}" if products else "")
                    + f"; {n['ill_treatment_reported']} reported torture, sexual violence, forced abortion or other "
                      "ill-treatment. The tables give each figure by sex.")
        elif qid == "art46":
            for name in ART46[1:]:
                figures[name] = tab(name, by=("nationality",))
            text = (f"{period[0].upper()}{period[1:]}, {total} persons documented by Non-Refoulement Watch applied "
                    f"for refugee status under article 46 of the Exit and Entry Administration Law; "
                    f"{_amount(figures['art46_tic_issued']['total'])} were issued temporary identity certificates "
                    f"and {_amount(figures['art46_granted']['total'])} were granted refugee status; "
                    f"{_amount(figures['china_status_granted']['total'])} were granted a status by China. The tables "
                    "give each figure by nationality.")
        elif qid == "unhcr_recognition":
            start = since or UNHCR_SINCE
            text = (f"Between {format_date(start + dt.timedelta(days=1), 'long', locale='en')} and {when}, {total} "
                    "persons documented by Non-Refoulement Watch were recognised as refugees by UNHCR; the table "
                    "gives them by nationality.")
        elif qid == "unhcr_access":
            granted = tab("unhcr_access_granted")
            figures["unhcr_access_granted"] = granted
            text = (f"UNHCR access was requested for {total} documented persons {period}; access was granted for "
                    f"{_amount(granted['total'])} of them.")
        elif qid == "appeals":
            text = f"Urgent appeals were issued for {total} documented persons at risk of return {period}."
        else:
            listed = {kind: len(register[kind]) for kind in evidence.KINDS}
            figures["evidence_register"] = {**listed, "source": "/api/v1/evidence/supply-chain"}
            text = ("Case data cannot answer this question: the cases documented by Non-Refoulement Watch say "
                    "nothing of businesses' trade or investment, its volume or type, or what the government does "
                    "to hold its corporations to the Guiding Principles. What they hold instead is the evidence "
                    f"register of forced labour after return, which as of {when} lists the names given in "
                    f"testimonies of returned persons: products: {listed['products']}; facilities: "
                    f"{listed['facilities']}; companies: {listed['companies']} (the supply-chain evidence register).")
        items.append({"id": qid, "question": question, "answer_text": text, "figures": figures})
    return items


# --- snapshots ----------------------------------------------------------------------------------


def snapshot(records: list[dict], *, snapshot_id: str, cycle: str, as_of: dt.date, since: dt.date | None,
             title: str, actor: str, now: dt.datetime) -> dict:
    """Frozen figures for a submission: every measure by sex and age (public, and exact for
    analysts), the monthly series, the questions answered, the public evidence register, and the
    cases counted."""
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
        "evidence": _public_register(records, as_of),
    }


def _public_register(records: list[dict], as_of: dt.date) -> dict:
    """The evidence register as published on the snapshot's date, frozen with it for the annex."""
    return evidence.register(records, as_of=as_of.isoformat(), disclosure_level="public")
