"""The case service's pages: the case list, and a case with its timeline, its advocacy and a status form."""

from __future__ import annotations

import datetime as dt
import re
import time

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from shared import unhcr_offices
from shared.events import (ASYLUM_STEPS, CUSTODY, FORCED_LABOUR, ILL_TREATMENT, LABOUR_WORK, RELIABILITIES,
                           RETURN_OUTCOMES, SOURCE_TYPES)
from shared.forms import form_errors
from shared.i18n import N_
from shared.mongo import utcnow
from shared.ui import login_required
from shared.words import label
from shared.web import resources

from services.case import domain, handlers
from services.case.api import case_notes
from services.case.schemas import AfterReturnIn, AsylumIn
from services.case.store import CaseStore

bp = Blueprint("case_web", __name__)

ANY_ROLE = ("caseworker", "advocate", "analyst")

@bp.get("/")
@login_required(*ANY_ROLE)
def index():
    """The case list is the start page."""
    return redirect(url_for("case_web.cases"))


@bp.get("/cases")
@login_required(*ANY_ROLE)
def cases():
    """Cases, newest first, filtered by status and province."""
    status = request.args.get("status") if request.args.get("status") in domain.STATUSES else None
    province = request.args.get("province", "").strip() or None
    imminent = request.args.get("imminent") == "1"
    page = max(1, request.args.get("page", 1, type=int) or 1)
    items, total = CaseStore(resources().db).page(status=status, province=province, page=page,
                                                  imminent=True if imminent else None)
    return render_template("cases.html", items=items, total=total, page=page, status=status or "",
                           province=province or "", imminent=imminent, statuses=domain.STATUSES,
                           page_size=CaseStore.PAGE_SIZE)


def _advocacy(case: dict) -> dict:
    """The case's advocacy summary, with a draft's due time as a datetime for the page to format."""
    summary = domain.advocacy_summary(case)
    appeals = [{**a, "due_by": dt.datetime.fromisoformat(a["due_by"]) if a.get("due_by") else None}
               for a in summary["appeals"]]
    return {**summary, "appeals": appeals}


def _render_case(case: dict, errors: dict | None = None, values: dict | None = None, status: int = 200,
                 record_form: str | None = None):
    """The case page; `errors` and `values` belong to the status form, or to the after-return or
    asylum form when `record_form` names it."""
    case = handlers.readable_history(case, g.user["roles"], case_notes())
    status_errors, status_values = ({}, {}) if record_form else (errors or {}, values or {})
    return render_template("case.html", case=case, allowed=domain.allowed_moves(case["status"]),
                           advocacy=_advocacy(case), office_name=unhcr_offices.name, errors=status_errors,
                           values=status_values, today=dt.date.today().isoformat(),
                           returned=domain.has_been_returned(case), choices=RECORD_CHOICES,
                           record_form=record_form, record_errors=(errors or {}) if record_form else {},
                           record_values=(values or {}) if record_form else {}), status


@bp.get("/cases/<case_id>")
@login_required(*ANY_ROLE)
def case(case_id: str):
    """A case: its facts, its timeline, its UNHCR-access requests and appeals, and the moves it can make."""
    store = CaseStore(resources().db)
    found = store.get(case_id)
    if found is None and _CASE_ID.fullmatch(case_id):
        found = _when_it_opens(store, case_id)
    if found is None:
        # No page that reloads itself (people using screen readers lose their place): a link to look again.
        return render_template("error.html", code=404, title=_("Not here yet"), again=request.script_root + request.path,
                               message=_("No case with that id yet. A new case appears here within seconds of "
                                         "its first report: look again in a moment.")), 404
    return _render_case(found)


_CASE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OPENING_WAIT_S = 5.0


def _when_it_opens(store: CaseStore, case_id: str, wait_s: float | None = None):
    """A case opens moments after its first report is saved (intake's event, then the case
    consumer): a page asked for a case id that soon waits a few seconds for it to open."""
    deadline = time.monotonic() + (OPENING_WAIT_S if wait_s is None else wait_s)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        found = store.get(case_id)
        if found is not None:
            return found
    return None


