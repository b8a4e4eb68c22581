"""Reporting's after-return and asylum figures against the real FerretDB (issue 11 points 3-4):
300 synthetic cases, the returned among them with after-return records (several per person, news
learned long after it happened, now and then with no date of its own), asylum records of the three
procedures, withdrawn consent and merged duplicates, delivered as events in a shuffled order with
redeliveries. Every new measure, for several dates, periods and breakdowns, equals a count made
independently here from the same invented data; public tables publish no count from 1 to 4; the
UPR questions say their figures are of documented cases and agree with the statistics; the
evidence register counts testimonies, never a person."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import threading
import uuid
from dataclasses import dataclass, field

import pytest

from services.reporting import handlers
from services.reporting.store import ReportingStore
from shared.events import PAYLOAD_SCHEMAS, SCHEMA_VERSION, new_event, validate_event
from tests.integration.test_reporting_statistics import interleave  # one stream per topic, each in order
from tests.support import page_login

PASSWORD = "integration-password-1"  # the users fixture's

UTC = dt.timezone.utc
AS_OF = [dt.date(2022, 12, 31), dt.date(2023, 6, 30), dt.date(2023, 12, 31), dt.date(2024, 6, 30)]
SINCE = {dt.date(2022, 12, 31): None, dt.date(2023, 6, 30): dt.date(2022, 12, 31),
         dt.date(2023, 12, 31): None, dt.date(2024, 6, 30): dt.date(2023, 3, 31)}
BYS = [[], ["sex"], ["nationality"], ["sex", "age_group"], ["province", "status"]]
AFTER_RETURN = ["returned_fate_known", "held_by_mss", "sent_to_kyohwaso", "sent_to_kwanliso",
                "sent_to_labour_training_camp", "died_or_disappeared", "forced_labour_reported", "ill_treatment_reported"]
ASYLUM = ["art46_applied", "art46_tic_issued", "art46_granted", "unhcr_recognised", "china_status_granted"]
PROVINCES = ["Jilin", "Liaoning", "Yunnan"]
OUTCOMES = ["released", "labour_training_camp", "kyohwaso", "kwanliso", "died_in_custody", "disappeared", "unknown"]
CUSTODY = ["mss", "mss", "mps", "border_guards", "other", "unknown"]
WORK = ["mining", "logging", "farming", "construction", "textiles", "wigs_eyelashes", "other"]
PRODUCTS = ["wigs", "false eyelashes", "coal", "timber", "garments"]
FACILITIES = ["Kyohwaso No. 12 (Jongori)", "Kyohwaso No. 3"]
STEPS = {"art46": ["applied", "tic_issued", "refused", "no_answer", "granted"],
         "unhcr_rsd": ["requested", "access_granted", "access_denied", "recognised", "rejected"],
         "china_status": ["granted", "refused"]}
RARE_PRODUCT = "Synthetic hairpieces, batch Z"  # named in exactly two testimonies, by two persons


@dataclass
class News:
    """One after-return record as the test knows it."""

    record_id: str
    learned_on: dt.date
    effective_on: dt.date | None
    custody: str
    outcome: str
    sentence_years: float | None
    forced_labour: str
    work: list
    products: list
    ill_treatment: list
    reliability: str

    @property
    def day(self) -> dt.date:
        return self.effective_on or self.learned_on


@dataclass
class Person:
    """An invented case, independently of any event."""

    case_id: str
    sex: str
    birth_year: int | None
    nationality: str
    province: str
    reported_on: dt.date
    returned_on: dt.date | None = None
    consent: bool = True
    merged: bool = False
    news: list = field(default_factory=list)
    asylum: list = field(default_factory=list)  # (record_id, procedure, step, effective_on)


def invent(rng: random.Random, n: int) -> list[Person]:
    people = []
    for _ in range(n):
        reported = dt.date(2021, 6, 1) + dt.timedelta(days=rng.randrange(0, 500))
        p = Person(str(uuid.uuid4()), rng.choice(["female", "female", "male", "unknown"]),
                   rng.choice([None] + list(range(1950, 2015))), rng.choice(["KP"] * 8 + ["CN", "RU"]),
                   rng.choice(PROVINCES), reported, consent=rng.random() > 0.06, merged=rng.random() < 0.03)
        if rng.random() < 0.6:
            p.returned_on = reported + dt.timedelta(days=rng.randrange(10, 200))
            days = rng.sample(range(5, 900), rng.randrange(0, 4))  # distinct business dates: no ties
            for offset in sorted(days):
                effective = p.returned_on + dt.timedelta(days=offset)
                outcome = rng.choice(OUTCOMES)
                labour = rng.choice(["yes", "yes", "no", "unknown"])
                news = News(str(uuid.uuid4()), effective + dt.timedelta(days=rng.randrange(0, 400)),  # late news
                            effective, rng.choice(CUSTODY), outcome,
                            rng.choice([None, 2, 5, 5, 7, 10, 0.5]) if outcome == "kyohwaso" else None, labour,
                            rng.sample(WORK, rng.randrange(1, 3)) if labour == "yes" else [],
                            rng.sample(PRODUCTS, rng.randrange(0, 3)) if labour == "yes" else [],
                            rng.sample(["torture", "sexual_violence", "forced_abortion", "other"], rng.randrange(0, 3)),
                            rng.choice(["confirmed", "probable", "unverified"]))
                if rng.random() < 0.15:
                    news.effective_on = None  # when it happened is not known: counted from when it was learned
                    news.learned_on = effective
                p.news.append(news)
        for procedure, steps in STEPS.items():
            if rng.random() < 0.35:
                day = reported + dt.timedelta(days=rng.randrange(0, 300))
                for step in rng.sample(steps, rng.randrange(1, 3)):
                    p.asylum.append((str(uuid.uuid4()), procedure, step, day))
                    day += dt.timedelta(days=rng.randrange(1, 400))
        people.append(p)
    return people


def event(kind: str, producer: str, case_id: str, payload: dict, now: dt.datetime) -> dict:
    """An event as its producer sends it (strictly validated once shared/events.py has its schema)."""
    if kind in PAYLOAD_SCHEMAS:
        return new_event(kind, producer=producer, case_id=case_id, payload=payload, now=now)
    event_id = str(uuid.uuid4())
    return {"event_id": event_id, "event_type": kind, "schema_version": SCHEMA_VERSION, "occurred_at": now.isoformat(),
            "producer": producer, "case_id": case_id, "correlation_id": event_id, "causation_id": None,
            "actor": None, "payload": payload}


def news_payload(news: News) -> dict:
    return {"record_id": news.record_id, "learned_on": news.learned_on.isoformat(),
            "effective_on": news.effective_on.isoformat() if news.effective_on else None,
            "source_type": "fellow_escapee", "source_reliability": news.reliability, "custody": news.custody,
            "outcome": news.outcome, "sentence_years": news.sentence_years, "forced_labour": news.forced_labour,
            "work": news.work, "products": news.products,
            "facilities": list(FACILITIES[:1]) if news.forced_labour == "yes" else [], "companies": [],
            "ill_treatment": news.ill_treatment}


def events_of(p: Person, clock) -> list[list[dict]]:
    """The events about this person: intake's stream and the case service's, each in order."""
    def ev(kind, producer, payload):
        return event(kind, producer, p.case_id, payload, next(clock))

    common = {"sex": p.sex, "birth_year": p.birth_year, "nationality": p.nationality, "province": p.province}
    intake = [ev("case.reported", "intake", {
        "report_id": str(uuid.uuid4()), "matched_existing_case": False, **common, "detained_on": None,
        "deportation_imminent": False, "expected_deportation_on": None, "vulnerabilities": [],
        "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
        "received_on": p.reported_on.isoformat(), "consent_advocacy": "anonymous", "consent_statistics": True})]
    case = [ev("case.opened", "case", {"status": "reported", **common, "detained_on": None,
                                       "deportation_imminent": False, "vulnerabilities": [],
                                       "consent_advocacy": "anonymous", "consent_statistics": True})]
    if p.returned_on:
        case.append(ev("case.status_changed", "case", {"from": "reported", "to": "repatriated",
                                                       "effective_on": p.returned_on.isoformat()}))
    recorded = [("news", n) for n in p.news] + [("asylum", a) for a in p.asylum]
    random.Random(p.case_id).shuffle(recorded)  # news arrives in any order, not the order it happened in
    for kind, item in recorded:
        if kind == "news":
            case.append(ev("case.after_return_recorded", "case", news_payload(item)))
        else:
            record_id, procedure, step, day = item
            case.append(ev("case.asylum_recorded", "case", {
                "record_id": record_id, "procedure": procedure, "step": step, "effective_on": day.isoformat(),
                "source_type": "ngo_partner", "source_reliability": "probable"}))
    if not p.consent:
        case.append(ev("case.facts_updated", "case", {"consent_statistics": False}))
    if p.merged:
        intake.append(ev("case.merged", "intake", {"into_case_id": str(uuid.uuid4())}))
    return [intake, case]


def deliver(store: ReportingStore, events: list[dict]) -> None:
    for e in events:
        handlers.on_event(validate_event(json.loads(json.dumps(e))), store=store)


# --- the independent count --------------------------------------------------------------------


def latest(p: Person, day: dt.date) -> News | None:
    known = [n for n in p.news if n.day <= day]
    return max(known, key=lambda n: n.day) if known else None


def first_step(p: Person, measure: str) -> dt.date | None:
    procedure, step = {"art46_applied": ("art46", None), "art46_tic_issued": ("art46", "tic_issued"),
                       "art46_granted": ("art46", "granted"), "unhcr_recognised": ("unhcr_rsd", "recognised"),
                       "china_status_granted": ("china_status", "granted")}[measure]
    days = [d for _, proc, s, d in p.asylum if proc == procedure and (step is None or s == step)]
    return min(days) if days else None


def counted(p: Person, measure: str, day: dt.date, since: dt.date | None) -> bool:
    if not p.consent or p.merged:
        return False
    inside = lambda d: d is not None and d <= day and (since is None or d > since)  # noqa: E731
    if measure in ASYLUM:
        return inside(first_step(p, measure))
    news = latest(p, day)
    if news is None or not inside(news.day):
        return False
    return {
        "returned_fate_known": news.outcome != "unknown",
        "held_by_mss": news.custody == "mss",
        "sent_to_kyohwaso": news.outcome == "kyohwaso",
        "sent_to_kwanliso": news.outcome == "kwanliso",
        "sent_to_labour_training_camp": news.outcome == "labour_training_camp",
        "died_or_disappeared": news.outcome in ("died_in_custody", "disappeared"),
        "forced_labour_reported": news.forced_labour == "yes",
        "ill_treatment_reported": bool(news.ill_treatment),
    }[measure]


def category(p: Person, dim: str, day: dt.date) -> str:
    if dim == "age_group":
        if p.birth_year is None:
            return "unknown"
        years = day.year - p.birth_year
        return "0-4" if years <= 4 else "5-11" if years <= 11 else "12-17" if years <= 17 else \
            "18-59" if years <= 59 else "60+"
    if dim == "status":
        return "repatriated" if p.returned_on and p.returned_on <= day else \
            "reported" if p.reported_on <= day else "unknown"
    return {"sex": p.sex, "province": p.province, "nationality": p.nationality}[dim]


def expected(people, measure, day, since, by) -> tuple[int, dict]:
    hits = [p for p in people if counted(p, measure, day, since)]
    cells: dict = {}
    for p in hits:
        key = tuple(category(p, d, day) for d in by)
        cells[key] = cells.get(key, 0) + 1
    return len(hits), cells


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(settings, mongo, reporting_app):
    """300 invented cases, their events applied by reporting's handler shuffled, with redeliveries."""
    rng = random.Random(20241128)
    clock = (dt.datetime(2024, 7, 1, tzinfo=UTC) + dt.timedelta(seconds=i) for i in itertools.count())
    people = invent(rng, 300)
    # Two testimonies by two persons name a product no one else names.
    witnesses = [p for p in people if p.news and p.consent and not p.merged][:2]
    for p in witnesses:
        p.news[0].forced_labour = "yes"
        p.news[0].products = p.news[0].products + [RARE_PRODUCT]
    streams = [[], []]
    for p in people:
        for stream, evs in zip(streams, events_of(p, clock)):
            stream.extend(evs)
    store = ReportingStore(mongo[settings.database_name("reporting")])
    store.clear_records()  # this module's cases only: other modules feed reporting too
    delivered = interleave(rng, streams)
    deliver(store, delivered)
    deliver(store, rng.sample(delivered, 80))  # some delivered again, as Kafka may, out of order
    return {"people": people, "store": store, "clock": clock, "witnesses": witnesses}


