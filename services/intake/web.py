"""Intake's pages for caseworkers: the report list, the new-report form and the report view
(need to know: a caseworker not assigned to the case says why first, and reads are limited per
hour); and for admins, the audit trail with its read-limit alerts. The form is validated by the
same marshmallow schema as the JSON API."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import format_time, gettext as _
from marshmallow import ValidationError

from shared import identity
from shared.errors import flatten_messages
from shared.events import CONSENT_ADVOCACY, RELIABILITIES, SEXES, SOURCE_TYPES, VULNERABILITIES
from shared.forms import translate_message
from shared.i18n import N_
from shared.mongo import is_server_internal, is_transient, utcnow
from shared.ui import login_required
from shared.web import resources

from services.intake import domain, erasure, handlers
from services.intake.audit import verify as verify_audit_trail
from services.intake.schemas import ReportIn
from services.intake.store import IntakeStore

bp = Blueprint("intake_web", __name__)
log = logging.getLogger(__name__)

CHECKBOXES = ("risk.deportation_imminent", "risk.trafficking_victim", "consent.statistics")
NUMBERS = ("person.birth_year",)
CHOICES = {"sexes": SEXES, "consents": CONSENT_ADVOCACY, "reliabilities": RELIABILITIES,
           "source_types": SOURCE_TYPES, "vulnerabilities": VULNERABILITIES}


# The report form's own validation messages, so that extraction puts them in the catalog; the
# messages every form meets, and translate_message, are in shared/forms.py.
N_("Must be an ISO 3166 alpha-2 country code, such as KP.")
N_("List each vulnerability once.")
N_("Does not match birth_year.")

# Reasons the pages write into the audit trail themselves; the audit page translates them.
SYSTEM_REASONS = (N_("web view"),)

# Reasons a caseworker gave to read a case they are not assigned to, by report id, kept in the
# session for a while so that the report page and its forms' redirects need not ask again.
# Only a form (POST, with its CSRF token) records one: a link with ?reason= cannot make someone
# read out of assignment without knowing it.
GIVEN_REASONS = "intake_reasons"
REASON_KEPT_SECONDS = 15 * 60
REASONS_KEPT = 5
# What the audit page says of the first entry where the chain breaks (shared/audit.py).
CHAIN_PROBLEMS = {"changed": N_("an entry was changed"), "missing": N_("an entry is missing"),
                  "inserted": N_("an entry was inserted"), "reordered": N_("entries were reordered")}
# The audit page shows the read-limit alerts of this long.
ALERTS_SHOWN_FOR = dt.timedelta(days=7)


def field_labels() -> dict[str, str]:
    """The form's field names as the page shows them, for the error summary."""
    return {"person.full_name": _("Full name"), "person.sex": _("Sex"), "person.birth_year": _("Birth year"),
            "person.birth_date": _("Birth date"), "person.nationality": _("Nationality (ISO code)"),
            "person.hometown": _("Hometown"), "person.family_contact": _("Family contact"),
            "detention.detained_on": _("Detained on"), "detention.province": _("Province"),
            "detention.city": _("City"), "detention.facility": _("Facility"),
            "risk.expected_deportation_on": _("Expected deportation on"), "risk.vulnerabilities": _("Vulnerabilities"),
            "source.type": _("Source type"), "source.reliability": _("Reliability"),
            "source.received_on": _("Received on"), "consent.advocacy": _("Advocacy consent"), "notes": _("Notes")}


def _deps() -> dict:
    return {"store": IntakeStore(resources().db), "keyring": current_app.extensions["intake_keyring"]}


def form_to_report(form) -> dict:
    """The nested report body from flat form fields named by their dotted paths."""
    body: dict = {}
    for name in form:
        if name == "csrf_token" or "." not in name and name != "notes":
            continue
        value = form.getlist(name) if name == "risk.vulnerabilities" else form.get(name, "").strip()
        if value in ("", []):
            continue
        if name in CHECKBOXES:
            value = True
        elif name in NUMBERS:
            value = int(value) if value.lstrip("-").isdigit() else value
        section, _dot, field = name.partition(".")
        if field:
            body.setdefault(section, {})[field] = value
        else:
            body[section] = value
    for name in CHECKBOXES:
        section, _dot, field = name.partition(".")
        body.setdefault(section, {}).setdefault(field, False)
    body.setdefault("risk", {}).setdefault("vulnerabilities", [])
    for section in ("person", "detention", "source", "consent"):
        body.setdefault(section, {})
    return body


