"""The case state machine: every pair of API.md's table, accepted or refused."""

import datetime as dt

import pytest

from services.case import domain

NOW = dt.datetime(2024, 1, 10, 12, 0, tzinfo=dt.timezone.utc)

# API.md's table, written out independently of the module under test.
TABLE = {
    "reported": {"detained", "deportation_imminent", "repatriated", "released", "in_third_country",
                 "whereabouts_unknown", "closed_duplicate", "closed_unfounded"},
    "detained": {"deportation_imminent", "repatriated", "released", "in_third_country", "deceased",
                 "whereabouts_unknown"},
    "deportation_imminent": {"detained", "repatriated", "released", "in_third_country", "deceased",
                             "whereabouts_unknown"},
    "released": {"detained", "in_third_country", "resettled", "whereabouts_unknown"},
    "in_third_country": {"detained", "resettled", "whereabouts_unknown"},
    "whereabouts_unknown": {"detained", "deportation_imminent", "repatriated", "released", "in_third_country",
                            "resettled", "deceased"},
    "repatriated": {"whereabouts_unknown"},
    "resettled": set(), "deceased": set(), "closed_duplicate": set(), "closed_unfounded": set(),
}
REPORTED = {"report_id": "r-1", "sex": "male", "birth_year": 1980, "nationality": "KP", "province": "Jilin",
            "detained_on": "2023-04-18", "deportation_imminent": False, "vulnerabilities": ["ill"],
            "consent_advocacy": "anonymous", "consent_statistics": True, "received_on": "2023-04-20"}


def _case_in(status):
    case = domain.open_case("c-1", REPORTED, NOW)
    case["status"] = status
    return case


@pytest.mark.parametrize("current", sorted(TABLE))
@pytest.mark.parametrize("to", sorted(TABLE))
def test_every_transition_pair(current, to):
    case = _case_in(current)
    if to in TABLE[current]:
        sealed = {"kid": "n1", "nonce": "bm9uY2U=", "ct": "c2VhbGVk"}
        moved, payload = domain.transition(case, to, dt.date(2024, 1, 9), sealed, NOW)
        assert moved["status"] == to
        assert moved["history"][-1] == {"status": to, "effective_on": "2024-01-09", "recorded_at": NOW,
                                        "reason": None, "reason_sealed": sealed}
        assert payload == {"from": current, "to": to, "effective_on": "2024-01-09"}
        assert case["status"] == current  # the input is not mutated
    else:
        with pytest.raises(domain.IllegalTransition) as err:
            domain.transition(case, to, dt.date(2024, 1, 9), None, NOW)
        assert set(err.value.allowed) == TABLE[current]


def test_a_business_date_in_the_future_is_refused():
    with pytest.raises(domain.InvalidDate):
        domain.transition(_case_in("reported"), "detained", dt.date(2024, 1, 11), None, NOW)


def test_a_new_case_takes_the_reports_non_identifying_facts():
    case = domain.open_case("c-1", REPORTED, NOW)
    assert case["status"] == "reported" and case["report_count"] == 1
    assert case["history"] == [{"status": "reported", "effective_on": "2023-04-20", "recorded_at": NOW,
                                "reason": "first report"}]
    assert domain.opened_payload(case)["province"] == "Jilin"


def test_a_later_report_updates_facts_and_counts_once():
    case = domain.open_case("c-1", REPORTED, NOW)
    later = {**REPORTED, "report_id": "r-2", "deportation_imminent": True, "vulnerabilities": ["pregnant"]}
    case2, changes = domain.attach_report(case, later)
    assert changes == {"deportation_imminent": True, "vulnerabilities": ["ill", "pregnant"], "report_count": 2}
    again, changes_again = domain.attach_report(case2, later)
    assert again["report_count"] == 2 and changes_again == {}


def test_a_merged_duplicate_closes_from_any_status_and_says_into_which_case():
    day = dt.date(2024, 1, 9)
    for status in ("reported", "detained", "whereabouts_unknown"):
        closed, payload = domain.close_as_duplicate(_case_in(status), "c-2", day, NOW)
        assert closed["status"] == "closed_duplicate" and closed["merged_into"] == "c-2"
        assert closed["history"][-1] == {"status": "closed_duplicate", "effective_on": "2024-01-09", "recorded_at": NOW,
                                         "reason": domain.MERGED_INTO, "merged_into": "c-2"}
        assert payload == {"from": status, "to": "closed_duplicate", "effective_on": "2024-01-09"}
        assert domain.close_as_duplicate(closed, "c-2", day, NOW) == (closed, None)  # applied once


def test_the_surviving_case_takes_the_duplicates_reports_once_and_keeps_its_status():
    day = dt.date(2024, 1, 9)
    keep = _case_in("detained")
    dup = domain.open_case("c-9", {**REPORTED, "report_id": "r-9", "vulnerabilities": ["minor"], "birth_year": None}, NOW)
    merged, changes = domain.absorb(keep, dup, day, NOW)
    assert merged["status"] == "detained" and merged["report_ids"] == ["r-1", "r-9"] and merged["report_count"] == 2
    assert merged["merged_from"] == ["c-9"] and merged["history"][-1]["merged_from"] == "c-9"
    assert merged["history"][-1]["status"] == "detained" and merged["history"][-1]["reason"] == domain.MERGED_FROM
    assert changes == {"report_count": 2, "vulnerabilities": ["ill", "minor"]}
    assert domain.absorb(merged, dup, day, NOW) == (merged, {})


def test_a_case_lists_each_snapshot_that_counted_it_once():
    case = domain.open_case("c-1", REPORTED, NOW)
    mark = {"snapshot_id": "s-1", "cycle": "CN-4", "as_of": "2024-01-01"}
    listed = domain.record_snapshot(case, mark)
    assert listed["upr_snapshots"] == [mark]
    assert domain.record_snapshot(listed, mark) is listed


def test_a_reason_is_read_by_caseworkers_and_admins_only_and_the_services_own_words_by_all():
    case = {"history": [{"status": "reported", "reason": domain.FIRST_REPORT},
                        {"status": "detained", "reason": None, "reason_sealed": {"ct": "x"}},
                        {"status": "released", "reason": "kept in the clear before sealing"}]}
    opened = [None, "news from the family", None]
    for roles in (["caseworker"], ["admin"], ["analyst", "caseworker"]):
        shown = domain.history_for(case, roles, opened)
        assert [e["reason"] for e in shown] == [domain.FIRST_REPORT, "news from the family",
                                                "kept in the clear before sealing"]
        assert all("reason_sealed" not in e for e in shown)
    for roles in (["analyst"], ["advocate"], []):
        assert [e["reason"] for e in domain.history_for(case, roles, [None] * 3)] == [domain.FIRST_REPORT, None, None]
