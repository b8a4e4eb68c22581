"""Near duplicates against the real FerretDB and Kafka: similar names with the same birth year or
province are offered for review on hashed letter pairs, and a confirmed merge moves the reports,
re-files the person and announces case.merged, once."""

from __future__ import annotations

import json
import re
import threading
import uuid

import pytest

from services.intake.consumer import make_handlers
from shared.bus import EventConsumer, Publisher
from shared.mongo import utcnow
from tests.integration.test_intake_pages import page_login
from tests.support import (SYNTH, near_duplicate_pair, read_topic, start_group_at_end, synthetic_report,
                           wait_for)


@pytest.fixture(scope="module", autouse=True)
def intake_consumer(settings, mongo):
    """Intake's own consumer, as the stack runs it: it files reports in the near-match buckets."""
    publisher = Publisher(settings, principal="admin", client_id="it-intake-consumer")
    group = f"it-intake-{uuid.uuid4().hex[:6]}"
    start_group_at_end(settings.kafka_bootstrap, group, ["intake.events"])  # not every earlier test's reports
    consumer = EventConsumer(settings, principal="admin", group_id=group, topics=["intake.events"],
                             handlers=make_handlers(mongo[settings.database_name("intake")], publisher),
                             publisher=publisher)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    yield
    consumer.stop.set()
    thread.join(timeout=15)
    publisher.close()


@pytest.fixture
def filed(settings, mongo):
    """Wait until intake's consumer has filed a report in its near-match buckets."""
    buckets = mongo[settings.database_name("intake")]["near_buckets"]

    def wait(created: dict, province: str) -> None:
        wait_for(lambda: any(e["r"] == created["report_id"]
                             for e in (buckets.find_one({"_id": f"p:{province}"}) or {}).get("entries", [])),
                 timeout_s=30, what="the report filed for review")
    return wait


def _post(client, tokens, body):
    res = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"])
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def _pair(client, tokens, filed):
    """Two reports of what may be one person, both filed for review."""
    first, second = near_duplicate_pair()
    a, b = _post(client, tokens, first), _post(client, tokens, second)
    for created, body in ((a, first), (b, second)):
        filed(created, body["detention"]["province"])
    return first, second, a, b


def _duplicates(client, tokens, report_id):
    res = client.get(f"/api/v1/reports/{report_id}/possible-duplicates", headers=tokens["caseworker"])
    assert res.status_code == 200, res.get_json()
    return res.get_json()["items"]


def test_a_similar_name_with_the_same_birth_year_is_offered_for_review_without_a_name(client, tokens, filed):
    first, second, a, b = _pair(client, tokens, filed)
    assert a["case_id"] != b["case_id"] and b["matched_existing_case"] is False  # not an exact match
    items = _duplicates(client, tokens, b["report_id"])
    assert items[0]["case_id"] == a["case_id"] and items[0]["report_id"] == a["report_id"]
    assert items[0]["similarity"] >= 0.5 and items[0]["same_birth_year"] is True
    assert SYNTH not in json.dumps(items)  # the list carries no name
    # The same name pair in another province and another birth year is no candidate.
    far = synthetic_report(person={"full_name": first["person"]["full_name"], "birth_year": 1960},
                           detention={"province": f"Elsewhere {uuid.uuid4().hex[:6]}"})
    c = _post(client, tokens, far)
    filed(c, far["detention"]["province"])
    assert c["case_id"] not in {i["case_id"] for i in _duplicates(client, tokens, b["report_id"])}
    assert client.get("/api/v1/reports/nope/possible-duplicates", headers=tokens["caseworker"]).status_code == 404
    assert client.get(f"/api/v1/reports/{b['report_id']}/possible-duplicates",
                      headers=tokens["analyst"]).status_code == 403


def test_ruling_a_pair_out_removes_it_from_review(client, tokens, filed):
    first, second, a, b = _pair(client, tokens, filed)
    assert a["case_id"] in {i["case_id"] for i in _duplicates(client, tokens, b["report_id"])}
    res = client.post(f"/api/v1/cases/{b['case_id']}/distinct", json={"other_case_id": a["case_id"]},
                      headers=tokens["caseworker"])
    assert res.status_code == 200
    assert a["case_id"] not in {i["case_id"] for i in _duplicates(client, tokens, b["report_id"])}
    assert b["case_id"] not in {i["case_id"] for i in _duplicates(client, tokens, a["report_id"])}