@bp.get("/")
@login_required("caseworker")
def index():
    """Caseworkers start at the report list."""
    return redirect(url_for("intake_web.reports"))


@bp.get("/reports")
@login_required("caseworker")
def reports():
    """Reports, newest first, filtered by case id or province; no identifying data in the list."""
    case_id = request.args.get("case_id", "").strip()
    province = request.args.get("province", "").strip()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    items, total = IntakeStore(resources().db).page(case_id=case_id or None, province=province or None, page=page)
    return render_template("reports.html", items=items, total=total, page=page, case_id=case_id, province=province,
                           page_size=IntakeStore.PAGE_SIZE)


@bp.get("/audit")
@login_required("admin")
def audit():
    """Who viewed identifying data, newest first, filtered by case and by user (a username or a
    user id); admins only. With ?verify=1 the page first walks the trail's chain (on demand: the
    walk reads every entry) and says whether it is intact."""
    case_id = request.args.get("case_id", "").strip()
    user = request.args.get("user", "").strip()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    user_id = (identity.user_id_of(resources().identity_db, user) or user) if user else None
    flagged = request.args.get("out_of_assignment") == "1"
    store = IntakeStore(resources().db)
    items, total = store.audit_page(case_id=case_id or None, user_id=user_id, page=page, out_of_assignment=flagged)
    items = erasure.with_erasure_reasons(items, store=store, keyring=_deps()["keyring"])
    alerts = store.read_limit_alerts(since=domain.read_hour(utcnow()) - ALERTS_SHOWN_FOR)
    filters = {name: value for name, value in (("case_id", case_id), ("user", user),
                                                ("out_of_assignment", "1" if flagged else "")) if value}
    chain = verify_audit_trail(resources().db, resources().settings) if request.args.get("verify") == "1" else None
    return render_template("audit.html", items=items, total=total, page=page, case_id=case_id, user_filter=user,
                           flagged=flagged, filters=filters, page_size=IntakeStore.PAGE_SIZE,
                           system_reasons=SYSTEM_REASONS, alerts=alerts, chain=chain,
                           chain_problems=CHAIN_PROBLEMS)


@bp.route("/reports/new", methods=["GET", "POST"])
@login_required("caseworker")
def new_report():
    """The new-report form: errors next to their fields, everything typed kept, nothing stored
    until the whole report is valid."""
    values, errors, unsaved = {"submission_id": str(uuid.uuid4())}, {}, False
    if request.method == "POST":
        values = request.form.to_dict()
        key = values.get("submission_id", "")
        if not handlers.SUBMISSION_KEY.match(key):
            values["submission_id"] = key = str(uuid.uuid4())  # a form from before submission ids
        try:
            report = ReportIn().load(form_to_report(request.form))
        except ValidationError as exc:
            errors = {field: [translate_message(m) for m in messages]
                      for field, messages in flatten_messages(exc.messages).items()}
        else:
            try:
                created = handlers.submit_report(report, actor=g.user["id"], actor_name=g.user["username"],
                                                 publisher=resources().publisher, now=utcnow(), submission_key=key,
                                                 **_deps())
            except handlers.SubmissionConflict:
                values["submission_id"] = str(uuid.uuid4())  # changed after it was saved: a new report
                unsaved = "changed"
            except Exception as exc:
                if not (is_transient(exc) or is_server_internal(exc)):
                    raise
                log.warning("report form not saved: database unavailable (%s)", type(exc).__name__)
                unsaved = "database"
            else:
                return redirect(url_for("intake_web.report", report_id=created["report_id"], created=1,
                                        matched=int(created["matched_existing_case"])))
    status = 422 if errors else 503 if unsaved == "database" else 409 if unsaved else 200
    chosen = request.form.getlist("risk.vulnerabilities") if request.method == "POST" else []
    return render_template("report_form.html", values=values, errors=errors, chosen=chosen, labels=field_labels(),
                           unsaved=unsaved, **CHOICES), status


