"""The recommendations' JSON routes (issue 11 point 5): the list, one recommendation with the
figures of its linked measures since its date, and analysts' additions and edits."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, ValidationError, fields

from shared.auth import current_user, require_roles
from shared.errors import ApiError, flatten_messages
from shared.http import doc, load_body, load_query
from shared.mongo import utcnow
from shared.web import resources

from services.reporting import recommendations as recs
from services.reporting.recommendation_store import Duplicate, RecommendationStore
from services.reporting.schemas import EvidenceQuery, Table
from services.reporting.store import live_population

bp = Blueprint("recommendations_api", __name__)

ANY_ROLE = ("caseworker", "advocate", "analyst")
EXACT_ROLES = {"analyst", "admin"}


class RecommendationOut(Schema):
    """A recommendation as API.md lists it, with the measures and questions it is linked to."""

    recommendation_id = fields.String()
    mechanism = fields.String(metadata={"enum": list(recs.MECHANISMS)})
    kind = fields.String(metadata={"enum": list(recs.KINDS)})
    cycle = fields.String(allow_none=True)
    number = fields.String(allow_none=True)
    symbol = fields.String(allow_none=True)
    paragraph = fields.String(allow_none=True)
    text = fields.String()
    text_ko = fields.String(allow_none=True, metadata={
        "description": "an unofficial Korean translation of the official text, or null"})
    recommending_state = fields.String(allow_none=True)
    response = fields.String(allow_none=True)
    issued_on = fields.String(allow_none=True)
    measures = fields.List(fields.String())
    questions = fields.List(fields.String())


class RecommendationList(Schema):
    """GET /api/v1/recommendations."""

    items = fields.List(fields.Nested(RecommendationOut))


class MeasureFollowed(Table):
    """A linked measure's table since the recommendation's date (case ids: internal only)."""

    stock = fields.Boolean()
    case_ids = fields.List(fields.String())


class Followed(Schema):
    """The figures that bear on a recommendation."""

    as_of = fields.String()
    since = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    measures = fields.List(fields.Nested(MeasureFollowed))


class RecommendationFollowed(RecommendationOut):
    """GET /api/v1/recommendations/{id}: the recommendation and its figures."""

    figures = fields.Nested(Followed)


def rec_store() -> RecommendationStore:
    """The recommendations of this service's database."""
    return RecommendationStore(resources().db)


def _sees_exact() -> bool:
    return bool(EXACT_ROLES & set(current_user()["roles"]))


def _invalid(exc: ValidationError) -> ApiError:
    return ApiError(422, "validation_error", "Some fields are invalid.", fields=flatten_messages(exc.messages))


@bp.get("/api/v1/recommendations")
@require_roles(*ANY_ROLE)
@doc(summary="The recommendations followed (UPR and treaty bodies)", responses={200: RecommendationList})
def list_recommendations():
    """Those the reference document quotes, from the first start, and those analysts added."""
    return jsonify({"items": [recs.public(r) for r in rec_store().all()]})


@bp.post("/api/v1/recommendations")
@require_roles("analyst")
@doc(summary="Add a recommendation", body=recs.RecommendationIn, responses={201: RecommendationOut, 409: None})
def add_recommendation():
    """409 `recommendation_exists` for one already listed (the same cycle and number, or symbol,
    paragraph and text)."""
    state = recs.new_state(load_body(recs.RecommendationIn()))
    try:
        stored = rec_store().add(state, actor=current_user()["id"], publisher=resources().publisher, now=utcnow())
    except Duplicate:
        raise ApiError(409, "recommendation_exists", "This recommendation is listed already.",
                       fields={"recommendation_id": [state["recommendation_id"]]}) from None
    return jsonify(recs.public(stored)), 201


@bp.patch("/api/v1/recommendations/<recommendation_id>")
@require_roles("analyst")
@doc(summary="Change a recommendation's text, Korean text, State, response, date or links", body=recs.RecommendationEdit,
     responses={200: RecommendationOut, 404: None})
def edit_recommendation(recommendation_id: str):
    """What identifies it stays; the change is kept across restarts."""
    changes = load_body(recs.RecommendationEdit())
    try:
        stored = rec_store().edit(recommendation_id, changes, actor=current_user()["id"],
                                  publisher=resources().publisher, now=utcnow())
    except ValidationError as exc:
        raise _invalid(exc) from None
    if stored is None:
        raise ApiError(404, "not_found", "No recommendation with that id.")
    return jsonify(recs.public(stored))


@bp.get("/api/v1/recommendations/<recommendation_id>")
@require_roles(*ANY_ROLE)
@doc(summary="A recommendation with the figures of its linked measures since its date", query=EvidenceQuery,
     responses={200: RecommendationFollowed, 404: None})
def get_recommendation(recommendation_id: str):
    """Each linked measure's table by sex from `issued_on` to `as_of` (public unless an analyst
    asks for internal: then with the cases counted)."""
    query = load_query(EvidenceQuery())
    if query["disclosure"] == "internal" and not _sees_exact():
        raise ApiError(403, "forbidden", "Exact figures (disclosure=internal) are for analysts and admins; "
                                         "ask for disclosure=public.")
    state = rec_store().get(recommendation_id)
    if state is None:
        raise ApiError(404, "not_found", "No recommendation with that id.")
    records = live_population(resources().db)
    return jsonify({**recs.public(state), "figures": recs.followed(records, state, as_of=query["as_of"],
                                                                   disclosure_level=query["disclosure"])})
