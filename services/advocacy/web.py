"""The advocacy service's pages for advocacy staff: the dashboard (urgent first), appeals and
UNHCR-access requests with their forms, and their letters. The forms load with the API's own
schemas and call the API's own handlers; letters are made as the API makes them."""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import format_date, format_timedelta, gettext as _
from marshmallow import Schema, ValidationError

from shared import unhcr_offices
from shared.forms import form_errors
from shared.hardening import as_document
from shared.i18n import N_
from shared.mongo import utcnow
from shared.ui import login_required
from shared.web import resources

from services.advocacy import domain, handlers, letters_for
from services.advocacy.schemas import (AnswerIn, AppealIn, AppealQuery, IssueIn, LetterQuery, RequestIn, RequestQuery,
                                       RequestResponseIn)
from services.advocacy.store import AdvocacyStore

bp = Blueprint("advocacy_web", __name__)

READERS = ("advocate", "caseworker", "analyst")  # as the API: anyone may read, advocates write
WRITERS = {"advocate", "admin"}
RECENT_APPEALS = 20
DASHBOARD_ROWS = 30  # drafts, and requests awaiting an answer, the dashboard shows (the most urgent)
FORM = "_form"  # the errors key of a message about the whole form, not one field

# Schema messages only the advocacy forms meet.
N_("Name each recipient once.")
N_("Choose an office from the list of UNHCR offices.")

# The domain's refusals (domain.NotAllowed) as the pages say them: the start of the domain's
# message, the form field it is about (FORM: the whole form), and the page's words.
NOT_ALLOWED = (
    ("Only a draft can be issued", FORM, N_("Only a draft can be issued, and this appeal is no longer a draft.")),
    ("Name at least one recipient", "recipients", N_("Choose at least one recipient.")),
    ("An issued appeal names at least one recipient", "recipients",
     N_("An appeal with a date of issue names at least one recipient; leave the date empty to keep it as a draft.")),
    ("issued_on must not be in the future", "issued_on", N_("Must not be in the future.")),
    ("A draft has not been sent", FORM, N_("A draft has not been sent; issue it first.")),
    ("received_on must be between the issue date and today", "received_on",
     N_("Must be between the date the appeal was issued and today.")),
    ("This request was already answered", FORM, N_("This request has its final answer already.")),
    ("received_on must be between the date sent and today", "received_on",
     N_("Must be between the date the request was sent and today.")),
)


@bp.app_template_filter("office_name")
def office_name(value: str | None, lang: str = "en") -> str:
    """A request's office as its name in the page's language (never an older request's typed text)."""
    return unhcr_offices.name(value, lang) or "—"


def field_labels() -> dict[str, str]:
    """The forms' field names as the pages show them, for the error summaries."""
    return {"case_ids": _("Case ids"), "kind": _("Kind"), "recipients": _("Recipients"),
            "issued_on": _("Date it was sent"), "office": _("Office"), "channel": _("Channel"),
            "sent_on": _("Sent on"), "outcome": _("Outcome"), "received_on": _("Date it was received"),
            "status": _("Status"), "case_id": _("Case id"), "overdue": _("Follow-up"), "page": _("Page")}


def time_left_text(left: dt.timedelta | None) -> str | None:
    """The time until a draft is due, as people read it: 'in 5 hours', 'overdue by 2 hours'."""
    if left is None:
        return None
    if left >= dt.timedelta(0):
        return _("in %(time)s", time=format_timedelta(left, granularity="minute", threshold=1))
    return _("overdue by %(time)s", time=format_timedelta(-left, granularity="minute", threshold=1))


def appeal_view(appeal: dict, now: dt.datetime) -> dict:
    """An appeal with what its pages show besides the record: time left and whether it is overdue."""
    left = domain.time_left(appeal, now)
    episode = appeal.get("episode") or {}
    return {**appeal, "time_left": time_left_text(left), "overdue": left is not None and left < dt.timedelta(0),
            "from_clock": appeal.get("origin") == domain.DEPORTATION_CLOCK, "episode_ended_at": episode.get("ended_at")}


def request_view(access_request: dict, today: dt.date) -> dict:
    """A UNHCR-access request with whether its follow-up is overdue."""
    return {**access_request, "overdue": domain.is_overdue(access_request, today)}


def split_case_ids(text: str) -> list[str]:
    """Case ids typed one per line or separated by commas (or spaces)."""
    return [part for part in re.split(r"[\s,;]+", text) if part]


def _store() -> AdvocacyStore:
    return AdvocacyStore(resources().db)


def _settings():
    return resources().settings


def _today() -> str:
    return utcnow().date().isoformat()


def _is_writer() -> bool:
    return bool(WRITERS.intersection(g.user["roles"]))


def _not_found(message: str):
    return render_template("error.html", code=404, title=_("Not found"), message=message), 404


