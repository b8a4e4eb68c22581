"""The UPR annex's charts, drawn with matplotlib on its non-interactive Agg canvas (no display,
no pyplot and its global figures): detentions and returns by month, and one measure's table by
sex and age group, as SVG or PNG, in English or Korean. Pure: figures in, bytes out.

A suppressed value (None) is never drawn as a number or as a bar: its line has a gap, and a ×
sits on the axis with a legend entry that says what it means. The same figures give the same
bytes: the SVG has no date and a fixed hash salt, and text stays text (so it can be searched and
read by a screen reader); the PNG is drawn in NanumGothic, which Korean needs. An SVG chart
carries its accessible name (<title>: the chart's title) and its text alternative (<desc>: every
figure it draws, in words, a suppressed one as "–"), so a page that inlines it needs nothing more.
"""

from __future__ import annotations

import contextlib
import io
from xml.sax.saxutils import escape
import math
import threading

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from services.reporting import wording
from shared import fonts
from shared.events import SEXES
from shared.people import AGE_GROUPS

FORMATS = ("svg", "png")
MIME_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
PNG_DPI = 150
ENGLISH_FONTS = ("DejaVu Sans", "sans-serif")  # matplotlib's own; the generic name is for SVG readers
SIZE = (8.0, 4.6)  # inches
SERIES_STYLE = {  # Okabe-Ito colours, which readers with colour-blindness tell apart
    "detained": {"color": "#0072B2", "marker": "o", "linestyle": "-"},
    "repatriated": {"color": "#D55E00"},
    "reported": {"color": "#009E73", "marker": "s", "linestyle": "--"},
}
SEX_COLOURS = {"female": "#CC79A7", "male": "#0072B2", "unknown": "#999999"}
SUPPRESSED_MARK = {"marker": "x", "markersize": 6, "markeredgewidth": 1.5, "linestyle": "none", "clip_on": False}

# matplotlib's settings are global and its figures are not thread-safe: one chart at a time.
_LOCK = threading.Lock()


class ChartError(ValueError):
    """Figures that cannot be drawn: the message says which part is wrong."""


def chart_over_time(series: dict, *, fmt: str = "svg", lang: str = "en") -> bytes:
    """Detained at each month's end, and returned and reported within each month: lines and bars
    over the series' months, a gap and a × wherever a value is suppressed."""
    _check(fmt, lang)
    months = list(series.get("months") or ())
    if not months:
        raise ChartError("the series has no months")
    present = [name for name in wording.SERIES if name in series]
    for name in present:
        if len(series[name]) != len(months):
            raise ChartError(f"series {name!r} has {len(series[name])} values for {len(months)} months")
    w = wording.words(lang)["chart"]
    with _drawing(lang, "over-time") as fig:
        ax = fig.add_subplot()
        x = list(range(len(months)))
        handles, hidden = [], False
        peak = max([v for name in present for v in series[name] if v is not None] or [0])
        for name in present:
            values = series[name]
            style = SERIES_STYLE[name]
            shown = [(i, v) for i, v in zip(x, values) if v is not None]
            if name == "repatriated":
                bars = ax.bar([i for i, _ in shown], [v for _, v in shown], width=0.6, color=style["color"],
                              label=w["series"][name], zorder=2)
                handles.append(bars)
            else:
                line, = ax.plot(x, [math.nan if v is None else v for v in values], label=w["series"][name],
                                color=style["color"], marker=style["marker"], linestyle=style["linestyle"],
                                markersize=3.5, linewidth=1.8, gid=f"series-{name}", zorder=3)
                handles.append(line)
            gaps = [i for i, v in zip(x, values) if v is None]
            if gaps:
                hidden = True
                shift = 0.22 * (wording.SERIES.index(name) - 1)  # two series hidden in one month: side by side
                _suppressed_marks(ax, [i + shift for i in gaps], color=style["color"], gid=f"suppressed-{name}")
        if hidden:
            handles.append(Line2D([], [], color="black", **SUPPRESSED_MARK, label=w["suppressed"]))
        ticks = sorted({*range(len(months) - 1, -1, -3)})
        ax.set_xticks(ticks, [months[i] for i in ticks], rotation=45, ha="right")
        ax.set_xlim(-0.7, len(months) - 0.3)
        _count_axis(ax, peak)
        ax.set_xlabel(w["month"])
        ax.set_ylabel(w["people"])
        title = w["over_time_title"].format(first=wording.month_text(months[0], lang),
                                            last=wording.month_text(months[-1], lang))
        ax.set_title(title)
        fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize=8.5)
        lines = [(w["series"][name], [(wording.month_text(m, lang), v) for m, v in zip(months, series[name])])
                 for name in present]
        return _save(fig, fmt, title=title, description=_in_words(lines, w, hidden))


