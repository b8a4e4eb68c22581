"""Safe publication of count tables: primary and secondary cell suppression (pure, no I/O).

API.md, ``disclosure=public``: a cell with 1 to ``threshold - 1`` people is published as
``{"count": None, "suppressed": True}`` (primary suppression), and enough further cells are
suppressed (secondary) that no suppressed count can be worked out from what is published.

The attacker assumed is the strongest one of a single table: they know the total (when it is
published), every published cell, and every marginal sum of the table (row and column sums of a
2-D table; the 2-D and 1-D sums of a 3-D one; ...), because those are published as other tables.
Every marginal sum is a sum of *lines* (the cells that differ in one dimension only), and the total
is a sum of lines too, so the lines span everything the attacker knows. A suppressed cell is
*derivable* when the linear equations "sum of the suppressed cells of a line = known value" fix
it: its unit vector lies in the row space of those equations restricted to the suppressed cells.
``derivable`` decides this exactly, with fraction-free Gaussian elimination on Python integers.

A dimension with a single category (every case has nationality KP, say) is not summed over: the
"marginal" over it is the table itself, not another table, so it tells the attacker nothing new.

If the total itself is between 1 and ``threshold - 1``, the total and every non-zero cell are
suppressed: every marginal sum is then below the threshold as well, so in its own table each
non-zero one is suppressed and the zero ones only repeat published zero cells; with no sum known,
no suppressed cell can be worked out.

Beyond the linear test, each line's suppressed cells must add up to at least the threshold and to
more than their number, while the line has a positive cell left to hide: otherwise an attacker
who uses bounds (a count is at least 0; a suppressed one likely at least 1) pins or narrows them
(in [1, 1, 10] both 1s add up to 2, so each is 1; the 10 is hidden as well).

Limits: that rule is a sufficient guard for single lines, not a full interval protection; an
attacker combining bounds across several lines of a large table may still narrow a suppressed
count to a range. Protecting every interval needs linear programming (what tau-ARGUS does) and
is not done here. The ``reason`` of a suppressed cell says which cells are primary (so 1 to 4):
an API must not publish it (the reporting service strips it).

Across tables (issue 12 point 5): suppression protects each table on its own, but two tables as of
consecutive dates, differenced, give the count of the day. So the cells ``protect`` leaves
published, and the total, are then published *perturbed* by the cell key method (the Australian
Bureau of Statistics' TableBuilder, the 2021 census of England and Wales): each case has a secret
record key in 0..255, a cell's key is the sum of its cases' record keys mod 256, and the published
value is ``perturb(count, cell_key)`` from the fixed table below. The same cases give the same
key, so the same cell gets the same value in every table, breakdown, date and snapshot, and a
difference of two tables is a difference of two noises, not the count.

The perturbation table (``perturb``): 0 stays 0; 1 to ``THRESHOLD - 1`` are never published
(suppressed as above); a count n >= THRESHOLD is rounded to a multiple of ``BASE`` (5), up with
probability (n mod 5) / 5 over the cell key, else down: unbiased, never below 5, off by at most
4. Every published value v therefore has several possible true counts: ``preimages(v)``, from
v - 4 to v + 4 (5 to 9 for v = 5). Why rounding and not an additive noise of -2..+2 (the first
design): with additive noise, an attacker who knows its bounds pins the day's count when the two
noises sit at opposite ends (10 people published as 12, then 11 people as 9: the true counts
are 10 to 14 and 7 to 11, so a day's count of 1 to 4 can only be 1; about one difference in 25). On the grid of 5
the smallest possible true count of a published value is 1 more than a multiple of 5 (or 5), the
largest 4 less, so no two of them are 1 or 4 apart: a difference of two published values never
pins a suppressed count of 1 to 4 (tests/unit/test_differencing.py plays that attacker).
"""

from math import gcd, prod

THRESHOLD = 5
BASE = 5  # published counts are multiples of it (the perturbation table, module doc)
KEYS = 256  # record and cell keys are in 0..KEYS - 1
# Up to this many cells, secondary suppression fixes one derivable cell per rank test (fewest cells
# lost); above it, every derivable cell the test finds (fewer tests on big tables). Both stop only
# when the rank test finds no derivable cell.
EXACT_GREEDY_MAX_CELLS = 400


