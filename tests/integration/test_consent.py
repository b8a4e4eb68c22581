"""Consent lives where it is given, and only ever narrows by itself (issue 10 point 3), against the
real FerretDB and Kafka: a second report never widens a case's consent and the case says the
reports disagree; a caseworker's recorded consent changes it, audited, on Kafka without its
reason; intake's name endpoint follows intake's own records."""

from __future__ import annotations

import json
import re
import threading
import uuid

import pytest

from shared import auth, keys
from shared.bus import EventConsumer, Publisher
from tests.integration.test_case_advocacy import case_consumer  # noqa: F401  (the case service's consumer)
from tests.integration.test_intake_pages import new_user, page_login
from tests.support import SYNTH, read_topic, start_group_at_end, synthetic_report, wait_for

REASON = f"{SYNTH} the sister phoned on 010-5555-0199 to say she agrees"


def _file(client, tokens, body) -> dict:
    res = client.post("/api/v1/reports", json=body, headers=tokens["caseworker"])
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def _pair(client, tokens, first: str, second: str, statistics: tuple[bool, bool] = (True, True)) -> tuple[dict, dict]:
    """Two reports of one person, with these advocacy consents."""
    body = synthetic_report(consent={"advocacy": first, "statistics": statistics[0]})
    a = _file(client, tokens, body)
    b = _file(client, tokens, synthetic_report(person=body["person"],
                                               consent={"advocacy": second, "statistics": statistics[1]}))
    assert b["case_id"] == a["case_id"] and b["matched_existing_case"]
    return a, b


def _consent_events(settings, case_id: str) -> list[dict]:
    return [json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, "intake.events")
            if r.key == case_id.encode() and json.loads(r.value)["event_type"] == "consent.changed"]


def _case_consent(case_client, tokens, case_id: str):
    res = case_client.get(f"/api/v1/cases/{case_id}", headers=tokens["advocate"])
    if res.status_code != 200:
        return None
    case = res.get_json()
    return case["consent_advocacy"], case["consent_statistics"], case["consent_disputed"]


def _name(client, settings, case_id: str):
    key = keys.load_private(keys.service_key_path(settings, "advocacy"))
    return client.get(f"/api/v1/cases/{case_id}/name?reason=letter",
                      headers={"Authorization": f"Bearer {auth.service_token('advocacy', key)}"})


def _command(client, headers, case_id: str, **body):
    return client.post(f"/api/v1/cases/{case_id}/consent", headers=headers,
                       json={"advocacy": "named", "statistics": True, "reason": REASON, "given_by": "person", **body})


def test_a_narrowing_second_report_narrows_the_case_and_says_the_reports_disagree(client, tokens, settings,
                                                                                    case_client, case_consumer):  # noqa: F811
    a, _ = _pair(client, tokens, "named", "none", statistics=(True, False))
    [event] = _consent_events(settings, a["case_id"])
    assert event["payload"] == {"consent_advocacy": "none", "consent_statistics": False, "given_by": None,
                                "disputed": True}
    assert wait_for(lambda: _case_consent(case_client, tokens, a["case_id"]) == ("none", False, True),
                    what="the case to take the narrowed consent")
    refused = _name(client, settings, a["case_id"])
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "no_consent"