def _load(schema: Schema, body: dict) -> tuple[dict | None, dict]:
    """The form's body loaded by the API's schema: (command, {}) or (None, errors by field)."""
    try:
        return schema.load(body), {}
    except ValidationError as exc:
        errors = form_errors(exc, field_of=lambda path: path.split(".")[0])
        if "recipients" in exc.messages and body.get("recipients") == []:
            errors["recipients"] = [_("Choose at least one recipient.")]  # not "a length between 1 and 30"
        return None, errors


def _refusal(exc: Exception) -> tuple[dict, list[str] | None]:
    """A handler's refusal as the form's errors, and the cases refused for want of consent."""
    if isinstance(exc, domain.NoConsent):
        return {}, exc.case_ids
    if isinstance(exc, handlers.UnknownCases):
        return {"case_ids": [_("Advocacy does not know these cases: %(ids)s. Check the ids; a new case reaches "
                               "advocacy within seconds of its first report.", ids=", ".join(exc.case_ids))]}, None
    if isinstance(exc, handlers.UnknownRecipients):
        return {"recipients": [_("Not on the list of recipients: %(names)s", names=", ".join(exc.names))]}, None
    if isinstance(exc, domain.NotAllowed):
        for start, field, msgid in NOT_ALLOWED:
            if str(exc).startswith(start):
                return {field: [_(msgid)]}, None
        return {FORM: [str(exc)]}, None
    raise exc


REFUSALS = (domain.NoConsent, handlers.UnknownCases, handlers.UnknownRecipients, domain.NotAllowed)


def _paging(filters: dict, query: dict | None) -> dict:
    """What a list page needs for its page links: the filters as typed (the page number apart),
    the page shown and the page size."""
    return {"filters": {k: v for k, v in filters.items() if k != "page"}, "page": (query or {}).get("page", 1),
            "page_size": AdvocacyStore.PAGE_SIZE}


def _present(form, *names: str) -> dict:
    """The named fields of a form that were filled in (an empty field is a missing one)."""
    return {name: form.get(name, "").strip() for name in names if form.get(name, "").strip()}


# --- the dashboard ------------------------------------------------------------------------------


@bp.get("/")
@login_required("advocate")
def dashboard():
    """Urgent first: the drafts due soonest with the time left, then the UNHCR-access requests
    awaiting an answer whose follow-up comes first (overdue first), then the appeals changed last;
    each part links to its whole list."""
    store, now = _store(), utcnow()
    drafts, draft_total = store.urgent_drafts(DASHBOARD_ROWS)
    awaited, awaited_total = store.awaited_requests(DASHBOARD_ROWS)
    return render_template("dashboard.html", drafts=[appeal_view(a, now) for a in drafts], draft_total=draft_total,
                           open_requests=[request_view(r, now.date()) for r in awaited], awaited_total=awaited_total,
                           recent=[appeal_view(a, now) for a in store.recently_changed_appeals(RECENT_APPEALS)])


# --- appeals ------------------------------------------------------------------------------------


@bp.get("/appeals")
@login_required(*READERS)
def appeals():
    """Appeals filtered by status and case: drafts by due time first, then the rest newest first."""
    filters = _present(request.args, *request.args.keys())
    query, errors = _load(AppealQuery(), filters)
    items, total = [], 0
    if not errors:
        found, total = _store().page_appeals(case_id=query.get("case_id"), status=query.get("status"),
                                             page=query["page"])
        items = [appeal_view(a, utcnow()) for a in found]
    return render_template("appeals.html", items=items, total=total, **_paging(filters, query), errors=errors,
                           statuses=domain.APPEAL_STATUSES, labels=field_labels()), 422 if errors else 200


@bp.route("/appeals/new", methods=["GET", "POST"])
@login_required("advocate")
def new_appeal():
    """A new appeal: issued if the date it was sent is given, else a draft. Errors are shown
    next to their fields with everything typed kept; nothing is stored until all is valid."""
    store = _store()
    values, chosen, errors, refused = {"case_ids": request.args.get("case_id", ""), "kind": "urgent_appeal"}, [], {}, None
    if request.method == "POST":
        values, chosen = request.form, request.form.getlist("recipients")
        body = {**_present(values, "kind", "issued_on"), "recipients": chosen}
        if split_case_ids(values.get("case_ids", "")):
            body["case_ids"] = split_case_ids(values["case_ids"])
        cmd, errors = _load(AppealIn(), body)
        if cmd is not None:
            try:
                created = handlers.create_appeal(cmd, actor=g.user["id"], store=store, publisher=resources().publisher,
                                                 settings=_settings(), now=utcnow())
            except REFUSALS as exc:
                errors, refused = _refusal(exc)
            else:
                flash(_("The appeal was issued.") if created["status"] == "issued" else _("The draft was saved."))
                return redirect(url_for("advocacy_web.appeal", appeal_id=created["appeal_id"]))
    status = 409 if refused else 422 if errors else 200
    return render_template("appeal_form.html", values=values, chosen=chosen, errors=errors, refused=refused,
                           recipients=store.list_recipients(), kinds=domain.APPEAL_KINDS, labels=field_labels(),
                           today=_today()), status


