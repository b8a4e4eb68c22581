"""The case service's pages: the case list, and a case with its timeline, its advocacy and a status form."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from shared import unhcr_offices
from shared.mongo import utcnow
from shared.ui import N_, login_required
from shared.web import resources

from services.case import domain, handlers
from services.case.api import case_notes
from services.case.store import CaseStore

bp = Blueprint("case_web", __name__)

ANY_ROLE = ("caseworker", "advocate", "analyst")

# The words people read for the advocacy events' values (the values themselves are not words);
# the advocacy service's pages use the same words.
ADVOCACY_TERMS = {
    "sent": N_("sent"), "acknowledged": N_("acknowledged"), "granted": N_("granted"), "denied": N_("denied"),
    "no_response": N_("no response"), "draft": N_("draft"), "issued": N_("issued"), "answered": N_("answered"),
    "response_received": N_("response received"), "urgent_appeal": N_("urgent appeal"),
    "allegation_letter": N_("allegation letter"), "communication": N_("communication"),
}


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


def _term(value: str | None) -> str:
    """An advocacy value as people read it in the page's language (an unknown value as it is)."""
    if not value:
        return "—"
    return _(ADVOCACY_TERMS[value]) if value in ADVOCACY_TERMS else value


def _render_case(case: dict, errors: dict | None = None, values: dict | None = None, status: int = 200):
    case = handlers.readable_history(case, g.user["roles"], case_notes())
    return render_template("case.html", case=case, allowed=domain.allowed_moves(case["status"]),
                           advocacy=_advocacy(case), term=_term, office_name=unhcr_offices.name, errors=errors or {}, values=values or {},
                           today=dt.date.today().isoformat()), status


@bp.get("/cases/<case_id>")
@login_required(*ANY_ROLE)
def case(case_id: str):
    """A case: its facts, its timeline, its UNHCR-access requests and appeals, and the moves it can make."""
    found = CaseStore(resources().db).get(case_id)
    if found is None:
        # A case opens moments after its first report is saved: say so, and look again shortly.
        return render_template("error.html", code=404, title=_("Not here yet"), refresh=2,
                               message=_("No case with that id yet. A new case appears here within seconds of "
                                         "its first report; this page looks again by itself.")), 404
    return _render_case(found)


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
            errors["to"] = [_("A case cannot move from %(current)s to %(to)s.", current=_(exc.current), to=_(exc.to))]
        except domain.InvalidDate:
            errors["effective_on"] = [_("The date must not be in the future.")]
        else:
            return redirect(url_for("case_web.case", case_id=case_id))
    return _render_case(found, errors, values, 422)
