"""The reporting service's request and response schemas."""

from __future__ import annotations

import datetime as dt

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from shared.events import UPR_CYCLE
from shared.people import not_future

from services.reporting.domain import ALL_MEASURES, DIMENSIONS


class ByField(fields.Field):
    """`by=sex,age_group`: a comma-separated list of dimensions, each once."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Give dimensions separated by commas.")
        dims = [d.strip() for d in value.split(",") if d.strip()]
        unknown = [d for d in dims if d not in DIMENSIONS]
        if unknown:
            raise ValidationError(f"Choose from: {', '.join(DIMENSIONS)}.")
        if len(set(dims)) != len(dims):
            raise ValidationError("Name each dimension once.")
        return dims

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class StatisticsQuery(Schema):
    """GET /api/v1/statistics."""

    measure = fields.String(required=True, validate=validate.OneOf(ALL_MEASURES))
    as_of = fields.Date(load_default=None, validate=not_future)
    since = fields.Date(load_default=None)
    by = ByField(load_default=list)
    disclosure = fields.String(load_default="public", validate=validate.OneOf(("public", "internal")))

    @validates_schema
    def _period(self, data, **_kwargs):
        if data.get("since") and data.get("as_of") and data["since"] >= data["as_of"]:
            raise ValidationError("since must be before as_of.", "since")

    @post_load
    def _today(self, data, **_kwargs):
        return {**data, "as_of": data["as_of"] or dt.date.today()}


class Table(Schema):
    """A statistics table."""

    measure = fields.String()
    as_of = fields.String()
    since = fields.String(allow_none=True)
    by = fields.List(fields.String())
    disclosure = fields.String()
    total = fields.Integer(allow_none=True)
    cells = fields.List(fields.Dict())
    suppressed = fields.Dict(metadata={"description": "how many cells were suppressed: primary (1 to 4) and "
                                                      "secondary (so that none can be worked out)"})
    note = fields.String(allow_none=True, metadata={"description": "what was suppressed and why"})


class QuestionsQuery(Schema):
    """GET /api/v1/upr/questions."""

    as_of = fields.Date(load_default=None, validate=not_future)
    since = fields.Date(load_default=None)
    disclosure = fields.String(load_default="public", validate=validate.OneOf(("public", "internal")))

    @post_load
    def _today(self, data, **_kwargs):
        return {**data, "as_of": data["as_of"] or dt.date.today()}


class Question(Schema):
    """A question of the submission, answered from the data."""

    id = fields.String()
    question = fields.String()
    answer_text = fields.String()
    figures = fields.Dict(keys=fields.String(), metadata={
        "description": "each measure's table (as /api/v1/statistics gives it), keyed by measure (or measure and "
                       "breakdown); beside them figures that are not tables (median sentence, kinds of work, what "
                       "the evidence register holds), each an object"})
    recommendations = fields.List(fields.Dict(), metadata={
        "description": "GET /api/v1/upr/questions: the recommendations linked to the question (recommendation_id, "
                       "mechanism, kind, cycle, number, symbol, paragraph, recommending_state, response, issued_on "
                       "and href, the recommendation's API address)"})


class EvidenceQuery(Schema):
    """GET /api/v1/evidence/supply-chain."""

    as_of = fields.Date(load_default=None, validate=not_future)
    disclosure = fields.String(load_default="public", validate=validate.OneOf(("public", "internal")))

    @post_load
    def _today(self, data, **_kwargs):
        return {**data, "as_of": data["as_of"] or dt.date.today()}


class EvidenceItem(Schema):
    """A product, facility or company named in after-return testimonies (never a person)."""

    name = fields.String()
    testimonies = fields.Integer(metadata={"description": "after-return records naming it"})
    first_on = fields.String(metadata={"description": "the earliest business date among them (public: the month)"})
    last_on = fields.String(metadata={"description": "the latest business date among them (public: the month)"})
    reliability = fields.Dict(keys=fields.String(), values=fields.Integer(allow_none=True), metadata={
        "description": "testimonies by source reliability (public: 1 to 4 published as null)"})


class EvidenceRegister(Schema):
    """The supply-chain evidence register."""

    as_of = fields.String()
    disclosure = fields.String()
    products = fields.List(fields.Nested(EvidenceItem))
    facilities = fields.List(fields.Nested(EvidenceItem))
    companies = fields.List(fields.Nested(EvidenceItem))
    withheld = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "public: how many names of each kind were left out, being named by fewer than 5 persons"})
    note = fields.String()


class QuestionList(Schema):
    """The questions the case data can answer."""

    items = fields.List(fields.Nested(Question))


CYCLE_FORM = "Give the reviewed State's two-letter code and the cycle's number, such as CN-4."


class SnapshotIn(Schema):
    """POST /api/v1/upr/snapshots."""

    cycle = fields.String(required=True, validate=validate.Regexp(UPR_CYCLE, error=CYCLE_FORM), metadata={
        "description": "the reviewed State's two-letter code and the cycle's number, such as CN-4 (never free text: "
                       "the cycle travels in upr.snapshot_taken)"})
    as_of = fields.Date(required=True, validate=not_future)
    since = fields.Date(load_default=None)
    title = fields.String(load_default="", validate=validate.Length(max=300), metadata={
        "description": "about the submission, never a person: kept by reporting, printed in the annex, never in an "
                       "event"})

    @validates_schema
    def _period(self, data, **_kwargs):
        if data.get("since") and data["since"] >= data["as_of"]:
            raise ValidationError("since must be before as_of.", "since")


class SnapshotOut(Schema):
    """A frozen snapshot: its public figures (and, for analysts, the cases counted)."""

    snapshot_id = fields.String()
    cycle = fields.String()
    as_of = fields.String()
    since = fields.String(allow_none=True)
    title = fields.String()
    taken_at = fields.DateTime()
    taken_by = fields.String()
    case_count = fields.Integer()
    figures = fields.Dict(keys=fields.String(), values=fields.Nested(Table))
    series = fields.Dict()
    questions = fields.List(fields.Nested(Question))
    case_ids = fields.List(fields.String(), metadata={"description": "analysts and admins only"})
    exact = fields.Dict(metadata={"description": "exact figures; analysts and admins only"})
    evidence = fields.Dict(allow_none=True, metadata={
        "description": "the public evidence register frozen on the snapshot's date (absent from older snapshots)"})
    recommendations = fields.List(fields.Dict(), metadata={
        "description": "the recommendations followed as of the snapshot, each with the public figures of its "
                       "linked measures since its date"})


class SnapshotList(Schema):
    """Snapshots, newest first."""

    items = fields.List(fields.Nested(SnapshotOut))


class AnnexQuery(Schema):
    """Which annex to export."""

    format = fields.String(load_default="md", validate=validate.OneOf(("md", "html", "csv", "xlsx", "pdf", "docx")))
    lang = fields.String(load_default="en", validate=validate.OneOf(("en", "ko")))