@bp.get("/appeals/<appeal_id>")
@login_required(*READERS)
def appeal(appeal_id: str):
    """An appeal: its cases, recipients, state, responses and history; the forms that move it on;
    its letter."""
    found = _store().appeals.get(appeal_id)
    if found is None:
        return _not_found(_("No appeal with that id."))
    return _render_appeal(found)


def _render_appeal(found: dict, *, form: str | None = None, values=None, chosen=None, errors=None, refused=None,
                   status: int = 200):
    """The appeal page; `form` names the form ("issue" or "answer") whose errors are shown."""
    store = _store()
    default_chosen = found["recipients"]
    return render_template(
        "appeal.html", appeal=appeal_view(found, utcnow()), writer=_is_writer(), form=form,
        values=values or {"issued_on": _today(), "received_on": _today()},
        chosen=default_chosen if chosen is None else chosen, errors=errors or {}, refused=refused,
        recipients=store.list_recipients(), outcomes=domain.APPEAL_OUTCOMES, labels=field_labels(),
        usernames=_usernames(found), today=_today()), status


@bp.post("/appeals/<appeal_id>/issue")
@login_required("advocate")
def issue(appeal_id: str):
    """Issue a draft: the date it was sent and its recipients; consent is checked again."""
    store = _store()
    found = store.appeals.get(appeal_id)
    if found is None:
        return _not_found(_("No appeal with that id."))
    chosen = request.form.getlist("recipients")
    cmd, errors = _load(IssueIn(), {**_present(request.form, "issued_on"), "recipients": chosen})
    refused = None
    if cmd is not None:
        try:
            handlers.issue_appeal(appeal_id, cmd, actor=g.user["id"], store=store, publisher=resources().publisher,
                                  now=utcnow())
        except REFUSALS as exc:
            errors, refused = _refusal(exc)
        else:
            flash(_("The appeal was issued on %(date)s.", date=format_date(cmd["issued_on"], "long")))
            return redirect(url_for("advocacy_web.appeal", appeal_id=appeal_id))
    return _render_appeal(found, form="issue", values=request.form, chosen=chosen, errors=errors, refused=refused,
                          status=409 if refused else 422)


@bp.post("/appeals/<appeal_id>/answer")
@login_required("advocate")
def answer(appeal_id: str):
    """Record the answer to an issued appeal, or that none came."""
    store = _store()
    found = store.appeals.get(appeal_id)
    if found is None:
        return _not_found(_("No appeal with that id."))
    cmd, errors = _load(AnswerIn(), _present(request.form, "outcome", "received_on"))
    if cmd is not None:
        try:
            handlers.answer_appeal(appeal_id, cmd, actor=g.user["id"], store=store, publisher=resources().publisher,
                                   now=utcnow())
        except REFUSALS as exc:
            errors, _refused = _refusal(exc)
        else:
            flash(_("The answer was recorded."))
            return redirect(url_for("advocacy_web.appeal", appeal_id=appeal_id))
    return _render_appeal(found, form="answer", values=request.form, errors=errors, status=422)


@bp.get("/appeals/<appeal_id>/letter")
@login_required("advocate")
def appeal_letter(appeal_id: str):
    """The appeal's letter (?lang=en|ko&format=md|html|pdf&download=1), made as the API makes it."""
    found = _store().appeals.get(appeal_id)
    if found is None:
        return _not_found(_("No appeal with that id."))
    return _letter(found, "appeal")


# --- UNHCR-access requests ----------------------------------------------------------------------


@bp.get("/requests")
@login_required(*READERS)
def requests_list():
    """UNHCR-access requests filtered by status, case and overdue follow-up; newest first."""
    filters = _present(request.args, *request.args.keys())
    query, errors = _load(RequestQuery(), filters)
    items, total = [], 0
    if not errors:
        today = utcnow().date()
        found, total = _store().page_requests(today=today, case_id=query.get("case_id"), status=query.get("status"),
                                              overdue=query.get("overdue"), page=query["page"])
        items = [request_view(r, today) for r in found]
    return render_template("requests.html", items=items, total=total, **_paging(filters, query), errors=errors,
                           statuses=domain.REQUEST_STATUSES, labels=field_labels()), 422 if errors else 200