def test_a_confirmed_merge_moves_the_reports_refiles_the_person_and_is_announced_once(client, tokens, settings,
                                                                                       filed):
    first, second, a, b = _pair(client, tokens, filed)
    url = f"/api/v1/cases/{b['case_id']}/merge"
    merged = client.post(url, json={"into_case_id": a["case_id"]}, headers=tokens["caseworker"])
    assert merged.status_code == 200, merged.get_json()
    assert merged.get_json()["moved_reports"] == 1 and merged.get_json()["into_case_id"] == a["case_id"]
    moved = client.get(f"/api/v1/reports/{b['report_id']}", headers=tokens["caseworker"]).get_json()
    assert moved["case_id"] == a["case_id"]
    # The merged person's next report (exactly the same name and year) joins the surviving case.
    again = _post(client, tokens, synthetic_report(person=second["person"], detention=second["detention"]))
    assert again["case_id"] == a["case_id"] and again["matched_existing_case"] is True
    # Repeating the merge is harmless; merging elsewhere, into itself or into a merged case is refused.
    assert client.post(url, json={"into_case_id": a["case_id"]}, headers=tokens["caseworker"]).status_code == 200
    other = _post(client, tokens, synthetic_report())
    for body, case, status, code in [({"into_case_id": other["case_id"]}, b["case_id"], 409, "already_merged"),
                                     ({"into_case_id": b["case_id"]}, other["case_id"], 409, "already_merged"),
                                     ({"into_case_id": a["case_id"]}, a["case_id"], 422, "same_case"),
                                     ({"into_case_id": a["case_id"]}, "no-such-case", 404, "not_found"),
                                     ({}, other["case_id"], 422, "validation_error")]:
        res = client.post(f"/api/v1/cases/{case}/merge", json=body, headers=tokens["caseworker"])
        assert res.status_code == status and res.get_json()["error"]["code"] == code, (body, res.get_json())
    assert client.post(url, json={"into_case_id": a["case_id"]}, headers=tokens["analyst"]).status_code == 403
    events = [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
              if r.key == b["case_id"].encode()]
    merges = [e for e in events if e["event_type"] == "case.merged"]
    assert len({e["event_id"] for e in merges}) == 1
    assert merges[0]["payload"] == {"into_case_id": a["case_id"]} and SYNTH not in json.dumps(merges)


def test_the_review_page_shows_both_names_audits_those_reads_and_merges_with_its_form(intake_app, tokens, users,
                                                                                       settings, mongo, filed):
    client = intake_app.test_client()
    first, second, a, b = _pair(client, tokens, filed)
    assert page_login(client, users["caseworker"]).status_code == 302
    html = client.get(f"/reports/{b['report_id']}").get_data(as_text=True)
    assert "Possible duplicates" in html and first["person"]["full_name"] in html
    assert f'data-case-id="{a["case_id"]}"' in html
    audit = mongo[settings.database_name("intake")]["audit"]
    review = audit.find_one({"report_id": a["report_id"], "what": "duplicate review"})
    assert review["username"] == users["caseworker"] and b["case_id"] in review["reason"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    forged = client.post(f"/cases/{b['case_id']}/merge", data={"into_case_id": a["case_id"]})
    assert forged.status_code == 400  # no CSRF token, nothing merged
    assert mongo[settings.database_name("intake")]["merges"].find_one({"_id": b["case_id"]}) is None
    done = client.post(f"/cases/{b['case_id']}/merge",
                       data={"csrf_token": token, "into_case_id": a["case_id"], "report_id": b["report_id"]})
    assert done.status_code == 302 and "merged=" in done.headers["Location"]
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "The cases were merged." in after and a["case_id"] in after
    assert f'data-case-id="{a["case_id"]}"' not in after  # now its own case: nothing left to review


def test_names_of_possible_duplicates_in_cases_one_is_not_assigned_to_need_a_reason(intake_app, tokens, users,
                                                                                      settings, mongo, filed):
    """Need to know: a caseworker reviewing their own case sees the name of a similar case filed by
    someone else only after giving a reason, and that read is flagged in the audit trail."""
    from tests.integration.test_intake_pages import new_user

    client = intake_app.test_client()
    first, second = near_duplicate_pair()
    a = _post(client, tokens, first)  # the shared caseworker's case
    reviewer, reviewer_h = new_user(client, tokens, "caseworker")
    res = client.post("/api/v1/reports", json=second, headers=reviewer_h)
    assert res.status_code == 201
    b = res.get_json()
    for created, body in ((a, first), (b, second)):
        filed(created, body["detention"]["province"])

    assert page_login(client, reviewer).status_code == 302
    html = client.get(f"/reports/{b['report_id']}").get_data(as_text=True)
    row = html.split(f'data-case-id="{a["case_id"]}"', 1)[1].split("</tr>", 1)[0]
    assert "Not assigned to you" in row and first["person"]["full_name"] not in html
    assert second["person"]["full_name"] in html  # their own report
    audit = mongo[settings.database_name("intake")]["audit"]
    assert audit.find_one({"report_id": a["report_id"]}) is None  # nothing of the other case was read
    assert 'id="compare-form"' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    given = client.post(f"/reports/{b['report_id']}/access", data={"csrf_token": token, "reason": "same family name"})
    assert given.status_code == 302
    from services.intake import domain
    from services.intake.store import IntakeStore
    store = IntakeStore(mongo[settings.database_name("intake")])
    user_id = intake_app.extensions["nrw"].identity_db["users"].find_one({"_id": reviewer})["user_id"]
    counted_before = store.reads_taken(user_id, domain.read_hour(utcnow()))
    html = client.get(given.headers["Location"]).get_data(as_text=True)
    row = html.split(f'data-case-id="{a["case_id"]}"', 1)[1].split("</tr>", 1)[0]
    assert first["person"]["full_name"] in row and 'id="compare-form"' not in html
    assert 'id="out-of-assignment"' not in html  # their own report is not out of assignment
    review = audit.find_one({"report_id": a["report_id"], "what": "duplicate review"})
    assert review["out_of_assignment"] is True and review["username"] == reviewer
    # each such name is a read of another person's case and counts against the hourly limit too:
    # the page view is one read, and each name of a case the reviewer is not assigned to another
    # (earlier tests' similar names may be listed as well, all out of assignment)
    names_read = audit.count_documents({"username": reviewer, "what": "duplicate review", "out_of_assignment": True})
    assert names_read >= 1
    assert store.reads_taken(user_id, domain.read_hour(utcnow())) == counted_before + 1 + names_read
    assert review["reason"] == f"duplicate review of case {b['case_id']}: same family name"
