"""Intake's JSON routes: parse, call a handler, map the answer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from shared import identity
from shared.auth import current_user, require_roles
from shared.errors import ApiError
from shared.mongo import utcnow
from shared.http import doc, load_body, load_query
from shared.web import resources

from services.intake import erasure, handlers
from services.intake.audit import AuditVerification, verify as verify_audit_trail
from services.intake.schemas import (AssigneeIn, Assignees, AuditPage, AuditQuery, CaseName, ConsentCommandIn,
                                     ConsentOut, DistinctIn, ErasureIn, ErasureOut, MergeIn,
                                     MergeOut, PossibleDuplicates, ReadLimitAlerts, ReportCreated, ReportIn,
                                     ReportOut, ReportQuery)
from services.intake.store import IntakeStore

bp = Blueprint("intake_api", __name__)


def _deps() -> dict:
    return {"store": IntakeStore(resources().db), "keyring": current_app.extensions["intake_keyring"]}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{8,100}$"},
    "description": "A key of the client's choosing (e.g. a UUID) for this report. Sending the same report again "
                   "with the same key answers what the first sending stored (header Idempotent-Replayed: true) "
                   "instead of filing it twice, so a request that got no answer can be repeated safely. The same "
                   "key with a different report: 409 idempotency_key_reused."}


@bp.post("/api/v1/reports")
@require_roles("caseworker")
@doc(summary="Log a report about a person at risk", body=ReportIn, responses={201: ReportCreated, 409: None},
     headers=[IDEMPOTENCY_KEY])
def create_report():
    """File a report; it opens a case or attaches to the person's existing one."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not handlers.SUBMISSION_KEY.match(key):
        raise ApiError(422, "validation_error", "The Idempotency-Key header is invalid.",
                       fields={"Idempotency-Key": ["8 to 100 letters, digits or the characters _ . : -"]})
    report = load_body(ReportIn())
    try:
        created = handlers.submit_report(report, actor=current_user()["id"], actor_name=current_user()["username"],
                                         publisher=resources().publisher, now=utcnow(), submission_key=key,
                                         **_deps())
    except handlers.SubmissionConflict:
        raise ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used for a different report; "
                       "use a new key for a new report.") from None
    replayed = created.pop("replayed")
    return jsonify(created), 201, ({"Idempotent-Replayed": "true"} if replayed else {})


NOT_ASSIGNED_MESSAGE = ("You are not assigned to this case. Ask an admin or a caseworker assigned to it to add "
                        "you, or give ?reason= (3-200 characters): the read is then flagged in the audit trail.")


def refused(exc: handlers.AccessRefused):
    """The JSON answer to a refused read or assignment (429 with Retry-After for the hourly limit)."""
    if isinstance(exc, handlers.ReadLimitReached):
        error = ApiError(429, exc.code, f"You have made {exc.limit} reads of identifying data this hour, the most "
                         "allowed; try again after the hour. Administrators have been told.",
                         retry_after=exc.retry_after)
        return jsonify(error.body()), 429, {"Retry-After": str(exc.retry_after)}
    message = NOT_ASSIGNED_MESSAGE if isinstance(exc, handlers.NotAssigned) else str(exc)
    return jsonify(ApiError(exc.status, exc.code, message).body()), exc.status


@bp.get("/api/v1/reports/<report_id>")
@require_roles("caseworker")
@doc(summary="Read a report with its identifying data (audited). A caseworker not assigned to the case gives "
             "?reason= (else 403 not_assigned) and the read is flagged out of assignment; past the hourly limit "
             "of identifying reads, 429 read_limit with Retry-After",
     query=ReportQuery, responses={200: ReportOut, 403: None, 404: None, 429: None})
def get_report(report_id: str):
    """A report with names and contacts; every read is recorded in the audit trail."""
    query = load_query(ReportQuery())
    try:
        report = handlers.read_report(report_id, reader=current_user(), reason=query.get("reason"),
                                      remote_addr=request.remote_addr, now=utcnow(),
                                      reads_per_hour=resources().settings.identifying_reads_per_hour, **_deps())
    except handlers.AccessRefused as exc:
        return refused(exc)
    if report is None:
        raise ApiError(404, "not_found", "No report with that id.")
    return jsonify(ReportOut().dump(report))