def protect(cells: list[dict], dims: list[str], total: int, *, threshold: int = THRESHOLD) -> dict:
    """Suppress small cells and enough others that none can be worked out; see the module doc.

    ``cells`` is the full table (one cell per combination of the dims' categories, zeros included)
    and ``total`` the sum of its counts; ``dims`` may be empty for a table that is only a total
    (``cells`` then empty or one cell). Returns ``{"total", "cells", "suppressed": {"primary",
    "secondary"}, "note"}``; the cells keep the input's order, a published cell is a copy of its
    input, a suppressed one has ``"count": None, "suppressed": True, "reason": "primary" |
    "secondary"``.

    Secondary suppression repeats until no suppressed cell is derivable: take a derivable cell
    (first one alone among the suppressed cells of some line, as that is cheap to see; otherwise
    the first found by the rank test; "first" in cell order), and among the cells sharing a line
    with it suppress the unsuppressed one with the smallest positive count (a zero only when no
    positive count is left; ties go to the earlier cell), so the result is deterministic and loses
    little. Above ``EXACT_GREEDY_MAX_CELLS`` cells, every cell the rank test finds gets a partner
    before the next test (fewer tests, perhaps a cell or two more suppressed).

    The exact rank test runs on every table, whatever its size, and the loop stops only when it
    finds nothing: the cheaper rule "every line holds 0 or at least 2 suppressed cells" is not
    enough (two suppressed rectangles joined by one more suppressed cell satisfy it, yet that cell
    is derivable). The test works on the suppressed cells only, with sparse rows; measured on the
    2-core development machine: 300-400 cells under 30 ms; 3 x 6 x 10 x 11 (1,980 cells) 130-350 ms;
    5 x 6 x 10 x 11 (3,300 cells) 0.3-1.8 s when a third of the cells are 1 to 4 and 0.15-0.35 s
    for counts drawn from skewed real-looking marginals.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError("threshold must be a positive integer")
    if total is None:
        raise ValueError("total is required")
    table = _Table(cells, dims, total, threshold)
    counts = table.counts
    if 0 < total < threshold:
        primary = {i for i, count in enumerate(counts) if count > 0}
        secondary: set[int] = set()
    else:
        primary = {i for i, count in enumerate(counts) if 0 < count < threshold}
        secondary = table.secondary(primary)
    published_total = None if 0 < total < threshold else total
    out_cells = []
    for i, cell in enumerate(cells):
        cell = dict(cell)
        if i in primary or i in secondary:
            cell.update(count=None, suppressed=True, reason="primary" if i in primary else "secondary")
        out_cells.append(cell)
    return {
        "total": published_total,
        "cells": out_cells,
        "suppressed": {"primary": len(primary), "secondary": len(secondary)},
        "note": _note(len(primary), len(secondary), published_total is None, threshold),
    }


def perturb(count: int, cell_key: int) -> int:
    """The published value of a count the suppression left published (module doc: the ptable).

    0 stays 0; a count from THRESHOLD up is rounded to a multiple of BASE, up when
    ``cell_key * BASE < (count % BASE) * KEYS`` (so with probability (count mod 5) / 5 over a
    uniform key: unbiased); the same count and key always give the same value. A count from 1 to
    THRESHOLD - 1 is never published: ValueError.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError("count must be a non-negative integer")
    if not 0 <= cell_key < KEYS:
        raise ValueError(f"a cell key is in 0..{KEYS - 1}")
    if count == 0:
        return 0
    if count < THRESHOLD:
        raise ValueError("a count from 1 to 4 is suppressed, never published")
    low, rest = count - count % BASE, count % BASE
    return low + BASE if cell_key * BASE < rest * KEYS else low


def preimages(value: int) -> range:
    """Every true count ``perturb`` can publish as ``value`` (for a reader: what a figure can mean)."""
    if value == 0:
        return range(0, 1)
    if value < THRESHOLD or value % BASE:
        raise ValueError(f"{value} is never published")
    return range(max(THRESHOLD, value - BASE + 1), value + BASE)


def perturbed(protected: dict, cell_keys: list[int], total_key: int) -> dict:
    """``protect``'s result with its published cells and total perturbed (each by its own key;
    ``cell_keys`` in the cells' order); suppressed cells stay suppressed. The counts summed from
    published cells no longer add up to the published total exactly: that is the point."""
    cells = []
    for cell, key in zip(protected["cells"], cell_keys, strict=True):
        if cell["count"] is not None:
            cell = {**cell, "count": perturb(cell["count"], key)}
        cells.append(cell)
    total = protected["total"]
    return {**protected, "cells": cells, "total": None if total is None else perturb(total, total_key)}


