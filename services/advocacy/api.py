"""The advocacy service's JSON routes: UNHCR-access requests, appeals, letters, recipients."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, jsonify

from shared import unhcr_offices
from shared.auth import current_user, require_roles
from shared.errors import ApiError
from shared.hardening import as_document
from shared.mongo import utcnow
from shared.http import doc, load_body, load_query
from shared.web import resources

from services.advocacy import domain, handlers, letters_for
from services.advocacy.schemas import (AnswerIn, AppealIn, AppealList, AppealOut, AppealQuery, IssueIn, LetterQuery,
                                       OfficeList, RecipientIn, RecipientList, RequestIn, RequestList, RequestOut,
                                       RequestQuery, RequestResponseIn)
from services.advocacy.store import AdvocacyStore

bp = Blueprint("advocacy_api", __name__)

READERS = ("advocate", "caseworker", "analyst")


def _store() -> AdvocacyStore:
    return AdvocacyStore(resources().db)


def _settings():
    return current_app.extensions["nrw"].settings


def appeal_out(appeal: dict, now: dt.datetime) -> dict:
    """An appeal as the API and the pages show it, with its time left and whether it is overdue."""
    left = domain.time_left(appeal, now)
    episode = appeal.get("episode") or {}
    return AppealOut().dump({**appeal, "seconds_left": int(left.total_seconds()) if left is not None else None,
                             "overdue": left is not None and left.total_seconds() < 0,
                             "episode_ended_at": episode.get("ended_at")})


def request_out(request: dict, today: dt.date) -> dict:
    """A request as the API and the pages show it, with whether its follow-up is overdue."""
    return RequestOut().dump({**request, "overdue": domain.is_overdue(request, today)})


def _refusal(exc: Exception) -> ApiError:
    """The JSON error for a command the rules refused."""
    if isinstance(exc, domain.NoConsent):
        return ApiError(409, "no_consent", "A case's advocacy consent is 'none': it cannot be named or described.",
                        case_ids=exc.case_ids)
    if isinstance(exc, handlers.UnknownCases):
        return ApiError(422, "validation_error", "Some fields are missing or invalid.",
                        fields={"case_ids": [f"Unknown case: {c}" for c in exc.case_ids]})
    if isinstance(exc, handlers.UnknownRecipients):
        return ApiError(422, "validation_error", "Some fields are missing or invalid.",
                        fields={"recipients": [f"Not on the list of recipients: {n}" for n in exc.names]})
    if isinstance(exc, handlers.NotFound):
        return ApiError(404, "not_found", "No such record.")
    if isinstance(exc, domain.NotAllowed):
        return ApiError(409, "not_allowed", str(exc))
    raise exc


REFUSALS = (domain.NoConsent, handlers.UnknownCases, handlers.UnknownRecipients, handlers.NotFound,
            domain.NotAllowed)


# --- UNHCR-access requests ----------------------------------------------------------------------


@bp.post("/api/v1/unhcr-access-requests")
@require_roles("advocate")
@doc(summary="Record a UNHCR-access request sent for one or more cases", body=RequestIn,
     responses={201: RequestOut, 409: None})
def create_request():
    """A request, with its follow-up date; one unhcr_access.requested event per case."""
    cmd = load_body(RequestIn())
    try:
        request = handlers.create_request(cmd, actor=current_user()["id"], store=_store(),
                                          publisher=resources().publisher, settings=_settings(), now=utcnow())
    except REFUSALS as exc:
        raise _refusal(exc) from None
    return jsonify(request_out(request, utcnow().date())), 201


@bp.post("/api/v1/unhcr-access-requests/<request_id>/responses")
@require_roles("advocate")
@doc(summary="Record UNHCR's response (or that none came)", body=RequestResponseIn,
     responses={200: RequestOut, 404: None, 409: None})
def respond_request(request_id: str):
    """acknowledged, granted, denied or no_response, with the date it came."""
    cmd = load_body(RequestResponseIn())
    try:
        request = handlers.record_request_response(request_id, cmd, actor=current_user()["id"], store=_store(),
                                                   publisher=resources().publisher, settings=_settings(),
                                                   now=utcnow())
    except REFUSALS as exc:
        raise _refusal(exc) from None
    return jsonify(request_out(request, utcnow().date()))


@bp.get("/api/v1/unhcr-access-requests")
@require_roles(*READERS)
@doc(summary="UNHCR-access requests, newest first, a page at a time", query=RequestQuery, responses={200: RequestList})
def list_requests():
    """Filtered by case, status and whether the follow-up is overdue."""
    query = load_query(RequestQuery())
    today = utcnow().date()
    found, total = _store().page_requests(today=today, case_id=query.get("case_id"), status=query.get("status"),
                                          overdue=query.get("overdue"), page=query["page"])
    return jsonify({"items": [request_out(r, today) for r in found], "total": total, "page": query["page"],
                    "page_size": AdvocacyStore.PAGE_SIZE})


@bp.get("/api/v1/unhcr-offices")
@require_roles(*READERS)
@doc(summary="The UNHCR offices a request can be sent to (the office field takes a code or its English name)",
     responses={200: OfficeList})
def list_offices():
    """The maintained list: each office's code and its English and Korean names."""
    return jsonify({"items": [{"code": code, **names} for code, names in unhcr_offices.OFFICES.items()]})


