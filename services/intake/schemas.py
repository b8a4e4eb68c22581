"""Intake's request and response schemas: strict at the door (unknown fields are refused)."""

from __future__ import annotations

import datetime as dt

import pycountry
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from shared.audit_events import WRITE_ACTIONS
from shared.events import CONSENT_ADVOCACY, CONSENT_GIVEN_BY, RELIABILITIES, SEXES, SOURCE_TYPES, VULNERABILITIES
from shared.people import not_future


def _birth_year(value: int | None) -> None:
    if value is not None and not 1900 <= value <= dt.date.today().year:
        raise ValidationError(f"Must be between 1900 and {dt.date.today().year}.")


def _country(value: str) -> None:
    if len(value) != 2 or not value.isupper() or pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError("Must be an ISO 3166 alpha-2 country code, such as KP.")


Text = lambda n, **kw: fields.String(validate=validate.Length(min=1, max=n), **kw)  # noqa: E731


class PersonIn(Schema):
    """Who the report is about. Everything here but sex, birth year and nationality is identifying."""

    full_name = Text(200, required=True)
    sex = fields.String(required=True, validate=validate.OneOf(SEXES))
    birth_year = fields.Integer(load_default=None, allow_none=True, validate=_birth_year, strict=True)
    birth_date = fields.Date(load_default=None, allow_none=True, validate=not_future)
    nationality = fields.String(load_default="KP", validate=_country)
    hometown = Text(200, load_default=None, allow_none=True)
    family_contact = Text(500, load_default=None, allow_none=True)

    @validates_schema
    def _birth_date_matches_year(self, data, **_):
        born, year = data.get("birth_date"), data.get("birth_year")
        if born and year and born.year != year:
            raise ValidationError("Does not match birth_year.", "birth_date")


class DetentionIn(Schema):
    """Where and when the person was detained."""

    detained_on = fields.Date(load_default=None, allow_none=True, validate=not_future)
    province = Text(64, required=True)
    city = Text(100, load_default=None, allow_none=True)
    facility = Text(200, load_default=None, allow_none=True)
    authority = Text(200, load_default=None, allow_none=True)


class RiskIn(Schema):
    """How urgent the case is."""

    deportation_imminent = fields.Boolean(load_default=False)
    expected_deportation_on = fields.Date(load_default=None, allow_none=True)
    vulnerabilities = fields.List(fields.String(validate=validate.OneOf(VULNERABILITIES)), load_default=list)
    trafficking_victim = fields.Boolean(load_default=False)

    @validates("vulnerabilities")
    def _unique(self, value, **_):
        if len(set(value)) != len(value):
            raise ValidationError("List each vulnerability once.")

    @post_load
    def _one_trafficking_answer(self, data, **_):
        """trafficking_victim and the vulnerability of that name say one thing: either makes both true
        (the form has only the vulnerability's box; the API keeps both fields)."""
        if data["trafficking_victim"] or "trafficking_victim" in data["vulnerabilities"]:
            data["trafficking_victim"] = True
            if "trafficking_victim" not in data["vulnerabilities"]:
                data["vulnerabilities"] = [*data["vulnerabilities"], "trafficking_victim"]
        return data


class SourceIn(Schema):
    """Where the information came from."""

    type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))
    received_on = fields.Date(load_default=None, allow_none=True, validate=not_future)


class ConsentIn(Schema):
    """What the person (or family) agreed to."""

    advocacy = fields.String(required=True, validate=validate.OneOf(CONSENT_ADVOCACY))
    statistics = fields.Boolean(load_default=False)


class ReportIn(Schema):
    """POST /api/v1/reports."""

    person = fields.Nested(PersonIn, required=True)
    detention = fields.Nested(DetentionIn, required=True)
    risk = fields.Nested(RiskIn, load_default=lambda: RiskIn().load({}))
    source = fields.Nested(SourceIn, required=True)
    consent = fields.Nested(ConsentIn, required=True)
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10000))


class ReportCreated(Schema):
    """The answer to a new report."""

    report_id = fields.String()
    case_id = fields.String()
    matched_existing_case = fields.Boolean()