def _get(client, headers, path, **params):
    res = client.get(path, headers=headers, query_string={k: (",".join(v) if isinstance(v, list) else v)
                                                          for k, v in params.items() if v is not None})
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def _stats(client, headers, **params):
    return _get(client, headers, "/api/v1/statistics", **params)


def _check(got, people, measure, day, since, by):
    total, cells = expected(people, measure, day, since, by)
    label = (measure, day, since, by)
    assert got["total"] == total, label
    published = {tuple(c[d] for d in by): c["count"] for c in got["cells"]}
    assert {k: v for k, v in published.items() if v} == (cells if by else {}), label
    return total


@pytest.mark.parametrize("measure", AFTER_RETURN + ASYLUM)
def test_every_new_measure_equals_an_independent_count(reporting_client, tokens, world, measure):
    seen = set()
    for day in AS_OF:
        for since in {None, SINCE[day]}:
            for by in BYS:
                got = _stats(reporting_client, tokens["analyst"], measure=measure, as_of=day.isoformat(),
                             since=since.isoformat() if since else None, by=by, disclosure="internal")
                seen.add(_check(got, world["people"], measure, day, since, by))
    assert seen != {0}, f"{measure}: the population never reaches it, so the test could not fail"


def test_the_population_holds_what_the_measures_must_tell_apart(world):
    people = world["people"]
    day = dt.date(2024, 6, 30)
    # A case whose latest news supersedes an earlier one: counted by its latest record only.
    assert any(len(p.news) > 1 and p.news[0].outcome == "kyohwaso" and p.news[-1].outcome != "kyohwaso"
               for p in people)
    assert any(n.learned_on > n.effective_on + dt.timedelta(days=180) for p in people for n in p.news if n.effective_on)
    assert any(n.effective_on is None for p in people for n in p.news)
    assert sum(counted(p, "art46_applied", day, None) and not counted(p, "art46_tic_issued", day, None)
               for p in people) and sum(counted(p, "art46_tic_issued", day, None) for p in people)