@bp.post("/cases/<case_id>/transition")
@login_required("caseworker")
def transition(case_id: str):
    """Change the status from the form; a refused move or a bad date is shown on the page."""
    store = CaseStore(resources().db)
    found = store.get(case_id)
    if found is None:
        return render_template("error.html", code=404, title=_("Not found"), message=_("No case with that id.")), 404
    values = request.form
    errors: dict[str, list[str]] = {}
    try:
        effective_on = dt.date.fromisoformat(values.get("effective_on", ""))
    except ValueError:
        errors["effective_on"] = [_("Enter the date it happened.")]
    to = values.get("to", "")
    if to not in domain.STATUSES:
        errors["to"] = [_("Choose the new status.")]
    if not errors:
        try:
            handlers.change_status(case_id, to=to, effective_on=effective_on, reason=values.get("reason") or None,
                                   actor=g.user["id"], store=store, publisher=resources().publisher, now=utcnow(),
                                   notes=case_notes())
        except domain.IllegalTransition as exc:
            errors["to"] = [_("A case cannot move from %(current)s to %(to)s.", current=label(exc.current, "case_status"),
                                to=label(exc.to, "case_status"))]
        except domain.InvalidDate:
            errors["effective_on"] = [_("The date must not be in the future.")]
        else:
            return redirect(url_for("case_web.case", case_id=case_id))
    return _render_case(found, errors, values, 422)


# --- after return and asylum ---------------------------------------------------------------------

RECORD_CHOICES = {"source_type": SOURCE_TYPES, "source_reliability": RELIABILITIES, "custody": CUSTODY,
                  "outcome": RETURN_OUTCOMES, "forced_labour": FORCED_LABOUR, "work": LABOUR_WORK,
                  "ill_treatment": ILL_TREATMENT, "procedure": tuple(ASYLUM_STEPS), "steps": ASYLUM_STEPS}
# Messages the records' schemas give that are not marshmallow's own (shared/forms.py has those).
RECORD_MESSAGES = (N_("Between 1 and 120 characters."), N_("Years from 0 to 50, in halves."),
                   N_("Not a valid number."), N_("Name things, never people: this looks like a phone number."),
                   N_("Name things, never people: this looks like an e-mail address."))
NAMED_FIELDS = ("products", "facilities", "companies")  # one name a line on the form


def _after_return_command(form) -> dict:
    """The after-return form as the API's body: blanks left out, lists from checkboxes and lines."""
    body: dict = {k: form.get(k, "").strip() for k in ("learned_on", "effective_on", "source_type",
                                                       "source_reliability", "custody", "outcome", "forced_labour",
                                                       "sentence_years")}
    body = {k: v for k, v in body.items() if v}
    body["effective_on"] = body.get("effective_on")
    body["sentence_years"] = body.get("sentence_years")
    for name in ("work", "ill_treatment"):
        body[name] = form.getlist(name)
    for name in NAMED_FIELDS:
        body[name] = [line.strip() for line in form.get(name, "").splitlines() if line.strip()]
    return body


def _asylum_command(form) -> dict:
    return {k: v for k in ("procedure", "step", "effective_on", "source_type", "source_reliability")
            if (v := form.get(k, "").strip())}


def _record_from_form(case_id: str, form_name: str, schema, command, write):
    """Load a record form with the API's schema and store it; the case page again with each
    field's error (in the page's language) if it cannot be."""
    store = CaseStore(resources().db)
    found = store.get(case_id)
    if found is None:
        return render_template("error.html", code=404, title=_("Not found"), message=_("No case with that id.")), 404
    errors: dict[str, list[str]] = {}
    try:
        cmd = schema.load(command(request.form))
    except ValidationError as exc:
        errors = form_errors(exc, lambda path: path.split(".")[0])
    else:
        try:
            write(case_id, cmd, actor=g.user["id"], store=store, publisher=resources().publisher, now=utcnow())
        except domain.MergedDuplicate as exc:
            errors["_form"] = [_(domain.MERGED_ELSEWHERE, case_id=exc.into)]
        except domain.NotReturned:
            errors["_form"] = [_(domain.NOT_RETURNED)]
        except domain.InvalidRecord as exc:
            errors = {name: [_(m) for m in messages] for name, messages in exc.fields.items()}
        else:
            return redirect(url_for("case_web.case", case_id=case_id, _anchor=form_name.replace("_", "-")))
    return _render_case(found, errors, request.form, 422, record_form=form_name)


@bp.post("/cases/<case_id>/after-return")
@login_required("caseworker")
def after_return(case_id: str):
    """Record news after return from the form; what is wrong is shown beside its field."""
    return _record_from_form(case_id, "after_return", AfterReturnIn(), _after_return_command,
                             handlers.record_after_return)


@bp.post("/cases/<case_id>/asylum")
@login_required("caseworker")
def asylum(case_id: str):
    """Record a step of an asylum procedure from the form."""
    return _record_from_form(case_id, "asylum", AsylumIn(), _asylum_command, handlers.record_asylum)
