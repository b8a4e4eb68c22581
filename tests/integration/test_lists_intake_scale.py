"""Intake's report list and audit trail at a size that fits CI (5,000 reports, 20,000 audit
entries and 300 older ones from before the chain, against the real FerretDB): after the first
request loads the columns once, each page of either list, through the API and the pages, with
any filter, first, middle or last, reads about a page of documents, not the collection; and its
ids, order and total equal a plain filter and sort of the stored documents done here. New reports,
a merge that moves reports and new audit entries, written through the real paths, show at once.

The documents each request reads are counted with pymongo's command monitoring (the case list
test's ServerReads: a read by _id counts what it returns, any other query its whole collection, as
FerretDB on SQLite reads it) on an intake app made for this test, on databases of its own."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from collections import Counter

import pytest
from bson import ObjectId
from pymongo import monitoring

from shared import identity
from shared.audit import HEAD_ID, entry_id
from shared.audit_events import WRITE_ACTIONS
from shared.config import Settings
from tests.integration.conftest import PASSWORD, bearer_tokens
from tests.integration.test_lists_case_scale import ServerReads
from tests.support import page_login, synthetic_report

REPORTS = 5000
ENTRIES = 20000
OLDER = 300  # entries from before the chain: ObjectId _ids, no position
PAGE = 50
FEW = 120  # documents a request may read: a page of 50, the journal's next position, alerts...
UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
PROVINCES = ["Jilin", "Liaoning", "Yunnan", "Heilongjiang", "Guangxi", "Inner Mongolia"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def seed_reports(rng: random.Random) -> list[dict]:
    """Reports with only what the list shows (nothing about a person): many filed in the same second."""
    cases = [_uuid(rng) for _ in range(1500)]
    return [{"_id": _uuid(rng), "case_id": rng.choice(cases), "detention": {"province": rng.choice(PROVINCES)},
             "created_at": T0 + dt.timedelta(seconds=rng.randint(0, 3000))} for _ in range(REPORTS)]


def seed_entries(rng: random.Random) -> list[dict]:
    """Chained entries (position _ids, three per second, a few dated earlier as another service's
    events are) of reads, writes and entries from before `action` was recorded; and older ones."""
    docs = []
    for n in range(1, ENTRIES + 1):
        at = T0 + dt.timedelta(seconds=n // 3 - (rng.randint(1, 600) if rng.random() < 0.03 else 0))
        doc = {"_id": entry_id(n), "seq": n, "prev": "0" * 64, "mac": "0" * 64, "at": at,
               "user_id": f"u{rng.randint(0, 9)}", "username": None, "report_id": f"seed-{n}",
               "case_id": f"c{rng.randint(0, 499)}", "what": "report", "remote_addr": "127.0.0.1"}
        kind = rng.random()
        if kind < 0.15:  # a write touching two cases (a merge)
            doc.update(action=rng.choice(WRITE_ACTIONS), case_ids=[doc["case_id"], f"c{rng.randint(0, 499)}"])
        elif kind < 0.25:
            doc["action"] = rng.choice(WRITE_ACTIONS)
        elif kind < 0.9:
            doc["action"] = "read"
        # else: no action recorded (a read, from before `action` was)
        if doc.get("action", "read") == "read" and rng.random() < 0.05:
            doc["out_of_assignment"] = True
        docs.append(doc)
    for i in range(OLDER):
        docs.append({"_id": ObjectId(), "at": T0 - dt.timedelta(days=1, seconds=i // 2), "user_id": f"u{i % 10}",
                     "report_id": f"old-{i}", "case_id": f"c{i % 500}", "what": "report"})
    return docs


@pytest.fixture(scope="module")
def scratch(settings, mongo):
    """Settings of databases of this test's own (the lists hold only what it stored and wrote)."""
    own = Settings(**{**settings.__dict__, "db_prefix": f"ls{uuid.uuid4().hex[:8]}_"})
    yield own
    for service in ("intake", "identity"):
        mongo.drop_database(own.database_name(service))


@pytest.fixture(scope="module")
def watched(scratch, mongo):
    """The seeded intake database, and an intake app on it whose database client is watched."""
    rng = random.Random(12)
    db = mongo[scratch.database_name("intake")]
    for name, docs in (("reports", seed_reports(rng)), ("audit", seed_entries(rng))):
        for i in range(0, len(docs), 2000):
            db[name].insert_many(docs[i:i + 2000], ordered=False)
    db["audit_head"].insert_one({"_id": HEAD_ID, "seq": ENTRIES})
    names = {role: f"{role}-{uuid.uuid4().hex[:6]}" for role in ("caseworker", "admin")}
    for role, name in names.items():
        identity.create_user(mongo[scratch.database_name("identity")], name, PASSWORD, [role])
    databases = {db.name, scratch.database_name("identity")}
    sizes = {name: mongo[d][name].estimated_document_count() for d in databases for name in mongo[d].list_collection_names()}
    listener = ServerReads(databases, {**sizes, "read_limit_alerts": 0})
    monitoring.register(listener)
    from services.intake.app import create_app

    app = create_app(scratch)  # made after the listener, so its client is watched
    app.testing = True
    return {"db": db, "app": app, "listener": listener, "tokens": bearer_tokens(app, names), "names": names}