def test_late_news_changes_only_the_dates_it_concerns(reporting_client, tokens, world):
    person = next(p for p in world["people"] if p.news and p.consent and not p.merged
                  and p.news[-1].day < dt.date(2023, 6, 1) and latest(p, dt.date(2024, 6, 30)).outcome != "kwanliso")
    late = News(str(uuid.uuid4()), learned_on=dt.date(2024, 6, 1), effective_on=dt.date(2023, 9, 1), custody="mss",
                outcome="kwanliso", sentence_years=None, forced_labour="unknown", work=[], products=[],
                ill_treatment=[], reliability="unverified")
    before = {(m, d): _stats(reporting_client, tokens["analyst"], measure=m, as_of=d.isoformat(),
                             disclosure="internal")["total"] for m in AFTER_RETURN for d in AS_OF}
    deliver(world["store"], [event("case.after_return_recorded", "case", person.case_id, news_payload(late),
                                   next(world["clock"]))] * 2)
    person.news.append(late)
    for measure, day in before:
        got = _stats(reporting_client, tokens["analyst"], measure=measure, as_of=day.isoformat(), disclosure="internal")
        if day < late.effective_on:
            assert got["total"] == before[(measure, day)], (measure, day)
        _check(got, world["people"], measure, day, None, [])
    assert before[("sent_to_kwanliso", dt.date(2023, 12, 31))] + 1 == \
        _stats(reporting_client, tokens["analyst"], measure="sent_to_kwanliso", as_of="2023-12-31",
               disclosure="internal")["total"]


