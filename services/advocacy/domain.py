"""Advocacy's pure rules: UNHCR-access requests and their follow-up, appeals and consent, and the
deportation clock that opens a draft appeal the moment a case is at risk of imminent return.
No I/O: handlers load state, call these, and store what they return."""

from __future__ import annotations

import datetime as dt
import uuid

REQUEST_OUTCOMES = ("acknowledged", "granted", "denied", "no_response")
FINAL_OUTCOMES = ("granted", "denied", "no_response")  # after these nothing more is awaited
REQUEST_STATUSES = ("sent", *REQUEST_OUTCOMES)
CHANNELS = ("email", "fax", "letter", "meeting", "phone", "online_form")

APPEAL_KINDS = ("urgent_appeal", "allegation_letter", "communication")
APPEAL_STATUSES = ("draft", "issued", "response_received", "no_response")
APPEAL_OUTCOMES = ("response_received", "no_response")
RECIPIENT_KINDS = ("special_procedure", "treaty_body", "unhcr", "government")

# The maintained list starts with the bodies advocates write to most; admins and advocates add more.
DEFAULT_RECIPIENTS = (
    {"name": "SR DPRK", "mandate": "Special Rapporteur on the situation of human rights in the Democratic "
                                   "People's Republic of Korea", "channel": "email", "kind": "special_procedure"},
    {"name": "SR Torture", "mandate": "Special Rapporteur on torture and other cruel, inhuman or degrading "
                                      "treatment or punishment", "channel": "email", "kind": "special_procedure"},
    {"name": "UN WGAD", "mandate": "Working Group on Arbitrary Detention", "channel": "email",
     "kind": "special_procedure"},
    {"name": "UN WGEID", "mandate": "Working Group on Enforced or Involuntary Disappearances", "channel": "email",
     "kind": "special_procedure"},
    {"name": "SR Trafficking", "mandate": "Special Rapporteur on trafficking in persons, especially women and "
                                          "children", "channel": "email", "kind": "special_procedure"},
    {"name": "CAT", "mandate": "Committee against Torture", "channel": "email", "kind": "treaty_body"},
    {"name": "UNHCR", "mandate": "Office of the United Nations High Commissioner for Refugees",
     "channel": "email", "kind": "unhcr"},
    {"name": "PRC Mission Geneva", "mandate": "Permanent Mission of the People's Republic of China to the United "
                                              "Nations Office at Geneva", "channel": "letter", "kind": "government"},
)

_APPEAL_NS = uuid.UUID("6f1c1f4e-4d0b-4c55-9d3f-2b7f3f0c9a11")

DEPORTATION_CLOCK = "deportation_clock"
EPISODE_ENDED = "the case is no longer at imminent risk of deportation"


class NoConsent(Exception):
    """A case whose advocacy consent is `none` cannot be named or described in advocacy."""

    def __init__(self, case_ids: list[str]):
        super().__init__("Advocacy consent is 'none' for: " + ", ".join(case_ids))
        self.case_ids = case_ids


class NotAllowed(Exception):
    """A change the record's state does not permit (e.g. answering a draft)."""


# --- the cases advocacy knows (a read model of case events) -------------------------------------

CASE_FIELDS = ("status", "sex", "birth_year", "nationality", "province", "detained_on", "deportation_imminent",
               "expected_deportation_on", "vulnerabilities", "consent_advocacy")


def is_imminent(case: dict) -> bool:
    """A case at imminent risk: in status deportation_imminent, or flagged so by a report."""
    return case.get("status") == "deportation_imminent" or bool(case.get("deportation_imminent"))


def apply_case_event(case: dict | None, event_type: str, payload: dict) -> dict:
    """Advocacy's copy of a case after one case event (only non-identifying attributes)."""
    case = dict(case or {})
    if event_type == "case.opened":
        case.update({k: payload.get(k) for k in CASE_FIELDS if k in payload})
    elif event_type == "case.status_changed":
        case["status"] = payload["to"]
    elif event_type == "case.facts_updated":
        case.update({k: v for k, v in payload.items() if k in CASE_FIELDS})
    return case