def _given_reason(report_id: str) -> str | None:
    """The reason this session gave to read this report out of assignment, while it is kept."""
    reason, until = (session.get(GIVEN_REASONS) or {}).get(report_id, (None, 0))
    return reason if until > time.time() else None


def _keep_reason(report_id: str, reason: str) -> None:
    now = time.time()
    kept = {k: v for k, v in (session.get(GIVEN_REASONS) or {}).items() if v[1] > now and k != report_id}
    kept[report_id] = [reason, now + REASON_KEPT_SECONDS]
    session[GIVEN_REASONS] = dict(sorted(kept.items(), key=lambda item: item[1][1])[-REASONS_KEPT:])


def _refused_page(report_id: str, exc: handlers.AccessRefused):
    """The page for a read refused: the reason form (not assigned), or the hourly limit reached."""
    if isinstance(exc, handlers.ReadLimitReached):
        again = utcnow() + dt.timedelta(seconds=exc.retry_after)
        message = _("You have read identifying data %(limit)s times in this hour, the most allowed. You can read "
                    "again from %(time)s. The administrators have been told.",
                    limit=exc.limit, time=format_time(again, "short"))
        return render_template("error.html", code=429, title=_("Read limit reached"), message=message), 429, \
            {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, handlers.PersonErased):
        return render_template("error.html", code=410, title=_("Erased"),
                               message=_("This person's identifying data was erased on request. It can no longer "
                                         "be read.")), 410
    return render_template("report_access.html", report_id=report_id, reason="", error=None), 403


@bp.get("/reports/<report_id>")
@login_required("caseworker")
def report(report_id: str):
    """One report with its identifying data; the view is written to the audit trail. A caseworker
    not assigned to the case is asked why first (report_access)."""
    given = _given_reason(report_id)
    try:
        shown = handlers.read_report(report_id, reader=g.user, reason=given, remote_addr=request.remote_addr,
                                     now=utcnow(), reads_per_hour=resources().settings.identifying_reads_per_hour,
                                     fallback_reason="web view", **_deps())  # never a reason from a link
    except handlers.AccessRefused as exc:
        return _refused_page(report_id, exc)
    if shown is None:
        return render_template("error.html", code=404, title=_("Not found"),
                               message=_("No report with that id.")), 404
    duplicates = _possible_duplicates(report_id, shown["case_id"], given)
    return render_template("report.html", report=shown, created=request.args.get("created"),
                           matched=request.args.get("matched") == "1", duplicates=duplicates,
                           merged=request.args.get("merged"), ruled_out=request.args.get("distinct"),
                           reason_given=given is not None, **_consent_form(shown["case_id"]))


@bp.post("/reports/<report_id>/access")
@login_required("caseworker")
def report_access(report_id: str):
    """A caseworker says why they read a case they are not assigned to (or compare names with
    cases they are not assigned to); the report page then shows it, flagged in the audit trail."""
    typed = request.form.get("reason", "")
    reason = domain.clean_reason(typed)
    if not domain.valid_reason(reason):
        return render_template("report_access.html", report_id=report_id, reason=typed,
                               error=_("Give a reason of 3 to 200 characters.")), 422
    _keep_reason(report_id, reason)
    return redirect(url_for("intake_web.report", report_id=report_id))


def _possible_duplicates(report_id: str, case_id: str, reason: str | None) -> list[dict]:
    """Near matches for review, each with the closest report's name (that read is audited too);
    the name of a case the reader is not assigned to only with the reason they gave."""
    deps = _deps()
    items = handlers.possible_duplicates(report_id, store=deps["store"]) or []
    if items:
        names = handlers.names_for_review([i["report_id"] for i in items], reader=g.user,
                                          context=f"duplicate review of case {case_id}", reason=reason,
                                          remote_addr=request.remote_addr, now=utcnow(),
                                          reads_per_hour=resources().settings.identifying_reads_per_hour, **deps)
        for item in items:
            item["full_name"] = names.get(item["report_id"])
            item["withheld"] = item["report_id"] not in names
    return items


