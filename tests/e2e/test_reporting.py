"""Reporting end to end: the live reporting consumer builds its records from the three topics, a
snapshot reaches the cases it counted through the case service, and a rebuild from the topics
reproduces every statistic exactly."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys

from tests.support import ROOT, synthetic_report, wait_for

BYS = ["", "sex", "sex,age_group", "province,status", "nationality", "age_group,province,sex"]
MEASURES = ["detained", "deportation_imminent", "repatriated", "reported", "unhcr_access_requested",
            "unhcr_access_granted", "appeals_issued"]


def _analyst(api) -> dict:
    if not hasattr(api, "analyst"):
        res = api.http.post(f"{api.urls['intake']}/api/v1/users", headers=api.admin, timeout=10,
                            json={"username": "analyst-e2e", "password": "e2e-password-0001", "roles": ["analyst"]})
        assert res.status_code in (201, 409), res.text
        api.analyst = api.login("analyst-e2e", "e2e-password-0001")
    return api.analyst


def _stats(api, **params) -> dict:
    res = api.http.get(f"{api.urls['reporting']}/api/v1/statistics", params=params, headers=_analyst(api), timeout=30)
    assert res.status_code == 200, res.text
    return res.json()


def _move(api, case_id, to, on):
    res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker, timeout=10,
                        json={"to": to, "effective_on": on})
    assert res.status_code == 200, res.text


def test_the_consumer_counts_cases_by_business_date_and_a_snapshot_reaches_its_cases(api):
    today = dt.date.today()
    before = _stats(api, measure="detained", as_of="2023-05-01", disclosure="internal")["total"]
    day_before = _stats(api, measure="detained", as_of="2023-04-19", disclosure="internal")["total"]
    created = api.post_report(synthetic_report(source={"type": "family", "reliability": "confirmed",
                                                       "received_on": "2023-06-01"}))
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    _move(api, created["case_id"], "detained", "2023-04-20")  # back-dated before the report arrived
    wait_for(lambda: _stats(api, measure="detained", as_of="2023-05-01", disclosure="internal")["total"] == before + 1,
             timeout_s=30, what="the back-dated detention counted on its business date")
    # The day before it happened, the same figure as before the move was recorded.
    assert _stats(api, measure="detained", as_of="2023-04-19", disclosure="internal")["total"] == day_before

    snap = api.http.post(f"{api.urls['reporting']}/api/v1/upr/snapshots", headers=_analyst(api), timeout=60,
                         json={"cycle": "CN-4", "as_of": today.isoformat(), "title": "end to end"})
    assert snap.status_code == 201, snap.text
    snap = snap.json()
    assert created["case_id"] in snap["case_ids"]
    listed = wait_for(lambda: [s for s in api.case(created["case_id"]).get("upr_snapshots", [])
                               if s["snapshot_id"] == snap["snapshot_id"]], timeout_s=30,
                      what="the snapshot on the case")
    assert listed[0]["cycle"] == "CN-4" and listed[0]["as_of"] == today.isoformat()
    for fmt, mime in [("md", "text/markdown"), ("csv", "text/csv"), ("pdf", "application/pdf"),
                      ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                      ("html", "text/html")]:
        annex = api.http.get(f"{api.urls['reporting']}/api/v1/upr/snapshots/{snap['snapshot_id']}/annex",
                             params={"format": fmt}, headers=api.caseworker, timeout=60)
        assert annex.status_code == 200 and annex.headers["Content-Type"].startswith(mime), (fmt, annex.text[:200])


def test_a_rebuild_from_the_topics_reproduces_every_statistic(api, env):
    dates = ["2023-04-19", "2023-05-01", dt.date.today().isoformat()]
    made = [api.post_report(synthetic_report(source={"type": "church_partner", "reliability": "probable",
                                                     "received_on": "2023-04-25"})) for _ in range(4)]
    for created in made:
        wait_for(lambda: api.case(created["case_id"]), what="the case")
    _move(api, made[0]["case_id"], "detained", "2023-04-10")
    _move(api, made[1]["case_id"], "repatriated", "2023-04-28")
    wait_for(lambda: _stats(api, measure="reported", as_of="2023-05-01", disclosure="internal")["total"] >= 4,
             timeout_s=30, what="the reports counted")
    grid = list(itertools.product(MEASURES, dates, BYS))

    def everything():
        return {key: _stats(api, measure=key[0], as_of=key[1], by=key[2], disclosure="internal") for key in grid}

    wait_for(lambda: everything() == everything(), timeout_s=60, what="the figures to settle")
    before = everything()
    done = subprocess.run([sys.executable, "-m", "services.reporting.rebuild", "--quiet"], cwd=ROOT, timeout=600,
                          env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rebuilt" in done.stdout
    after = everything()
    assert after == before
    assert any(table["total"] for table in before.values())  # not an empty comparison