def chart_by_age_and_sex(table: dict, *, fmt: str = "svg", lang: str = "en") -> bytes:
    """One measure's table (e.g. detained) as bars by age group, one bar per sex, each labelled
    with its count; a suppressed cell has no bar and no number, only a × on the axis."""
    _check(fmt, lang)
    if set(table.get("by") or ("sex", "age_group")) != {"sex", "age_group"}:
        raise ChartError("the table must be by sex and age_group")
    cells = {(c.get("sex"), c.get("age_group")): c for c in table.get("cells") or ()}
    w = wording.words(lang)["chart"]
    measure = table.get("measure", "")
    title_measure = wording.measure_title(measure, lang, qualified=False)
    when = (w["on"].format(date=wording.date_text(table["as_of"], lang)) if measure in wording.STOCK_MEASURES
            else wording.period_text(table["as_of"], table.get("since"), lang))
    with _drawing(lang, f"by-age-{measure}") as fig:
        ax = fig.add_subplot()
        width = 0.8 / len(SEXES)
        peak = max([published_count(c) for c in cells.values() if published_count(c) is not None] or [0])
        handles, hidden = [], False
        for j, sex in enumerate(SEXES):
            offset = (j - (len(SEXES) - 1) / 2) * width
            shown, gaps = [], []
            for i, age in enumerate(AGE_GROUPS):
                value = published_count(cells.get((sex, age), {}))
                (gaps if value is None else shown).append((i + offset, value, age))
            bars = ax.bar([p for p, _, _ in shown], [v for _, v, _ in shown], width=width * 0.92,
                          color=SEX_COLOURS[sex], label=wording.sex_label(sex, lang), zorder=2)
            handles.append(bars)
            for position, value, age in shown:
                ax.text(position, value, str(value), ha="center", va="bottom", fontsize=7,
                        gid=f"value-{sex}-{age}")
            for position, _, age in gaps:
                hidden = True
                _suppressed_marks(ax, [position], color=SEX_COLOURS[sex], gid=f"suppressed-{sex}-{age}")
        if hidden:
            handles.append(Line2D([], [], color="black", **SUPPRESSED_MARK, label=w["suppressed"]))
        ax.set_xticks(range(len(AGE_GROUPS)), [wording.age_label(a, lang) for a in AGE_GROUPS])
        ax.set_xlim(-0.6, len(AGE_GROUPS) - 0.4)
        _count_axis(ax, peak)
        ax.set_xlabel(w["age_group"])
        ax.set_ylabel(w["people"])
        title = w["by_age_title"].format(measure=title_measure, when=when)
        ax.set_title(title)
        fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize=8.5)
        lines = [(wording.sex_label(sex, lang), [(wording.age_label(age, lang), published_count(cells.get((sex, age), {})))
                                                 for age in AGE_GROUPS]) for sex in SEXES]
        return _save(fig, fmt, title=title, description=_in_words(lines, w, hidden))


def published_count(cell: dict) -> int | None:
    """A cell's count if it is published; None when it is suppressed, whatever count it carries."""
    if cell.get("suppressed") or cell.get("count") is None:
        return None
    return int(cell["count"])


def _suppressed_marks(ax, positions: list[float], *, color: str, gid: str) -> None:
    """× marks on the axis line itself, placed in axis height rather than data (a mark is no count,
    and no height could be read as one)."""
    on_axis = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(positions, [0] * len(positions), color=color, transform=on_axis, gid=gid, zorder=4, **SUPPRESSED_MARK)


def _count_axis(ax, peak: int) -> None:
    """Whole numbers from 0, with headroom above the highest bar for its label."""
    ax.set_ylim(0, max(peak * 1.15, peak + 1, 4))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _check(fmt: str, lang: str) -> None:
    if fmt not in FORMATS:
        raise ChartError(f"fmt must be one of {', '.join(FORMATS)}")
    if lang not in wording.LANGS:
        raise ChartError(f"lang must be one of {', '.join(wording.LANGS)}")


@contextlib.contextmanager
def _drawing(lang: str, name: str):
    """A figure drawn under the lock with the chart settings: Korean in NanumGothic (English in
    matplotlib's own DejaVu Sans, so it needs no extra font), SVG text kept as text, and a hash
    salt of the chart's own, so that two charts inlined in one page do not share clip-path ids."""
    with _LOCK:
        family = [fonts.register_matplotlib(), *ENGLISH_FONTS] if lang == "ko" else list(ENGLISH_FONTS)
        settings = {"font.family": family, "font.size": 9.5, "axes.titlesize": 11, "svg.fonttype": "none",
                    "svg.hashsalt": f"nrw-{name}", "axes.unicode_minus": False}
        with matplotlib.rc_context(settings):
            fig = Figure(figsize=SIZE, layout="constrained")
            FigureCanvasAgg(fig)
            yield fig


def _in_words(lines: list[tuple[str, list[tuple[str, int | None]]]], w: dict, hidden: bool) -> str:
    """What a chart draws, as text: one sentence per series, "label: point value, ...", a
    suppressed value as "–" (explained at the end), so the text gives away no more than the chart."""
    text = " ".join(f"{label}: " + ", ".join(f"{point} {'–' if value is None else value}" for point, value in points)
                    + "." for label, points in lines)
    return f"{text} – {w['suppressed']}." if hidden else text


def _save(fig: Figure, fmt: str, *, title: str, description: str) -> bytes:
    out = io.BytesIO()
    if fmt == "svg":
        fig.savefig(out, format="svg", metadata={"Date": None})
        svg = out.getvalue().decode("utf-8")
        start = svg.index(">", svg.index("<svg")) + 1  # first in the <svg>: its name and its text alternative
        return (svg[:start] + f"\n <title>{escape(title)}</title>\n <desc>{escape(description)}</desc>"
                + svg[start:]).encode("utf-8")
    fig.savefig(out, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return out.getvalue()