def clock_change(before: dict | None, after: dict) -> str | None:
    """'start' when a case has just become at imminent risk, 'end' when it just stopped, else None."""
    was, now = bool(before) and is_imminent(before), is_imminent(after)
    if now and not was:
        return "start"
    if was and not now:
        return "end"
    return None


def episode_appeal_id(case_id: str, started_by_event_id: str) -> str:
    """The draft of one episode has an id derived from the event that started it, so reading the
    case topic again (a replay, a rebuilt read model) finds the same draft instead of a second."""
    return str(uuid.uuid5(_APPEAL_NS, f"{case_id}:{started_by_event_id}"))


def clock_draft(case_id: str, case: dict, started_by_event_id: str, started_at: dt.datetime, due_hours: float,
                now: dt.datetime) -> dict:
    """The urgent-appeal draft the deportation clock opens, due `due_hours` after the risk began."""
    appeal_id = episode_appeal_id(case_id, started_by_event_id)
    return {
        "_id": appeal_id, "appeal_id": appeal_id, "case_ids": [case_id], "kind": "urgent_appeal",
        "recipients": [], "status": "draft", "origin": DEPORTATION_CLOCK,
        "due_by": started_at + dt.timedelta(hours=due_hours), "issued_on": None, "responses": [],
        "episode": {"case_id": case_id, "started_by": started_by_event_id, "started_at": started_at,
                    "ended_at": None},
        "consent_advocacy": case.get("consent_advocacy"),
        "history": [{"status": "draft", "at": now, "by": None, "note": DEPORTATION_CLOCK}],
        "created_at": now, "created_by": None,
    }


def end_episode(appeal: dict, ended_at: dt.datetime, now: dt.datetime) -> dict | None:
    """A clock draft whose case left imminent risk says so (None if nothing changes)."""
    if appeal.get("origin") != DEPORTATION_CLOCK or appeal["episode"].get("ended_at"):
        return None
    appeal = dict(appeal)
    appeal["episode"] = {**appeal["episode"], "ended_at": ended_at}
    appeal["history"] = appeal["history"] + [{"status": appeal["status"], "at": now, "by": None,
                                              "note": EPISODE_ENDED}]
    return appeal


# --- consent ------------------------------------------------------------------------------------


def check_consent(case_ids: list[str], cases: dict[str, dict]) -> None:
    """Raise NoConsent listing the cases whose advocacy consent is `none`."""
    refused = [c for c in case_ids if cases[c].get("consent_advocacy") == "none"]
    if refused:
        raise NoConsent(refused)


# --- appeals ------------------------------------------------------------------------------------


def new_appeal(appeal_id: str, cmd: dict, *, actor: str, now: dt.datetime) -> dict:
    """An appeal written by an advocate: issued if `issued_on` is given, else a draft."""
    issued = cmd.get("issued_on") is not None
    return {
        "_id": appeal_id, "appeal_id": appeal_id, "case_ids": list(dict.fromkeys(cmd["case_ids"])),
        "kind": cmd["kind"], "recipients": list(dict.fromkeys(cmd.get("recipients") or [])),
        "status": "issued" if issued else "draft", "origin": "manual", "due_by": cmd.get("due_by"),
        "issued_on": cmd.get("issued_on").isoformat() if issued else None, "responses": [], "episode": None,
        "history": [{"status": "issued" if issued else "draft", "at": now, "by": actor, "note": None}],
        "created_at": now, "created_by": actor,
    }


