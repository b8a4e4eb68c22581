"""The first case flowing end to end: a caseworker's report becomes a case on the case service,
through the real broker, and the case's moves are announced."""

import json

from tests.support import near_duplicate_pair, read_topic, synthetic_report, wait_for


def test_a_posted_report_appears_as_a_case_within_seconds(api):
    body = synthetic_report()
    created = api.post_report(body)
    case = wait_for(lambda: api.case(created["case_id"]), timeout_s=10, what="the case")
    assert case["case_id"] == created["case_id"] and case["status"] == "reported"
    assert case["report_count"] == 1 and case["province"] == body["detention"]["province"]
    assert case["history"] == [{"status": "reported", "effective_on": "2023-04-20",
                                "recorded_at": case["history"][0]["recorded_at"], "reason": "first report"}]


def test_a_case_moves_by_the_table_and_each_move_is_an_event(api, bootstrap):
    created = api.post_report(synthetic_report())
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    url = f"{api.urls['case']}/api/v1/cases/{created['case_id']}/transitions"
    moved = api.http.post(url, headers=api.caseworker, timeout=10,
                          json={"to": "detained", "effective_on": "2023-04-18", "reason": "confirmed by family"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "detained"
    refused = api.http.post(url, headers=api.caseworker, timeout=10, json={"to": "resettled", "effective_on": "2023-05-01"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "illegal_transition"
    assert set(refused.json()["error"]["allowed"]) == {"deportation_imminent", "repatriated", "released",
                                                       "in_third_country", "deceased", "whereabouts_unknown"}
    # The move and its audit record go out together (one version's outbox; the relay sends them if
    # the web process's own publish did not): wait for both.
    events = wait_for(lambda: (found := [json.loads(r.value) for r in read_topic(bootstrap, "case.events")
                                         if r.key == created["case_id"].encode()]) and len(found) >= 3 and found,
                      what="case events")
    assert [e["event_type"] for e in events] == ["case.opened", "case.status_changed", "audit.recorded"]
    assert events[1]["payload"] == {"from": "reported", "to": "detained", "effective_on": "2023-04-18"}
    assert events[2]["payload"] == {"action": "status_changed", "case_ids": [created["case_id"]], "object_id": None,
                                    "detail": "reported > detained"}  # never the reason typed
    assert events[2]["actor"] == events[1]["actor"] and events[2]["actor"]


def test_the_case_list_filters_and_pages(api):
    created = api.post_report(synthetic_report(detention={"province": "Heilongjiang"}))
    def listed():
        res = api.http.get(f"{api.urls['case']}/api/v1/cases", params={"province": "Heilongjiang", "status": "reported"},
                           headers=api.caseworker, timeout=10).json()
        # The total is counted just before the page is read: wait until both include the new case.
        return res if res["total"] >= 1 and created["case_id"] in [c["case_id"] for c in res["items"]] else None

    res = wait_for(listed, what="the case in the list")
    assert res["page"] == 1 and res["total"] >= 1 and res["page_size"] == 50
    assert all(c["province"] == "Heilongjiang" for c in res["items"])
    later = api.http.get(f"{api.urls['case']}/api/v1/cases", params={"province": "Heilongjiang", "page": 2},
                         headers=api.caseworker, timeout=10).json()
    assert later["page"] == 2 and later["total"] == res["total"]
    assert not {c["case_id"] for c in later["items"]} & {c["case_id"] for c in res["items"]}
    bad = api.http.get(f"{api.urls['case']}/api/v1/cases", params={"status": "lost", "page": 0},
                       headers=api.caseworker, timeout=10)
    assert bad.status_code == 422 and set(bad.json()["error"]["fields"]) == {"status", "page"}


def test_every_service_is_healthy_ready_and_documented(api):
    for name, url in api.urls.items():
        assert api.http.get(f"{url}/healthz", timeout=5).json() == {"status": "ok", "service": name}
        assert api.http.get(f"{url}/readyz", timeout=5).status_code == 200
        assert api.http.get(f"{url}/openapi.json", timeout=5).json()["info"]["title"].endswith(name)


def test_a_confirmed_duplicate_is_merged_and_both_case_histories_say_so(api, bootstrap):
    first, second = near_duplicate_pair()
    a, b = api.post_report(first), api.post_report(second)
    assert a["case_id"] != b["case_id"]
    for created in (a, b):
        wait_for(lambda: api.case(created["case_id"]), what="the case")
    def review():  # intake's consumer files each report for review within seconds
        items = api.http.get(f"{api.urls['intake']}/api/v1/reports/{b['report_id']}/possible-duplicates",
                             headers=api.caseworker, timeout=10).json()["items"]
        return items if items and items[0]["case_id"] == a["case_id"] else None

    wait_for(review, timeout_s=30, what="the possible duplicate")
    merged = api.http.post(f"{api.urls['intake']}/api/v1/cases/{b['case_id']}/merge", headers=api.caseworker,
                           json={"into_case_id": a["case_id"]}, timeout=10)
    assert merged.status_code == 200, merged.text
    closed = wait_for(lambda: (c := api.case(b["case_id"])) and c["status"] == "closed_duplicate" and c,
                      what="the duplicate closed")
    assert closed["merged_into"] == a["case_id"]
    assert closed["history"][-1]["status"] == "closed_duplicate" and closed["history"][-1]["merged_into"] == a["case_id"]
    assert closed["allowed_transitions"] == []
    kept = wait_for(lambda: (c := api.case(a["case_id"])) and c["report_count"] == 2 and c, what="the reports moved")
    assert kept["status"] == "reported" and kept["merged_from"] == [b["case_id"]]
    assert kept["history"][-1]["merged_from"] == b["case_id"]
    events = wait_for(lambda: [json.loads(r.value) for r in read_topic(bootstrap, "case.events")
                               if r.key == b["case_id"].encode() and b"closed_duplicate" in r.value],
                      what="the duplicate's status change")
    assert events[0]["payload"]["from"] == "reported" and events[0]["payload"]["to"] == "closed_duplicate"