def test_public_tables_of_the_new_measures_publish_no_count_from_1_to_4(reporting_client, tokens, world):
    hidden_somewhere = False
    for measure, by in itertools.product(AFTER_RETURN + ASYLUM, BYS[1:]):
        got = _stats(reporting_client, tokens["caseworker"], measure=measure, as_of="2024-06-30", by=by)
        assert got["disclosure"] == "public"
        assert all(c["count"] is None or c["count"] == 0 or c["count"] >= 5 for c in got["cells"]), (measure, by)
        assert got["total"] is None or got["total"] == 0 or got["total"] >= 5
        assert all("reason" not in c for c in got["cells"])
        hidden = [c for c in got["cells"] if c.get("suppressed")]
        hidden_somewhere |= bool(hidden)
        assert got["suppressed"]["primary"] + got["suppressed"]["secondary"] == len(hidden)
    assert hidden_somewhere  # small cells exist, so the guarantee was tested


QUESTION_IDS = ["detained_by_age_sex", "facing_deportation", "returned", "pattern_after_return", "art46",
                "unhcr_recognition", "unhcr_access", "appeals", "business"]


def _tables(item):
    return {k: v for k, v in item["figures"].items() if isinstance(v, dict) and "measure" in v}


def test_the_questions_answer_from_documented_cases_and_agree_with_the_statistics(reporting_client, tokens, world):
    for disclosure in ("public", "internal"):
        items = _get(reporting_client, tokens["analyst"], "/api/v1/upr/questions", as_of="2024-06-30",
                     disclosure=disclosure)["items"]
        assert [i["id"] for i in items] == QUESTION_IDS
        for item in items:
            assert item["question"].endswith("?") and item["answer_text"]
            assert "documented" in item["answer_text"], item["id"]
            for key, table in _tables(item).items():
                same = _stats(reporting_client, tokens["analyst"], measure=table["measure"], as_of="2024-06-30",
                              since=table["since"], by=table["by"], disclosure=disclosure)
                assert table == same, (item["id"], key)
                if disclosure == "public":
                    assert all(c["count"] in (None, 0) or c["count"] >= 5 for c in table["cells"])
        by_id = {i["id"]: i for i in items}
        pattern = by_id["pattern_after_return"]
        for measure in AFTER_RETURN[1:]:
            assert pattern["figures"][measure]["by"] == ["sex"]
        for qid, by in (("art46", ["nationality"]), ("unhcr_recognition", ["nationality"])):
            assert all(t["by"] == by for t in _tables(by_id[qid]).values())
        assert set(_tables(by_id["art46"])) == {"art46_applied", "art46_tic_issued", "art46_granted",
                                                "china_status_granted"}
        assert by_id["unhcr_recognition"]["figures"]["unhcr_recognised"]["since"] == "2017-12-31"
        assert "evidence register" in by_id["business"]["answer_text"]
        if disclosure == "internal":
            day = dt.date(2024, 6, 30)
            total = expected(world["people"], "sent_to_kyohwaso", day, None, [])[0]
            assert f"{total} were sent to a kyohwaso" in pattern["answer_text"]
            years = sorted(latest(p, day).sentence_years for p in world["people"]
                           if counted(p, "sent_to_kyohwaso", day, None) and latest(p, day).sentence_years is not None)
            mid = len(years) // 2
            median = years[mid] if len(years) % 2 else (years[mid - 1] + years[mid]) / 2
            assert pattern["figures"]["median_sentence"] == {"years": median, "sentences": len(years),
                                                             "suppressed": False}
            work = {c["work"]: c["count"] for c in pattern["figures"]["work"]["cells"]}
            assert work["mining"] == sum(counted(p, "forced_labour_reported", day, None)
                                         and "mining" in latest(p, day).work for p in world["people"])


