"""Reporting's pages against the real FerretDB: the dashboard (the same figures as the statistics
API for the chosen date, public for everyone and exact for analysts who ask, filters, errors on the
form, charts inlined as SVG, Korean), and UPR snapshots taken through the form (CSRF) with their
annex to download.

The invented cases live in 2019 and 2020, before any other test's data, so the figures of those
dates are this module's alone whatever else the session has stored."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import uuid

import pytest

from services.reporting import handlers
from services.reporting.store import ReportingStore
from shared.events import new_event, validate_event
from tests.support import page_login as support_page_login

PASSWORD = "integration-password-1"  # the users fixture's
UTC = dt.timezone.utc
AS_OF, LATER = "2020-06-30", "2020-12-31"
MEASURES = ("detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued")


def _cases() -> list[dict]:
    """A small fixed world: (sex, birth year, province, reported on, moves, requests, appeals)."""
    cases = []
    for i in range(14):  # detained in Jilin since April 2019; six returned in September 2020
        moves = [("detained", "2019-04-01")] + ([("repatriated", "2020-09-15")] if i < 6 else [])
        cases.append({"sex": "female", "birth_year": 1990, "province": "Jilin", "reported_on": f"2019-03-{i + 1:02d}",
                      "moves": moves, "requests": [("2020-02-01", "2020-03-01")] if i < 2 else [],
                      "appeals": ["2020-04-01"] if i < 5 else []})
    for i in range(9):  # detained in Liaoning; three at imminent risk from March 2020
        moves = [("detained", "2019-05-01")] + ([("deportation_imminent", "2020-03-01")] if i < 3 else [])
        cases.append({"sex": "male", "birth_year": 1985, "province": "Liaoning", "reported_on": f"2019-04-{i + 1:02d}",
                      "moves": moves, "requests": [("2020-02-01", None)] if i < 4 else [], "appeals": []})
    for i in range(3):  # three teenagers detained in August 2020: small cells
        cases.append({"sex": "unknown", "birth_year": 2007, "province": "Jilin", "reported_on": "2020-07-20",
                      "moves": [("detained", "2020-08-01")], "requests": [], "appeals": []})
    for i in range(4):  # older women reported, never detained
        cases.append({"sex": "female", "birth_year": 1955, "province": "Yunnan", "reported_on": f"2019-06-{i + 1:02d}",
                      "moves": [], "requests": [], "appeals": []})
    return cases


def _events(case: dict, case_id: str, clock) -> list[dict]:
    def ev(kind, producer, payload):
        return new_event(kind, producer=producer, case_id=case_id, payload=payload, now=next(clock))

    common = {"sex": case["sex"], "birth_year": case["birth_year"], "nationality": "KP", "province": case["province"]}
    out = [ev("case.reported", "intake", {
        "report_id": str(uuid.uuid4()), "matched_existing_case": False, **common, "detained_on": None,
        "deportation_imminent": False, "expected_deportation_on": None, "vulnerabilities": [],
        "trafficking_victim": False, "source_type": "family", "source_reliability": "confirmed",
        "received_on": case["reported_on"], "consent_advocacy": "anonymous", "consent_statistics": True}),
        ev("case.opened", "case", {"status": "reported", **common, "detained_on": None, "deportation_imminent": False,
                                   "vulnerabilities": [], "consent_advocacy": "anonymous",
                                   "consent_statistics": True})]
    previous = "reported"
    for status, day in case["moves"]:
        out.append(ev("case.status_changed", "case", {"from": previous, "to": status, "effective_on": day}))
        previous = status
    for sent, granted in case["requests"]:
        rid = str(uuid.uuid4())
        out.append(ev("unhcr_access.requested", "advocacy", {"request_id": rid, "office": "UNHCR Beijing",
                                                             "channel": "email", "sent_on": sent}))
        if granted:
            out.append(ev("unhcr_access.responded", "advocacy", {"request_id": rid, "outcome": "granted",
                                                                 "received_on": granted}))
    for issued in case["appeals"]:
        out.append(ev("appeal.issued", "advocacy", {"appeal_id": str(uuid.uuid4()), "kind": "urgent_appeal",
                                                    "recipients": ["SR DPRK"], "issued_on": issued}))
    return out


@pytest.fixture(scope="module")
def world(settings, mongo, reporting_app):
    """The invented cases, their events applied by reporting's handler as the consumer would."""
    store = ReportingStore(mongo[settings.database_name("reporting")])
    store.clear_records()  # this module's cases only: other modules feed reporting too
    start = dt.datetime(2024, 7, 1, tzinfo=UTC)
    clock = (start + dt.timedelta(seconds=i) for i in range(10_000))
    cases = _cases()
    for case in cases:
        for event in _events(case, str(uuid.uuid4()), clock):
            handlers.on_event(validate_event(json.loads(json.dumps(event))), store=store)
    return {"cases": cases, "store": store}