def derivable(cells: list[dict], dims: list[str], total: int | None, suppressed_keys) -> set[tuple]:
    """The keys (tuples of the dims' values) of the suppressed cells an attacker can work out.

    The attacker knows every cell not in ``suppressed_keys`` and, when ``total`` is published (not
    None), the total and every marginal sum; with the total suppressed they know no sum at all.
    """
    table = _Table(cells, dims, total)
    position = {key: i for i, key in enumerate(table.keys)}
    try:
        suppressed = {position[tuple(key)] for key in suppressed_keys}
    except KeyError as exc:
        raise ValueError(f"no such cell: {exc.args[0]!r}") from None
    if total is None:
        return set()
    return {table.keys[i] for i in _derivable(table.lines, suppressed)}


class _Table:
    """A validated table: each cell's key and count, and its lines (lists of cell positions)."""

    def __init__(self, cells, dims, total, threshold: int = THRESHOLD):
        self.threshold = threshold
        dims = list(dims)
        if len(set(dims)) != len(dims):
            raise ValueError("a dimension is named twice")
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError("total must be a non-negative integer")
        self.keys, self.counts = [], []
        categories: list[dict] = [{} for _ in dims]  # insertion-ordered sets
        for cell in cells:
            try:
                key = tuple(cell[d] for d in dims)
                count = cell["count"]
            except KeyError as exc:
                raise ValueError(f"a cell has no {exc.args[0]!r}") from None
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"count of {key!r} must be a non-negative integer")
            for seen, value in zip(categories, key):
                seen.setdefault(value, None)
            self.keys.append(key)
            self.counts.append(count)
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("a combination of categories appears twice")
        expected = prod(len(seen) for seen in categories)
        if self.keys and len(self.keys) != expected:
            raise ValueError(f"not a full table: {len(self.keys)} cells for {expected} combinations "
                             "(zeros included)")
        if total is not None and self.keys and sum(self.counts) != total:
            raise ValueError(f"total {total} is not the sum of the cells ({sum(self.counts)})")
        if total is not None and not self.keys and total and dims:
            raise ValueError("cells are missing for a non-zero total")
        self.lines = self._lines([j for j, seen in enumerate(categories) if len(seen) > 1])
        self.line_ids_of: list[list[int]] = [[] for _ in self.keys]
        for n, line in enumerate(self.lines):
            for i in line:
                self.line_ids_of[i].append(n)

    def _lines(self, varying: list[int]) -> list[list[int]]:
        if not varying:  # at most one cell: its only line is the total
            return [list(range(len(self.keys)))] if self.keys else []
        lines = []
        for j in varying:
            groups: dict[tuple, list[int]] = {}
            for i, key in enumerate(self.keys):
                groups.setdefault(key[:j] + key[j + 1:], []).append(i)
            lines.extend(groups.values())
        return lines

    def secondary(self, primary: set[int]) -> set[int]:
        """The cells to suppress besides ``primary`` so that no suppressed cell is derivable."""
        suppressed = set(primary)
        hidden_in = [{i for i in line if i in suppressed} for line in self.lines]
        alone = {n for n, hidden in enumerate(hidden_in) if len(hidden) == 1}
        pending: list[int] = []  # derivable cells found by the rank test, still to be given a partner
        while True:
            if alone:  # a cell alone among the suppressed cells of a line: derivable, and cheap to see
                cell = min(next(iter(hidden_in[n])) for n in alone)
            elif pending:
                cell = pending.pop()
            else:
                exposed = _derivable(self.lines, suppressed)
                if not exposed:
                    widen = self.thin_line(suppressed)
                    if widen is None:
                        return suppressed - primary
                    self._hide(widen, suppressed, hidden_in, alone)
                    continue
                if len(self.keys) <= EXACT_GREEDY_MAX_CELLS:
                    pending = [min(exposed)]
                else:  # a partner for each before testing again: fewer rank tests, maybe a few more cells
                    pending = sorted(exposed, reverse=True)
                cell = pending.pop()
            self._hide(self.partner(cell, suppressed), suppressed, hidden_in, alone)

    def _hide(self, cell: int, suppressed: set[int], hidden_in: list[set[int]], alone: set[int]) -> None:
        """Suppress one more cell, keeping track of the lines with a single suppressed cell."""
        suppressed.add(cell)
        for n in self.line_ids_of[cell]:
            hidden_in[n].add(cell)
            if len(hidden_in[n]) == 1:
                alone.add(n)
            else:
                alone.discard(n)

    def thin_line(self, suppressed: set[int]) -> int | None:
        """The cell to suppress next in a line whose suppressed cells add up to too little, or None.

        Beyond exact derivation: an attacker who knows that counts are never negative, and
        suspects every suppressed count is at least 1, pins them all when a line's suppressed
        cells add up to no more than their number (in [1, 1, 10] both 1s are 1), and narrows them
        to small values whenever they add up to less than the threshold. So each line's
        suppressed cells must add up to at least the threshold and to more than their number,
        where the line has a cell left to add.
        """
        for line in self.lines:
            hidden = [i for i in line if i in suppressed]
            if not hidden:
                continue
            hidden_sum = sum(self.counts[i] for i in hidden)
            if hidden_sum >= self.threshold and hidden_sum > len(hidden):
                continue
            shown = [i for i in line if i not in suppressed and self.counts[i] > 0]
            if shown:
                return min(shown, key=lambda i: (self.counts[i], i))
        return None

    def partner(self, cell: int, suppressed: set[int]) -> int:
        """The cell to suppress next so that ``cell`` stops being derivable."""
        candidates = {i for n in self.line_ids_of[cell] for i in self.lines[n] if i not in suppressed}
        if not candidates:  # every line of the cell is hidden already (seen in 3-D): the other hidden cells' lines
            candidates = {i for j in suppressed for n in self.line_ids_of[j] for i in self.lines[n]
                          if i not in suppressed}
        if not candidates:
            candidates = set(range(len(self.keys))) - suppressed
        if not candidates:
            # Unreachable: with every cell hidden, a cell shows only in a one-cell table, and a
            # one-cell table never hides its cell while publishing its total.
            raise RuntimeError("every cell is suppressed and one is still derivable")
        return min(candidates, key=lambda i: (self.counts[i] == 0, self.counts[i], i))


