"""Need to know, against the real FerretDB and Kafka: a case's identifying data is read by the
caseworkers assigned to it (whoever filed its first report, and whom an admin or an assignee
adds); anyone else gives a reason and the read is flagged; every user's identifying reads are
limited per hour, counted in the database across processes, refusals audited and admins alerted."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest

from services.intake.domain import read_hour
from services.intake.store import IntakeStore
from shared.config import Settings
from shared.mongo import utcnow
from tests.integration.test_intake_pages import audit_rows, new_user, page_login
from tests.support import SYNTH, synthetic_report

LIMIT = 3


def _file(client, headers, body=None) -> dict:
    res = client.post("/api/v1/reports", json=body or synthetic_report(), headers=headers)
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def _read(client, headers, report_id, reason=None):
    return client.get(f"/api/v1/reports/{report_id}" + (f"?reason={reason}" if reason else ""), headers=headers)


def _audit(client, tokens, **filters) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    res = client.get(f"/api/v1/audit?{query}", headers=tokens["admin"])
    assert res.status_code == 200, res.get_json()
    return res.get_json()["items"]


def _assign(client, headers, case_id, username):
    return client.post(f"/api/v1/cases/{case_id}/assignees", json={"username": username}, headers=headers)


def _store(settings, mongo) -> IntakeStore:
    return IntakeStore(mongo[settings.database_name("intake")])


@pytest.fixture(scope="module")
def caseworkers(intake_app, tokens):
    """Three caseworkers of this module's own, (name, headers) each; every test files new cases,
    so whom each is assigned to starts afresh (logins are few: they are throttled per address)."""
    client = intake_app.test_client()
    return [new_user(client, tokens, "caseworker") for _ in range(3)]


@pytest.fixture
def two_caseworkers(caseworkers):
    """Two of them."""
    return caseworkers[:2]


# --- assignment and the reason asked of the others --------------------------------------------


def test_the_caseworker_who_files_the_first_report_is_assigned_and_reads_it(client, tokens, two_caseworkers):
    (filer, filer_h), _other = two_caseworkers
    created = _file(client, filer_h)
    res = _read(client, filer_h, created["report_id"])
    assert res.status_code == 200 and res.get_json()["out_of_assignment"] is False
    listed = client.get(f"/api/v1/cases/{created['case_id']}/assignees", headers=filer_h).get_json()
    assert listed["case_id"] == created["case_id"]
    [me] = listed["items"]
    assert me["username"] == filer and me["assigned_by"] == filer and me["via"] == "first_report"
    assert set(me) == {"username", "user_id", "assigned_by", "assigned_at", "via"}
    [entry] = _audit(client, tokens, case_id=created["case_id"])
    assert entry["username"] == filer and entry["out_of_assignment"] is False and entry["action"] == "read"


def test_another_caseworker_needs_a_reason_and_the_read_is_flagged(client, tokens, users, two_caseworkers):
    (filer, filer_h), (other, other_h) = two_caseworkers
    created = _file(client, filer_h)
    refused = _read(client, other_h, created["report_id"])
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_assigned"
    assert SYNTH not in refused.get_data(as_text=True)
    assert _audit(client, tokens, case_id=created["case_id"]) == []  # nothing was read
    short = _read(client, other_h, created["report_id"], reason="no")
    assert short.status_code == 422 and set(short.get_json()["error"]["fields"]) == {"reason"}

    res = _read(client, other_h, created["report_id"], reason="family asked about her on the hotline")
    assert res.status_code == 200
    assert res.get_json()["person"]["full_name"].startswith(SYNTH) and res.get_json()["out_of_assignment"] is True
    [entry] = _audit(client, tokens, case_id=created["case_id"])
    assert entry["username"] == other and entry["out_of_assignment"] is True
    assert entry["reason"] == "family asked about her on the hotline"
    assert [e["case_id"] for e in _audit(client, tokens, out_of_assignment="true", user_id=entry["user_id"])] == \
        [created["case_id"]]
    # Others do not learn who is assigned either.
    listed = client.get(f"/api/v1/cases/{created['case_id']}/assignees", headers=other_h)
    assert listed.status_code == 403 and listed.get_json()["error"]["code"] == "not_assigned"

    # The audit page shows the read flagged.
    assert page_login(client, users["admin"]).status_code == 302
    html = client.get(f"/audit?case_id={created['case_id']}").get_data(as_text=True)
    [row] = audit_rows(html)
    assert other in row and "Out of assignment" in row and "family asked about her" in row
    flagged = client.get(f"/audit?case_id={created['case_id']}&out_of_assignment=1").get_data(as_text=True)
    assert len(audit_rows(flagged)) == 1


def test_an_assigned_caseworker_adds_a_colleague_who_then_reads_without_a_reason(client, tokens, users,
                                                                                 two_caseworkers, caseworkers):
    (filer, filer_h), (other, other_h) = two_caseworkers
    created = _file(client, filer_h)
    case = created["case_id"]
    third, third_h = caseworkers[2]
    refused = _assign(client, third_h, case, third)  # not assigned: cannot assign themselves
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_assigned"

    added = _assign(client, filer_h, case, other)
    assert added.status_code == 200, added.get_json()
    items = added.get_json()["items"]
    assert [i["username"] for i in items] == [filer, other]
    assert items[1]["assigned_by"] == filer and items[1]["via"] == "assigned"
    again = _assign(client, filer_h, case, other)  # idempotent
    assert again.status_code == 200 and again.get_json()["items"] == items

    res = _read(client, other_h, created["report_id"])
    assert res.status_code == 200 and res.get_json()["out_of_assignment"] is False
    # An assignee may assign in turn; errors say what is wrong.
    assert _assign(client, other_h, case, third).status_code == 200
    assert _read(client, third_h, created["report_id"]).status_code == 200
    for username, code in [("nobody-" + SYNTH.lower(), "unknown_user"), (users["analyst"], "not_a_caseworker")]:
        res = _assign(client, filer_h, case, username)
        assert res.status_code == 422 and res.get_json()["error"]["code"] == code, res.get_json()
    missing = _assign(client, filer_h, "no-such-case", other)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    assert client.post(f"/api/v1/cases/{case}/assignees", json={}, headers=filer_h).status_code == 422
    assert _assign(client, tokens["analyst"], case, other).status_code == 403

    writes = _audit(client, tokens, case_id=case, action="write")
    assert [(w["username"], w["detail"], w["what"]) for w in writes] == [
        (other, f"assigned {third}", "assignment"), (filer, f"assigned {other}", "assignment")]  # one per change
    assert all(w["report_id"] is None for w in writes)
    assert {e["action"] for e in _audit(client, tokens, case_id=case, action="read")} == {"read"}


def test_admins_assign_anyone_and_read_every_case(client, tokens, users, two_caseworkers):
    (filer, filer_h), (other, other_h) = two_caseworkers
    created = _file(client, filer_h)
    res = _read(client, tokens["admin"], created["report_id"])  # no reason needed, audited as before
    assert res.status_code == 200 and res.get_json()["out_of_assignment"] is False
    assert _audit(client, tokens, case_id=created["case_id"])[0]["username"] == users["admin"]
    added = _assign(client, tokens["admin"], created["case_id"], other)
    assert added.status_code == 200
    assert [(i["username"], i["assigned_by"]) for i in added.get_json()["items"]] == [
        (filer, filer), (other, users["admin"])]
    assert client.get(f"/api/v1/cases/{created['case_id']}/assignees",
                      headers=tokens["admin"]).get_json()["items"] == added.get_json()["items"]
    assert _read(client, other_h, created["report_id"]).status_code == 200


def test_a_merge_carries_the_duplicates_assignees_over(client, tokens, two_caseworkers):
    (first, first_h), (second, second_h) = two_caseworkers
    kept, duplicate = _file(client, first_h), _file(client, second_h)
    assert _read(client, second_h, kept["report_id"]).status_code == 403
    url, into = f"/api/v1/cases/{duplicate['case_id']}/merge", {"into_case_id": kept["case_id"]}
    # Merging moves identifying data: a caseworker not assigned to both cases may not.
    for headers in (second_h, first_h):
        refused = client.post(url, json=into, headers=headers)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_assigned"
    merged = client.post(url, json=into, headers=tokens["admin"])
    assert merged.status_code == 200, merged.get_json()
    items = client.get(f"/api/v1/cases/{kept['case_id']}/assignees", headers=first_h).get_json()["items"]
    assert [(i["username"], i["via"]) for i in items] == [(first, "first_report"), (second, "merge")]
    assert _read(client, second_h, kept["report_id"]).status_code == 200  # the surviving case is theirs too
    assert _read(client, first_h, duplicate["report_id"]).status_code == 200  # the moved report is in it
    again = client.post(url, json=into, headers=second_h)  # now assigned to both: repeating is harmless
    assert again.status_code == 200
    assert len(client.get(f"/api/v1/cases/{kept['case_id']}/assignees", headers=first_h).get_json()["items"]) == 2


def test_a_case_from_before_assignments_is_assigned_to_nobody(client, tokens, settings, mongo, two_caseworkers):
    (filer, filer_h), (other, other_h) = two_caseworkers
    created = _file(client, filer_h)
    db = mongo[settings.database_name("intake")]
    db["assignments_versions"].delete_many({"aggregate_id": created["case_id"]})  # as reported before this
    db["assignments"].delete_one({"_id": created["case_id"]})
    assert _read(client, filer_h, created["report_id"]).status_code == 200  # its author still reads the report
    assert _read(client, other_h, created["report_id"]).status_code == 403
    listed = client.get(f"/api/v1/cases/{created['case_id']}/assignees", headers=tokens["admin"])
    assert listed.status_code == 200 and listed.get_json()["items"] == []
    assert client.get(f"/api/v1/cases/{created['case_id']}/assignees", headers=filer_h).status_code == 403
    assert _assign(client, tokens["admin"], created["case_id"], other).status_code == 200
    assert _read(client, other_h, created["report_id"]).status_code == 200


def test_the_importer_assigns_the_importing_caseworker(tokens, settings, mongo, intake_app, client, two_caseworkers):
    from services.intake.importer import import_rows

    (filer, filer_h), (other, other_h) = two_caseworkers
    body = synthetic_report()
    row = {"person.full_name": body["person"]["full_name"], "person.sex": body["person"]["sex"],
           "detention.province": body["detention"]["province"], "source.type": "family",
           "source.reliability": "confirmed", "consent.advocacy": "none", "consent.statistics": "no"}
    user_id = intake_app.extensions["nrw"].identity_db["users"].find_one({"_id": filer})["user_id"]
    [outcome] = import_rows([row], store=_store(settings, mongo), keyring=intake_app.extensions["intake_keyring"],
                            publisher=intake_app.extensions["nrw"].publisher, actor=user_id, actor_name=filer,
                            dry_run=False)
    assert outcome.action == "created", outcome
    report_id, case_id = re.fullmatch(r"report (\S+) case (\S+)", outcome.detail).groups()
    assert [i["username"] for i in _store(settings, mongo).assignees(case_id)] == [filer]
    assert _read(client, filer_h, report_id).status_code == 200
    assert _read(client, other_h, report_id).status_code == 403


# --- the report page --------------------------------------------------------------------------


def test_the_report_page_asks_an_unassigned_caseworker_why_then_shows_the_report(intake_app, tokens, two_caseworkers):
    client = intake_app.test_client()
    (filer, filer_h), (other, _other_h) = two_caseworkers
    body = synthetic_report()
    created = _file(client, filer_h, body)
    name = body["person"]["full_name"]
    assert page_login(client, other).status_code == 302

    asked = client.get(f"/reports/{created['report_id']}?reason=a+link+cannot+break+the+glass")
    html = asked.get_data(as_text=True)
    assert asked.status_code == 403 and 'id="reason-form"' in html and name not in html and SYNTH not in html
    assert _audit(client, tokens, case_id=created["case_id"]) == []
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    action = f"/reports/{created['report_id']}/access"
    assert client.post(action, data={"reason": "forged without a token"}).status_code == 400
    short = client.post(action, data={"csrf_token": token, "reason": " x "})
    assert short.status_code == 422 and "3 to 200 characters" in short.get_data(as_text=True)

    given = client.post(action, data={"csrf_token": token, "reason": "checking a transfer to Tumen"})
    assert given.status_code == 302 and given.headers["Location"].endswith(f"/reports/{created['report_id']}")
    page = client.get(given.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and name in html and 'id="out-of-assignment"' in html
    [entry] = _audit(client, tokens, case_id=created["case_id"])
    assert entry["username"] == other and entry["out_of_assignment"] is True
    assert entry["reason"] == "checking a transfer to Tumen"
    assert client.get(f"/reports/{created['report_id']}").status_code == 200  # the reason holds for a while

    # The caseworker who filed it sees it at once, unflagged.
    mine = intake_app.test_client()
    page_login(mine, filer)
    html = mine.get(f"/reports/{created['report_id']}").get_data(as_text=True)
    assert name in html and 'id="out-of-assignment"' not in html


def test_lists_and_search_show_case_ids_and_provinces_never_a_person(client, tokens, two_caseworkers):
    (filer, filer_h), (other, _h) = two_caseworkers
    body = synthetic_report()
    created = _file(client, filer_h, body)
    page_login(client, other)  # any caseworker, assigned or not, browses the lists
    for url in ("/reports", f"/reports?case_id={created['case_id']}",
                f"/reports?province={body['detention']['province']}"):
        html = client.get(url, follow_redirects=True).get_data(as_text=True)
        assert created["case_id"][:8] in html, url
        assert SYNTH not in html and f">{body['person']['birth_year']}<" not in html, url
        assert "Birth year" not in html and ">Sex<" not in html, url
    html = client.get(f"/reports?case_id={created['case_id']}").get_data(as_text=True)
    assert body["detention"]["province"] in html


# --- the hourly limit -----------------------------------------------------------------------


def _limited_app(settings, limit):
    from services.intake.app import create_app

    app = create_app(Settings(**{**settings.__dict__, "identifying_reads_per_hour": limit}))
    app.testing = True
    return app


@pytest.fixture
def within_one_hour():
    """Reads are counted per clock hour: a test of the limit does not start just before the hour
    turns (the count would start again midway)."""
    now = utcnow()
    if now.minute == 59 and now.second >= 30:
        time.sleep(61 - now.second)


@pytest.fixture(scope="module")
def limited_app(settings, intake_app):
    """A second intake app on the same databases (another process, as it were), with a limit of
    three identifying reads per user and hour."""
    return _limited_app(settings, LIMIT)


def test_past_the_hourly_limit_reads_are_refused_and_admins_are_alerted(limited_app, client, tokens, users,
                                                                       within_one_hour):
    limited = limited_app.test_client()
    reader, reader_h = new_user(client, tokens, "caseworker")
    created = _file(limited, reader_h)
    for _ in range(LIMIT - 1):
        assert _read(limited, reader_h, created["report_id"]).status_code == 200
    assert _read(client, reader_h, created["report_id"]).status_code == 200  # the other app counts in the same place
    refused = _read(limited, reader_h, created["report_id"])
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "read_limit" and SYNTH not in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600 and error["retry_after"] == int(refused.headers["Retry-After"])
    assert _read(limited, reader_h, created["report_id"], reason="still refused").status_code == 429

    entries = _audit(client, tokens, case_id=created["case_id"])
    assert [e.get("refused") for e in entries] == ["read_limit", "read_limit", None, None, None]  # newest first
    alerts = client.get("/api/v1/audit/alerts", headers=tokens["admin"])
    assert alerts.status_code == 200
    [alert] = [a for a in alerts.get_json()["items"] if a["username"] == reader]
    assert alert["reads_refused"] == 2 and alert["limit"] == LIMIT and alert["user_id"] == entries[0]["user_id"]
    assert alert["first_refused_at"] <= alert["last_refused_at"] and alert["hour"][14:19] == "00:00"
    assert client.get("/api/v1/audit/alerts", headers=reader_h).status_code == 403

    # The page says so in words, with Retry-After too; the admins' audit page names the reader.
    page_client = limited_app.test_client()
    page_login(page_client, reader)
    page = page_client.get(f"/reports/{created['report_id']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 429 and "Read limit reached" in html and "administrators have been told" in html
    assert SYNTH not in html and int(page.headers["Retry-After"]) >= 1
    page_login(page_client, users["admin"])
    audit = page_client.get("/audit").get_data(as_text=True)
    alert_html = audit.split('id="read-limit-alerts"', 1)[1].split("</section>", 1)[0]
    assert reader in alert_html and "3 reads refused" in alert_html and "limit 3 per hour" in alert_html
    assert "Refused: hourly read limit" in audit


def test_concurrent_reads_from_two_apps_never_pass_the_limit(settings, limited_app, client, tokens, mongo,
                                                             within_one_hour):
    """Eight threads, in two apps with their own database clients, read at once: exactly the
    limit is granted (each grant is an insert with a unique _id), the rest refused and counted."""
    reader, reader_h = new_user(client, tokens, "caseworker")
    created = _file(client, reader_h)
    apps = [limited_app, _limited_app(settings, LIMIT)]
    statuses: Counter = Counter()
    lock, start = threading.Lock(), threading.Barrier(8)

    def read(app):
        c = app.test_client()
        start.wait()
        for _ in range(4):
            status = _read(c, reader_h, created["report_id"]).status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=read, args=(apps[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == Counter({200: LIMIT, 429: 32 - LIMIT})
    user_id = _audit(client, tokens, case_id=created["case_id"])[0]["user_id"]
    store = _store(settings, mongo)
    assert store.reads_taken(user_id, read_hour(utcnow())) == LIMIT
    entries = _audit(client, tokens, case_id=created["case_id"])
    assert Counter(e.get("refused") for e in entries) == Counter({None: LIMIT, "read_limit": 32 - LIMIT})
    [alert] = [a for a in client.get("/api/v1/audit/alerts", headers=tokens["admin"]).get_json()["items"]
               if a["username"] == reader]
    assert alert["reads_refused"] == 32 - LIMIT


def test_the_openapi_document_describes_need_to_know(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    read = paths["/api/v1/reports/{report_id}"]["get"]
    assert {"403", "404", "429"} <= set(read["responses"])
    assert any(p["name"] == "reason" and p["in"] == "query" for p in read["parameters"])
    assignees = paths["/api/v1/cases/{case_id}/assignees"]
    assert {"403", "404"} <= set(assignees["get"]["responses"])
    assert {"403", "404", "422"} <= set(assignees["post"]["responses"])
    assert "200" in paths["/api/v1/audit/alerts"]["get"]["responses"]
