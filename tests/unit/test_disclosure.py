"""Disclosure control of published count tables (services/reporting/disclosure.py, API.md's
``disclosure=public``): worked examples, then random tables checked by an attacker of our own."""

import copy
import itertools
import random
from fractions import Fraction
from math import prod

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting.disclosure import derivable, protect

SETTINGS = settings(max_examples=200, deadline=None, database=None)


def grid(categories: dict[str, list], counts: list[int]) -> tuple[list[dict], list[str], int]:
    """A full table in the order of itertools.product over the dims' categories."""
    dims = list(categories)
    combos = list(itertools.product(*categories.values()))
    assert len(combos) == len(counts)
    return [{**dict(zip(dims, combo)), "count": c} for combo, c in zip(combos, counts)], dims, sum(counts)


def hidden(result, dims) -> dict[tuple, str]:
    """{key: reason} of the suppressed cells."""
    return {tuple(c[d] for d in dims): c["reason"] for c in result["cells"] if c["count"] is None}


# The attacker, written independently of the module: every marginal sum of the table (each subset
# of the dims kept, the others summed over, the empty subset being the total) is a known equation
# over the suppressed cells. Exact Gaussian elimination with Fractions; a suppressed cell is worked
# out when its unit vector reduces to zero against the reduced rows.


def attacker(cells: list[dict], dims: list[str], result: dict) -> set[tuple]:
    """The suppressed cells whose count follows from everything published and every marginal sum."""
    keys = [tuple(c[d] for d in dims) for c in cells]
    true = {k: c["count"] for k, c in zip(keys, cells)}
    published = {tuple(c[d] for d in dims): c["count"] for c in result["cells"] if c["count"] is not None}
    unknowns = [k for k in keys if k not in published]
    if not unknowns or result["total"] is None:
        # With the total below the threshold every marginal sum is too, so its own table hides it
        # when non-zero; a zero sum only repeats zero cells, which are published. Nothing is known.
        return set()
    column = {k: j for j, k in enumerate(unknowns)}
    sizes = [len({k[j] for k in keys}) for j in range(len(dims))]
    equations = []
    subsets = itertools.chain.from_iterable(itertools.combinations(range(len(dims)), r) for r in range(len(dims)))
    for kept in subsets:
        summed = [j for j in range(len(dims)) if j not in kept]
        if kept and all(sizes[j] == 1 for j in summed):
            continue  # summing over one-category dims gives the table itself, not another table
        groups: dict[tuple, list[tuple]] = {}
        for k in keys:
            groups.setdefault(tuple(k[j] for j in kept), []).append(k)
        for members in groups.values():
            row = [Fraction(0)] * len(unknowns)
            rhs = Fraction(sum(true[k] for k in members) - sum(published.get(k, 0) for k in members))
            for k in members:
                if k in column:
                    row[column[k]] = Fraction(1)
            equations.append(row + [rhs])
    reduced = _rref(equations, len(unknowns))
    solution = {}
    for row, pivot in reduced:
        if all(row[j] == 0 for j in range(len(unknowns)) if j != pivot):
            solution[unknowns[pivot]] = row[-1]
    for k, value in solution.items():  # the attacker's sanity: what it works out is the truth
        assert value == true[k]
    determined = set()
    for k in unknowns:
        vector = [Fraction(0)] * len(unknowns)
        vector[column[k]] = Fraction(1)
        for row, pivot in reduced:
            factor = vector[pivot]
            if factor:
                for j, r in enumerate(row[:-1]):
                    if r:
                        vector[j] -= factor * r
        if not any(vector):
            determined.add(k)
    return determined


def _rref(rows: list[list[Fraction]], width: int) -> list[tuple[list[Fraction], int]]:
    """Reduced row echelon form (pivot 1), as (row, pivot column) pairs; the last entry is the sum."""
    rows = [r[:] for r in rows]
    out = []
    for col in range(width):
        pick = next((r for r in rows if r[col] != 0), None)
        if pick is None:
            continue
        rows.remove(pick)
        pick = [v / pick[col] for v in pick]
        nonzero = [j for j, v in enumerate(pick) if v]
        for r in rows + [o for o, _ in out]:
            factor = r[col]
            if factor:
                for j in nonzero:
                    r[j] -= factor * pick[j]
        out.append((pick, col))
    assert all(not any(r[:width]) and r[width] == 0 for r in rows), "inconsistent equations"
    return out


