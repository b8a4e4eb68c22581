"""Advocacy end to end through the real broker: the deportation clock, appeals and their letters
(names only with consent, fetched from intake and audited), UNHCR-access requests shown on the
cases, and a replay of the case topic that opens no second draft."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from pymongo import MongoClient

from tests.support import SYNTH, kafka_options, read_topic, synthetic_report, wait_for


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def _open(api, **sections) -> tuple[dict, dict]:
    body = synthetic_report(**sections)
    created = api.post_report(body)
    wait_for(lambda: api.case(created["case_id"]), what="the case")
    return body, created


def _known_to_advocacy(api, case_id: str) -> None:
    """Advocacy learns of cases from case events; wait until it has (its request list answers 200)."""
    def known():
        res = api.http.post(f"{api.urls['advocacy']}/api/v1/appeals", headers=api.advocate, timeout=10,
                            json={"case_ids": [case_id], "kind": "urgent_appeal", "recipients": ["NoSuchRecipient"]})
        return "recipients" in res.json().get("error", {}).get("fields", {})  # the case passed, the recipient not
    wait_for(known, what="advocacy to know the case")


def _appeals(api, case_id: str) -> list[dict]:
    res = api.http.get(f"{api.urls['advocacy']}/api/v1/appeals", params={"case_id": case_id}, headers=api.advocate,
                       timeout=10)
    assert res.status_code == 200, res.text
    return res.json()["items"]


def _move(api, case_id: str, to: str) -> None:
    res = api.http.post(f"{api.urls['case']}/api/v1/cases/{case_id}/transitions", headers=api.caseworker, timeout=10,
                        json={"to": to, "effective_on": _today()})
    assert res.status_code == 200, res.text


def test_a_case_at_imminent_risk_gets_a_draft_within_seconds_and_issuing_it_shows_on_the_case(api):
    _, created = _open(api)
    case_id = created["case_id"]
    _move(api, case_id, "deportation_imminent")
    drafts = wait_for(lambda: _appeals(api, case_id), timeout_s=15, interval_s=0.2, what="the draft urgent appeal")
    (draft,) = drafts
    assert draft["status"] == "draft" and draft["kind"] == "urgent_appeal" and draft["origin"] == "deportation_clock"
    assert 23 * 3600 < draft["seconds_left"] <= 24 * 3600
    issued = api.http.post(f"{api.urls['advocacy']}/api/v1/appeals/{draft['appeal_id']}/issue", headers=api.advocate,
                           timeout=10, json={"issued_on": _today(), "recipients": ["SR DPRK", "UN WGAD"]})
    assert issued.status_code == 200, issued.text
    assert issued.json()["status"] == "issued" and issued.json()["issued_on"] == _today()

    def shown():
        appeals = (api.case(case_id).get("advocacy") or {}).get("appeals") or []
        return [a for a in appeals if a["appeal_id"] == draft["appeal_id"] and a["status"] == "issued"]

    (on_case,) = wait_for(shown, what="the issued appeal on the case")
    assert on_case["issued_on"] == _today()


def test_a_request_for_three_cases_denied_shows_on_each_case_with_the_date(api):
    cases = [_open(api, consent={"advocacy": consent, "statistics": True})[1]["case_id"]
             for consent in ("named", "anonymous", "named")]
    for case_id in cases:
        _known_to_advocacy(api, case_id)
    res = api.http.post(f"{api.urls['advocacy']}/api/v1/unhcr-access-requests", headers=api.advocate, timeout=10,
                        json={"case_ids": cases, "office": "UNHCR Beijing", "sent_on": _today(), "channel": "email"})
    assert res.status_code == 201, res.text
    request_id = res.json()["request_id"]
    denied = api.http.post(f"{api.urls['advocacy']}/api/v1/unhcr-access-requests/{request_id}/responses",
                           headers=api.advocate, timeout=10, json={"outcome": "denied", "received_on": _today()})
    assert denied.status_code == 200 and denied.json()["responses"][0]["received_on"] == _today()
    for case_id in cases:
        def shown(case_id=case_id):
            requests_ = (api.case(case_id).get("advocacy") or {}).get("requests") or []
            return [r for r in requests_ if r["request_id"] == request_id and r["status"] == "denied"]
        wait_for(shown, what="the denied request on each case")


def test_letters_name_only_named_cases_and_the_name_read_is_audited(api, tmp_path):
    named_body, named = _open(api, consent={"advocacy": "named", "statistics": True})
    anon_body, anon = _open(api, consent={"advocacy": "anonymous", "statistics": True})
    for created in (named, anon):
        _known_to_advocacy(api, created["case_id"])
    letters = {}
    for label, created in (("named", named), ("anonymous", anon)):
        res = api.http.post(f"{api.urls['advocacy']}/api/v1/appeals", headers=api.advocate, timeout=10, json={
            "case_ids": [created["case_id"]], "kind": "urgent_appeal", "recipients": ["SR DPRK"],
            "issued_on": _today()})
        assert res.status_code == 201, res.text
        for lang in ("en", "ko"):
            for fmt in ("md", "html", "pdf"):
                letter = api.http.get(f"{api.urls['advocacy']}/api/v1/appeals/{res.json()['appeal_id']}/letter",
                                      params={"lang": lang, "format": fmt}, headers=api.advocate, timeout=30)
                assert letter.status_code == 200, letter.text[:300]
                text = letter.content
                if fmt == "pdf":
                    path = tmp_path / f"{label}-{lang}.pdf"
                    path.write_bytes(letter.content)
                    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True,
                                          capture_output=True).stdout
                letters[(label, lang, fmt)] = text.decode("utf-8")
    for lang in ("en", "ko"):
        for fmt in ("md", "html", "pdf"):
            anonymous = letters[("anonymous", lang, fmt)]
            for secret in (anon_body["person"]["full_name"], anon_body["person"]["hometown"],
                           anon_body["person"]["family_contact"], SYNTH):
                assert secret not in anonymous, (lang, fmt)
            named_text = " ".join(letters[("named", lang, fmt)].split())  # a PDF may break the line anywhere
            assert named_body["person"]["full_name"] in named_text, (lang, fmt)
            assert named_body["person"]["hometown"] not in named_text and \
                named_body["person"]["family_contact"] not in named_text
    audit = api.http.get(f"{api.urls['intake']}/api/v1/audit", params={"case_id": named["case_id"]},
                         headers=api.admin, timeout=10).json()["items"]
    reads = [e for e in audit if e["what"] == "name for letter"]
    assert reads and all(e["user_id"] == "svc-advocacy" and api.advocate_name in e["reason"] for e in reads)
    assert not [e for e in api.http.get(f"{api.urls['intake']}/api/v1/audit", params={"case_id": anon["case_id"]},
                                        headers=api.admin, timeout=10).json()["items"]
                if e["what"] == "name for letter"]


def _caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """True once the group's committed offsets reach the end of every partition of the topic."""
    admin = KafkaAdminClient(**kafka_options(bootstrap), bootstrap_timeout_ms=5000)
    probe = KafkaConsumer(**kafka_options(bootstrap), bootstrap_timeout_ms=5000)
    try:
        committed = admin.list_group_offsets(group)[group]
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic)]
        ends = probe.end_offsets(partitions)
        return all(tp in committed and committed[tp].offset >= ends[tp] for tp in partitions)
    finally:
        admin.close()
        probe.close()