# --- what the lists must show: a plain filter and sort of every stored document -----------------


def _newest_first(docs: list[dict], field: str) -> list[dict]:
    def key(doc):
        when = doc.get(field)
        return (when is not None, when.replace(tzinfo=UTC) if when else dt.datetime.min, str(doc["_id"]))
    return sorted(docs, key=key, reverse=True)


def stored(db, name: str) -> list[dict]:
    """Every document of a collection as stored now (one scan, done by the test)."""
    return list(db[name].find({}, {"mac": 0, "prev": 0}))


def expected_reports(reports: list[dict], case_id=None, province=None) -> list[str]:
    docs = [d for d in reports
            if (case_id is None or d.get("case_id") == case_id)
            and (province is None or (d.get("detention") or {}).get("province") == province)]
    return [d["_id"] for d in _newest_first(docs, "created_at")]


def expected_entries(entries: list[dict], *, user_id=None, case_id=None, action=None, out_of_assignment=False) -> list[tuple]:
    def keep(e):
        if user_id is not None and e.get("user_id") != user_id:
            return False
        if case_id is not None and e.get("case_id") != case_id and case_id not in (e.get("case_ids") or []):
            return False
        if action == "read" and e.get("action") in WRITE_ACTIONS:
            return False
        if action == "write" and e.get("action") not in WRITE_ACTIONS:
            return False
        if action not in (None, "read", "write") and e.get("action") != action:
            return False
        return not out_of_assignment or e.get("out_of_assignment") is True

    docs = [e for e in entries if keep(e)]
    return [(e.get("report_id"), e.get("user_id")) for e in _newest_first(docs, "at")]


