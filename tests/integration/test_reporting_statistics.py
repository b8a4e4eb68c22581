"""Reporting's figures against the real FerretDB: 300 synthetic cases with back-dated moves, late
reports, withdrawn consent, merged duplicates, UNHCR-access requests and appeals, delivered as
events in a shuffled order; every measure, for several dates and disaggregations, equals a count
made independently here from the same invented data."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import uuid
from dataclasses import dataclass, field

import pytest

from services.reporting import handlers
from services.reporting.store import ReportingStore
from shared.events import new_event, validate_event
from tests.support import read_topic

UTC = dt.timezone.utc
AS_OF = [dt.date(2023, 6, 30), dt.date(2023, 12, 31), dt.date(2024, 6, 30)]
SINCE = {dt.date(2023, 6, 30): None, dt.date(2023, 12, 31): dt.date(2023, 6, 30), dt.date(2024, 6, 30): dt.date(2023, 1, 1)}
BYS = [[], ["sex"], ["sex", "age_group"], ["province", "status"], ["nationality"], ["age_group", "province", "sex"]]
MEASURES = ["detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued"]
PROVINCES = ["Jilin", "Liaoning", "Yunnan", "Heilongjiang"]
NEXT = {"reported": ["detained", "deportation_imminent", "whereabouts_unknown", "closed_unfounded"],
        "detained": ["deportation_imminent", "repatriated", "released"],
        "deportation_imminent": ["repatriated", "detained"],
        "whereabouts_unknown": ["detained"], "released": ["in_third_country"], "repatriated": [],
        "in_third_country": [], "closed_unfounded": []}


@dataclass
class Person:
    """An invented case as the test knows it, independently of any event."""

    case_id: str
    sex: str
    birth_year: int | None
    nationality: str
    province: str
    reported_on: dt.date
    consent: bool = True
    merged: bool = False
    moves: list = field(default_factory=list)          # (status, effective_on), in the order recorded
    requests: list = field(default_factory=list)       # (sent_on, granted_on or None)
    appeals: list = field(default_factory=list)        # issued_on


def invent(rng: random.Random, n: int) -> list[Person]:
    people = []
    for _ in range(n):
        reported = dt.date(2022, 1, 1) + dt.timedelta(days=rng.randrange(0, 880))
        p = Person(str(uuid.uuid4()), rng.choice(["female", "female", "male", "unknown"]),
                   rng.choice([None] + list(range(1950, 2022))), rng.choice(["KP"] * 9 + ["CN"]),
                   rng.choice(PROVINCES), reported, consent=rng.random() > 0.06, merged=rng.random() < 0.03)
        status, day = "reported", reported
        for _ in range(rng.randrange(0, 4)):
            if not NEXT[status]:
                break
            status = rng.choice(NEXT[status])
            # Back-dated now and then: the move happened before the one recorded just before it.
            day = day + dt.timedelta(days=rng.randrange(-40, 120))
            day = min(day, dt.date(2024, 6, 30))
            p.moves.append((status, day))
        if rng.random() < 0.25:
            sent = reported + dt.timedelta(days=rng.randrange(1, 200))
            p.requests.append((sent, sent + dt.timedelta(days=rng.randrange(1, 60)) if rng.random() < 0.5 else None))
        if rng.random() < 0.2:
            p.appeals.append(reported + dt.timedelta(days=rng.randrange(0, 150)))
        people.append(p)
    return people


def events_of(p: Person, clock) -> dict[str, list[dict]]:
    """The events the services would have emitted about this person, per topic, in order."""
    def ev(kind, producer, payload):
        return new_event(kind, producer=producer, case_id=p.case_id, payload=payload, now=next(clock))

    common = {"sex": p.sex, "birth_year": p.birth_year, "nationality": p.nationality, "province": p.province}
    intake = [ev("case.reported", "intake", {
        "report_id": str(uuid.uuid4()), "matched_existing_case": False, **common, "detained_on": None,
        "deportation_imminent": False, "expected_deportation_on": None, "vulnerabilities": [],
        "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
        "received_on": p.reported_on.isoformat(), "consent_advocacy": "anonymous", "consent_statistics": True})]
    case = [ev("case.opened", "case", {"status": "reported", **common, "detained_on": None,
                                       "deportation_imminent": False, "vulnerabilities": [],
                                       "consent_advocacy": "anonymous", "consent_statistics": True})]
    previous = "reported"
    for status, day in p.moves:
        case.append(ev("case.status_changed", "case", {"from": previous, "to": status, "effective_on": day.isoformat()}))
        previous = status
    if not p.consent:  # withdrawn later, through a later report's facts
        case.append(ev("case.facts_updated", "case", {"consent_statistics": False}))
    if p.merged:
        intake.append(ev("case.merged", "intake", {"into_case_id": str(uuid.uuid4())}))
    advocacy = []
    for sent, granted in p.requests:
        rid = str(uuid.uuid4())
        advocacy.append(ev("unhcr_access.requested", "advocacy", {"request_id": rid, "office": "UNHCR Beijing",
                                                                  "channel": "email", "sent_on": sent.isoformat()}))
        if granted:
            advocacy.append(ev("unhcr_access.responded", "advocacy", {"request_id": rid, "outcome": "granted",
                                                                      "received_on": granted.isoformat()}))
    for issued in p.appeals:
        advocacy.append(ev("appeal.issued", "advocacy", {"appeal_id": str(uuid.uuid4()), "kind": "urgent_appeal",
                                                         "recipients": ["SR DPRK"], "issued_on": issued.isoformat()}))
    return {"intake": intake, "case": case, "advocacy": advocacy}


def interleave(rng: random.Random, streams: list[list[dict]]) -> list[dict]:
    """Merge streams in a random order that keeps each stream's own order (as topics do)."""
    streams = [list(s) for s in streams if s]
    out = []
    while streams:
        s = rng.choice(streams)
        out.append(s.pop(0))
        if not s:
            streams.remove(s)
    return out