def csrf_token(client, path: str) -> str:
    """The CSRF token of the first form on a page."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def page_login(client, username: str, lang: str = "en") -> None:
    """Log in through intake's login form, as a browser does; the cookie works here too."""
    res = support_page_login(client, username, PASSWORD, lang=lang)
    assert res.status_code == 302, res.get_data(as_text=True)


def headlines(page: str) -> dict[str, str]:
    """The dashboard's figure per measure, as shown."""
    block = page.split('id="headline"', 1)[1].split("</dl>", 1)[0]
    return {m: html.unescape(v).strip() for m, v in re.findall(r'data-measure="([a-z_]+)">([^<]*)<', block)}


def api_figures(client, headers, *, as_of: str, disclosure: str = "public", by: str = "", **cell) -> dict[str, str]:
    """The statistics API's figure per measure, as the page should say it (a cell when filtered)."""
    out = {}
    for measure in MEASURES:
        res = client.get("/api/v1/statistics", headers=headers,
                         query_string={"measure": measure, "as_of": as_of, "disclosure": disclosure,
                                       **({"by": by} if by else {})})
        assert res.status_code == 200, res.get_json()
        table = res.get_json()
        if cell:
            (found,) = [c for c in table["cells"] if all(c[k] == v for k, v in cell.items())]
            out[measure] = "not published" if found["count"] is None else str(found["count"])
        else:
            out[measure] = "fewer than 5" if table["total"] is None else str(table["total"])
    return out


def get(client, path: str, status: int = 200) -> str:
    res = client.get(path)
    assert res.status_code == status, (path, res.status_code, res.get_data(as_text=True)[:2000])
    return res.get_data(as_text=True)


# --- the dashboard ------------------------------------------------------------------------------


def published(exact: int) -> set[str]:
    """What a public figure of `exact` people may show (the cell key method, README): a multiple
    of 5 within 4 of it, at least 5 (a 0 stays 0)."""
    return {"0"} if exact == 0 else {str(v) for v in range(5, exact + 5, 5) if abs(v - exact) <= 4}



def test_a_caseworker_sees_the_public_figures_of_the_api_for_the_chosen_date(reporting_client, users, tokens, world):
    page_login(reporting_client, users["caseworker"])
    page = get(reporting_client, f"/?as_of={AS_OF}")
    shown = headlines(page)
    assert shown == api_figures(reporting_client, tokens["caseworker"], as_of=AS_OF)
    assert shown["detained"] in published(23) and shown["unhcr_access_granted"] == "fewer than 5"
    assert 'data-level="public"' in page and 'name="disclosure"' not in page  # no choice offered
    assert f'name="as_of" max="{dt.date.today().isoformat()}" value="{AS_OF}"' in page


def test_a_caseworker_cannot_get_exact_figures_by_editing_the_url(reporting_client, users, tokens, world):
    page_login(reporting_client, users["caseworker"])
    page = get(reporting_client, f"/?as_of={AS_OF}&disclosure=internal")
    assert 'data-level="public"' in page
    assert headlines(page) == api_figures(reporting_client, tokens["caseworker"], as_of=AS_OF)
    assert headlines(page)["unhcr_access_granted"] == "fewer than 5"


def test_an_analyst_who_asks_sees_the_exact_figures(reporting_client, users, tokens, world):
    page_login(reporting_client, users["analyst"])
    public = get(reporting_client, f"/?as_of={AS_OF}")
    assert 'name="disclosure" value="internal"' in public and 'data-level="public"' in public
    exact = get(reporting_client, f"/?as_of={AS_OF}&disclosure=internal")
    assert 'data-level="internal"' in exact
    assert headlines(exact) == api_figures(reporting_client, tokens["analyst"], as_of=AS_OF, disclosure="internal")
    assert headlines(exact)["unhcr_access_granted"] == "2"
    assert 'value="internal" checked' in exact


def test_another_date_gives_other_figures(reporting_client, users, tokens, world):
    page_login(reporting_client, users["caseworker"])
    first, later = (headlines(get(reporting_client, f"/?as_of={day}")) for day in (AS_OF, LATER))
    assert later == api_figures(reporting_client, tokens["caseworker"], as_of=LATER)
    assert first["detained"] in published(23) and later["detained"] in published(20)  # six returned, three detained since
    assert first["repatriated"] == "0" and later["repatriated"] in published(6)
    today = get(reporting_client, "/")  # no date: today
    assert f'value="{dt.date.today().isoformat()}"' in today