@bp.get("/api/v1/unhcr-access-requests/<request_id>")
@require_roles(*READERS)
@doc(summary="One UNHCR-access request", responses={200: RequestOut, 404: None})
def get_request(request_id: str):
    """A request with its responses."""
    request = _store().requests.get(request_id)
    if request is None:
        raise ApiError(404, "not_found", "No request with that id.")
    return jsonify(request_out(request, utcnow().date()))


@bp.get("/api/v1/unhcr-access-requests/<request_id>/letter")
@require_roles("advocate")
@doc(summary="The UNHCR-access request letter (md, html or pdf; en or ko)", query=LetterQuery,
     responses={200: {"text/markdown": None, "text/html": None, "application/pdf": None}, 404: None, 409: None})
def request_letter(request_id: str):
    """Rendered now from the request; named cases' names are asked of intake (audited)."""
    query = load_query(LetterQuery())
    request = _store().requests.get(request_id)
    if request is None:
        raise ApiError(404, "not_found", "No request with that id.")
    return _letter_response(request, "unhcr_access", query)


# --- appeals ------------------------------------------------------------------------------------


@bp.post("/api/v1/appeals")
@require_roles("advocate")
@doc(summary="Record an appeal (issued if issued_on is given, else a draft)", body=AppealIn,
     responses={201: AppealOut, 409: None})
def create_appeal():
    """409 no_consent if any case's advocacy consent is none; nothing is stored then."""
    cmd = load_body(AppealIn())
    try:
        appeal = handlers.create_appeal(cmd, actor=current_user()["id"], store=_store(),
                                        publisher=resources().publisher, settings=_settings(), now=utcnow())
    except REFUSALS as exc:
        raise _refusal(exc) from None
    return jsonify(appeal_out(appeal, utcnow())), 201


@bp.post("/api/v1/appeals/<appeal_id>/issue")
@require_roles("advocate")
@doc(summary="Issue a draft appeal to its recipients", body=IssueIn,
     responses={200: AppealOut, 404: None, 409: None})
def issue_appeal(appeal_id: str):
    """The date it was sent; consent is checked again as it stands now."""
    cmd = load_body(IssueIn())
    try:
        appeal = handlers.issue_appeal(appeal_id, cmd, actor=current_user()["id"], store=_store(),
                                       publisher=resources().publisher, now=utcnow())
    except REFUSALS as exc:
        raise _refusal(exc) from None
    return jsonify(appeal_out(appeal, utcnow()))


