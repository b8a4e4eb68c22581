"""The reporting service's pages: the dashboard (every measure as of a chosen date, the detained by
sex and age group, the charts, and the UPR questions answered) and the UPR snapshots with their
annex. The pages compute with the API's own figures and schemas; public figures for everyone,
exact ones for analysts and admins who ask for them."""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import logging
import re
import xml.etree.ElementTree as ET

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext as _
from markupsafe import Markup
from marshmallow import ValidationError, fields, validate, validates_schema

from shared.errors import flatten_messages
from shared.forms import translate_message
from shared.hardening import as_document
from shared.i18n import N_
from shared.mongo import utcnow
from shared.ui import login_required
from shared.web import resources

from services.reporting import domain, evidence, figures, handlers
from services.reporting.schemas import AnnexQuery, EvidenceQuery, QuestionsQuery, SnapshotIn
from services.reporting.store import ReportingStore, live_population

log = logging.getLogger(__name__)

bp = Blueprint("reporting_web", __name__)

READERS = ("caseworker", "advocate", "analyst")  # admin always passes
EXACT_ROLES = {"analyst", "admin"}
ANNEX_FORMATS = (("pdf", "PDF"), ("xlsx", "Excel (XLSX)"), ("csv", "CSV"), ("html", "HTML"), ("md", "Markdown"),
                 ("docx", "Word (DOCX)"))
ANNEX_LANGUAGES = (("en", "English"), ("ko", "한국어"))

# Each measure as the dashboard names it (the API's measure names are not words).
MEASURE_LABELS = {
    "detained": N_("Detained on the date"),
    "deportation_imminent": N_("Facing imminent deportation on the date"),
    "repatriated": N_("Forcibly returned to the DPRK in the period"),
    "reported": N_("Newly reported in the period"),
    "unhcr_access_requested": N_("UNHCR access requested in the period"),
    "unhcr_access_granted": N_("UNHCR access granted in the period"),
    "appeals_issued": N_("Covered by an urgent appeal issued in the period"),
}

# Schema messages the reporting forms meet that name parameters, said in the pages' words.
SCHEMA_MESSAGES = {
    "since must be before as_of.": N_("The start of the period must be before the date of the figures."),
}
N_("Give the reviewed State's two-letter code and the cycle's number, such as CN-4.")  # schemas.CYCLE_FORM


def _translate(message: str) -> str:
    return _(SCHEMA_MESSAGES[message]) if message in SCHEMA_MESSAGES else translate_message(message)


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    """marshmallow's errors by form field, in the page's language."""
    errors: dict[str, list[str]] = {}
    for path, messages in flatten_messages(exc.messages).items():
        bucket = errors.setdefault(path.split(".")[0], [])
        bucket.extend(m for m in map(_translate, messages) if m not in bucket)
    return errors


class DashboardQuery(QuestionsQuery):
    """The dashboard's form (GET): the date, the period, filters and, for analysts, the disclosure."""

    province = fields.String(load_default=None, validate=validate.Length(min=1, max=100))
    sex = fields.String(load_default=None, validate=validate.OneOf(domain.SEXES))

    @validates_schema
    def _period(self, data, **_kwargs):
        if data.get("since") and data.get("as_of") and data["since"] >= data["as_of"]:
            raise ValidationError("since must be before as_of.", "since")


DASHBOARD_FIELDS = ("as_of", "since", "province", "sex", "disclosure")


def _store() -> ReportingStore:
    return ReportingStore(resources().db)


def _sees_exact() -> bool:
    return bool(EXACT_ROLES.intersection(g.user["roles"]))


def _lang() -> str:
    """The page's language as the charts and the annex's words know it."""
    return "ko" if str(get_locale() or "en").startswith("ko") else "en"


def _present(values, names) -> dict:
    """The named fields that were filled in (an empty field is a missing one)."""
    return {name: values.get(name, "").strip() for name in names if values.get(name, "").strip()}


# --- charts inlined in the page -----------------------------------------------------------------


class UnsafeSvg(ValueError):
    """An SVG that is not only drawing: it will not be put in a page."""


SVG_NS = "{http://www.w3.org/2000/svg}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
FORBIDDEN_ELEMENTS = {"script", "foreignObject", "iframe", "object", "embed", "a", "image", "animate", "set",
                      "animateTransform", "animateMotion", "handler", "listener"}


