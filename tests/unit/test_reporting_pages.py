"""The reporting pages' pure parts: charts inlined only when they are drawing alone, each with ids
of its own; the dashboard's query; a measure's figure in words."""

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from marshmallow import ValidationError

from services.reporting import charts, domain, web

SERIES = {"months": ["2024-01", "2024-02", "2024-03"], "detained": [12, None, 7], "repatriated": [0, None, 6],
          "reported": [9, 8, None]}
TABLE = {"measure": "detained", "as_of": "2024-03-31", "since": None, "by": ["sex", "age_group"],
         "cells": [{"sex": s, "age_group": a, "count": 6} for s in domain.SEXES for a in domain.AGE_GROUPS]}
SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1">{}</svg>'


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_charts_inline_with_ids_of_their_own(lang):
    over_time = web.inline_svg(charts.chart_over_time(SERIES, lang=lang), "over")
    by_age = web.inline_svg(charts.chart_by_age_and_sex(TABLE, lang=lang), "age")
    for svg, prefix in ((over_time, "over"), (by_age, "age")):
        text = str(svg)
        assert text.startswith("<svg") and "<?xml" not in text and "<!DOCTYPE" not in text
        root = ET.fromstring(text)
        ids = [e.get("id") for e in root.iter() if e.get("id")]
        assert root.get("id") == prefix and all(i == prefix or i.startswith(f"{prefix}-") for i in ids)
        refs = [v for e in root.iter() for k, v in e.attrib.items() if k.endswith("href") or "url(#" in v]
        assert refs and all(f"#{prefix}-" in v for v in refs)
        # No CSS, which the pages' Content-Security-Policy does not apply: presentation attributes.
        assert "<style" not in text and " style=" not in text
        assert root.get("stroke-linejoin") == "round" and any(e.get("fill") for e in root.iter())
        assert root.get("width") == "100%" and root.get("height") is None


@pytest.mark.parametrize("inside", [
    "<script>alert(1)</script>", '<rect onload="alert(1)"/>', '<a href="https://example.org/"><rect/></a>',
    '<use xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="https://example.org/x.svg#a"/>',
    '<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>',
    '<rect fill="url(https://example.org/x)"/>', "<style>@import url(https://example.org/x.css);</style>",
    "<style>body { display: none }</style>", '<rect style="behavior: url(#x)"/>', '<rect style="position: fixed"/>',
])
def test_anything_but_drawing_is_refused(inside):
    with pytest.raises(web.UnsafeSvg):
        web.inline_svg(SVG.format(inside).encode(), "x")


def test_the_dashboard_query_reads_the_form():
    today = dt.date.today()
    assert web.DashboardQuery().load({}) == {"as_of": today, "since": None, "disclosure": "public", "province": None,
                                             "sex": None}
    got = web.DashboardQuery().load({"as_of": "2024-06-30", "since": "2024-01-01", "sex": "female",
                                     "province": "Jilin", "disclosure": "internal"})
    assert got["as_of"] == dt.date(2024, 6, 30) and got["sex"] == "female" and got["disclosure"] == "internal"
    for bad, field in [({"as_of": "2024-02-30"}, "as_of"), ({"as_of": (today + dt.timedelta(days=1)).isoformat()},
                                                           "as_of"),
                       ({"as_of": "2024-06-30", "since": "2024-06-30"}, "since"), ({"sex": "robot"}, "sex"),
                       ({"disclosure": "secret"}, "disclosure"), ({"province": "x" * 101}, "province")]:
        with pytest.raises(ValidationError) as exc:
            web.DashboardQuery().load(bad)
        assert field in exc.value.messages, bad


def test_a_figure_is_the_total_or_with_filters_the_matching_cell():
    table = {"total": 20, "cells": [{"sex": "female", "count": None, "suppressed": True},
                                    {"sex": "male", "count": 17}, {"sex": "unknown", "count": 0}]}
    assert web._headline(table, {}) == {"count": 20, "suppressed": False, "small": False}
    assert web._headline({**table, "total": None}, {}) == {"count": None, "suppressed": True, "small": True}
    assert web._headline(table, {"sex": "male"}) == {"count": 17, "suppressed": False, "small": False}
    # A suppressed cell may be a large one hidden to protect a small one: not "fewer than 5".
    assert web._headline(table, {"sex": "female"}) == {"count": None, "suppressed": True, "small": False}