class ReportOut(Schema):
    """A stored report with its identifying data (reads are audited). Sections as in ReportIn."""

    report_id = fields.String()
    case_id = fields.String()
    matched_existing_case = fields.Boolean()
    person = fields.Dict()
    detention = fields.Dict()
    risk = fields.Dict()
    source = fields.Dict()
    consent = fields.Dict()
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime()
    created_by = fields.String()
    out_of_assignment = fields.Boolean(metadata={"description": "read by a caseworker not assigned to the case, "
                                                                "with a reason (flagged in the audit trail)"})


REASON = validate.Length(min=3, max=200, error="Give a reason of 3 to 200 characters.")


class ReportQuery(Schema):
    """Why the report is read: needed from a caseworker not assigned to its case."""

    reason = fields.String(validate=REASON, metadata={
        "description": "3-200 characters. Required of a caseworker not assigned to the case (without it: 403 "
                       "not_assigned); the read is then flagged out of assignment in the audit trail."})


class AuditQuery(Schema):
    """Filters of the audit trail."""

    case_id = fields.String(validate=validate.Length(min=1, max=64))
    user_id = fields.String(validate=validate.Length(min=1, max=64))
    user = fields.String(validate=validate.Length(min=1, max=64),
                         metadata={"description": "a username or a user id (the entries of that account)"})
    action = fields.String(validate=validate.OneOf(("read", "write", *WRITE_ACTIONS)), metadata={
        "description": "read, write (every kind of write), or one action: status_changed, cases_merged, ..."})
    out_of_assignment = fields.Boolean(metadata={"description": "true: only reads out of assignment"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))


class AuditEntry(Schema):
    """One read of identifying data, a read refused for the hourly limit, or a change of who may
    read (an assignment)."""

    at = fields.DateTime()
    user_id = fields.String()
    username = fields.String(allow_none=True)
    report_id = fields.String(allow_none=True)
    case_id = fields.String()
    reason = fields.String(allow_none=True)
    remote_addr = fields.String(allow_none=True)
    what = fields.String(metadata={"description": "report, duplicate review, name for letter, assignment"})
    action = fields.String(dump_default="read", metadata={"description": "read or write"})
    out_of_assignment = fields.Boolean(dump_default=False, metadata={
        "description": "a caseworker read a case they are not assigned to, giving a reason (break glass)"})
    refused = fields.String(allow_none=True, dump_default=None, metadata={
        "description": "read_limit: the read was refused, the reader being past the hourly limit"})
    detail = fields.String(allow_none=True, dump_default=None, metadata={"description": "what a write changed"})
    case_ids = fields.List(fields.String(), metadata={"description": "every case a write touched (a merge: both)"})
    object_id = fields.String(allow_none=True, metadata={"description": "the snapshot, request or appeal written"})
    service = fields.String(metadata={"description": "the service whose write this is, when another's"})
    target = fields.String(allow_none=True, metadata={"description": "the account changed or logged in to"})
    unknown_username = fields.String(metadata={
        "description": "a failed login's name that is no account, as a keyed hash (never the typed name)"})
    operator = fields.String(metadata={"description": "the server login that ran a command (via: command)"})
    via = fields.String(metadata={"description": "command: written by a command run on the server"})
    event_id = fields.String(metadata={"description": "the audit.recorded event another service's write came with"})


class AuditPage(Schema):
    """A page of the audit trail."""

    items = fields.List(fields.Nested(AuditEntry))
    total = fields.Integer()
    page = fields.Integer()


class PossibleDuplicate(Schema):
    """Another case that may be the same person: similar name, same birth year or province."""

    case_id = fields.String()
    report_id = fields.String(metadata={"description": "that case's report with the closest name"})
    similarity = fields.Float(metadata={"description": "0..1, overlap of the names' letter pairs"})
    birth_year = fields.Integer(allow_none=True)
    province = fields.String(allow_none=True)
    same_birth_year = fields.Boolean()
    same_province = fields.Boolean()


class PossibleDuplicates(Schema):
    """Cases to review as possible duplicates of a report's case, best first."""

    items = fields.List(fields.Nested(PossibleDuplicate))