def check_safe(cells, dims, total, result, threshold=5):
    """The properties every protected table has."""
    keys = [tuple(c[d] for d in dims) for c in cells]
    assert len(result["cells"]) == len(cells)
    for key, before, after in zip(keys, cells, result["cells"]):
        if after["count"] is None:
            assert after["suppressed"] is True and after["reason"] in {"primary", "secondary"}
            assert (after["reason"] == "primary") == (0 < before["count"] < threshold)
            assert {k: v for k, v in after.items() if k not in {"count", "suppressed", "reason"}} == \
                {k: v for k, v in before.items() if k != "count"}
        else:
            assert after == before  # (c) a published cell is the input's
            assert not 0 < after["count"] < threshold  # (a) no small count is published
    assert result["total"] == (None if 0 < total < threshold else total)
    reasons = list(hidden(result, dims).values())
    assert result["suppressed"] == {"primary": reasons.count("primary"), "secondary": reasons.count("secondary")}
    assert attacker(cells, dims, result) == set()  # (b) nothing suppressed can be worked out
    assert isinstance(result["note"], str) and result["note"].endswith(".")
    if result["total"] is not None:
        assert thin_lines(cells, dims, result, threshold) == []  # (e) nor narrowed by bounds


def thin_lines(cells, dims, result, threshold) -> list:
    """Lines (cells differing in one dimension) whose suppressed cells add up to less than the
    threshold, or to no more than their number (all could be pinned at 1), while a positive cell
    of the line is still published."""
    varying = [d for d in dims if len({c[d] for c in cells}) > 1]
    thin = []
    for d in varying:
        lines: dict = {}
        for before, after in zip(cells, result["cells"]):
            lines.setdefault(tuple(before[o] for o in dims if o != d), []).append((before["count"], after["count"]))
        for key, members in lines.items():
            hidden_counts = [b for b, a in members if a is None]
            if not hidden_counts:
                continue
            narrow = sum(hidden_counts) < threshold or sum(hidden_counts) <= len(hidden_counts)
            if narrow and any(a is not None and a > 0 for _, a in members):
                thin.append((d, key))
    return thin


def test_small_suppressed_cells_that_add_up_to_little_get_a_bigger_partner():
    cells, dims, total = grid({"sex": ["f", "m", "u"]}, [1, 1, 10])
    result = protect(cells, dims, total)
    # Linearly the two 1s protect each other, but they add up to 2 and each is at least 0 (and
    # likely 1): the 10 is hidden as well, so the three add up to the published total of 12.
    assert hidden(result, dims) == {("f",): "primary", ("m",): "primary", ("u",): "secondary"}
    assert result["total"] == 12
    cells, dims, total = grid({"sex": ["f", "m", "u"]}, [2, 4, 10])
    assert set(hidden(protect(cells, dims, total), dims)) == {("f",), ("m",)}  # 6: wide enough already


# --- worked examples -------------------------------------------------------------------------

SEX = ["female", "male", "unknown"]
AGE3 = ["0-17", "18-59", "60+"]


@pytest.mark.parametrize("name, categories, counts, expected_hidden", [
    ("1-D, all big", {"sex": SEX}, [10, 7, 12], {}),
    ("1-D, one small cell gets the smallest other as partner", {"sex": SEX}, [3, 12, 7],
     {("female",): "primary", ("unknown",): "secondary"}),
    ("1-D, a positive partner is preferred to a zero", {"sex": SEX}, [3, 0, 9],
     {("female",): "primary", ("unknown",): "secondary"}),
    ("1-D, two small cells hide each other", {"sex": SEX}, [2, 3, 20],
     {("female",): "primary", ("male",): "primary"}),
    ("1-D, ties go to the earlier cell", {"sex": SEX}, [9, 9, 4],
     {("female",): "secondary", ("unknown",): "primary"}),
    ("2-D, all big", {"sex": SEX[:2], "age_group": AGE3}, [10, 20, 30, 5, 6, 7], {}),
    ("2-D, a single small cell forces a rectangle of four", {"sex": SEX, "age_group": AGE3},
     [2, 10, 30,
      12, 11, 40,
      25, 50, 60],
     {("female", "0-17"): "primary", ("female", "18-59"): "secondary",
      ("male", "0-17"): "secondary", ("male", "18-59"): "secondary"}),
    ("2-D, two small cells in one row need two more", {"sex": SEX[:2], "age_group": AGE3},
     [1, 4, 30,
      9, 8, 40],
     {("female", "0-17"): "primary", ("female", "18-59"): "primary",
      ("male", "0-17"): "secondary", ("male", "18-59"): "secondary"}),
    ("2-D, a one-category dim is no marginal: behaves as 1-D", {"sex": SEX, "nationality": ["KP"]},
     [3, 12, 7], {("female", "KP"): "primary", ("unknown", "KP"): "secondary"}),
    ("3-D 2x2x2, one small cell hides the whole cube",
     {"sex": SEX[:2], "age_group": AGE3[:2], "province": ["Jilin", "Liaoning"]},
     [3, 10, 11, 12, 13, 14, 15, 16],
     {k: "secondary" for k in itertools.product(SEX[:2], AGE3[:2], ["Jilin", "Liaoning"])}
     | {("female", "0-17", "Jilin"): "primary"}),
])
def test_worked_examples(name, categories, counts, expected_hidden):
    cells, dims, total = grid(categories, counts)
    result = protect(cells, dims, total)
    assert hidden(result, dims) == expected_hidden, name
    check_safe(cells, dims, total, result)


