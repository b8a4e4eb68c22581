"""Advocacy's appeal and UNHCR-access request lists at a size that fits CI (issue 12 point 1):
3,000 appeals and 2,000 requests stored straight into advocacy's database as its store keeps them
(version 1 of each and its projection, built by advocacy's own domain rules), then two advocacy
apps of this test's own (two processes' list columns) asked through the API and the pages with
every filter and the first, middle, last and one-past-last pages, and the dashboard. After a
process's first request (which loads the columns), each request reads at most a page of records
and a few more documents (pymongo's command monitoring; any query but a read by `_id` counts as
reading its whole collection, as FerretDB on SQLite does), and shows exactly what an independent
filter and sort of every stored record gives: appeals drafts first by due time (those without one
last among drafts), then the rest, each newest `created_at` first (the same instant by `_id`,
larger first); requests newest first, `overdue` as the domain decides it today. Records created
and moved on through the real API show at the next request, in the app that wrote them and in the
one following the journal."""

from __future__ import annotations

import datetime as dt
import random
import re
import statistics
import time
import uuid

import pytest
from pymongo import monitoring

from services.advocacy import domain
from services.advocacy.store import AdvocacyStore
from services.advocacy.web import DASHBOARD_ROWS, RECENT_APPEALS
from shared.aggregates import version_id
from shared.mongo import utcnow
from tests.integration.conftest import PASSWORD
from tests.integration import test_advocacy_api
from tests.integration.test_lists_case_scale import ServerReads
from tests.support import page_login

advocacy = test_advocacy_api.advocacy  # what the advocacy consumer uses (a store, a producer), as a fixture here too

APPEALS, REQUESTS = 3000, 2000
FEW = 120  # documents a list request may read: the page's 50 records, the journal's next entry, ...
PAGE = AdvocacyStore.PAGE_SIZE
UTC = dt.timezone.utc
FAR = dt.datetime.max.replace(tzinfo=UTC)
ACTOR = "0c0ffee0-0000-4000-8000-00000000a001"  # a synthetic user id