def test_filters_select_the_cells_of_the_api_tables(reporting_client, users, tokens, world):
    page_login(reporting_client, users["caseworker"])
    page = get(reporting_client, f"/?as_of={AS_OF}&province=Jilin&sex=female")
    assert headlines(page) == api_figures(reporting_client, tokens["caseworker"], as_of=AS_OF, by="sex,province",
                                          sex="female", province="Jilin")
    assert headlines(page)["detained"] in published(14)
    table = page.split('id="detained-by-sex-and-age"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-sex="([a-z]+)"', table) == ["female"]
    assert '<option value="Jilin" selected>' in page
    by_province = get(reporting_client, f"/?as_of={LATER}&province=Jilin")
    assert headlines(by_province) == api_figures(reporting_client, tokens["caseworker"], as_of=LATER, by="province",
                                                 province="Jilin")


@pytest.mark.parametrize("query, field, message", [
    ("as_of=2020-02-31", "as_of", "Not a valid date."),
    ("as_of=yesterday", "as_of", "Not a valid date."),
    ("as_of=2999-01-01", "as_of", "Must not be in the future."),
    (f"as_of={AS_OF}&since=2020-07-01", "since", "The start of the period must be before the date of the figures."),
    ("sex=robot", "sex", "Choose one of the options."),
    ("province=Atlantis", "province", "No counted case is recorded in this province"),
])
def test_a_bad_value_comes_back_on_the_form_with_its_error(reporting_client, users, world, query, field, message):
    page_login(reporting_client, users["analyst"])
    page = get(reporting_client, f"/?{query}", status=422)
    error = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', page)
    assert error and message in html.unescape(error.group(1)), page
    assert f'id="{field}"' in page and 'aria-invalid="true"' in page
    assert 'id="headline"' not in page  # no figures for a question that was not understood


