"""Another service's write reaches intake's audit trail however the moment goes (issue 10 point 4):
a status change made while the broker is down, or while intake's consumer is down, is saved at
once, and its entry (the caseworker, the action) is in the trail once they are back, exactly once;
the chain verifies afterwards. The whole stack of infra/Procfile, over HTTP."""

from __future__ import annotations

from infra.stack import port_open
from tests.support import synthetic_report, wait_for


def _opened_case(api) -> str:
    case_id = api.post_report(synthetic_report())["case_id"]
    wait_for(lambda: api.case(case_id), timeout_s=60, interval_s=0.5, what="the case opened")
    return case_id


def _move(api, case_id: str, to: str, effective_on: str) -> None:
    res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker,
                        json={"to": to, "effective_on": effective_on}, timeout=30)
    assert res.status_code == 200, res.text


def _entries(api, case_id: str) -> list[dict]:
    res = api.http.get(f"{api.urls['intake']}/api/v1/audit", headers=api.admin, timeout=10,
                       params={"case_id": case_id, "action": "status_changed"})
    assert res.status_code == 200, res.text
    return res.json()["items"]


def _one_entry(api, case_id: str, detail: str) -> None:
    [entry] = wait_for(lambda: _entries(api, case_id), timeout_s=90, interval_s=0.5, what="the audit entry")
    assert (entry["username"], entry["service"], entry["detail"]) == (api.caseworker_name, "case", detail)
    verified = api.http.get(f"{api.urls['intake']}/api/v1/audit/verify", headers=api.admin, timeout=60).json()
    assert verified["ok"] is True, verified


def test_a_status_change_made_while_the_broker_is_down_is_audited_once_it_is_back(api, stack, bootstrap):
    case_id = _opened_case(api)
    stack.stop("kafka")
    assert not port_open(bootstrap)
    try:
        _move(api, case_id, "detained", "2024-02-01")  # saved: the change and its audit event, one write
        assert _entries(api, case_id) == []
    finally:
        stack.start("kafka")
    _one_entry(api, case_id, "reported > detained")


def test_a_status_change_made_while_intakes_consumer_is_down_is_audited_once_it_is_back(api, stack):
    case_id = _opened_case(api)
    stack.stop("intake-consumer")
    try:
        _move(api, case_id, "released", "2024-02-02")
        assert _entries(api, case_id) == []
    finally:
        stack.start("intake-consumer")
    _one_entry(api, case_id, "reported > released")
