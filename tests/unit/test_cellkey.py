"""The cell key method (issue 12 point 5): the perturbation table's properties, the same cell
getting the same value, and the secret record keys' file (services/reporting/disclosure.py,
cellkey.py, shared/keys.py)."""

import datetime as dt
import os
import stat

import pytest

from services.reporting import cellkey, disclosure, domain, figures
from shared import keys
from shared.config import Settings

COUNTS = range(0, 400)
KEYS = range(disclosure.KEYS)


def test_the_ptable_publishes_no_count_from_1_to_4_and_keeps_zero():
    assert all(disclosure.perturb(0, k) == 0 for k in KEYS)
    for n in range(1, 5):
        with pytest.raises(ValueError):
            disclosure.perturb(n, 0)
    assert {disclosure.perturb(n, k) for n in range(5, 400) for k in KEYS} & {1, 2, 3, 4} == set()


def test_the_ptable_noise_is_bounded_never_below_5_and_unbiased():
    for n in range(5, 400):
        published = [disclosure.perturb(n, k) for k in KEYS]
        assert all(v >= 5 and v % 5 == 0 and abs(v - n) <= 4 for v in published), n
        assert abs(sum(published) / len(published) - n) < 0.02, n  # unbiased over a uniform key


def test_every_published_value_has_several_true_counts_and_preimages_says_which():
    reached: dict[int, set[int]] = {}
    for n in COUNTS:
        if 0 < n < 5:
            continue
        for k in KEYS:
            reached.setdefault(disclosure.perturb(n, k), set()).add(n)
    for value, sources in reached.items():
        assert value == 0 or len(sources) >= 2, value
        if value + 4 < COUNTS.stop:
            assert sources == set(disclosure.preimages(value)), value
    with pytest.raises(ValueError):
        disclosure.preimages(7)


def test_differences_of_published_values_never_pin_a_count_from_1_to_4():
    """The ptable's own guarantee against differencing one cell at two dates."""
    values = [0, *range(5, 200, 5)]
    for a in values:
        for b in values:
            possible = {y - x for x in disclosure.preimages(a) for y in disclosure.preimages(b)} & {1, 2, 3, 4}
            assert len(possible) != 1, (a, b)


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        rec = domain.new_record(f"c-{i:03d}")
        rec.update(sex="female" if i % 3 else "male", birth_year=1990, reported_on="2024-01-0%d" % (1 + i % 5))
        out.append(rec)
    return out


def test_the_same_cell_gets_the_same_value_in_every_table_and_call():
    records, keyer = _records(40), cellkey.record_keyer(b"k" * 32)

    def tab(by, as_of="2024-01-05"):
        return figures.table(records, measure="reported", as_of=dt.date.fromisoformat(as_of), since=None, by=by,
                             disclosure_level="public", record_key=keyer)

    by_sex = {c["sex"]: c["count"] for c in tab(["sex"])["cells"]}
    by_sex_age = {c["sex"]: c["count"] for c in tab(["sex", "age_group"])["cells"] if c["age_group"] == "18-59"}
    assert by_sex == by_sex_age == {c["sex"]: c["count"] for c in tab(["sex"])["cells"]}
    assert tab([])["total"] == tab(["sex"])["total"] == tab(["age_group"])["total"]
    assert all("key" not in c for c in tab(["sex"])["cells"])  # a cell's key is never published
    internal = figures.table(records, measure="reported", as_of=dt.date(2024, 1, 5), since=None, by=["sex"],
                             disclosure_level="internal")
    assert internal["total"] == 40 and all("key" not in c for c in internal["cells"])
    for exact, public in zip(internal["cells"], tab(["sex"])["cells"]):
        assert public["count"] in (None, *([exact["count"]] if exact["count"] == 0 else
                                           [v for v in range(5, 50, 5) if exact["count"] in disclosure.preimages(v)]))


def test_count_gives_each_cell_the_sum_of_its_record_keys_mod_256():
    records = _records(12)
    got = domain.count(records, "reported", "2024-01-31", None, ["sex"], record_key=lambda cid: 200)
    assert {c["sex"]: c["key"] for c in got["cells"]} == {"female": 8 * 200 % 256, "male": 4 * 200 % 256,
                                                          "unknown": 0}
    assert got["total_key"] == 12 * 200 % 256
    assert "total_key" not in domain.count(records, "reported", "2024-01-31", None, ["sex"])


def test_record_keys_are_a_keyed_hash_of_the_case_id():
    a, b = cellkey.record_keyer(b"a" * 32), cellkey.record_keyer(b"b" * 32)
    ids = [f"c-{i}" for i in range(200)]
    assert all(0 <= a(i) < 256 for i in ids) and [a(i) for i in ids] == [a(i) for i in ids]
    assert [a(i) for i in ids] != [b(i) for i in ids]  # another secret, other keys


def test_the_secret_file_is_made_0600_read_once_and_refused_when_not_a_key(tmp_path):
    settings = Settings(var_dir=tmp_path)
    secret = keys.cellkey_key(settings)
    path = keys.cellkey_key_path(settings)
    assert path.name == "reporting-cellkey.key" and len(secret) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert keys.cellkey_key(settings) == secret  # kept, not made again
    cellkey.configure(settings)
    try:
        first = cellkey.process_record_key()
        assert cellkey.process_record_key() is first  # read once per process
        assert first("c-1") == cellkey.record_keyer(secret)("c-1")
    finally:
        cellkey.configure(None)
    path.write_text("not hex")
    with pytest.raises(keys.KeyMissing):
        keys.cellkey_key(settings)
    path.write_text("ab" * 8)
    with pytest.raises(keys.KeyMissing):
        keys.cellkey_key(settings)


def _returned(n: int) -> list[dict]:
    """n cases whose latest news: sent to a kyohwaso for 5 years, forced to mine."""
    out = []
    for i in range(n):
        rec = domain.new_record(f"r-{i:03d}")
        rec.update(reported_on="2023-01-01", after_return={"n1": {
            "effective_on": "2023-06-01", "learned_on": "2023-07-01", "outcome": "kyohwaso", "sentence_years": 5,
            "forced_labour": "yes", "work": ["mining"], "custody": None, "ill_treatment": []}})
        out.append(rec)
    return out


def test_the_after_return_facts_are_perturbed_in_public_and_exact_inside():
    def facts(records, level, key=None):
        got = figures.after_return_facts(records, as_of=dt.date(2023, 12, 31), since=None, disclosure_level=level,
                                         record_key=key)
        return got["median_sentence"]["sentences"], {c["work"]: c["count"] for c in got["work"]["cells"]}["mining"]

    assert facts(_returned(7), "internal") == (7, 7)
    assert facts(_returned(7), "public", lambda case_id: 0) == (10, 10)  # 7 rounded up by key 0
    assert facts(_returned(7), "public", lambda case_id: 255) == (5, 5)  # and down by key 255
    assert facts(_returned(3), "public", lambda case_id: 0) == (None, None)  # 1 to 4: unpublished
