"""The case service's JSON routes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from shared import keys
from shared.auth import current_user, require_roles
from shared.errors import ApiError
from shared.mongo import utcnow
from shared.http import doc, load_body, load_query
from shared.web import resources

from services.case import domain, handlers
from services.case.schemas import (AfterReturnIn, AfterReturnOut, AsylumIn, AsylumOut, CaseList, CaseOut, CaseQuery,
                                   TransitionIn)
from services.case.store import CaseStore

bp = Blueprint("case_api", __name__)

ANY_ROLE = ("caseworker", "advocate", "analyst")


def _store() -> CaseStore:
    return CaseStore(resources().db)


def case_notes():
    """The case service's key for free text about a person (NRW_SECRETS_DIR/case-notes.key), read once."""
    extensions = current_app.extensions
    if "case_notes" not in extensions:
        extensions["case_notes"] = handlers.notes_keyring(keys.case_notes_key(resources().settings))
    return extensions["case_notes"]


def _out(case: dict) -> dict:
    case = handlers.readable_history(case, current_user()["roles"], case_notes())
    return CaseOut().dump({**case, "allowed_transitions": domain.allowed_moves(case["status"]),
                           "advocacy": domain.advocacy_summary(case)})


@bp.get("/api/v1/cases/<case_id>")
@require_roles(*ANY_ROLE)
@doc(summary="One case (never identifying data)", responses={200: CaseOut, 404: None})
def get_case(case_id: str):
    """A case with its status history."""
    case = _store().get(case_id)
    if case is None:
        raise ApiError(404, "not_found", "No case with that id.")
    return jsonify(_out(case))


@bp.get("/api/v1/cases")
@require_roles(*ANY_ROLE)
@doc(summary="List cases, newest first", query=CaseQuery, responses={200: CaseList})
def list_cases():
    """Cases filtered by status and province, a page at a time."""
    query = load_query(CaseQuery())
    items, total = _store().page(status=query.get("status"), province=query.get("province"), page=query["page"],
                                 imminent=query.get("imminent"))
    return jsonify({"items": [_out(c) for c in items], "total": total, "page": query["page"],
                    "page_size": CaseStore.PAGE_SIZE})


@bp.post("/api/v1/cases/<case_id>/transitions")
@require_roles("caseworker")
@doc(summary="Move a case to a new status", body=TransitionIn,
     responses={200: CaseOut, 404: None, 409: None})
def transition(case_id: str):
    """Change a case's status with the business date it happened."""
    cmd = load_body(TransitionIn())
    try:
        case = handlers.change_status(case_id, actor=current_user()["id"], store=_store(),
                                      publisher=resources().publisher, now=utcnow(), notes=case_notes(), **cmd)
    except handlers.NotFound:
        raise ApiError(404, "not_found", "No case with that id.") from None
    except domain.IllegalTransition as exc:
        raise ApiError(409, "illegal_transition", str(exc), allowed=exc.allowed) from None
    except domain.InvalidDate as exc:
        raise ApiError(422, "validation_error", "Some fields are missing or invalid.",
                       fields={"effective_on": [str(exc)]}) from None
    return jsonify(_out(case))


def _created(record: dict, replayed: bool, schema):
    """201 with the record; a repeat of the same command answers the record it stored the first time."""
    return jsonify(schema().dump(record)), 201, ({"Idempotent-Replayed": "true"} if replayed else {})


def _recorded(write, case_id: str, cmd: dict):
    try:
        return write(case_id, cmd, actor=current_user()["id"], store=_store(), publisher=resources().publisher,
                     now=utcnow())
    except handlers.NotFound:
        raise ApiError(404, "not_found", "No case with that id.") from None
    except domain.MergedDuplicate as exc:
        message = domain.MERGED_ELSEWHERE % {"case_id": exc.into}
        raise ApiError(409, "merged_duplicate", message, fields={"case_id": [message]}, merged_into=exc.into) from None
    except domain.NotReturned:
        raise ApiError(409, "not_returned", "Only a case that has been repatriated has news after return.") from None
    except domain.InvalidRecord as exc:
        raise ApiError(422, "validation_error", "Some fields are missing or invalid.", fields=exc.fields) from None


@bp.post("/api/v1/cases/<case_id>/after-return")
@require_roles("caseworker")
@doc(summary="Record what became known of a person after their return (a case that has been repatriated; "
             "409 not_returned otherwise). The same record sent again answers the one stored "
             "(Idempotent-Replayed: true); 409 merged_duplicate, naming merged_into, for a case merged into another; 422 "
             "for a date before every repatriation of the case", body=AfterReturnIn,
     responses={201: AfterReturnOut, 404: None, 409: None, 422: None})
def record_after_return(case_id: str):
    """Add an after-return record (custody, outcome, forced labour, ill-treatment) to a returned person's case."""
    record, replayed = _recorded(handlers.record_after_return, case_id, load_body(AfterReturnIn()))
    return _created(record, replayed, AfterReturnOut)


@bp.post("/api/v1/cases/<case_id>/asylum")
@require_roles("caseworker")
@doc(summary="Record a step of an asylum procedure: article 46, UNHCR's refugee status determination, a status "
             "granted by China. The same record sent again answers the one stored (Idempotent-Replayed: true); 409 "
             "merged_duplicate, naming merged_into, for a case merged into another",
     body=AsylumIn, responses={201: AsylumOut, 404: None, 409: None})
def record_asylum(case_id: str):
    """Add an asylum record to a case."""
    record, replayed = _recorded(handlers.record_asylum, case_id, load_body(AsylumIn()))
    return _created(record, replayed, AsylumOut)
