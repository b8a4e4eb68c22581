"""The advocacy service's request and response schemas (the API and the pages load with these)."""

from __future__ import annotations

import datetime as dt

from marshmallow import Schema, ValidationError, fields, validate, validates

from shared import unhcr_offices
from shared.people import not_future

from services.advocacy.domain import (APPEAL_KINDS, APPEAL_OUTCOMES, APPEAL_STATUSES, CHANNELS, RECIPIENT_KINDS,
                                      REQUEST_OUTCOMES, REQUEST_STATUSES)


def case_ids_field() -> fields.List:
    """The cases a request or an appeal is about: 1 to 50 case ids."""
    return fields.List(fields.String(validate=validate.Length(min=1, max=64)), required=True,
                       validate=validate.Length(min=1, max=50))


def page_field() -> fields.Integer:
    """Which page of a list (1 by default; each page holds AdvocacyStore.PAGE_SIZE items)."""
    return fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))


OFFICE_NOT_LISTED = "Choose an office from the list of UNHCR offices."


class Office(fields.String):
    """A UNHCR office of the maintained list (shared/unhcr_offices.py), given by its code or its
    name ("UNHCR Beijing"), loaded as its code. Any other text is refused (never stored, never sent
    on, never echoed in the error): the office field cannot carry a name or a contact."""

    def _deserialize(self, value, attr, data, **kwargs):
        code = unhcr_offices.code_for(super()._deserialize(value, attr, data, **kwargs))
        if code is None:
            raise ValidationError(OFFICE_NOT_LISTED)
        return code


class RequestIn(Schema):
    """POST /api/v1/unhcr-access-requests."""

    case_ids = case_ids_field()
    office = Office(required=True, metadata={
        "enum": [*unhcr_offices.CODES, *(unhcr_offices.name(c) for c in unhcr_offices.CODES)],
        "description": "a UNHCR office of the list (GET /api/v1/unhcr-offices), by its code or its English name; "
                       "stored and answered as the code"})
    sent_on = fields.Date(required=True, validate=not_future)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))


class RequestResponseIn(Schema):
    """POST /api/v1/unhcr-access-requests/{request_id}/responses."""

    outcome = fields.String(required=True, validate=validate.OneOf(REQUEST_OUTCOMES))
    received_on = fields.Date(required=True, validate=not_future)


class RequestQuery(Schema):
    """Filters of the request list."""

    case_id = fields.String(validate=validate.Length(min=1, max=64))
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    overdue = fields.Boolean()
    page = page_field()


class ResponseOut(Schema):
    """One response to a request or an appeal."""

    outcome = fields.String()
    received_on = fields.String()
    recorded_at = fields.DateTime()


class RequestOut(Schema):
    """A UNHCR-access request with its responses and follow-up."""

    request_id = fields.String()
    case_ids = fields.List(fields.String())
    office = fields.Function(lambda r: unhcr_offices.listed(r.get("office")), metadata={
        "description": "the office's code (`unlisted` for an older request's typed text, which is never shown)"})
    office_name = fields.Function(lambda r: unhcr_offices.name(r.get("office")), metadata={
        "description": "the office's English name"})
    channel = fields.String()
    sent_on = fields.String()
    status = fields.String()
    follow_up_on = fields.String(allow_none=True, metadata={"description": "when to chase an answer"})
    overdue = fields.Boolean(metadata={"description": "no final answer and follow_up_on has passed"})
    responses = fields.List(fields.Nested(ResponseOut))
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)


class RequestList(Schema):
    """A page of requests, newest first."""

    items = fields.List(fields.Nested(RequestOut))
    total = fields.Integer(metadata={"description": "how many requests match the filters"})
    page = fields.Integer()
    page_size = fields.Integer()


class AppealIn(Schema):
    """POST /api/v1/appeals: issued if `issued_on` is given, else a draft."""

    case_ids = case_ids_field()
    kind = fields.String(required=True, validate=validate.OneOf(APPEAL_KINDS))
    recipients = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list,
                             validate=validate.Length(max=30))
    issued_on = fields.Date(load_default=None, allow_none=True, validate=not_future)
    due_by = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=dt.timezone.utc)

    @validates("recipients")
    def _each_recipient_once(self, value: list, **_kwargs) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Name each recipient once.")


class IssueIn(Schema):
    """POST /api/v1/appeals/{appeal_id}/issue: send a draft."""

    issued_on = fields.Date(required=True, validate=not_future)
    recipients = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=None,
                             validate=validate.Length(min=1, max=30))


class AnswerIn(Schema):
    """POST /api/v1/appeals/{appeal_id}/responses."""

    outcome = fields.String(required=True, validate=validate.OneOf(APPEAL_OUTCOMES))
    received_on = fields.Date(required=True, validate=not_future)


class AppealQuery(Schema):
    """Filters of the appeal list."""

    case_id = fields.String(validate=validate.Length(min=1, max=64))
    status = fields.String(validate=validate.OneOf(APPEAL_STATUSES))
    page = page_field()


class AppealOut(Schema):
    """An appeal: its cases, recipients, state and dates."""

    appeal_id = fields.String()
    case_ids = fields.List(fields.String())
    kind = fields.String()
    recipients = fields.List(fields.String())
    status = fields.String()
    origin = fields.String(metadata={"description": "deportation_clock (opened by the service) or manual"})
    due_by = fields.DateTime(allow_none=True)
    seconds_left = fields.Integer(allow_none=True, metadata={"description": "until due_by; negative when overdue"})
    overdue = fields.Boolean()
    episode_ended_at = fields.DateTime(allow_none=True,
                                       metadata={"description": "when the case stopped being at imminent risk"})
    issued_on = fields.String(allow_none=True)
    responses = fields.List(fields.Nested(ResponseOut))
    created_at = fields.DateTime()
    created_by = fields.String(allow_none=True)


class AppealList(Schema):
    """A page of appeals: drafts by due time first, then the rest newest first."""

    items = fields.List(fields.Nested(AppealOut))
    total = fields.Integer(metadata={"description": "how many appeals match the filters"})
    page = fields.Integer()
    page_size = fields.Integer()


class LetterQuery(Schema):
    """Which letter to render."""

    lang = fields.String(load_default="en", validate=validate.OneOf(("en", "ko")))
    format = fields.String(load_default="md", validate=validate.OneOf(("md", "html", "pdf")))
    download = fields.Boolean(load_default=False, metadata={"description": "as an attachment, not shown inline"})


class RecipientIn(Schema):
    """A body appeals can be sent to."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    mandate = fields.String(required=True, validate=validate.Length(min=1, max=300))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    kind = fields.String(required=True, validate=validate.OneOf(RECIPIENT_KINDS))


class OfficeOut(Schema):
    """A UNHCR office of the maintained list."""

    code = fields.String()
    en = fields.String()
    ko = fields.String()


class OfficeList(Schema):
    """The UNHCR offices a request can be sent to."""

    items = fields.List(fields.Nested(OfficeOut))


class RecipientList(Schema):
    """The maintained list of recipients."""

    items = fields.List(fields.Nested(RecipientIn))