# --- the independent count --------------------------------------------------------------------


def status_on(p: Person, day: dt.date) -> str | None:
    moves = [(eff, order, status) for order, (status, eff) in enumerate(p.moves) if eff <= day]
    if moves:
        return max(moves)[2]
    return "reported" if p.reported_on <= day else None


def age(p: Person, day: dt.date) -> str:
    if p.birth_year is None:
        return "unknown"
    years = day.year - p.birth_year
    return "0-4" if years <= 4 else "5-11" if years <= 11 else "12-17" if years <= 17 else "18-59" if years <= 59 else "60+"


def counted(p: Person, measure: str, day: dt.date, since: dt.date | None) -> bool:
    if not p.consent or p.merged or any(s in ("closed_duplicate", "closed_unfounded") for s, _ in p.moves):
        return False
    inside = lambda d: d is not None and d <= day and (since is None or d > since)  # noqa: E731
    return {
        "detained": lambda: status_on(p, day) in ("detained", "deportation_imminent"),
        "deportation_imminent": lambda: status_on(p, day) == "deportation_imminent",
        "repatriated": lambda: any(s == "repatriated" and inside(d) for s, d in p.moves),
        "reported": lambda: inside(p.reported_on),
        "unhcr_access_requested": lambda: any(inside(sent) for sent, _ in p.requests),
        "unhcr_access_granted": lambda: any(inside(granted) for _, granted in p.requests),
        "appeals_issued": lambda: any(inside(issued) for issued in p.appeals),
    }[measure]()


def category(p: Person, dim: str, day: dt.date) -> str:
    return {"sex": p.sex, "age_group": age(p, day), "province": p.province, "nationality": p.nationality,
            "status": status_on(p, day) or "unknown"}[dim]


def expected(people, measure, day, since, by) -> tuple[int, dict]:
    hits = [p for p in people if counted(p, measure, day, since)]
    cells: dict = {}
    for p in hits:
        key = tuple(category(p, d, day) for d in by)
        cells[key] = cells.get(key, 0) + 1
    return len(hits), cells