@bp.get("/api/v1/reports/<report_id>/possible-duplicates")
@require_roles("caseworker")
@doc(summary="Cases that may be the same person as this report's (for review)", responses={200: PossibleDuplicates, 404: None})
def possible_duplicates(report_id: str):
    """Near matches: similar names with the same birth year or province; no names in the answer."""
    items = handlers.possible_duplicates(report_id, store=IntakeStore(resources().db))
    if items is None:
        raise ApiError(404, "not_found", "No report with that id.")
    return jsonify(PossibleDuplicates().dump({"items": items}))


@bp.post("/api/v1/cases/<case_id>/merge")
@require_roles("caseworker")
@doc(summary="Confirm a duplicate: close this case and move its reports into another", body=MergeIn,
     responses={200: MergeOut, 404: None, 409: None})
def merge(case_id: str):
    """Merge `case_id` into `into_case_id`; the case service closes it as closed_duplicate."""
    body = load_body(MergeIn())
    try:
        merged = handlers.merge_cases(case_id, body["into_case_id"], actor=current_user(),
                                      store=IntakeStore(resources().db), publisher=resources().publisher, now=utcnow())
    except handlers.MergeRefused as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return jsonify(MergeOut().dump(merged))


@bp.post("/api/v1/cases/<case_id>/distinct")
@require_roles("caseworker")
@doc(summary="Rule out a possible duplicate: the two cases are different people", body=DistinctIn,
     responses={200: {"application/json": {"type": "object", "required": ["case_id", "other_case_id"], "properties": {
         "case_id": {"type": "string"}, "other_case_id": {"type": "string"}}}}})
def distinct(case_id: str):
    """Record that two cases are different people, so the pair leaves the review list."""
    body = load_body(DistinctIn())
    if case_id == body["other_case_id"]:
        raise ApiError(422, "same_case", "A case is always the same person as itself.")
    handlers.rule_out_duplicate(case_id, body["other_case_id"], actor=current_user(), remote_addr=request.remote_addr,
                                store=IntakeStore(resources().db), now=utcnow())
    return jsonify({"case_id": case_id, "other_case_id": body["other_case_id"]})


@bp.get("/api/v1/cases/<case_id>/name")
@require_roles("service")
@doc(summary="The name on a case's newest report, for a letter (advocacy's service account; audited)",
     responses={200: CaseName, 404: None})
def case_name(case_id: str):
    """Only for the advocacy service filling in a letter for a case whose consent is `named`."""
    reason = request.args.get("reason") or "letter"
    try:
        name = handlers.name_for_letter(case_id, reader=current_user(), reason=reason[:200],
                                        remote_addr=request.remote_addr, now=utcnow(),
                                        reads_per_hour=resources().settings.identifying_reads_per_hour, **_deps())
    except handlers.AccessRefused as exc:
        return refused(exc)
    if name is None:
        raise ApiError(404, "not_found", "No report is filed under that case.")
    return jsonify({"case_id": case_id, "full_name": name})


@bp.post("/api/v1/cases/<case_id>/consent")
@require_roles("caseworker")
@doc(summary="Record the consent the person (or their family or representative) gave: it becomes the case's "
             "consent, and later reports only ever narrow it (admin, or a caseworker assigned to the case; "
             "audited; published as consent.changed without the reason, which is sealed in intake). 404 unknown "
             "case, 403 not_assigned, 409 merged, 422 invalid", body=ConsentCommandIn,
     responses={200: ConsentOut, 403: None, 404: None, 409: None, 422: None})
def record_consent(case_id: str):
    """Set a case's advocacy and statistics consent; the answer is the case's consent now."""
    body = load_body(ConsentCommandIn())
    try:
        consent = handlers.record_consent(case_id, body, actor=current_user(), remote_addr=request.remote_addr,
                                          publisher=resources().publisher, now=utcnow(), **_deps())
    except handlers.AccessRefused as exc:
        return refused(exc)
    return jsonify(ConsentOut().dump(consent))