def _instants(rng: random.Random, n: int, end: dt.datetime) -> list[dt.datetime]:
    """n instants over the 400 days before `end`, at BSON's millisecond precision, a quarter shared."""
    pool = [end - dt.timedelta(milliseconds=rng.randrange(400 * 86_400_000)) for _ in range(n * 3 // 4)]
    return [rng.choice(pool) for _ in range(n)]


def invent_appeals(rng: random.Random, cases: list[str], end: dt.datetime) -> list[dict]:
    """Appeals made and moved on by the domain's rules: drafts (most due some hours after they were
    made, some due at the same instant, some with no due time), issued ones and answered ones."""
    appeals = []
    dues = [end - dt.timedelta(hours=rng.randrange(400 * 24)) for _ in range(50)]
    for created in _instants(rng, APPEALS, end):
        kind = rng.random()
        due = None if kind < 0.08 else rng.choice(dues) if kind < 0.15 else created + dt.timedelta(
            hours=rng.randrange(1, 100))
        appeal = domain.new_appeal(str(uuid.UUID(int=rng.getrandbits(128), version=4)), {
            "case_ids": rng.sample(cases, rng.randint(1, 3)), "kind": rng.choice(domain.APPEAL_KINDS),
            "recipients": [], "issued_on": None, "due_by": due}, actor=ACTOR, now=created)
        if rng.random() < 0.6:
            appeal = domain.issue(appeal, issued_on=created.date(), recipients=["SR DPRK"], actor=ACTOR, now=created)
            if rng.random() < 0.5:
                appeal = domain.answer(appeal, outcome=rng.choice(domain.APPEAL_OUTCOMES), received_on=created.date(),
                                       actor=ACTOR, now=created)
        appeals.append({**appeal, "updated_at": created})
    return appeals


def invent_requests(rng: random.Random, cases: list[str], end: dt.datetime) -> list[dict]:
    """Requests made and answered by the domain's rules: sent, acknowledged (follow-ups past and to
    come) and finally answered."""
    requests = []
    for created in _instants(rng, REQUESTS, end):
        sent_on = created.date()
        request = domain.new_request(str(uuid.UUID(int=rng.getrandbits(128), version=4)), {
            "case_ids": rng.sample(cases, rng.randint(1, 3)), "office": "beijing", "channel": "email",
            "sent_on": sent_on}, follow_up_days=7, actor=ACTOR, now=created)
        for outcome in rng.choice([[], ["acknowledged"], ["acknowledged", "granted"], ["denied"], ["no_response"]]):
            received_on = min(end.date(), sent_on + dt.timedelta(days=rng.randrange(40)))
            request = domain.respond(request, outcome=outcome, received_on=received_on, follow_up_days=7,
                                     actor=ACTOR, now=end)
        requests.append({**request, "updated_at": created})
    return requests


@pytest.fixture(scope="module")
def seeded(settings, mongo, advocacy):
    """Cases advocacy knows, and appeals and requests about them stored as advocacy's store keeps
    them: version 1 of each (its events already sent: an empty outbox) and its projection."""
    db = mongo[settings.database_name("advocacy")]
    cases = [test_advocacy_api._open_case(advocacy) for _ in range(30)]
    rng, end = random.Random(12), utcnow() - dt.timedelta(days=1)
    for name, records in (("appeals", invent_appeals(rng, cases, end)), ("requests", invent_requests(rng, cases, end))):
        for i in range(0, len(records), 1000):
            batch = records[i:i + 1000]
            db[f"{name}_versions"].insert_many([{"_id": version_id(r["_id"], 1), "aggregate_id": r["_id"], "rev": 1,
                                                 "state": r, "outbox": [], "updated_at": r["updated_at"]}
                                                for r in batch])
            db[name].insert_many([{**r, "rev": 1} for r in batch])
    return {"db": db, "cases": cases}


@pytest.fixture(scope="module")
def watched(settings, seeded):
    """Two advocacy apps of this test's own, each with its own database client (its own list columns,
    as two processes have), made after the listener so that their reads are counted."""
    db = seeded["db"]
    sizes = {f"{name}{part}": db[f"{name}{part}"].estimated_document_count()
             for name in ("appeals", "requests") for part in ("", "_versions", "_journal")}
    listener = ServerReads({settings.database_name("advocacy"), settings.database_name("identity")}, sizes)
    monitoring.register(listener)
    from services.advocacy.app import create_app

    apps = [create_app(settings), create_app(settings)]
    for app in apps:
        app.testing = True
    return apps, listener


def stored(db) -> dict[str, list[dict]]:
    """Every stored appeal's and request's listed fields, read here (not by the apps)."""
    return {"appeals": list(db["appeals"].find({}, {"status": 1, "case_ids": 1, "due_by": 1, "created_at": 1,
                                                    "updated_at": 1})),
            "requests": list(db["requests"].find({}, {"status": 1, "case_ids": 1, "follow_up_on": 1,
                                                      "created_at": 1}))}


def expected_appeals(records, case_id=None, status=None) -> list[str]:
    """The appeal ids the list must show, in order: the stored appeals filtered and sorted here."""
    found = [a for a in records["appeals"]
             if (case_id is None or case_id in a["case_ids"]) and (status is None or a["status"] == status)]
    found.sort(key=lambda a: (a["created_at"], a["_id"]), reverse=True)
    found.sort(key=lambda a: (0, a.get("due_by") or FAR) if a["status"] == "draft" else (1, FAR))  # stable
    return [a["_id"] for a in found]


def expected_requests(records, case_id=None, status=None, overdue=None) -> list[str]:
    """The request ids the list must show, newest first: the stored requests filtered here."""
    today = utcnow().date()
    found = [r for r in records["requests"]
             if (case_id is None or case_id in r["case_ids"]) and (status is None or r["status"] == status)
             and (overdue is None or domain.is_overdue(r, today) is overdue)]
    found.sort(key=lambda r: (r["created_at"], r["_id"]), reverse=True)
    return [r["_id"] for r in found]


def expected_dashboard(records) -> dict[str, list[str]]:
    """What the dashboard must show: the drafts due soonest, the requests awaiting an answer whose
    follow-up comes first (overdue first), the appeals other than drafts changed last."""
    today = utcnow().date()
    awaited = [r for r in records["requests"] if r["status"] not in domain.FINAL_OUTCOMES]
    awaited.sort(key=lambda r: (r["created_at"], r["_id"]), reverse=True)
    awaited.sort(key=lambda r: (not domain.is_overdue(r, today), r.get("follow_up_on") or "9999"))  # stable
    sent = [a for a in records["appeals"] if a["status"] != "draft"]
    sent.sort(key=lambda a: (a["created_at"], a["_id"]), reverse=True)
    sent.sort(key=lambda a: a.get("updated_at") or a["created_at"], reverse=True)  # stable
    return {"drafts": expected_appeals(records, status="draft"), "open-requests": [r["_id"] for r in awaited],
            "recent-appeals": [a["_id"] for a in sent]}


def pages_of(total: int) -> list[int]:
    """The first, a middle and the last page, and the one after the last (empty)."""
    last = max(1, -(-total // PAGE))
    return sorted({1, (last + 1) // 2, last, last + 1})


class Lister:
    """Asks one app's lists through the API and the pages, counting the documents each request reads."""

    LISTS = {"appeals": ("/api/v1/appeals", "/appeals", "appeal_id", "appeals"),
             "requests": ("/api/v1/unhcr-access-requests", "/requests", "request_id", "requests")}

    def __init__(self, app, listener, headers: dict, username: str):
        self.api, self.web = app.test_client(), app.test_client()
        page_login(self.web, username, PASSWORD, next_path="/appeals")
        self.listener, self.headers = listener, headers
        self.times: list[float] = []

    def _reading(self, call):
        began = time.perf_counter()
        read, res = self.listener.reading(call)
        self.times.append(time.perf_counter() - began)
        return read, res

    def ask(self, name: str, filters: dict, page: int, *, web: bool) -> tuple[int, list[str], int]:
        """(documents read, the ids shown in order, the total) of one page of a list."""
        api_path, web_path, id_field, noun = self.LISTS[name]
        query = {**{k: {True: "true", False: "false"}.get(v, v) for k, v in filters.items() if v is not None},
                 "page": page}
        if not web:
            read, res = self._reading(lambda: self.api.get(api_path, headers=self.headers, query_string=query))
            assert res.status_code == 200, res.get_json()
            body = res.get_json()
            assert body["page"] == page and body["page_size"] == PAGE and set(body) == {"items", "total", "page",
                                                                                          "page_size"}
            return read, [item[id_field] for item in body["items"]], body["total"]
        read, res = self._reading(lambda: self.web.get(web_path, query_string=query))
        assert res.status_code == 200
        html = res.get_data(as_text=True)
        table = html.split(f'<table id="{noun}"', 1)[1].split("</table>", 1)[0]
        total = int(re.search(rf"<p>(\d+) {noun}</p>", html).group(1))
        assert ('rel="next"' in html) == (total > page * PAGE) and ('rel="prev"' in html) == (page > 1)
        return read, re.findall(rf'<a href="{web_path}/([0-9a-f-]{{36}})">', table), total

    def check_dashboard(self, want: dict[str, list[str]]) -> None:
        """The dashboard shows the first rows of each part of `want` (and how many there are), reading
        fewer than FEW documents."""
        read, res = self._reading(lambda: self.web.get("/"))
        assert res.status_code == 200 and read < FEW, read
        html = res.get_data(as_text=True)
        for part, shown in (("drafts", DASHBOARD_ROWS), ("open-requests", DASHBOARD_ROWS),
                            ("recent-appeals", RECENT_APPEALS)):
            table = html.split(f'<table id="{part}"', 1)[1].split("</table>", 1)[0]
            ids = re.findall(r'<a href="/(?:appeals|requests)/([0-9a-f-]{36})">', table)
            assert ids == want[part][:shown], part
        assert f"The {DASHBOARD_ROWS} due soonest of {len(want['drafts'])} drafts." in html
        assert f"The {DASHBOARD_ROWS} to follow up first of {len(want['open-requests'])} requests" in html

    def check(self, name: str, want: list[str], filters: dict, pages=None) -> None:
        """Every page asked (default: first, middle, last, past the last), through the API and the
        page, equals `want`, each request reading fewer than FEW documents."""
        for page in pages or pages_of(len(want)):
            for web in (False, True):
                read, ids, total = self.ask(name, filters, page, web=web)
                where = (name, filters, page, "page" if web else "api")
                assert read < FEW, (where, read)
                assert total == len(want), (where, total, len(want))
                assert ids == want[(page - 1) * PAGE:page * PAGE], where


def _check_all(listers, db, cases):
    records = stored(db)
    for lister in listers:
        lister.check_dashboard(expected_dashboard(records))
        for case_id, status in ((None, None), (None, "draft"), (None, "issued"), (None, "response_received"),
                                (None, "no_response"), (cases[0], None), (cases[1], "draft"), ("no-such-case", None)):
            lister.check("appeals", expected_appeals(records, case_id, status), {"case_id": case_id, "status": status})
        for case_id, status, overdue in ((None, None, None), (None, None, True), (None, None, False),
                                         (None, "acknowledged", True), (None, "granted", None), (cases[2], None, None),
                                         (cases[3], "sent", False)):
            lister.check("requests", expected_requests(records, case_id, status, overdue),
                         {"case_id": case_id, "status": status, "overdue": overdue})


def test_appeals_and_requests_answer_every_filter_and_page_without_reading_every_record(watched, seeded, tokens,
                                                                                         users):
    (first_app, second_app), listener = watched
    db, cases = seeded["db"], seeded["cases"]
    headers, advocate = tokens["advocate"], users["advocate"]
    listers = [Lister(app, listener, headers, advocate) for app in (first_app, second_app)]
    for lister in listers:  # a process's first request loads the columns once
        assert lister.ask("appeals", {}, 1, web=False)[2] >= APPEALS
        lister.times = []
    awaited = [r for r in db["requests"].find({}) if r["status"] not in domain.FINAL_OUTCOMES]
    assert {True, False} == {domain.is_overdue(r, utcnow().date()) for r in awaited}  # both are asked for
    _check_all(listers, db, cases)

    # Records made and moved on through the API show at once, in the app that wrote them and in the other.
    api, before = listers[0].api, stored(db)
    drafts = expected_appeals(before, status="draft")
    draft, issued = drafts[len(drafts) // 2], expected_appeals(before, status="issued")[-1]
    open_request = expected_requests(before, overdue=True)[-1]
    made = [api.post("/api/v1/appeals", headers=headers, json={"case_ids": [cases[0]], "kind": "urgent_appeal"}),
            api.post("/api/v1/appeals", headers=headers, json={"case_ids": [cases[1]], "kind": "communication",
                                                                "recipients": ["SR DPRK"],
                                                                "issued_on": utcnow().date().isoformat()}),
            api.post("/api/v1/unhcr-access-requests", headers=headers, json={
                "case_ids": [cases[2], cases[3]], "office": "UNHCR Beijing", "channel": "fax",
                "sent_on": (utcnow().date() - dt.timedelta(days=30)).isoformat()}),
            api.post(f"/api/v1/appeals/{draft}/issue", headers=headers,
                     json={"issued_on": utcnow().date().isoformat(), "recipients": ["SR DPRK"]}),
            api.post(f"/api/v1/appeals/{issued}/responses", headers=headers,
                     json={"outcome": "no_response", "received_on": utcnow().date().isoformat()}),
            api.post(f"/api/v1/unhcr-access-requests/{open_request}/responses", headers=headers,
                     json={"outcome": "granted", "received_on": utcnow().date().isoformat()})]
    assert [res.status_code for res in made] == [201, 201, 201, 200, 200, 200], [res.get_json() for res in made]
    after = stored(db)
    assert draft in expected_appeals(after, status="issued") and issued in expected_appeals(after, status="no_response")
    assert open_request not in expected_requests(after, overdue=True)
    assert expected_requests(after, overdue=True)[0] == made[2].get_json()["request_id"]
    _check_all(listers[::-1], db, cases)
    times = sorted(t * 1000 for lister in listers for t in lister.times)
    print(f"\nadvocacy lists at {APPEALS} appeals and {REQUESTS} requests: {len(times)} requests (API and pages), "
          f"median {statistics.median(times):.0f} ms, p95 {times[int(len(times) * 0.95) - 1]:.0f} ms")


def test_a_page_that_is_not_a_page_number_is_refused_clearly(watched, tokens, users):
    """`page` below 1 or not a number: a 422 naming the field (API), the message next to the form (pages)."""
    (app, _), _listener = watched
    api, web = app.test_client(), app.test_client()
    for path in ("/api/v1/appeals", "/api/v1/unhcr-access-requests"):
        for page in ("0", "two"):
            res = api.get(path, headers=tokens["analyst"], query_string={"page": page})
            assert res.status_code == 422 and list(res.get_json()["error"]["fields"]) == ["page"], res.get_json()
    page_login(web, users["analyst"], PASSWORD, next_path="/appeals")
    html = web.get("/appeals?page=0&status=draft").get_data(as_text=True)
    assert "Page: Must be greater than or equal to 1" in html and 'rel="next"' not in html
    page_login(web, users["analyst"], PASSWORD, lang="ko", next_path="/requests")
    res = web.get("/requests?page=two")
    assert res.status_code == 422 and "페이지: " in res.get_data(as_text=True)