def issue(appeal: dict, *, issued_on: dt.date, recipients: list[str] | None, actor: str, now: dt.datetime) -> dict:
    """A draft sent to its recipients on `issued_on`."""
    if appeal["status"] != "draft":
        raise NotAllowed(f"Only a draft can be issued; this appeal is {appeal['status']}.")
    recipients = list(dict.fromkeys(recipients or appeal["recipients"]))
    if not recipients:
        raise NotAllowed("Name at least one recipient.")
    if issued_on > now.date():
        raise NotAllowed("issued_on must not be in the future.")
    appeal = dict(appeal)
    appeal.update(status="issued", issued_on=issued_on.isoformat(), recipients=recipients)
    appeal["history"] = appeal["history"] + [{"status": "issued", "at": now, "by": actor, "note": None}]
    return appeal


def answer(appeal: dict, *, outcome: str, received_on: dt.date, actor: str, now: dt.datetime) -> dict:
    """An issued appeal's answer (or the finding that none came)."""
    if appeal["status"] == "draft":
        raise NotAllowed("A draft has not been sent; issue it first.")
    if received_on > now.date() or received_on.isoformat() < (appeal["issued_on"] or ""):
        raise NotAllowed("received_on must be between the issue date and today.")
    appeal = dict(appeal)
    appeal["status"] = outcome
    appeal["responses"] = appeal["responses"] + [{"outcome": outcome, "received_on": received_on.isoformat(),
                                                  "recorded_at": now, "by": actor}]
    appeal["history"] = appeal["history"] + [{"status": outcome, "at": now, "by": actor, "note": None}]
    return appeal


def time_left(appeal: dict, now: dt.datetime) -> dt.timedelta | None:
    """For a draft with a deadline, the time until it is due (negative when overdue)."""
    if appeal["status"] != "draft" or appeal.get("due_by") is None:
        return None
    due = appeal["due_by"]
    if due.tzinfo is None:
        due = due.replace(tzinfo=dt.timezone.utc)
    return due - now


# --- UNHCR-access requests ----------------------------------------------------------------------


def new_request(request_id: str, cmd: dict, *, follow_up_days: int, actor: str, now: dt.datetime) -> dict:
    """A UNHCR-access request sent on `sent_on` for one or more cases."""
    sent_on: dt.date = cmd["sent_on"]
    return {
        "_id": request_id, "request_id": request_id, "case_ids": list(dict.fromkeys(cmd["case_ids"])),
        "office": cmd["office"], "channel": cmd["channel"], "sent_on": sent_on.isoformat(), "status": "sent",
        "follow_up_on": (sent_on + dt.timedelta(days=follow_up_days)).isoformat(), "responses": [],
        "history": [{"status": "sent", "at": now, "by": actor}], "created_at": now, "created_by": actor,
    }


def respond(request: dict, *, outcome: str, received_on: dt.date, follow_up_days: int, actor: str,
            now: dt.datetime) -> dict:
    """A response recorded. An acknowledgement sets the next follow-up; a final outcome ends it."""
    if request["status"] in FINAL_OUTCOMES:
        raise NotAllowed(f"This request was already answered ({request['status']}).")
    if received_on > now.date() or received_on.isoformat() < request["sent_on"]:
        raise NotAllowed("received_on must be between the date sent and today.")
    request = dict(request)
    request["status"] = outcome
    request["follow_up_on"] = ((received_on + dt.timedelta(days=follow_up_days)).isoformat()
                               if outcome == "acknowledged" else None)
    request["responses"] = request["responses"] + [{"outcome": outcome, "received_on": received_on.isoformat(),
                                                    "recorded_at": now, "by": actor}]
    request["history"] = request["history"] + [{"status": outcome, "at": now, "by": actor}]
    return request


def awaited_follow_up(request: dict) -> str | None:
    """The follow-up date (YYYY-MM-DD) of a request still awaiting an answer, else None."""
    if request.get("status") in FINAL_OUTCOMES:
        return None
    return request.get("follow_up_on") or None


def is_overdue(request: dict, today: dt.date) -> bool:
    """No final answer and the follow-up date has passed."""
    follow_up = awaited_follow_up(request)
    return follow_up is not None and today.isoformat() > follow_up
