"""The case service's request and response schemas."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared import unhcr_offices
from shared.events import (ASYLUM_STEP_NAMES, ASYLUM_STEPS, CUSTODY, FORCED_LABOUR, ILL_TREATMENT, LABOUR_WORK,
                           NAMED_THINGS_MAX, RELIABILITIES, RETURN_OUTCOMES, SENTENCE_YEARS_MAX, SOURCE_TYPES,
                           NamedThing, sentence_in_halves)

from services.case.domain import STATUSES


class HistoryEntry(Schema):
    """One status of the case, with its business date and when it was recorded."""

    status = fields.String()
    effective_on = fields.String()
    recorded_at = fields.DateTime()
    reason = fields.String(allow_none=True)
    merged_into = fields.String(metadata={"description": "on the entry closing a case merged as a duplicate"})
    merged_from = fields.String(metadata={"description": "on the entry of the case a duplicate was merged into"})


class AccessResponse(Schema):
    """One answer to a UNHCR-access request."""

    outcome = fields.String(metadata={"description": "acknowledged, granted, denied or no_response"})
    received_on = fields.String()


class AccessRequest(Schema):
    """A UNHCR-access request made for the case (office, channel and sent_on are null while only a
    response has been heard of)."""

    request_id = fields.String()
    office = fields.Function(lambda r: unhcr_offices.listed(r.get("office")), allow_none=True, metadata={
        "description": "the UNHCR office's code (advocacy's list; `unlisted` for an older request's text)"})
    channel = fields.String(allow_none=True)
    sent_on = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "sent until a response; then the latest outcome"})
    responses = fields.List(fields.Nested(AccessResponse), metadata={"description": "oldest first"})
    recorded_at = fields.DateTime(metadata={"description": "when the case service first heard of it"})


class Appeal(Schema):
    """An urgent appeal (or other letter) about the case."""

    appeal_id = fields.String()
    kind = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "draft, issued or answered"})
    due_by = fields.String(allow_none=True, metadata={"description": "ISO date and time a draft is due by"})
    issued_on = fields.String(allow_none=True)
    recipients = fields.List(fields.String())
    outcome = fields.String(allow_none=True)
    received_on = fields.String(allow_none=True, metadata={"description": "when the answer came"})
    recorded_at = fields.DateTime(metadata={"description": "when the case service first heard of it"})


class AdvocacySummary(Schema):
    """What the advocacy service has done for the case, as its events told the case service."""

    requests = fields.List(fields.Nested(AccessRequest))
    appeals = fields.List(fields.Nested(Appeal))
    open_requests = fields.Integer(metadata={"description": "requests without a final outcome (granted, denied, "
                                                            "no_response) yet"})
    appeals_issued = fields.Integer(metadata={"description": "appeals issued, answered or not"})
    drafts = fields.Integer(metadata={"description": "appeals still in draft"})


class AfterReturnIn(Schema):
    """POST /api/v1/cases/{case_id}/after-return: what became known of a returned person."""

    learned_on = fields.Date(required=True, metadata={"description": "when the organisation learned it"})
    effective_on = fields.Date(load_default=None, allow_none=True, metadata={
        "description": "when it happened (the business date counted); on or before learned_on"})
    source_type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    source_reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))
    custody = fields.String(load_default="unknown", validate=validate.OneOf(CUSTODY),
                            metadata={"description": "the first custodial authority"})
    outcome = fields.String(load_default="unknown", validate=validate.OneOf(RETURN_OUTCOMES))
    sentence_years = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                                  validate=[validate.Range(min=0, max=SENTENCE_YEARS_MAX), sentence_in_halves],
                                  metadata={
                                      "description": "in halves of a year; only with labour_training_camp or kyohwaso",
                                      "multipleOf": 0.5})
    forced_labour = fields.String(load_default="unknown", validate=validate.OneOf(FORCED_LABOUR))
    work = fields.List(fields.String(validate=validate.OneOf(LABOUR_WORK)), load_default=list,
                       validate=validate.Length(max=len(LABOUR_WORK) * 2))
    products = fields.List(NamedThing(), load_default=list, validate=validate.Length(max=NAMED_THINGS_MAX),
                           metadata={"description": "things, never people: no phone number or e-mail address"})
    facilities = fields.List(NamedThing(), load_default=list, validate=validate.Length(max=NAMED_THINGS_MAX))
    companies = fields.List(NamedThing(), load_default=list, validate=validate.Length(max=NAMED_THINGS_MAX))
    ill_treatment = fields.List(fields.String(validate=validate.OneOf(ILL_TREATMENT)), load_default=list,
                                validate=validate.Length(max=len(ILL_TREATMENT) * 2))


class AfterReturnOut(Schema):
    """An after-return record of a case."""

    record_id = fields.String()
    learned_on = fields.String()
    effective_on = fields.String(allow_none=True)
    source_type = fields.String()
    source_reliability = fields.String()
    custody = fields.String()
    outcome = fields.String()
    sentence_years = fields.Float(allow_none=True)
    forced_labour = fields.String()
    work = fields.List(fields.String())
    products = fields.List(fields.String())
    facilities = fields.List(fields.String())
    companies = fields.List(fields.String())
    ill_treatment = fields.List(fields.String())
    recorded_at = fields.DateTime()


class AsylumIn(Schema):
    """POST /api/v1/cases/{case_id}/asylum: a step of an asylum procedure."""

    procedure = fields.String(required=True, validate=validate.OneOf(tuple(ASYLUM_STEPS)))
    step = fields.String(required=True, validate=validate.OneOf(ASYLUM_STEP_NAMES), metadata={
        "description": "art46: " + ", ".join(ASYLUM_STEPS["art46"]) + "; unhcr_rsd: "
                       + ", ".join(ASYLUM_STEPS["unhcr_rsd"]) + "; china_status: " + ", ".join(ASYLUM_STEPS["china_status"])})
    effective_on = fields.Date(required=True)
    source_type = fields.String(required=True, validate=validate.OneOf(SOURCE_TYPES))
    source_reliability = fields.String(required=True, validate=validate.OneOf(RELIABILITIES))


class AsylumOut(Schema):
    """An asylum record of a case."""

    record_id = fields.String()
    procedure = fields.String()
    step = fields.String()
    effective_on = fields.String()
    source_type = fields.String()
    source_reliability = fields.String()
    recorded_at = fields.DateTime()


class CaseOut(Schema):
    """A case: non-identifying attributes only, never a name."""

    case_id = fields.String(attribute="_id")
    status = fields.String()
    sex = fields.String()
    birth_year = fields.Integer(allow_none=True)
    nationality = fields.String()
    province = fields.String()
    detained_on = fields.String(allow_none=True)
    deportation_imminent = fields.Boolean()
    expected_deportation_on = fields.String(allow_none=True)
    vulnerabilities = fields.List(fields.String())
    consent_advocacy = fields.String()
    consent_statistics = fields.Boolean()
    consent_disputed = fields.Boolean(dump_default=False, metadata={
        "description": "the case's reports disagree about consent: the most restrictive applies until a "
                       "caseworker records the person's consent (intake decides)"})
    report_count = fields.Integer()
    merged_into = fields.String(metadata={"description": "the case this duplicate was merged into"})
    merged_from = fields.List(fields.String(), metadata={"description": "duplicates merged into this case"})
    history = fields.List(fields.Nested(HistoryEntry))
    upr_snapshots = fields.List(fields.Dict())
    advocacy = fields.Nested(AdvocacySummary)
    after_return = fields.List(fields.Nested(AfterReturnOut), dump_default=list, metadata={
        "description": "news after return, by the date it happened, then the date it was learned"})
    asylum = fields.List(fields.Nested(AsylumOut), dump_default=list, metadata={"description": "by effective date"})
    allowed_transitions = fields.List(fields.String())
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CaseList(Schema):
    """A page of cases."""

    items = fields.List(fields.Nested(CaseOut))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class CaseQuery(Schema):
    """Filters of the case list."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    province = fields.String(validate=validate.Length(min=1, max=64))
    imminent = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))


class TransitionIn(Schema):
    """POST /api/v1/cases/{case_id}/transitions."""

    to = fields.String(required=True, validate=validate.OneOf(STATUSES))
    effective_on = fields.Date(required=True)
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