def test_the_dashboard_shows_the_questions_answered_in_korean_and_english(reporting_client, users, world):
    for lang, words in (("en", "documented"), ("ko", "기록한 강제송환자")):
        page_login(reporting_client, users["analyst"], PASSWORD, lang=lang)
        page = reporting_client.get("/?as_of=2024-06-30")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        for qid in QUESTION_IDS:
            assert f'data-question="{qid}"' in text
        assert words in text


def test_the_evidence_register_counts_testimonies_and_names_no_one(reporting_client, tokens, users, world):
    internal = _get(reporting_client, tokens["analyst"], "/api/v1/evidence/supply-chain", as_of="2024-06-30",
                    disclosure="internal")
    rare = [i for i in internal["products"] if i["name"] == RARE_PRODUCT]
    days = sorted(p.news[0].day for p in world["witnesses"])
    assert rare == [{"name": RARE_PRODUCT, "testimonies": 2, "first_on": days[0].isoformat(),
                     "last_on": days[-1].isoformat(), "reliability": rare[0]["reliability"]}]
    assert sum(rare[0]["reliability"].values()) == 2
    day = dt.date(2024, 6, 30)
    wigs = sum("wigs" in n.products for p in world["people"] if p.consent and not p.merged for n in p.news
               if n.day <= day)
    assert next(i for i in internal["products"] if i["name"] == "wigs")["testimonies"] == wigs > 5
    public = _get(reporting_client, tokens["caseworker"], "/api/v1/evidence/supply-chain", as_of="2024-06-30")
    assert public["disclosure"] == "public"
    assert RARE_PRODUCT not in json.dumps(public) and public["withheld"]["products"] >= 1
    assert all(len(i["first_on"]) == 7 for kind in ("products", "facilities") for i in public[kind])
    # Never a person: no case, record or person field anywhere in it.
    for register in (internal, public):
        dumped = json.dumps(register)
        assert not any(p.case_id in dumped or any(n.record_id in dumped for n in p.news) for p in world["people"])
        for kind in ("products", "facilities", "companies"):
            assert all(set(i) == {"name", "testimonies", "first_on", "last_on", "reliability"} for i in register[kind])
    assert reporting_client.get("/api/v1/evidence/supply-chain?disclosure=internal",
                                headers=tokens["caseworker"]).status_code == 403
    bad = reporting_client.get("/api/v1/evidence/supply-chain?as_of=2999-01-01", headers=tokens["analyst"])
    assert bad.status_code == 422 and "as_of" in bad.get_json()["error"]["fields"]
    for lang in ("en", "ko"):
        page_login(reporting_client, users["analyst"], PASSWORD, lang=lang)
        page = reporting_client.get("/evidence?as_of=2024-06-30&disclosure=internal")
        assert page.status_code == 200 and RARE_PRODUCT in page.get_data(as_text=True)
        assert ("증거 목록" in page.get_data(as_text=True)) == (lang == "ko")