def inline_svg(data: bytes, prefix: str) -> Markup:
    """A chart's SVG ready to sit in an HTML page: without its XML declaration and DOCTYPE, scaled
    to the page's width, its ids (and its style) kept to itself under `prefix`, and checked to be
    drawing only (no script, no event handler, no link or reference leaving the document, no
    external style). The charts are drawn by matplotlib from numbers and the pages' fixed words,
    never from anything a user typed; this is the second lock."""
    text = data.decode("utf-8")
    start = text.find("<svg")
    if start < 0:
        raise UnsafeSvg("no <svg> element")
    text = text[start:]
    root = ET.fromstring(text)
    if root.tag != f"{SVG_NS}svg":
        raise UnsafeSvg("the root is not <svg>")
    for element in root.iter():
        local = element.tag.rsplit("}", 1)[-1]
        if local in FORBIDDEN_ELEMENTS:
            raise UnsafeSvg(f"<{local}> is not allowed")
        for name, value in element.attrib.items():
            attr = name.rsplit("}", 1)[-1].lower()
            if attr.startswith("on"):
                raise UnsafeSvg(f"event handler {attr}")
            if (attr == "href" or name == XLINK_HREF) and not value.startswith("#"):
                raise UnsafeSvg("a reference outside the document")
            if "url(" in value and not re.fullmatch(r"url\(#[\w.-]+\)", value.strip()):
                raise UnsafeSvg("a url() outside the document")
        if local == "style" and (re.search(r"@import|url\(|expression\(", element.text or "", re.I)
                                 or not re.fullmatch(r"\s*\*\{[^{}]*\}\s*", element.text or "")):
            raise UnsafeSvg("a style other than matplotlib's own")
    # Ids of its own (two charts on a page, each with its own "figure_1").
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([\w.-]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    text, everywhere = _presentation_attributes(text)
    # Scale with the page: the viewBox keeps the proportions.
    head, rest = text.split(">", 1)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    return Markup(f'{head} id="{prefix}"{everywhere} width="100%" role="img" focusable="false">{rest}')


# The CSS properties matplotlib writes that SVG also takes as presentation attributes.
PRESENTATION = {"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap",
                "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "opacity",
                "clip-path", "clip-rule", "font-family", "font-size", "font-style", "font-weight", "font-variant",
                "font-stretch", "text-anchor", "dominant-baseline", "letter-spacing", "word-spacing",
                "text-decoration", "visibility", "display", "color"}
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style[^>]*>\s*\*\{([^{}]*)\}\s*</style>")


def _declarations(css: str) -> list[tuple[str, str]]:
    """`fill: #fff; stroke: none` as [(property, value)], refused if one is not a presentation attribute."""
    out = []
    for declaration in html.unescape(css).split(";"):
        name, colon, value = declaration.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not name and not value:
            continue
        if not colon or name not in PRESENTATION or not value:
            raise UnsafeSvg(f"a style that is not a presentation attribute: {name or declaration!r}")
        out.append((name, value))
    return out


def _attributes(declarations: list[tuple[str, str]]) -> str:
    return "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in declarations)


def _presentation_attributes(text: str) -> tuple[str, str]:
    """The chart without CSS, which the pages' Content-Security-Policy does not run: each style
    attribute becomes the presentation attributes it sets, and matplotlib's one rule for every
    element (`*{stroke-linejoin: round; ...}`) becomes attributes of the <svg> that every element
    inherits (matplotlib sets those properties on the elements themselves, never on a group whose
    children rely on the rule). Returns the SVG and the attributes for its root."""
    rules = _STYLE_ELEMENT.findall(text)
    everywhere = _attributes([d for rule in rules for d in _declarations(rule)])
    text = _STYLE_ELEMENT.sub("", text)
    if "<style" in text:
        raise UnsafeSvg("a style other than matplotlib's own")
    return _STYLE_ATTRIBUTE.sub(lambda m: _attributes(_declarations(m.group(1))), text), everywhere


def _chart(draw, *args, **kwargs) -> Markup | None:
    """A chart inlined (its ids prefixed with the chart's name), or None (said on the page) if it
    cannot be drawn. Drawing takes matplotlib a tenth of a second or more, far more than the
    figures: the same figures in the same language are drawn once (the last CHARTS_KEPT kept)."""
    return _drawn(draw, json.dumps([args, kwargs], sort_keys=True, default=str), _lang())


CHARTS_KEPT = 32


@functools.lru_cache(maxsize=CHARTS_KEPT)
def _drawn(draw: str, arguments: str, lang: str) -> Markup | None:
    from services.reporting import charts  # matplotlib loads only when a chart is drawn
    from shared.fonts import FontMissing

    args, kwargs = json.loads(arguments)
    try:
        return inline_svg(getattr(charts, draw)(*args, fmt="svg", lang=lang, **kwargs),
                          draw.replace("_", "-") + "-svg")
    except (charts.ChartError, FontMissing, UnsafeSvg, ET.ParseError) as exc:
        log.warning("chart %s not drawn: %s", draw, exc)
        return None


# --- tables -------------------------------------------------------------------------------------


def _cell(table: dict, **values) -> dict | None:
    """The cell of a table with these categories, or None."""
    for cell in table["cells"]:
        if all(cell.get(dim) == value for dim, value in values.items()):
            return cell
    return None


def _headline(table: dict, filters: dict) -> dict:
    """A measure's figure: the table's total, or with filters the table's one matching cell.
    A suppressed total is from 1 to 4; a suppressed cell may be small or hidden to protect one."""
    if not filters:
        return {"count": table["total"], "suppressed": table["total"] is None, "small": table["total"] is None}
    cell = _cell(table, **filters) or {"count": 0}
    return {"count": cell.get("count"), "suppressed": bool(cell.get("suppressed")), "small": False}


def sex_by_age(records: list[dict], *, measure: str, as_of: dt.date, since: dt.date | None, filters: dict,
               level: str) -> dict:
    """A measure by sex and age group, within the filters, with its totals: each from a table the
    statistics API publishes as it is (the sex x age table, by province when filtered, and its
    margins), so the page shows nothing the API would not. Rows are the sexes asked for."""
    province = {"province": filters["province"]} if "province" in filters else {}
    extra = list(province)

    def make(by):
        return figures.table(records, measure=measure, as_of=as_of, since=since, by=by, disclosure_level=level)

    full = make(["sex", "age_group", *extra])
    by_sex = make(["sex", *extra])
    by_age = make(["age_group", *extra])
    sexes = [filters["sex"]] if "sex" in filters else list(domain.SEXES)
    rows = [{"sex": sex, "cells": [_cell(full, sex=sex, age_group=age, **province) or {"count": 0}
                                   for age in domain.AGE_GROUPS],
             "total": _cell(by_sex, sex=sex, **province) or {"count": 0}} for sex in sexes]
    overall = make(extra)
    all_row = None
    if "sex" not in filters:
        all_row = {"cells": [_cell(by_age, age_group=age, **province) or {"count": 0} for age in domain.AGE_GROUPS],
                   "total": _headline(overall, province)}
    # The chart draws every sex of the (province's) table: it is a picture of the table by sex.
    chart_table = {**full, "by": ["sex", "age_group"],
                   "cells": [{k: v for k, v in c.items() if k != "province"} for c in full["cells"]
                             if all(c.get(k) == v for k, v in province.items())]}
    margins_hidden = any(c.get("suppressed") for t in (by_sex, by_age, overall) for c in t["cells"]) or \
        any(t["total"] is None for t in (by_sex, by_age, overall))
    return {"rows": rows, "all": all_row, "chart_table": chart_table, "table": full,
            "margins_hidden": margins_hidden and level == "public"}


def _hides(table: dict) -> bool:
    """Whether a public table suppressed anything (its note then says what and why)."""
    return table["disclosure"] == "public" and (table["total"] is None or any(c.get("suppressed")
                                                                             for c in table["cells"]))


def suppression_note(table: dict) -> str:
    """What a public table's suppression hid, in the page's language."""
    from services.reporting import wording

    return wording.suppression_note(table, _lang())


def question_views(records: list[dict], *, as_of: dt.date, since: dt.date | None, level: str) -> list[dict]:
    """The UPR questions answered, in English for the submission, with the Korean beside it on Korean pages."""
    items = figures.questions(records, as_of=as_of, since=since, disclosure_level=level)
    if _lang() != "ko":
        return items
    from services.reporting import wording

    out = []
    for item in items:
        ask, answer = wording.question_text(item, as_of=as_of, since=since, lang="ko")
        out.append({**item, "question_ko": ask, "answer_ko": answer})
    return out


def provinces(records) -> list[str]:
    """The provinces of the counted people: the categories the statistics API's tables by province show
    (a province does not change with the date)."""
    return [cell["province"] for cell in domain.count(records, "reported", dt.date.max.isoformat(), None,
                                                      ["province"], with_ids=False)["cells"]]


# --- the dashboard ------------------------------------------------------------------------------


@bp.get("/")
@login_required(*READERS)
def dashboard():
    """Every measure as of the chosen date, by sex and age group, over time, and the UPR questions."""
    exact_allowed = _sees_exact()
    names = DASHBOARD_FIELDS if exact_allowed else DASHBOARD_FIELDS[:-1]  # others: always public
    values = _present(request.args, names)
    today = dt.date.today()
    records = live_population(resources().db)
    known = provinces(records)
    context = {"values": values, "exact_allowed": exact_allowed, "provinces": known, "sexes": domain.SEXES,
               "age_groups": domain.AGE_GROUPS, "today": today.isoformat()}
    try:
        query = DashboardQuery().load(values)
    except ValidationError as exc:
        return render_template("dashboard.html", errors=_errors(exc), **context), 422
    if query["province"] is not None and query["province"] not in known:
        errors = {"province": [_("No counted case is recorded in this province; choose one from the list.")]}
        return render_template("dashboard.html", errors=errors, **context), 422
    as_of, since, level = query["as_of"], query.get("since"), query["disclosure"] if exact_allowed else "public"
    filters = {k: query[k] for k in ("sex", "province") if query.get(k) is not None}
    by = [d for d in ("sex", "province") if d in filters]
    headlines = []
    for measure in domain.MEASURES:
        table = figures.table(records, measure=measure, as_of=as_of, since=since, by=by, disclosure_level=level)
        headlines.append({"measure": measure, "label": MEASURE_LABELS[measure], **_headline(table, filters)})
    detained = sex_by_age(records, measure="detained", as_of=as_of, since=since, filters=filters, level=level)
    series = figures.series(records, as_of=as_of, disclosure_level=level)
    return render_template(
        "dashboard.html", errors={}, query=query, as_of=as_of, since=since, level=level, filters=filters,
        headlines=headlines, detained=detained,
        note=suppression_note(detained["table"]) if _hides(detained["table"]) else None,
        chart_over_time=_chart("chart_over_time", series),
        chart_by_age=_chart("chart_by_age_and_sex", detained["chart_table"]),
        questions=question_views(records, as_of=as_of, since=since, level=level), **context)


# --- the evidence register ----------------------------------------------------------------------

EVIDENCE_KINDS = {"products": N_("Products"), "facilities": N_("Facilities"), "companies": N_("Companies")}


@bp.get("/evidence")
@login_required(*READERS)
def evidence_register():
    """Products, facilities and companies named in after-return testimonies (public: names given by
    fewer than 5 persons withheld), as the API's register; never a person."""
    exact_allowed = _sees_exact()
    values = _present(request.args, ("as_of", "disclosure") if exact_allowed else ("as_of",))
    context = {"values": values, "exact_allowed": exact_allowed, "today": dt.date.today().isoformat(),
               "kinds": EVIDENCE_KINDS, "reliabilities": evidence.RELIABILITIES}
    try:
        query = EvidenceQuery().load(values)
    except ValidationError as exc:
        return render_template("evidence.html", errors=_errors(exc), **context), 422
    register = evidence.register(live_population(resources().db), as_of=query["as_of"].isoformat(),
                                 disclosure_level=query["disclosure"])
    return render_template("evidence.html", errors={}, register=register, as_of=query["as_of"], **context)


# --- snapshots ----------------------------------------------------------------------------------


def field_labels() -> dict[str, str]:
    """The snapshot form's fields as the page names them, for the error summary."""
    return {"cycle": _("UPR cycle"), "as_of": _("Figures as of"), "since": _("Events after"), "title": _("Title")}


def _render_snapshots(*, values=None, errors=None, status: int = 200):
    return render_template("snapshots.html", snapshots=_store().list_snapshots(), writer=_sees_exact(),
                           values=values or {"as_of": dt.date.today().isoformat()}, errors=errors or {},
                           labels=field_labels(), today=dt.date.today().isoformat()), status


@bp.get("/snapshots")
@login_required(*READERS)
def snapshots():
    """The snapshots, newest first; for analysts, the form that takes a new one."""
    return _render_snapshots()


@bp.post("/snapshots")
@login_required("analyst")
def take_snapshot():
    """Freeze the figures as of a date for a submission, as the API does."""
    values = request.form
    body = _present(values, ("cycle", "as_of", "since"))
    if values.get("title", "").strip():
        body["title"] = values["title"].strip()
    try:
        cmd = SnapshotIn().load(body)
    except ValidationError as exc:
        return _render_snapshots(values=values, errors=_errors(exc), status=422)
    snapshot = handlers.take_snapshot(cmd, actor=g.user["id"], store=_store(), publisher=resources().publisher,
                                      now=utcnow())
    flash(_("The snapshot was taken: %(count)s cases counted.", count=snapshot["case_count"]))
    return redirect(url_for("reporting_web.snapshot", snapshot_id=snapshot["snapshot_id"]))


def _not_found():
    return render_template("error.html", code=404, title=_("Not found"), message=_("No snapshot with that id.")), 404


def _username(user_id: str | None) -> str | None:
    if not user_id:
        return None
    user = resources().identity_db["users"].find_one({"user_id": user_id}, {"_id": 1})
    return user["_id"] if user else user_id[:8]


@bp.get("/snapshots/<snapshot_id>")
@login_required(*READERS)
def snapshot(snapshot_id: str):
    """A snapshot: its frozen public figures (and exact totals for analysts), charts, answers and annex."""
    found = _store().get_snapshot(snapshot_id)
    if found is None:
        return _not_found()
    exact = found.get("exact", {}) if _sees_exact() else {}
    rows = [{"measure": m, "label": MEASURE_LABELS[m], **_headline(found["figures"][m], {}),
             "exact": (exact.get(m) or {}).get("total")} for m in domain.MEASURES if m in found["figures"]]
    detained = found["figures"].get("detained")
    questions = found.get("questions") or []
    if _lang() == "ko":
        from services.reporting import wording

        since = found.get("since")
        questions = [{**q, **dict(zip(("question_ko", "answer_ko"), wording.question_text(
            q, as_of=found["as_of"], since=since, lang="ko")))} for q in questions]
    return render_template(
        "snapshot.html", snapshot=found, rows=rows, exact_shown=bool(exact), detained=detained,
        detained_rows=[{"sex": sex, "cells": [_cell(detained, sex=sex, age_group=age) or {"count": 0}
                                              for age in domain.AGE_GROUPS]} for sex in domain.SEXES]
        if detained else [],
        note=suppression_note(detained) if detained and _hides(detained) else None,
        chart_over_time=_chart("chart_over_time", found["series"]) if found.get("series") else None,
        chart_by_age=_chart("chart_by_age_and_sex", detained) if detained else None,
        questions=questions, taken_by=_username(found.get("taken_by")), formats=ANNEX_FORMATS,
        annex_languages=ANNEX_LANGUAGES)


@bp.get("/snapshots/<snapshot_id>/annex")
@login_required(*READERS)
def annex(snapshot_id: str):
    """The snapshot's annex as a download (?format=md|html|csv|xlsx|pdf&lang=en|ko): public figures only."""
    try:
        query = AnnexQuery().load(_present(request.args, ("format", "lang")))
    except ValidationError:
        return render_template("error.html", code=422, title=_("No such annex"),
                               message=_("Choose English or Korean, and PDF, Excel, CSV, HTML or Markdown.")), 422
    found = _store().get_snapshot(snapshot_id)
    if found is None:
        return _not_found()
    from services.reporting import annex as annexes  # matplotlib loads only when an annex is made

    public = {k: v for k, v in found.items() if k not in ("case_ids", "exact", "counted")}
    content, mimetype = annexes.render_annex(public, fmt=query["format"], lang=query["lang"])
    name = annexes.filename(public, fmt=query["format"], lang=query["lang"])
    return as_document(Response(content, mimetype=mimetype,
                                headers={"Content-Disposition": f'attachment; filename="{name}"'}))