# --- the test ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(settings, mongo, reporting_app):
    """300 invented cases, their events applied by reporting's handler in a shuffled order."""
    rng = random.Random(20240630)
    start = dt.datetime(2024, 7, 1, tzinfo=UTC)
    clock = (start + dt.timedelta(seconds=i) for i in itertools.count())
    people = invent(rng, 300)
    streams = {"intake": [], "case": [], "advocacy": []}
    for p in people:
        for topic, evs in events_of(p, clock).items():
            streams[topic].extend(evs)
    store = ReportingStore(mongo[settings.database_name("reporting")])
    store.clear_records()  # this module's cases only: other modules feed reporting too
    delivered = interleave(rng, list(streams.values()))
    for event in delivered:
        handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)
    for event in rng.sample(delivered, 40):  # some delivered twice, as Kafka may
        handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)
    return {"people": people, "store": store, "rng": rng, "clock": clock}


def _stats(client, headers, **params):
    res = client.get("/api/v1/statistics", headers=headers,
                     query_string={k: (",".join(v) if isinstance(v, list) else v) for k, v in params.items()
                                   if v is not None})
    assert res.status_code == 200, res.get_json()
    return res.get_json()


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_equals_an_independent_count(reporting_client, tokens, world, measure):
    for day in AS_OF:
        since = SINCE[day]
        for by in BYS:
            got = _stats(reporting_client, tokens["analyst"], measure=measure, as_of=day.isoformat(),
                         since=since.isoformat() if since else None, by=by, disclosure="internal")
            total, cells = expected(world["people"], measure, day, since, by)
            label = (measure, day, since, by)
            assert got["total"] == total, label
            assert got["by"] == by and got["as_of"] == day.isoformat()
            if not by:
                assert got["cells"] == []
                continue
            published = {tuple(c[d] for d in by): c["count"] for c in got["cells"]}
            assert {k: v for k, v in published.items() if v} == cells, label
            assert sum(published.values()) == total, label


def test_a_late_report_changes_only_the_dates_it_concerns(reporting_client, tokens, world):
    before = {day: _stats(reporting_client, tokens["analyst"], measure="detained", as_of=day.isoformat(),
                          disclosure="internal")["total"] for day in AS_OF}
    late = Person(str(uuid.uuid4()), "female", 1990, "KP", "Jilin", reported_on=dt.date(2024, 5, 1),
                  moves=[("detained", dt.date(2023, 9, 1)), ("repatriated", dt.date(2024, 2, 1))])
    for topic_events in events_of(late, world["clock"]).values():
        for event in topic_events:
            handlers.on_event(validate_event(json.loads(json.dumps(event))), store=world["store"])
    after = {day: _stats(reporting_client, tokens["analyst"], measure="detained", as_of=day.isoformat(),
                         disclosure="internal")["total"] for day in AS_OF}
    assert after[dt.date(2023, 12, 31)] == before[dt.date(2023, 12, 31)] + 1  # detained then, reported later
    assert after[dt.date(2023, 6, 30)] == before[dt.date(2023, 6, 30)]          # before it began
    assert after[dt.date(2024, 6, 30)] == before[dt.date(2024, 6, 30)]          # returned since
    world["people"].append(late)


def test_public_tables_publish_no_count_from_1_to_4_and_say_why(reporting_client, tokens, world):
    for measure, by in itertools.product(MEASURES, BYS[1:]):
        got = _stats(reporting_client, tokens["caseworker"], measure=measure, as_of="2024-06-30", by=by)
        assert got["disclosure"] == "public"
        assert all(c["count"] is None or c["count"] == 0 or c["count"] >= 5 for c in got["cells"])
        assert all("reason" not in c for c in got["cells"])
        hidden = [c for c in got["cells"] if c.get("suppressed")]
        assert ("No count was suppressed" in got["note"]) == (not hidden), got["note"]
        assert got["suppressed"]["primary"] + got["suppressed"]["secondary"] == len(hidden)