@bp.route("/requests/new", methods=["GET", "POST"])
@login_required("advocate")
def new_request():
    """A UNHCR-access request sent for one or more cases; errors next to their fields."""
    values = {"case_ids": request.args.get("case_id", ""), "office": "beijing", "channel": "email",
              "sent_on": _today()}
    errors, refused = {}, None
    if request.method == "POST":
        values = request.form
        body = _present(values, "office", "channel", "sent_on")
        if split_case_ids(values.get("case_ids", "")):
            body["case_ids"] = split_case_ids(values["case_ids"])
        cmd, errors = _load(RequestIn(), body)
        if cmd is not None:
            try:
                created = handlers.create_request(cmd, actor=g.user["id"], store=_store(),
                                                  publisher=resources().publisher, settings=_settings(), now=utcnow())
            except REFUSALS as exc:
                errors, refused = _refusal(exc)
            else:
                flash(_("The request was recorded."))
                return redirect(url_for("advocacy_web.access_request", request_id=created["request_id"]))
    status = 409 if refused else 422 if errors else 200
    return render_template("request_form.html", values=values, errors=errors, refused=refused,
                           channels=domain.CHANNELS, offices=unhcr_offices.CODES, labels=field_labels(),
                           today=_today()), status


@bp.get("/requests/<request_id>")
@login_required(*READERS)
def access_request(request_id: str):
    """A UNHCR-access request with its responses, its follow-up and a form for the next response."""
    found = _store().requests.get(request_id)
    if found is None:
        return _not_found(_("No request with that id."))
    return _render_request(found)


def _render_request(found: dict, *, values=None, errors=None, status: int = 200):
    return render_template(
        "request.html", access_request=request_view(found, utcnow().date()), writer=_is_writer(),
        values=values or {"received_on": _today()}, errors=errors or {}, outcomes=domain.REQUEST_OUTCOMES,
        final=found["status"] in domain.FINAL_OUTCOMES, labels=field_labels(), usernames=_usernames(found),
        today=_today()), status


@bp.post("/requests/<request_id>/responses")
@login_required("advocate")
def respond(request_id: str):
    """Record UNHCR's response: an acknowledgement sets the next follow-up, a final answer ends it."""
    store = _store()
    found = store.requests.get(request_id)
    if found is None:
        return _not_found(_("No request with that id."))
    cmd, errors = _load(RequestResponseIn(), _present(request.form, "outcome", "received_on"))
    if cmd is not None:
        try:
            handlers.record_request_response(request_id, cmd, actor=g.user["id"], store=store,
                                             publisher=resources().publisher, settings=_settings(), now=utcnow())
        except REFUSALS as exc:
            errors, _refused = _refusal(exc)
        else:
            flash(_("The response was recorded."))
            return redirect(url_for("advocacy_web.access_request", request_id=request_id))
    return _render_request(found, values=request.form, errors=errors, status=422)


@bp.get("/requests/<request_id>/letter")
@login_required("advocate")
def request_letter(request_id: str):
    """The request's letter to UNHCR (?lang=en|ko&format=md|html|pdf&download=1)."""
    found = _store().requests.get(request_id)
    if found is None:
        return _not_found(_("No request with that id."))
    return _letter(found, "unhcr_access")


# --- letters ------------------------------------------------------------------------------------


def _letter(record: dict, letter: str):
    """The letter for the browser (inline, or as a download); named cases' names are asked of
    intake, which audits the read."""
    query, errors = _load(LetterQuery(), _present(request.args, *request.args.keys()))
    if errors:
        return render_template("error.html", code=422, title=_("No such letter"),
                               message=_("Choose English or Korean, and Markdown, HTML or PDF.")), 422
    try:
        content, mimetype, filename = letters_for.render(
            record, letter, lang=query["lang"], fmt=query["format"], store=_store(), settings=_settings(),
            signing_key=resources().service_signing_key(), requested_by=g.user["username"], today=utcnow().date())
    except domain.NoConsent as exc:
        return render_template("error.html", code=409, title=_("No letter"),
                               message=_("The advocacy consent of these cases is now “none”: a letter may neither "
                                         "name nor describe them: %(ids)s.", ids=", ".join(exc.case_ids))), 409
    except letters_for.NamesUnavailable:
        return render_template("error.html", code=503, title=_("The letter cannot be made just now"),
                               message=_("This letter names people, and their names could not be fetched from the "
                                         "intake service. Try again in a moment.")), 503
    disposition = "attachment" if query.get("download") else "inline"
    return as_document(Response(content, mimetype=mimetype,
                                headers={"Content-Disposition": f'{disposition}; filename="{filename}"'}))


def _usernames(record: dict) -> dict[str, str]:
    """user id -> username of the people who changed this record, for its history."""
    ids = {h.get("by") for h in record.get("history", [])} | {r.get("by") for r in record.get("responses", [])}
    ids.discard(None)
    if not ids:
        return {}
    users = resources().identity_db["users"].find({"user_id": {"$in": sorted(ids)}}, {"user_id": 1})
    return {u["user_id"]: u["_id"] for u in users}