def _derivable(lines: list[list[int]], suppressed: set[int]) -> set[int]:
    """Suppressed cells fixed by the lines' sums: reduced row echelon form over the rationals.

    Rows are sparse {cell: integer} dicts, divided by their entries' gcd, and kept fully reduced
    (a pivot's column is zero in every other row). In that form a cell's unit vector is in the row
    space exactly when the cell is a pivot whose row has no other entry. ``holders`` maps a column
    to the pivots whose rows use it; the pivot of a new row is the column fewest rows use (then the
    last one), which keeps the rows sparse: on a 3,300-cell table this is several times faster
    than taking the first column.
    """
    pivots: dict[int, dict[int, int]] = {}
    holders: dict[int, set[int]] = {}
    for line in lines:
        row = {i: 1 for i in line if i in suppressed}
        for col in [c for c in row if c in pivots]:
            _eliminate(row, pivots[col], col)
        if not row:
            continue
        col = min(row, key=lambda c: (len(holders.get(c, ())), -c))
        for pivot in list(holders.get(col, ())):
            _eliminate(pivots[pivot], row, col, holders, pivot)
        pivots[col] = row
        for c in row:
            holders.setdefault(c, set()).add(col)
    return {col for col, row in pivots.items() if len(row) == 1}


def _eliminate(row: dict[int, int], pivot_row: dict[int, int], col: int,
               holders: dict[int, set[int]] | None = None, row_pivot: int | None = None) -> None:
    """row := pivot_row[col] * row - row[col] * pivot_row (so row[col] becomes 0), in place, gcd-reduced.

    When ``row`` is itself a stored pivot row (``row_pivot``), ``holders`` is kept up to date.
    """
    a, b = pivot_row[col], row[col]
    if a != 1:
        for c in row:
            row[c] *= a
    for c, value in pivot_row.items():
        new = row.get(c, 0) - b * value
        if new:
            if holders is not None and c not in row:
                holders.setdefault(c, set()).add(row_pivot)
            row[c] = new
        elif c in row:
            del row[c]
            if holders is not None:
                holders[c].discard(row_pivot)
    divisor = 0
    for value in row.values():
        divisor = gcd(divisor, value)
        if divisor == 1:
            return
    if divisor > 1:
        for c in row:
            row[c] //= divisor


def _note(primary: int, secondary: int, total_suppressed: bool, threshold: int) -> str:
    small = "1" if threshold == 2 else f"between 1 and {threshold - 1}"
    if total_suppressed:
        if primary == 0:
            return f"The total was suppressed because it is {small}."
        return (f"The total and every non-zero cell ({_cells(primary)}) were suppressed because the "
                f"total is {small}.")
    if primary == 0:
        return "No count was suppressed." if threshold == 1 else f"No count was suppressed: none is {small}."
    first = f"{_cells(primary)} with a count {small} {'was' if primary == 1 else 'were'} suppressed"
    pronoun = "it" if primary == 1 else "they"
    why = f"{pronoun} cannot be worked out from the total and the other published sums."
    if secondary == 0:
        return f"{first}; {why}"
    return f"{first}, and {secondary} more {'cell' if secondary == 1 else 'cells'} so that {why}"


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"