def test_note_says_what_was_suppressed_and_why():
    cells, dims, total = grid({"sex": SEX}, [3, 12, 7])
    assert protect(cells, dims, total)["note"] == (
        "1 cell with a count between 1 and 4 was suppressed, and 1 more cell so that it cannot be "
        "worked out from the total and the other published sums.")
    cells, dims, total = grid({"sex": SEX}, [2, 3, 20])
    assert protect(cells, dims, total)["note"] == (
        "2 cells with a count between 1 and 4 were suppressed; they cannot be worked out from the "
        "total and the other published sums.")
    cells, dims, total = grid({"sex": SEX}, [10, 7, 12])
    assert protect(cells, dims, total)["note"] == "No count was suppressed: none is between 1 and 4."


def test_total_below_threshold_hides_the_total_and_every_non_zero_cell():
    cells, dims, total = grid({"sex": SEX[:2], "age_group": AGE3[:2]}, [1, 0, 2, 0])
    result = protect(cells, dims, total)
    assert result["total"] is None
    assert hidden(result, dims) == {("female", "0-17"): "primary", ("male", "0-17"): "primary"}
    assert [c["count"] for c in result["cells"]] == [None, 0, None, 0]
    assert result["note"] == ("The total and every non-zero cell (2 cells) were suppressed because the "
                              "total is between 1 and 4.")
    check_safe(cells, dims, total, result)


@pytest.mark.parametrize("cells, total, expected_total, expected_counts", [
    ([{"count": 12}], 12, 12, [12]),
    ([{"count": 3}], 3, None, [None]),
    ([{"count": 0}], 0, 0, [0]),
    ([], 3, None, []),
    ([], 40, 40, []),
])
def test_a_table_that_is_only_a_total(cells, total, expected_total, expected_counts):
    result = protect(cells, [], total)
    assert result["total"] == expected_total
    assert [c["count"] for c in result["cells"]] == expected_counts


def test_a_bridge_between_two_hidden_rectangles_is_derivable_and_gets_protected():
    # Every row and column holds 0 or >= 2 small cells, yet (r0, c2) is row0 + row1 - col0 - col1:
    # the "two per line" rule alone is not enough; the rank test catches it.
    small = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)}
    counts = [2 if (r, c) in small else 20 + 4 * r + c for r in range(4) for c in range(4)]
    cells, dims, total = grid({"row": [0, 1, 2, 3], "col": [0, 1, 2, 3]}, counts)
    assert derivable(cells, dims, total, small) == {(0, 2)}
    assert attacker(cells, dims, {"total": total, "cells": [
        {**c, "count": None} if (c["row"], c["col"]) in small else c for c in cells]}) == {(0, 2)}
    result = protect(cells, dims, total)
    assert hidden(result, dims)[(0, 2)] == "primary"
    assert result["suppressed"]["secondary"] > 0
    check_safe(cells, dims, total, result)


def test_a_cell_whose_lines_are_all_hidden_gets_a_partner_from_further_afield():
    # Found by a random search: in this 3 x 3 x 3 table the rank test finds a derivable cell whose
    # every line is already fully suppressed, so its partner comes from the other hidden cells' lines.
    counts = [2, 1, 1, 0, 7, 7, 1, 3, 3, 1, 0, 1, 4, 4, 2, 0, 20, 7, 1, 3, 4, 2, 0, 2, 4, 5, 0]
    cells, dims, total = grid({"sex": SEX, "age_group": AGE3, "province": ["p0", "p1", "p2"]}, counts)
    result = protect(cells, dims, total)
    assert [c["count"] if c["count"] is not None else c["reason"][0] for c in result["cells"]] == [
        "p", "p", "p", "s", "s", "s", "p", "p", "p", "p", 0, "p", "p", "p", "p", 0, "s", "s",
        "p", "p", "p", "p", 0, "p", "p", "s", 0]
    check_safe(cells, dims, total, result)