def pages_of(total: int) -> list[int]:
    last = max(1, -(-total // PAGE))
    return sorted({1, 2, (last + 1) // 2, last, last + 1})


# --- the report list (a page only: intake has no report list API) ---------------------------------


def report_page(client, listener, **query) -> tuple[int, list[str], int]:
    read, res = listener.reading(lambda: client.get("/reports", query_string=query))
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    body = html.split("<tbody>", 1)[1]
    ids = re.findall(r'href="/reports/([0-9a-f-]{36})"', body)
    total = int(re.search(r"<p>(\d+) reports</p>", html).group(1))
    return read, ids, total


def check_reports(client, listener, db, filters: list[dict]) -> None:
    reports = stored(db, "reports")
    for query in filters:
        want = expected_reports(reports, **query)
        for page in pages_of(len(want)):
            read, ids, total = report_page(client, listener, **query, page=page)
            assert read < FEW, (query, page, read)
            assert (ids, total) == (want[(page - 1) * PAGE:page * PAGE], len(want)), (query, page)


def test_the_report_list_reads_a_page_not_every_report_and_shows_what_a_sort_of_them_shows(watched):
    db, listener, app = watched["db"], watched["listener"], watched["app"]
    client = app.test_client()
    assert page_login(client, watched["names"]["caseworker"], PASSWORD).status_code == 302
    assert report_page(client, listener)[2] == REPORTS  # the first request: the columns are loaded

    reports = stored(db, "reports")
    some = next(d for d in reports if d["_id"] == expected_reports(reports)[1234])
    busy_case = Counter(d["case_id"] for d in reports).most_common(1)[0][0]
    filters = [{}, {"province": "Jilin"}, {"province": "Guangxi"}, {"case_id": busy_case},
               {"case_id": some["case_id"], "province": some["detention"]["province"]},
               {"province": "Nowhere"}, {"case_id": "no-such-case"}]
    check_reports(client, listener, db, filters)

    # New reports through the API, and a merge that moves one case's reports into a seeded case.
    created = [client.post("/api/v1/reports", json=synthetic_report(), headers=watched["tokens"]["caseworker"])
               for _ in range(3)]
    assert [c.status_code for c in created] == [201, 201, 201]
    merged = client.post(f"/api/v1/cases/{created[0].get_json()['case_id']}/merge",
                         json={"into_case_id": busy_case}, headers=watched["tokens"]["admin"])
    assert merged.status_code == 200 and merged.get_json()["moved_reports"] == 1
    read, ids, total = report_page(client, listener)
    assert read < FEW and total == REPORTS + 3
    assert set(ids[:3]) == {c.get_json()["report_id"] for c in created}
    assert created[0].get_json()["report_id"] in report_page(client, listener, case_id=busy_case)[1]
    assert report_page(client, listener, case_id=created[0].get_json()["case_id"])[1:] == ([], 0)
    check_reports(client, listener, db, [*filters, {"case_id": created[1].get_json()["case_id"]}])


# --- the audit trail: API and page ----------------------------------------------------------------


def audit_api(client, listener, headers, **query) -> tuple[int, list[tuple], int]:
    read, res = listener.reading(lambda: client.get("/api/v1/audit", query_string=query, headers=headers))
    assert res.status_code == 200, res.get_json()
    body = res.get_json()
    return read, [(e.get("report_id"), e.get("user_id")) for e in body["items"]], body["total"]


def audit_page(client, listener, **query) -> tuple[int, list[str], int]:
    read, res = listener.reading(lambda: client.get("/audit", query_string=query))
    assert res.status_code == 200
    html = res.get_data(as_text=True)
    rows = re.findall(r'<td title="([^"]*)">', html.split('<table id="audit">', 1)[1])
    total = int(re.search(r'id="audit-total">(\d+) views<', html).group(1))
    return read, rows, total


def check_audit(client, listener, db, headers, filters: list[dict]) -> None:
    entries = stored(db, "audit")
    for query in filters:
        want = expected_entries(entries, **query)
        assert want, query
        api_query = {k: ("true" if v is True else v) for k, v in query.items()}
        for page in pages_of(len(want)):
            read, items, total = audit_api(client, listener, headers, **api_query, page=page)
            assert read < FEW, (query, page, read)
            assert (items, total) == (want[(page - 1) * PAGE:page * PAGE], len(want)), (query, page)
        if "action" in query:
            continue  # the page has no action filter
        page_query = {"case_id": query.get("case_id"), "user": query.get("user_id"),
                      "out_of_assignment": "1" if query.get("out_of_assignment") else None}
        for page in pages_of(len(want))[::2]:
            read, rows, total = audit_page(client, listener, **{k: v for k, v in page_query.items() if v}, page=page)
            assert read < FEW, (query, page, read)
            shown = [report_id or "" for report_id, _ in want[(page - 1) * PAGE:page * PAGE]]
            assert (rows, total) == (shown, len(want)), (query, page)


def test_the_audit_trail_reads_a_page_not_every_entry_and_shows_what_a_sort_of_them_shows(watched):
    db, listener, app = watched["db"], watched["listener"], watched["app"]
    admin, caseworker = watched["tokens"]["admin"], watched["tokens"]["caseworker"]
    client = app.test_client()
    assert page_login(client, watched["names"]["admin"], PASSWORD).status_code == 302
    assert audit_api(client, listener, admin)[2] >= ENTRIES + OLDER  # the first request: the columns are loaded

    filters = [{}, {"user_id": "u3"}, {"case_id": "c17"}, {"action": "read"}, {"action": "write"},
               {"action": "user_created"}, {"out_of_assignment": True}, {"user_id": "u5", "action": "read"},
               {"case_id": "c40", "user_id": "u2"}, {"user_id": "u7", "out_of_assignment": True}]
    check_audit(client, listener, db, admin, filters)

    # Reads through the real path, each appended to the chain after the seeded positions.
    filed = client.post("/api/v1/reports", json=synthetic_report(), headers=caseworker).get_json()
    for i in range(3):
        assert client.get(f"/api/v1/reports/{filed['report_id']}",
                          query_string={"reason": f"scale check {i}"}, headers=caseworker).status_code == 200
    read, items, total = audit_api(client, listener, admin, case_id=filed["case_id"])
    assert read < FEW and total >= 3 and items[0][0] == filed["report_id"]
    assert db["audit"].find_one({"_id": entry_id(ENTRIES + 1)})["report_id"] is not None
    reader = db["audit"].find_one({"report_id": filed["report_id"]})["user_id"]
    check_audit(client, listener, db, admin, [*filters, {"case_id": filed["case_id"]}, {"user_id": reader}])


def test_an_audit_entry_deleted_before_the_list_followed_it_does_not_stop_the_list(watched):
    """Someone deletes the newest entry from the database before this process's list read it: the
    entries written after it still show (the chain's verification reports the deletion)."""
    db, listener, app = watched["db"], watched["listener"], watched["app"]
    admin, caseworker = watched["tokens"]["admin"], watched["tokens"]["caseworker"]
    client = app.test_client()
    filed = client.post("/api/v1/reports", json=synthetic_report(), headers=caseworker).get_json()
    assert audit_api(client, listener, admin, case_id=filed["case_id"])[2] == 0
    for reason in ("to be deleted", "after the deletion"):
        assert client.get(f"/api/v1/reports/{filed['report_id']}", query_string={"reason": reason},
                          headers=caseworker).status_code == 200
        if reason == "to be deleted":
            assert db["audit"].delete_one({"report_id": filed["report_id"], "reason": reason}).deleted_count == 1
    read, items, total = audit_api(client, listener, admin, case_id=filed["case_id"])
    assert ([report_id for report_id, _ in items], total) == ([filed["report_id"]], 1)
    assert listener.reading(lambda: client.get("/api/v1/audit", headers=admin))[0] < FEW  # passed over once