def test_the_charts_are_inlined_as_svg_from_numbers_only(reporting_client, users, world):
    page_login(reporting_client, users["caseworker"])
    page = get(reporting_client, f"/?as_of={LATER}&province=Jilin")
    for chart in ("chart-over-time", "chart-by-age-and-sex"):
        figure = page.split(f'<figure id="{chart}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg" in figure and "</svg>" in figure, chart
        assert "<?xml" not in figure and "<!DOCTYPE" not in figure and "<script" not in figure.lower()
    assert page.count("<svg") == 2
    assert 'id="chart-over-time-svg"' in page and 'id="chart-by-age-and-sex-svg"' in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "an id appears twice in the page"
    # The questions, ready to copy.
    assert page.count('class="answer"') == 9 and "As of December 31, 2020" in page


def test_the_dashboard_in_korean(reporting_client, users, tokens, world):
    page_login(reporting_client, users["analyst"], lang="ko")
    page = get(reporting_client, f"/?as_of={AS_OF}")
    assert '<html lang="ko">' in page
    assert "통계" in page and "기준일" in page and "5명 미만" in page
    assert headlines(page)["detained"] in published(23) and headlines(page)["unhcr_access_granted"] == "5명 미만"
    chart = page.split('<figure id="chart-over-time"', 1)[1].split("</figure>", 1)[0]
    assert "월" in chart  # the chart's own words are Korean too
    assert 'lang="ko"' in page.split('id="upr-questions"', 1)[1]  # the Korean answer beside the English one
    bad = get(reporting_client, "/?as_of=2999-01-01", status=422)
    assert "Must not be in the future." not in bad and "미래" in bad


def test_pages_need_a_login(reporting_client, world):
    res = reporting_client.get("/")
    assert res.status_code == 302 and "/login" in res.headers["Location"]


# --- snapshots ----------------------------------------------------------------------------------


def test_an_analyst_takes_a_snapshot_through_the_form(reporting_client, users, tokens, world):
    page_login(reporting_client, users["analyst"])
    listing = get(reporting_client, "/snapshots")
    assert 'id="snapshot-form"' in listing
    token = re.search(r'id="snapshot-form">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                      listing).group(1)

    forged = reporting_client.post("/snapshots", data={"cycle": "CN-4", "as_of": LATER})
    assert forged.status_code == 400
    bad = reporting_client.post("/snapshots", data={"csrf_token": token, "cycle": "", "as_of": "2999-01-01"})
    assert bad.status_code == 422
    bad_page = bad.get_data(as_text=True)
    assert 'id="cycle-error"' in bad_page and "Must not be in the future." in bad_page

    res = reporting_client.post("/snapshots", data={"csrf_token": token, "cycle": "CN-6", "as_of": LATER,
                                                    "title": "Integration <annex>"})
    assert res.status_code == 302, res.get_data(as_text=True)
    snapshot_id = res.headers["Location"].rsplit("/", 1)[1]
    api = reporting_client.get(f"/api/v1/upr/snapshots/{snapshot_id}", headers=tokens["analyst"]).get_json()
    assert api["cycle"] == "CN-6" and api["as_of"] == LATER and api["case_count"] > 0

    page = get(reporting_client, f"/snapshots/{snapshot_id}")
    assert "The snapshot was taken" in page
    assert f'<dd id="snapshot-case-count">{api["case_count"]}</dd>' in page
    assert "Integration &lt;annex&gt;" in page and "<annex>" not in page
    shown = dict(re.findall(r'class="num count" data-measure="([a-z_]+)">([^<]*)<', page))
    assert shown == {m: "fewer than 5" if t["total"] is None else str(t["total"]) for m, t in api["figures"].items()}
    exact = dict(re.findall(r'class="num exact" data-measure="([a-z_]+)">([^<]*)<', page))
    assert exact["detained"] == str(api["exact"]["detained"]["total"]) == "20"
    for fmt in ("pdf", "xlsx", "csv", "html", "md"):
        for lang in ("en", "ko"):
            assert f"/snapshots/{snapshot_id}/annex?format={fmt}&amp;lang={lang}" in page
    assert page.count("<svg") == 2

    others = get(reporting_client, "/snapshots")
    assert f'data-snapshot-id="{snapshot_id}"' in others


def test_a_caseworker_reads_snapshots_but_cannot_take_one(reporting_client, users, tokens, world):
    snap = reporting_client.post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                 json={"cycle": "CN-7", "as_of": AS_OF}).get_json()
    page_login(reporting_client, users["caseworker"])
    listing = get(reporting_client, "/snapshots")
    assert 'id="snapshot-form"' not in listing and snap["snapshot_id"] in listing
    page = get(reporting_client, f"/snapshots/{snap['snapshot_id']}")
    assert 'class="num exact"' not in page and any(f'data-measure="detained">{v}<' in page for v in published(23))
    token = csrf_token(reporting_client, "/snapshots")
    assert reporting_client.post("/snapshots", data={"csrf_token": token, "cycle": "CN-8", "as_of": AS_OF}
                                 ).status_code == 403
    assert reporting_client.get("/snapshots/no-such-snapshot").status_code == 404


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture(scope="module")
def annex_snapshot(reporting_app, tokens, world) -> dict:
    """A snapshot to download annexes of, taken through the API."""
    res = reporting_app.test_client().post("/api/v1/upr/snapshots", headers=tokens["analyst"],
                                           json={"cycle": "CN-5", "as_of": LATER})
    assert res.status_code == 201, res.get_json()
    return res.get_json()


@pytest.mark.parametrize("fmt, mimetype", [("csv", "text/csv"), ("md", "text/markdown"), ("html", "text/html"),
                                           ("pdf", "application/pdf"), ("xlsx", XLSX)])
def test_the_annex_downloads_with_its_mime_type(reporting_client, users, annex_snapshot, fmt, mimetype):
    snap = annex_snapshot
    page_login(reporting_client, users["advocate"])
    for lang in ("en", "ko"):
        res = reporting_client.get(f"/snapshots/{snap['snapshot_id']}/annex?format={fmt}&lang={lang}")
        assert res.status_code == 200, res.get_data(as_text=True)[:500]
        assert res.mimetype == mimetype
        assert res.headers["Content-Disposition"] == f'attachment; filename="upr-annex-CN-5-{LATER}-{lang}.{fmt}"'
        assert res.data.startswith({"pdf": b"%PDF", "xlsx": b"PK"}.get(fmt, b""))
        assert len(res.data) > 500
    assert reporting_client.get(f"/snapshots/{snap['snapshot_id']}/annex?format=doc").status_code == 422


def test_a_snapshot_page_in_korean(reporting_client, users, annex_snapshot):
    page_login(reporting_client, users["caseworker"], lang="ko")
    page = get(reporting_client, f"/snapshots/{annex_snapshot['snapshot_id']}")
    assert '<html lang="ko">' in page and "UPR 스냅숏" in page and "부록" in page and "내려받기" in page
    assert "2020년 12월 31일" in page and page.count("<svg") == 2
    assert 'class="answer-ko" lang="ko"' in page