@bp.post("/api/v1/appeals/<appeal_id>/responses")
@require_roles("advocate")
@doc(summary="Record the answer to an issued appeal (or that none came)", body=AnswerIn,
     responses={200: AppealOut, 404: None, 409: None})
def answer_appeal(appeal_id: str):
    """response_received or no_response, with the date."""
    cmd = load_body(AnswerIn())
    try:
        appeal = handlers.answer_appeal(appeal_id, cmd, actor=current_user()["id"], store=_store(),
                                        publisher=resources().publisher, now=utcnow())
    except REFUSALS as exc:
        raise _refusal(exc) from None
    return jsonify(appeal_out(appeal, utcnow()))


@bp.get("/api/v1/appeals")
@require_roles(*READERS)
@doc(summary="Appeals: drafts by due time first, then newest first; a page at a time", query=AppealQuery,
     responses={200: AppealList})
def list_appeals():
    """Filtered by case and status."""
    query = load_query(AppealQuery())
    now = utcnow()
    found, total = _store().page_appeals(case_id=query.get("case_id"), status=query.get("status"), page=query["page"])
    return jsonify({"items": [appeal_out(a, now) for a in found], "total": total, "page": query["page"],
                    "page_size": AdvocacyStore.PAGE_SIZE})


@bp.get("/api/v1/appeals/<appeal_id>")
@require_roles(*READERS)
@doc(summary="One appeal", responses={200: AppealOut, 404: None})
def get_appeal(appeal_id: str):
    """An appeal with its responses."""
    appeal = _store().appeals.get(appeal_id)
    if appeal is None:
        raise ApiError(404, "not_found", "No appeal with that id.")
    return jsonify(appeal_out(appeal, utcnow()))


@bp.get("/api/v1/appeals/<appeal_id>/letter")
@require_roles("advocate")
@doc(summary="The appeal letter (md, html or pdf; en or ko)", query=LetterQuery,
     responses={200: {"text/markdown": None, "text/html": None, "application/pdf": None}, 404: None, 409: None})
def appeal_letter(appeal_id: str):
    """Rendered now from the appeal; named cases' names are asked of intake (audited)."""
    query = load_query(LetterQuery())
    appeal = _store().appeals.get(appeal_id)
    if appeal is None:
        raise ApiError(404, "not_found", "No appeal with that id.")
    return _letter_response(appeal, "appeal", query)


def _letter_response(record: dict, letter: str, query: dict) -> Response:
    try:
        content, mimetype, filename = letters_for.render(
            record, letter, lang=query["lang"], fmt=query["format"], store=_store(), settings=_settings(),
            signing_key=current_app.extensions["nrw"].service_signing_key(), requested_by=current_user()["username"],
            today=utcnow().date())
    except domain.NoConsent as exc:
        raise _refusal(exc) from None
    except letters_for.NamesUnavailable:
        raise ApiError(503, "names_unavailable",
                       "The names for this letter could not be fetched from intake; try again shortly.") from None
    disposition = "attachment" if query.get("download") else "inline"
    return as_document(Response(content, mimetype=mimetype,
                                headers={"Content-Disposition": f'{disposition}; filename="{filename}"'}))


# --- recipients ---------------------------------------------------------------------------------


@bp.get("/api/v1/recipients")
@require_roles(*READERS)
@doc(summary="The maintained list of recipients of appeals", responses={200: RecipientList})
def list_recipients():
    """Name, mandate, channel and kind of each."""
    return jsonify({"items": RecipientIn(many=True).dump(_store().list_recipients())})


@bp.post("/api/v1/recipients")
@require_roles("advocate")
@doc(summary="Add a recipient to the list", body=RecipientIn,
     responses={201: RecipientIn, 409: None})
def add_recipient():
    """409 if one of that name exists."""
    recipient = load_body(RecipientIn())
    if not _store().add_recipient(recipient):
        raise ApiError(409, "recipient_exists", "A recipient of that name is on the list already.")
    return jsonify(RecipientIn().dump(recipient)), 201