def test_exact_figures_are_for_analysts_only_and_bad_queries_say_what_is_wrong(reporting_client, tokens, world):
    res = reporting_client.get("/api/v1/statistics?measure=detained&disclosure=internal", headers=tokens["caseworker"])
    assert res.status_code == 403
    for query, field_ in [("measure=happiness", "measure"), ("measure=detained&by=sex,shoe_size", "by"),
                          ("measure=detained&as_of=2999-01-01", "as_of"),
                          ("measure=detained&as_of=2024-01-01&since=2024-02-01", "since"), ("", "measure")]:
        res = reporting_client.get(f"/api/v1/statistics?{query}", headers=tokens["analyst"])
        assert res.status_code == 422 and field_ in res.get_json()["error"]["fields"], (query, res.get_json())
    assert reporting_client.get("/api/v1/statistics?measure=detained").status_code == 401


def test_the_upr_questions_agree_with_the_statistics(reporting_client, tokens, world):
    for disclosure in ("public", "internal"):
        items = reporting_client.get(f"/api/v1/upr/questions?as_of=2024-06-30&since=2023-01-01&disclosure={disclosure}",
                                     headers=tokens["analyst"]).get_json()["items"]
        assert [i["id"] for i in items] == ["detained_by_age_sex", "facing_deportation", "returned",
                                            "pattern_after_return", "art46", "unhcr_recognition", "unhcr_access",
                                            "appeals", "business"]
        for item in items:
            assert item["question"].endswith("?") and item["answer_text"]
            for measure, table in item["figures"].items():
                if "measure" not in table:
                    continue  # not a table: the median sentence, kinds of work, the evidence register's size
                same = _stats(reporting_client, tokens["analyst"], measure=table["measure"], as_of="2024-06-30",
                              since="2023-01-01", by=table["by"], disclosure=disclosure)
                assert table == same, (item["id"], measure)
                shown = "fewer than 5" if table["total"] is None else str(table["total"])
                assert shown in item["answer_text"]


def test_a_snapshot_keeps_its_figures_and_announces_each_counted_case(reporting_client, tokens, world, settings):
    res = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                json={"cycle": "CN-5", "as_of": "2023-12-31", "title": "Synthetic annex"})
    assert res.status_code == 201, res.get_json()
    snap = res.get_json()
    detained = snap["exact"]["detained"]["total"]
    assert detained == expected(world["people"], "detained", dt.date(2023, 12, 31), None, [])[0]
    assert snap["case_count"] == len(snap["case_ids"]) > 0
    # More cases arrive, reported late about that period: the snapshot does not move.
    for _ in range(6):
        extra = Person(str(uuid.uuid4()), "male", 1980, "KP", "Yunnan", reported_on=dt.date(2023, 11, 1),
                       moves=[("detained", dt.date(2023, 11, 2))])
        for topic_events in events_of(extra, world["clock"]).values():
            for event in topic_events:
                handlers.on_event(validate_event(json.loads(json.dumps(event))), store=world["store"])
        world["people"].append(extra)
    live = _stats(reporting_client, tokens["analyst"], measure="detained", as_of="2023-12-31", disclosure="internal")
    assert live["total"] == detained + 6
    again = reporting_client.get(f"/api/v1/upr/snapshots/{snap['snapshot_id']}", headers=tokens["analyst"]).get_json()
    assert again["exact"]["detained"]["total"] == detained and again["figures"] == snap["figures"]
    public_view = reporting_client.get(f"/api/v1/upr/snapshots/{snap['snapshot_id']}", headers=tokens["advocate"])
    assert "case_ids" not in public_view.get_json() and "exact" not in public_view.get_json()
    announced = {r.key.decode() for r in read_topic(settings.kafka_bootstrap, "reporting.events")
                 if snap["snapshot_id"].encode() in r.value and b'"upr.snapshot_taken"' in r.value}
    assert announced == set(snap["case_ids"])
    assert reporting_client.post("/api/v1/upr/snapshots", headers=tokens["advocate"],
                                 json={"cycle": "CN-5", "as_of": "2023-12-31"}).status_code == 403
