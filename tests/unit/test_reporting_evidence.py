"""The evidence register and the after-return rules of reporting's domain, without I/O."""

from __future__ import annotations

from services.reporting import domain, evidence


def _record(case_id: str, *news: dict, consent: bool = True) -> dict:
    record = domain.new_record(case_id)
    record["consent_statistics"] = consent
    for i, entry in enumerate(news):
        base = {"learned_on": "2023-06-01", "effective_on": "2023-05-01", "source_reliability": "probable",
                "custody": "mss", "outcome": "kyohwaso", "sentence_years": None, "forced_labour": "yes", "work": [],
                "products": [], "facilities": [], "companies": [], "ill_treatment": []}
        record["after_return"][f"{case_id}-r{i}"] = {**base, **entry}
    return record


def test_a_name_is_counted_once_per_testimony_whatever_its_case_or_spacing():
    records = [_record("a", {"products": ["Wigs", " wigs "]}, {"products": ["WIGS"], "effective_on": "2023-08-09"}),
               _record("b", {"products": ["wigs"], "effective_on": None, "learned_on": "2022-12-01"})]
    got = evidence.register(records, as_of="2024-01-01", disclosure_level="internal")
    assert got["products"] == [{"name": "wigs", "testimonies": 3, "first_on": "2022-12-01", "last_on": "2023-08-09",
                                "reliability": {"confirmed": 0, "probable": 3, "unverified": 0}}]
    assert evidence.register(records, as_of="2023-01-01", disclosure_level="internal")["products"][0]["testimonies"] == 1


def test_public_lists_a_name_only_once_five_persons_gave_it():
    four = [_record(f"c{i}", {"facilities": ["Camp 12"]}, {"facilities": ["Camp 12"], "effective_on": "2023-05-02"})
            for i in range(4)]
    public = evidence.register(four, as_of="2024-01-01", disclosure_level="public")
    assert public["facilities"] == [] and public["withheld"]["facilities"] == 1  # eight testimonies, four persons
    five = four + [_record("c4", {"facilities": ["Camp 12"], "source_reliability": "confirmed"})]
    listed = evidence.register(five, as_of="2024-01-01", disclosure_level="public")["facilities"]
    # Nine testimonies (eight probable) published by the cell key method: a multiple of 5 within 4.
    assert listed[0]["testimonies"] in (5, 10) and listed[0]["reliability"]["probable"] in (5, 10)
    for key, shown in ((0, 10), (255, 5)):  # every record key 0: rounded up; 255: down
        listed = evidence.register(five, as_of="2024-01-01", disclosure_level="public",
                                   record_key=lambda case_id: key)["facilities"]
        assert listed == [{"name": "Camp 12", "testimonies": shown, "first_on": "2023-05", "last_on": "2023-05",
                           "reliability": {"confirmed": None, "probable": shown, "unverified": 0}}]


def test_cases_not_counted_give_no_testimony():
    records = [_record("w", {"companies": ["Export Co"]}, consent=False)]
    assert evidence.register(records, as_of="2024-01-01", disclosure_level="internal")["companies"] == []


def test_the_latest_record_by_business_date_decides_and_a_later_one_ends_it():
    record = _record("k", {"outcome": "kyohwaso", "effective_on": "2023-01-01", "learned_on": "2024-02-01"},
                     {"outcome": "kwanliso", "effective_on": "2023-09-01", "learned_on": "2023-10-01"})
    assert domain.in_measure(record, "sent_to_kyohwaso", "2023-06-30", None)
    assert not domain.in_measure(record, "sent_to_kyohwaso", "2023-12-31", None)
    assert domain.in_measure(record, "sent_to_kwanliso", "2023-12-31", None)
    assert not domain.in_measure(record, "sent_to_kwanliso", "2023-12-31", "2023-09-01")  # the news is older
    assert not domain.in_measure(record, "returned_fate_known", "2022-12-31", None)


def test_an_asylum_step_counts_from_the_first_date_it_was_reached_and_stays():
    record = domain.new_record("s")
    for rid, step, day in (("1", "applied", "2022-03-01"), ("2", "tic_issued", "2022-05-01"), ("3", "refused", "2023-01-01")):
        record = domain.apply_event(record, {"event_type": "case.asylum_recorded", "case_id": "s", "event_id": rid,
                                             "occurred_at": "2024-01-01T00:00:00+00:00",
                                             "payload": {"record_id": rid, "procedure": "art46", "step": step,
                                                         "effective_on": day}})
    assert domain.in_measure(record, "art46_applied", "2024-01-01", None)
    assert domain.in_measure(record, "art46_tic_issued", "2024-01-01", "2022-04-01")
    assert not domain.in_measure(record, "art46_applied", "2024-01-01", "2022-04-01")  # applied before the period
    assert not domain.in_measure(record, "art46_granted", "2024-01-01", None)