@bp.post("/cases/<case_id>/merge")
@login_required("caseworker")
def merge(case_id: str):
    """A caseworker confirms a possible duplicate: this case closes and its reports move."""
    report_id = request.form.get("report_id", "")
    into = request.form.get("into_case_id", "").strip()
    try:
        handlers.merge_cases(case_id, into, actor=g.user, store=_deps()["store"],
                             publisher=resources().publisher, now=utcnow())
    except handlers.MergeRefused as exc:
        messages = {"same_case": _("A case cannot be merged into itself."),
                    "already_merged": _("One of these cases was already merged; open the case it was merged into."),
                    "not_found": _("No reports are filed under one of these cases."),
                    "not_assigned": _("Only an administrator or a caseworker assigned to both cases can merge them. "
                                      "Ask an administrator, or a caseworker assigned to the other case to add you.")}
        return render_template("error.html", code=exc.status, title=_("Not merged"),
                               message=messages.get(exc.code, _("The cases were not merged."))), exc.status
    return redirect(url_for("intake_web.report", report_id=report_id, merged=into) if report_id
                    else url_for("intake_web.reports", case_id=into))


@bp.post("/cases/<case_id>/distinct")
@login_required("caseworker")
def distinct(case_id: str):
    """A caseworker rules a possible duplicate out: different people; the pair leaves the list."""
    other = request.form.get("other_case_id", "").strip()
    report_id = request.form.get("report_id", "")
    if other and other != case_id:
        handlers.rule_out_duplicate(case_id, other, actor=g.user, remote_addr=request.remote_addr,
                                    store=_deps()["store"], now=utcnow())
    return redirect(url_for("intake_web.report", report_id=report_id, distinct=1) if report_id
                    else url_for("intake_web.reports"))


# --- consent: the caseworker records the consent the person gave ----------------------------------

GIVEN_BY = (N_("person"), N_("family"), N_("representative"))


def _consent_form(case_id: str) -> dict:
    """What the report page's consent form needs: the case's consent as intake holds it, and the
    choices."""
    return {"case_consent": handlers.case_consent(case_id, store=_deps()["store"]),
            "consent_choices": {"advocacy": CONSENT_ADVOCACY, "given_by": GIVEN_BY},
            "consent_recorded": request.args.get("consent") == "1"}


@bp.post("/cases/<case_id>/consent")
@login_required("caseworker")
def record_consent(case_id: str):
    """The report page's consent form: the same command as the API (assigned caseworker or
    admin; audited); the reason is sealed, never shown again on a page."""
    from services.intake.schemas import ConsentCommandIn

    report_id = request.form.get("report_id", "")
    typed = {"advocacy": request.form.get("advocacy", ""), "statistics": "statistics" in request.form,
             "given_by": request.form.get("given_by", ""), "reason": request.form.get("reason", "")}
    try:
        cmd = ConsentCommandIn().load(typed)
    except ValidationError as exc:
        labels = {"advocacy": _("Advocacy consent"), "statistics": _("Consent to statistics"),
                  "given_by": _("Given by"), "reason": _("How and when it was given")}
        message = " ".join(f"{labels.get(field, field)}: {' '.join(translate_message(m) for m in messages)}"
                           for field, messages in flatten_messages(exc.messages).items())
        return render_template("error.html", code=422, title=_("Consent not recorded"), message=message), 422
    try:
        handlers.record_consent(case_id, cmd, actor=g.user, remote_addr=request.remote_addr,
                                publisher=resources().publisher, now=utcnow(), **_deps())
    except handlers.AccessRefused as exc:
        messages = {"not_found": _("Intake knows no case with that id."),
                    "merged": _("This case was merged into another; record the consent there."),
                    "not_assigned": _("Only an administrator or a caseworker assigned to this case can record its "
                                      "consent.")}
        return render_template("error.html", code=exc.status, title=_("Consent not recorded"),
                               message=messages.get(exc.code, _("The consent was not recorded."))), exc.status
    return redirect(url_for("intake_web.report", report_id=report_id, consent=1) if report_id
                    else url_for("intake_web.reports", case_id=case_id))