class MergeIn(Schema):
    """Confirm two cases are one person: the path's case closes and its reports move here."""

    into_case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class MergeOut(Schema):
    """A merge done (or found done: repeating it is harmless)."""

    case_id = fields.String()
    into_case_id = fields.String()
    moved_reports = fields.Integer()
    merged_at = fields.DateTime()


class DistinctIn(Schema):
    """A caseworker's finding that two cases are different people (hides the pair from review)."""

    other_case_id = fields.String(required=True, validate=validate.Length(min=1, max=64))


class CaseName(Schema):
    """The name to put in a letter (identifying: only for advocacy's service account, audited)."""

    case_id = fields.String()
    full_name = fields.String()


class AssigneeIn(Schema):
    """A caseworker to add to a case's assignees."""

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))


class Assignee(Schema):
    """A user assigned to a case: they read its identifying data without giving a reason."""

    username = fields.String(allow_none=True)
    user_id = fields.String()
    assigned_by = fields.String(allow_none=True, metadata={"description": "username of who assigned them "
                                                                          "(for the first report: its author)"})
    assigned_at = fields.DateTime()
    via = fields.String(metadata={"description": "first_report, assigned, or merge (carried over from a "
                                                 "duplicate case)"})


class Assignees(Schema):
    """The assignees of a case, in the order assigned."""

    case_id = fields.String()
    items = fields.List(fields.Nested(Assignee))


class ReadLimitAlert(Schema):
    """A user who reached the hourly limit of identifying reads."""

    user_id = fields.String()
    username = fields.String(allow_none=True)
    hour = fields.DateTime(metadata={"description": "the start of the clock hour (UTC)"})
    limit = fields.Integer(metadata={"description": "the limit then in force"})
    reads_refused = fields.Integer()
    first_refused_at = fields.DateTime()
    last_refused_at = fields.DateTime()


class ReadLimitAlerts(Schema):
    """Users who reached the hourly limit, newest hour first."""

    items = fields.List(fields.Nested(ReadLimitAlert))


class ConsentCommandIn(Schema):
    """POST /api/v1/cases/{case_id}/consent: the consent a caseworker recorded, from whom, and why."""

    advocacy = fields.String(required=True, validate=validate.OneOf(CONSENT_ADVOCACY))
    statistics = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=1000), metadata={
        "description": "3-1000 characters; free text: sealed in intake, never in an event or a log"})
    given_by = fields.String(required=True, validate=validate.OneOf(CONSENT_GIVEN_BY))


class ConsentOut(Schema):
    """A case's consent as intake holds it."""

    case_id = fields.String()
    advocacy = fields.String()
    statistics = fields.Boolean()
    disputed = fields.Boolean(metadata={"description": "the consents that count (the last recorded consent and "
                                                      "the reports since) disagree; the most restrictive applies"})
    commanded = fields.Boolean(metadata={"description": "a caseworker recorded the person's consent"})
    given_by = fields.String(allow_none=True)
    recorded_at = fields.DateTime(allow_none=True)


def _not_blank(value: str) -> None:
    if len(value.strip()) < 3:
        raise ValidationError("Give a reason of 3 to 1000 characters.")


class ErasureIn(Schema):
    """POST /api/v1/cases/{case_id}/erase: why the person's identifying data is destroyed."""

    reason = fields.String(required=True, validate=[validate.Length(min=3, max=1000), _not_blank], metadata={
        "description": "3-1000 characters; sealed in intake, shown to admins in the audit trail, never in an "
                       "event or a log. Say why (the request, who made it), not who the person is"})
    withdraw_statistics = fields.Boolean(load_default=False, metadata={
        "description": "true: the person also withdrew consent to be counted in statistics"})


class ErasureOut(Schema):
    """An erasure done (or found done: asking again is harmless)."""

    case_id = fields.String()
    erased_at = fields.DateTime()
    erased_by = fields.String(allow_none=True, metadata={"description": "the admin who erased it"})
    already_erased = fields.Boolean(metadata={"description": "true: this case had been erased before"})
    statistics_withdrawn = fields.Boolean()
    reports_erased = fields.Integer()
    consent = fields.Nested(ConsentOut, allow_none=True, metadata={
        "description": "the case's consent now (advocacy at most anonymous: no name is left to give)"})