def test_a_widening_report_leaves_consent_then_the_recorded_consent_holds(client, tokens, users, settings,
                                                                          case_client, case_consumer, mongo):  # noqa: F811
    a, _ = _pair(client, tokens, "none", "named")
    case_id = a["case_id"]
    [disputed] = _consent_events(settings, case_id)
    assert disputed["payload"]["consent_advocacy"] == "none" and disputed["payload"]["disputed"] is True
    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("none", True, True),
                    what="the case to say the reports disagree")
    assert page_login(case_client, users["advocate"], next_path=f"/cases/{case_id}").status_code == 302
    html = case_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'id="consent-disputed"' in html and "the reports disagree about consent" in html.lower()
    assert _name(client, settings, case_id).status_code == 403

    res = _command(client, tokens["caseworker"], case_id, given_by="family")
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["advocacy"] == "named" and res.get_json()["statistics"] is True
    assert res.get_json()["disputed"] is False and res.get_json()["given_by"] == "family"

    events = _consent_events(settings, case_id)
    assert len(events) == 2 and events[-1]["payload"] == {"consent_advocacy": "named", "consent_statistics": True,
                                                          "given_by": "family", "disputed": False}
    raw = b"".join(r.value for r in read_topic(settings.kafka_bootstrap, "intake.events")
                   if r.key == case_id.encode())
    assert SYNTH.encode() not in raw and b"010-5555" not in raw and b"reason" not in raw

    audit = client.get(f"/api/v1/audit?case_id={case_id}&action=write", headers=tokens["admin"])
    assert audit.status_code == 200
    entries = [e for e in audit.get_json()["items"] if e.get("what") == "consent"]
    assert len(entries) == 1 and "010-5555" not in json.dumps(entries)
    commands = [json.dumps(d, default=str) for d in
                mongo[settings.database_name("intake")]["consent_commands"].find({"case_id": case_id})]
    assert commands and not [c for c in commands if "010-5555" in c or SYNTH in c]  # the reason is sealed

    assert wait_for(lambda: _case_consent(case_client, tokens, case_id) == ("named", True, False),
                    what="the case to take the recorded consent")
    assert 'id="consent-disputed"' not in case_client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert _name(client, settings, case_id).status_code == 200

    _file(client, tokens, synthetic_report(person=_person_of(client, tokens, a["report_id"]),
                                           consent={"advocacy": "named", "statistics": True}))
    assert len(_consent_events(settings, case_id)) == 2  # an agreeing report changes nothing
    assert _name(client, settings, case_id).status_code == 200


def _person_of(client, tokens, report_id: str) -> dict:
    report = client.get(f"/api/v1/reports/{report_id}", headers=tokens["caseworker"]).get_json()
    return {k: report["person"][k] for k in ("full_name", "sex", "birth_year")}


def test_after_a_recorded_consent_a_wider_report_leaves_it_and_a_narrower_one_narrows_it(client, tokens, settings):
    a, _ = _pair(client, tokens, "named", "named")
    case_id = a["case_id"]
    assert _command(client, tokens["caseworker"], case_id, advocacy="anonymous").status_code == 200
    person = _person_of(client, tokens, a["report_id"])
    before = len(_consent_events(settings, case_id))
    _file(client, tokens, synthetic_report(person=person, consent={"advocacy": "named", "statistics": True}))
    events = wait_for(lambda: (e := _consent_events(settings, case_id)) and len(e) > before and e,
                      what="the disagreement announced")
    assert events[-1]["payload"]["consent_advocacy"] == "anonymous" and events[-1]["payload"]["disputed"] is True
    assert _name(client, settings, case_id).status_code == 403
    _file(client, tokens, synthetic_report(person=person, consent={"advocacy": "none", "statistics": True}))
    assert _consent_events(settings, case_id)[-1]["payload"]["consent_advocacy"] == "none"


@pytest.mark.parametrize("body, field", [
    ({"advocacy": "public"}, "advocacy"),
    ({"statistics": "maybe"}, "statistics"),
    ({"given_by": "neighbour"}, "given_by"),
    ({"reason": ""}, "reason"),
])
def test_invalid_consent_is_422(client, tokens, body, field):
    a = _file(client, tokens, synthetic_report())
    res = _command(client, tokens["caseworker"], a["case_id"], **body)
    assert res.status_code == 422, res.get_json()
    assert field in json.dumps(res.get_json())


