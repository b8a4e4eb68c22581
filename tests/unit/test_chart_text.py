"""Every chart has an accessible name and a text alternative (issue 11 point 7): the SVG's first
children are <title> (the chart's title) and <desc> (each figure it draws, a suppressed one as
"–"), kept when a page inlines the chart; the text tells no more than the chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from services.reporting import charts, wording
from services.reporting.web import inline_svg
from shared.events import SEXES
from shared.people import AGE_GROUPS

SVG = "{http://www.w3.org/2000/svg}"
SERIES = {"months": ["2024-01", "2024-02", "2024-03"], "detained": [12, None, 17], "repatriated": [0, 6, None],
          "reported": [9, 8, 7]}


def _name_and_text(svg: bytes) -> tuple[str, str]:
    root = ET.fromstring(svg)
    first, second = list(root)[:2]
    assert (first.tag, second.tag) == (f"{SVG}title", f"{SVG}desc")
    return first.text, second.text


@pytest.mark.parametrize("lang", wording.LANGS)
def test_the_chart_over_time_is_named_and_told_in_words(lang):
    title, desc = _name_and_text(charts.chart_over_time(SERIES, lang=lang))
    w = wording.words(lang)["chart"]
    assert title == w["over_time_title"].format(first=wording.month_text("2024-01", lang),
                                                last=wording.month_text("2024-03", lang))
    for name in ("detained", "repatriated", "reported"):
        told = desc.split(w["series"][name] + ": ", 1)[1].split(".", 1)[0]
        shown = ["–" if v is None else str(v) for v in SERIES[name]]
        assert re.findall(r" (\d+|–)(?:,|$)", told) == shown
    assert desc.endswith(f"– {w['suppressed']}.")


@pytest.mark.parametrize("lang", wording.LANGS)
def test_the_chart_by_age_and_sex_tells_only_published_counts(lang):
    cells = [{"sex": sex, "age_group": age, "count": 10 + i * 3 + j, "suppressed": False}
             for i, sex in enumerate(SEXES) for j, age in enumerate(AGE_GROUPS)]
    cells[1] = {**cells[1], "count": 3, "suppressed": True}  # a small count, hidden
    cells[2] = {**cells[2], "count": 41, "suppressed": True}  # hidden to protect it
    table = {"measure": "detained", "by": ["sex", "age_group"], "as_of": "2024-03-31", "cells": cells}
    title, desc = _name_and_text(charts.chart_by_age_and_sex(table, lang=lang))
    assert title and wording.measure_title("detained", lang, qualified=False) in title
    numbers = sorted(int(n) for n in re.findall(r" (\d+)(?=[,.])", desc))
    assert numbers == sorted(c["count"] for c in cells if not c["suppressed"])
    assert len(re.findall(r" –[,.]", desc)) == 2 and "41" not in desc and " 3," not in desc  # the hidden two
    for sex in SEXES:
        assert f"{wording.sex_label(sex, lang)}: " in desc


def test_a_page_inlines_the_chart_with_its_name_and_text():
    inlined = str(inline_svg(charts.chart_over_time(SERIES), "chart-over-time-svg"))
    assert 'role="img"' in inlined
    root = ET.fromstring(inlined)
    assert [child.tag for child in list(root)[:2]] == [f"{SVG}title", f"{SVG}desc"]

