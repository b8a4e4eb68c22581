"""The supply-chain evidence register (issue 11 point 4): products, facilities and companies named
in after-return testimonies, with how many testimonies name each, the period they cover and their
reliability. Built from the after-return records of the case records only; never a person. Pure.

A testimony is one after-return record. A name is counted once per testimony, whatever its
spelling's case or spacing. Cases that are not counted in the statistics (consent withdrawn, a
merged duplicate, a report found untrue) give no testimony here either.

Public disclosure: a name is listed only when at least THRESHOLD different persons named it (one
person's five testimonies still point to one person, and a facility named by one returnee can
point to them); the names left out are only counted, per kind. Dates are then given to the month,
and a reliability count from 1 to 4 is published as null. The other counts are published through
the cell key method like every public table (disclosure.perturb), each keyed by the persons
behind it, so a name's count as of two dates does not give the testimonies in between.
"""

from __future__ import annotations

import unicodedata

from services.reporting import cellkey, domain
from services.reporting.disclosure import THRESHOLD, perturb

KINDS = ("products", "facilities", "companies")
RELIABILITIES = ("confirmed", "probable", "unverified")


def normalised(name: str) -> str:
    """The key a name is counted under: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def testimonies(records: list[dict], as_of: str):
    """(case id, business date, after-return record) of every testimony effective on or before as_of."""
    for record in domain.with_after_return(records):
        if not domain.counts_as_person(record):
            continue
        for entry in (record.get("after_return") or {}).values():
            day = domain.after_return_on(entry)
            if day is not None and day <= as_of:
                yield record["_id"], day, entry


def register(records: list[dict], *, as_of: str, disclosure_level: str, record_key=None) -> dict:
    """API.md's register: {"products", "facilities", "companies"}, each item {"name",
    "testimonies", "first_on", "last_on", "reliability"}, most named first (in public, by the
    published counts; ``record_key`` defaults to this process's secret record keys)."""
    found: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
    for case_id, day, entry in testimonies(records, as_of):
        for kind in KINDS:
            for key, name in {normalised(n): n.strip() for n in entry.get(kind) or [] if n and n.strip()}.items():
                item = found[kind].setdefault(key, {"spellings": {}, "testimonies": 0, "cases": set(), "days": [],
                                                    "reliability": dict.fromkeys(RELIABILITIES, 0),
                                                    "reliability_cases": {r: set() for r in RELIABILITIES}})
                item["spellings"][name] = item["spellings"].get(name, 0) + 1
                item["testimonies"] += 1
                item["cases"].add(case_id)
                item["days"].append(day)
                if entry.get("source_reliability") in item["reliability"]:
                    item["reliability"][entry["source_reliability"]] += 1
                    item["reliability_cases"][entry["source_reliability"]].add(case_id)
    public = disclosure_level == "public"
    if public:
        record_key = record_key or cellkey.process_record_key()

        def published(count: int, cases: set[str]) -> int | None:
            """1 to 4: null; otherwise perturbed by the key of the persons behind the count."""
            return None if 0 < count < THRESHOLD else perturb(count, sum(map(record_key, cases)) % 256)
    out: dict = {"as_of": as_of, "disclosure": disclosure_level, "withheld": {}}
    for kind in KINDS:
        items, withheld = [], 0
        for item in found[kind].values():
            if public and len(item["cases"]) < THRESHOLD:
                withheld += 1
                continue
            # The spelling most testimonies used (ties: the first in sort order), so the name shown
            # does not depend on the order testimonies arrived in.
            name = min(item["spellings"], key=lambda s: (-item["spellings"][s], s))
            first, last = min(item["days"]), max(item["days"])
            reliability, count = dict(item["reliability"]), item["testimonies"]
            if public:
                first, last = first[:7], last[:7]
                reliability = {k: published(v, item["reliability_cases"][k]) for k, v in reliability.items()}
                count = published(count, item["cases"])
            items.append({"name": name, "testimonies": count, "first_on": first, "last_on": last,
                          "reliability": reliability})
        out[kind] = sorted(items, key=lambda i: (-i["testimonies"], normalised(i["name"])))
        out["withheld"][kind] = withheld
    out["note"] = (f"Names given by fewer than {THRESHOLD} documented persons are not listed; dates are given to "
                   "the month." if public else "Exact: every name in the after-return testimonies as of the date.")
    return out