@bp.post("/api/v1/cases/<case_id>/erase")
@require_roles("admin")
@doc(summary="Erase the person of a case on request (admin; audited): the keys of their records are destroyed, "
             "so no copy of their identifying data can be decrypted again, backups of the database included; "
             "the case keeps its non-identifying facts and counts in statistics unless withdraw_statistics. "
             "Asking again answers the first erasure. 404 unknown case, 409 merged, 422 no reason",
     body=ErasureIn, responses={200: ErasureOut, 403: None, 404: None, 409: None, 422: None})
def erase(case_id: str):
    """Destroy a person's identifying data; the answer says what was done."""
    body = load_body(ErasureIn())
    try:
        done = erasure.erase_person(case_id, body, actor=current_user(), remote_addr=request.remote_addr,
                                    publisher=resources().publisher, now=utcnow(), **_deps())
    except handlers.AccessRefused as exc:
        return refused(exc)
    return jsonify(ErasureOut().dump(done))


@bp.get("/api/v1/audit")
@require_roles("admin")
@doc(summary="Who viewed identifying data, and who changed who may: the audit trail by case, user, action, or "
             "only reads out of assignment (admin)", query=AuditQuery, responses={200: AuditPage})
def audit():
    """The audit trail of identifying-data reads and assignments, newest first, filtered."""
    query = load_query(AuditQuery())
    store = IntakeStore(resources().db)
    user = query.get("user")  # a username or a user id
    user_id = (identity.user_id_of(resources().identity_db, user) or user) if user else query.get("user_id")
    items, total = store.audit_page(case_id=query.get("case_id"), user_id=user_id,
                                    action=query.get("action"), out_of_assignment=query.get("out_of_assignment", False),
                                    page=query["page"])
    items = erasure.with_erasure_reasons(items, store=store, keyring=_deps()["keyring"])
    return jsonify(AuditPage().dump({"items": items, "total": total, "page": query["page"]}))


@bp.get("/api/v1/audit/verify")
@require_roles("admin")
@doc(summary="Walk the audit trail's hash chain: ok, or the first entry changed, missing, inserted or reordered, "
             "with its position (admin). Entries from before the chain are counted as unchained, not verified",
     responses={200: AuditVerification})
def audit_verify():
    """Whether the audit trail is intact (every entry's MAC and link to the one before)."""
    return jsonify(verify_audit_trail(resources().db, resources().settings))


@bp.get("/api/v1/audit/alerts")
@require_roles("admin")
@doc(summary="Users who reached the hourly limit of identifying reads, newest hour first (admin)",
     responses={200: ReadLimitAlerts})
def read_limit_alerts():
    """Who reached the limit, in which hour, and how many of their reads were refused."""
    return jsonify(ReadLimitAlerts().dump({"items": IntakeStore(resources().db).read_limit_alerts()}))


@bp.get("/api/v1/cases/<case_id>/assignees")
@require_roles("caseworker")
@doc(summary="The caseworkers assigned to a case: they read its identifying data without giving a reason "
             "(admin, or a caseworker assigned to it; 403 not_assigned for others)",
     responses={200: Assignees, 403: None, 404: None})
def assignees(case_id: str):
    """Who is assigned to a case, in the order assigned."""
    try:
        items = handlers.case_assignees(case_id, reader=current_user(), store=IntakeStore(resources().db))
    except handlers.AccessRefused as exc:
        return refused(exc)
    return jsonify(Assignees().dump({"case_id": case_id, "items": items}))


@bp.post("/api/v1/cases/<case_id>/assignees")
@require_roles("caseworker")
@doc(summary="Assign a caseworker to a case (admin, or a caseworker assigned to it; audited; adding someone "
             "already assigned changes nothing). 404 unknown case, 403 not_assigned, 422 unknown_user or "
             "not_a_caseworker", body=AssigneeIn, responses={200: Assignees, 403: None, 404: None, 422: None})
def assign(case_id: str):
    """Add a caseworker to a case's assignees; the answer lists them all."""
    body = load_body(AssigneeIn())
    try:
        items = handlers.assign_caseworker(case_id, body["username"], actor=current_user(),
                                           store=IntakeStore(resources().db),
                                           accounts=resources().identity_db["users"],
                                           remote_addr=request.remote_addr, now=utcnow())
    except handlers.AccessRefused as exc:
        return refused(exc)
    return jsonify(Assignees().dump({"case_id": case_id, "items": items}))