def test_unknown_case_unassigned_caseworker_and_other_roles_are_refused(client, tokens):
    assert _command(client, tokens["caseworker"], "no-such-case").status_code == 404
    a = _file(client, tokens, synthetic_report(consent={"advocacy": "none", "statistics": False}))
    _, stranger = new_user(client, tokens, "caseworker")
    res = _command(client, stranger, a["case_id"])
    assert res.status_code == 403 and res.get_json()["error"]["code"] == "not_assigned"
    assert _command(client, tokens["advocate"], a["case_id"]).status_code == 403
    assert _command(client, tokens["admin"], a["case_id"], advocacy="anonymous").status_code == 200


def test_the_report_page_shows_the_case_consent_and_records_it_with_its_form(intake_app, tokens, users, settings):
    client = intake_app.test_client()
    a, b = _pair(client, tokens, "none", "named")
    assert page_login(client, users["caseworker"], next_path=f"/reports/{b['report_id']}").status_code == 302
    html = client.get(f"/reports/{b['report_id']}").get_data(as_text=True)
    assert 'id="consent-form"' in html and 'id="case-consent-disputed"' in html
    assert re.search(r'id="case-consent-advocacy">none<', html)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    form = {"csrf_token": token, "report_id": b["report_id"], "advocacy": "named", "statistics": "yes",
            "given_by": "representative", "reason": REASON}
    assert client.post(f"/cases/{a['case_id']}/consent", data={**form, "csrf_token": ""}).status_code == 400
    assert client.post(f"/cases/{a['case_id']}/consent", data={**form, "given_by": "me"}).status_code == 422
    done = client.post(f"/cases/{a['case_id']}/consent", data=form)
    assert done.status_code == 302 and "consent=1" in done.headers["Location"]
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert re.search(r'id="case-consent-advocacy">named<', after) and 'id="case-consent-disputed"' not in after
    assert "010-5555" not in after  # the reason is sealed, never shown again
    assert _consent_events(settings, a["case_id"])[-1]["payload"]["given_by"] == "representative"
    assert _name(client, settings, a["case_id"]).status_code == 200


@pytest.fixture
def advocacy_consumer(settings, mongo):
    """Advocacy's consumer (its topics and handlers) in a thread, with a group of its own that
    starts at the topics' ends; yields advocacy's store."""
    from services.advocacy import consumer as advocacy_consumer_module
    from services.advocacy.store import AdvocacyStore

    db = mongo[settings.database_name("advocacy")]
    AdvocacyStore(db).ensure_indexes()
    group_id = f"it-consent-adv-{uuid.uuid4().hex[:6]}"
    start_group_at_end(settings.kafka_bootstrap, group_id, advocacy_consumer_module.TOPICS)
    publisher = Publisher(settings, principal="admin", client_id="it-consent-advocacy-consumer")
    consumer = EventConsumer(settings, principal="admin", group_id=group_id, topics=advocacy_consumer_module.TOPICS,
                             handlers=advocacy_consumer_module.make_handlers(db, publisher, settings),
                             publisher=publisher, retry_backoff_s=0.2)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    yield AdvocacyStore(db)
    consumer.stop.set()
    thread.join(timeout=15)
    publisher.close()


def test_advocacy_s_copy_follows_the_case_s_consent(client, tokens, settings, case_consumer,  # noqa: F811
                                                    advocacy_consumer):
    a, _ = _pair(client, tokens, "none", "named")
    case_id = a["case_id"]

    def advocacy_consent():
        case = advocacy_consumer.get_case(case_id)
        return case and case.get("consent_advocacy")

    assert wait_for(lambda: advocacy_consent() == "none", what="advocacy's copy of the case")
    assert _command(client, tokens["caseworker"], case_id).status_code == 200
    assert wait_for(lambda: advocacy_consent() == "named", what="advocacy's copy to take the recorded consent")
    _file(client, tokens, synthetic_report(person=_person_of(client, tokens, a["report_id"]),
                                           consent={"advocacy": "anonymous", "statistics": True}))
    assert wait_for(lambda: advocacy_consent() == "anonymous", what="advocacy's copy to narrow")