def test_the_reporting_consumer_takes_both_events_from_the_broker(settings, mongo):
    """The real path: the events on case.events through the broker, applied by reporting's consumer
    (its handler table lists them), a redelivery changing nothing."""
    from services.reporting.consumer import make_handlers
    from shared.bus import EventConsumer, Publisher
    from tests.support import start_group_at_end, wait_for

    group = f"it-reporting-{uuid.uuid4().hex[:6]}"
    start_group_at_end(settings.kafka_bootstrap, group, ["case.events"])
    db = mongo[settings.database_name("reporting")]
    publisher = Publisher(settings, principal="admin", client_id="it-reporting-consumer")
    consumer = EventConsumer(settings, principal="admin", group_id=group, topics=["case.events"],
                             handlers=make_handlers(db, publisher), publisher=publisher)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        case_id, now = str(uuid.uuid4()), dt.datetime.now(UTC)
        news = News(str(uuid.uuid4()), dt.date(2024, 3, 1), dt.date(2024, 1, 10), "mss", "kwanliso", None, "yes",
                    ["mining"], ["coal"], ["torture"], "probable")
        events = [event("case.after_return_recorded", "case", case_id, news_payload(news), now),
                  event("case.asylum_recorded", "case", case_id, {
                      "record_id": str(uuid.uuid4()), "procedure": "unhcr_rsd", "step": "recognised",
                      "effective_on": "2023-05-02", "source_type": "ngo_partner", "source_reliability": "confirmed"}, now)]
        publisher.publish("case.events", events + events)  # the second copy is a redelivery
        store = ReportingStore(db)
        record = wait_for(lambda: (r := store.get(case_id)) and len(r.get("applied_event_ids", [])) == 2 and r,
                          timeout_s=30, what="reporting's record of both events")
        assert list(record["after_return"]) == [news.record_id]
        assert record["after_return"][news.record_id]["outcome"] == "kwanliso"
        assert [a["step"] for a in record["asylum"].values()] == ["recognised"]
    finally:
        consumer.stop.set()
        thread.join(timeout=15)
        publisher.close()


def test_a_snapshot_freezes_the_public_register_for_the_annex(reporting_client, tokens, world):
    public = _get(reporting_client, tokens["analyst"], "/api/v1/evidence/supply-chain", as_of="2024-06-30")
    res = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                json={"cycle": "CN-5", "as_of": "2024-06-30", "title": "After-return annex"})
    assert res.status_code == 201, res.get_json()
    frozen = world["store"].get_snapshot(res.get_json()["snapshot_id"])["evidence"]
    assert frozen == public and frozen["disclosure"] == "public" and frozen["products"]
    assert [q["id"] for q in res.get_json()["questions"]] == QUESTION_IDS