def test_threshold_is_a_parameter():
    cells, dims, total = grid({"sex": SEX}, [3, 12, 7])
    assert hidden(protect(cells, dims, total, threshold=3), dims) == {}
    result = protect(cells, dims, total, threshold=10)
    assert hidden(result, dims) == {("female",): "primary", ("unknown",): "primary"}
    check_safe(cells, dims, total, result, threshold=10)


def test_the_input_is_left_as_it_was_and_other_keys_are_kept():
    cells, dims, total = grid({"sex": SEX}, [3, 12, 7])
    cells[0]["label"] = "women"
    before = copy.deepcopy(cells)
    result = protect(cells, dims, total)
    assert cells == before
    assert result["cells"][0] == {"sex": "female", "label": "women", "count": None, "suppressed": True,
                                  "reason": "primary"}


@pytest.mark.parametrize("cells, dims, total", [
    ([{"sex": "female", "count": 3}, {"sex": "female", "count": 9}], ["sex"], 12),  # twice
    ([{"sex": "female", "age_group": "0-17", "count": 3}, {"sex": "male", "age_group": "60+", "count": 9}],
     ["sex", "age_group"], 12),  # not a full table
    ([{"sex": "female", "count": 3}, {"sex": "male", "count": 9}], ["sex"], 13),  # wrong total
    ([{"sex": "female", "count": -1}, {"sex": "male", "count": 9}], ["sex"], 8),
    ([{"sex": "female", "count": True}, {"sex": "male", "count": 9}], ["sex"], 10),
    ([{"count": 3}], ["sex"], 3),  # no dimension value
    ([{"sex": "female", "count": 3}], ["sex"], None),
])
def test_a_malformed_table_is_refused(cells, dims, total):
    with pytest.raises(ValueError):
        protect(cells, dims, total)


def test_a_large_table_is_protected_too():
    rng = random.Random(7)
    shape = {"sex": SEX, "age_group": ["0-4", "5-11", "12-17", "18-59", "60+", "unknown"],
             "province": [f"p{i}" for i in range(10)], "status": [f"s{i}" for i in range(11)]}
    weights = [[rng.random() ** 2 for _ in v] for v in shape.values()]
    tally: dict[tuple, int] = {}
    for _ in range(2000):
        key = tuple(rng.choices(range(len(w)), w)[0] for w in weights)
        tally[key] = tally.get(key, 0) + 1
    counts = [tally.get(k, 0) for k in itertools.product(*(range(len(v)) for v in shape.values()))]
    cells, dims, total = grid(shape, counts)
    result = protect(cells, dims, total)
    assert all(c["count"] is None or not 0 < c["count"] < 5 for c in result["cells"])
    assert derivable(cells, dims, total, hidden(result, dims)) == set()


# --- random tables ---------------------------------------------------------------------------

COUNT = st.one_of(st.integers(0, 4), st.integers(0, 4), st.integers(5, 9), st.integers(0, 60))


@st.composite
def tables(draw):
    """(cells in a random order, dims, total): 1 to 3 dims of 1 to 5 categories, many small counts."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    dims = ["sex", "age_group", "province"][:len(sizes)]
    counts = draw(st.lists(COUNT, min_size=prod(sizes), max_size=prod(sizes)))
    cells, dims, total = grid({d: [f"{d}{i}" for i in range(n)] for d, n in zip(dims, sizes)}, counts)
    return draw(st.permutations(cells)), dims, total


@SETTINGS
@given(tables())
def test_random_tables_are_safe(table):
    cells, dims, total = table
    check_safe(cells, dims, total, protect(cells, dims, total))


@SETTINGS
@given(tables())
def test_protection_is_deterministic(table):
    cells, dims, total = table
    assert protect(copy.deepcopy(cells), dims, total) == protect(copy.deepcopy(cells), dims, total)


@SETTINGS
@given(tables(), st.randoms(use_true_random=False))
def test_the_solver_agrees_with_the_attacker(table, rnd):
    cells, dims, total = table
    keys = [tuple(c[d] for d in dims) for c in cells]
    suppressed = {k for k in keys if rnd.random() < 0.5}
    published = {"total": total, "cells": [{**c, "count": None} if k in suppressed else c
                                           for k, c in zip(keys, cells)]}
    assert derivable(cells, dims, total, suppressed) == attacker(cells, dims, published)