def test_replaying_the_case_topic_opens_no_second_draft_for_the_same_episode(api, stack, env, bootstrap):
    _, created = _open(api)
    case_id = created["case_id"]
    _move(api, case_id, "deportation_imminent")
    (draft,) = wait_for(lambda: _appeals(api, case_id), timeout_s=15, what="the draft")
    stack.stop("advocacy-consumer")
    try:
        # The consumer group back to the start of every partition, and advocacy's copy of the
        # cases dropped: everything is read again as if for the first time.
        rewind = KafkaConsumer(**kafka_options(bootstrap), group_id="advocacy", enable_auto_commit=False,
                               bootstrap_timeout_ms=5000)
        partitions = [TopicPartition("case.events", p) for p in sorted(rewind.partitions_for_topic("case.events"))]
        starts = rewind.beginning_offsets(partitions)
        rewind.assign(partitions)
        rewind.commit({tp: OffsetAndMetadata(starts[tp], "", -1) for tp in partitions})
        rewind.close()
        with MongoClient(Path(env["NRW_VAR"], "secrets", "mongo-operator.uri").read_text().strip()) as mongo:
            mongo["nrw_advocacy"]["cases"].drop()  # the stack's default database prefix
    finally:
        stack.start("advocacy-consumer")
    wait_for(lambda: _caught_up(bootstrap, "advocacy", "case.events"), timeout_s=120, what="the replay to finish")
    appeals = _appeals(api, case_id)
    assert [a["appeal_id"] for a in appeals] == [draft["appeal_id"]]
    drafted = [json.loads(r.value) for r in read_topic(bootstrap, "advocacy.events")
               if r.key == case_id.encode() and b"appeal.drafted" in r.value]
    assert len({e["payload"]["appeal_id"] for e in drafted}) == 1
