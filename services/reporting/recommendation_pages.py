"""The recommendations' pages (ko/en): the list with analysts' form to add one, and a page per
recommendation with the documented cases and figures since its date that bear on it (the API's
own tables, public for everyone and exact for analysts who ask)."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from marshmallow import ValidationError

from shared.mongo import utcnow
from shared.ui import login_required
from shared.web import resources

from services.reporting import domain
from services.reporting import recommendation_words as rw
from services.reporting import recommendations as recs
from services.reporting.recommendation_store import Duplicate, RecommendationStore
from services.reporting.schemas import EvidenceQuery
from services.reporting.store import live_population
from services.reporting.web import _errors  # the reporting forms' one way to put schema errors on a page

bp = Blueprint("recommendation_pages", __name__)

READERS = ("caseworker", "advocate", "analyst")
EXACT_ROLES = {"analyst", "admin"}
TEXT_FIELDS = ("mechanism", "kind", "cycle", "number", "symbol", "paragraph", "text", "text_ko",
               "recommending_state", "response", "issued_on")


def _lang() -> str:
    return "ko" if str(get_locale() or "en").startswith("ko") else "en"


def _sees_exact() -> bool:
    return bool(EXACT_ROLES.intersection(g.user["roles"]))


def _context(lang: str) -> dict:
    return {"w": rw.words(lang), "lang": lang, "label": lambda m: rw.measure_label(m, lang),
            "question_label": lambda q: rw.question_label(q, lang), "reference": lambda r: rw.reference(r, lang),
            "response_text": lambda r: rw.response_text(r, lang), "quoted": lambda r: rw.quoted(r, lang)}


def _editing(writer: bool) -> dict:
    """What the edit form of a recommendation's page needs (analysts and admins)."""
    return {"writer": writer, "measures_all": domain.ALL_MEASURES, "question_ids": recs.QUESTION_IDS,
            "edit_errors": {}}


EXCERPT_CHARS = 90


def question_recommendations() -> dict[str, list[dict]]:
    """For each UPR question, the recommendations linked to it as the dashboard lists them: the
    reference and China's response in the page's language, the start of the text in it (Korean:
    the unofficial translation where there is one), and the address of its page."""
    lang = _lang()
    out = {}
    for qid, linked in recs.by_question(RecommendationStore(resources().db).all(), names=recs.FIELDS).items():
        views = []
        for rec in linked:
            quoted = rw.quoted(rec, lang)
            text = " ".join(quoted["text"].split())
            excerpt = text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"
            answered = rec["mechanism"] == "upr" and rec.get("kind") != "proposed"
            views.append({"recommendation_id": rec["recommendation_id"], "reference": rw.reference(rec, lang),
                          "response": rw.response_text(rec, lang) if answered else None,
                          "excerpt": excerpt, "excerpt_lang": quoted["lang"],
                          "url": url_for("recommendation_pages.recommendation",
                                         recommendation_id=rec["recommendation_id"])})
        out[qid] = views
    return out


@bp.app_context_processor
def _recommendation_view() -> dict:
    """For the snapshot page's section of recommendations: the words and labels in the page's language;
    for the dashboard, the recommendations linked to each question."""
    return {"recommendation_view": lambda: _context(_lang()), "question_recommendations": question_recommendations}


def _render_list(*, values=None, errors=None, status: int = 200):
    lang = _lang()
    return render_template("recommendations.html", items=RecommendationStore(resources().db).all(),
                           writer=_sees_exact(), values=values or {}, errors=errors or {},
                           measures=domain.ALL_MEASURES, question_ids=recs.QUESTION_IDS,
                           today=dt.date.today().isoformat(), **_context(lang)), status


@bp.get("/recommendations")
@login_required(*READERS)
def recommendations():
    """Every recommendation followed; for analysts, the form that adds one."""
    return _render_list()


@bp.post("/recommendations")
@login_required("analyst")
def add_recommendation():
    """Add a recommendation, as the API does; errors come back on the form."""
    form = request.form
    body = {name: form.get(name, "").strip() for name in TEXT_FIELDS if form.get(name, "").strip()}
    body["measures"] = form.getlist("measures")
    body["questions"] = form.getlist("questions")
    values = {**body, "measures": body["measures"], "questions": body["questions"]}
    try:
        state = recs.new_state(recs.RecommendationIn().load(body))
    except ValidationError as exc:
        return _render_list(values=values, errors=_errors(exc), status=422)
    try:
        RecommendationStore(resources().db).add(state, actor=g.user["id"], publisher=resources().publisher,
                                                now=utcnow())
    except Duplicate:
        return _render_list(values=values, errors={"text": [rw.words(_lang())["exists"]]}, status=409)
    flash(rw.words(_lang())["added"])
    return redirect(url_for("recommendation_pages.recommendation", recommendation_id=state["recommendation_id"]))


@bp.get("/recommendations/<recommendation_id>")
@login_required(*READERS)
def recommendation(recommendation_id: str):
    """One recommendation and, for each linked measure, the documented cases since its date."""
    lang = _lang()
    state = RecommendationStore(resources().db).get(recommendation_id)
    if state is None:
        return render_template("error.html", code=404, title=rw.words(lang)["not_found"],
                               message=rw.words(lang)["not_found"]), 404
    exact_allowed = _sees_exact()
    values = {k: request.args[k].strip() for k in (("as_of", "disclosure") if exact_allowed else ("as_of",))
              if request.args.get(k, "").strip()}
    try:
        query = EvidenceQuery().load(values)
    except ValidationError as exc:
        return render_template("recommendation.html", rec=state, followed=None, errors=_errors(exc), values=values,
                               exact_allowed=exact_allowed, today=dt.date.today().isoformat(),
                               sexes=domain.SEXES, **_editing(exact_allowed), **_context(lang)), 422
    followed = recs.followed(live_population(resources().db), state, as_of=query["as_of"],
                             disclosure_level=query["disclosure"])
    return render_template("recommendation.html", rec=state, followed=followed, errors={}, values=values,
                           exact_allowed=exact_allowed, today=dt.date.today().isoformat(), sexes=domain.SEXES,
                           **_editing(exact_allowed), **_context(lang))


@bp.post("/recommendations/<recommendation_id>")
@login_required("analyst")
def edit_recommendation(recommendation_id: str):
    """Change a recommendation's date, response, State, Korean text and links, as the API's PATCH does."""
    lang = _lang()
    store = RecommendationStore(resources().db)
    state = store.get(recommendation_id)
    if state is None:
        return render_template("error.html", code=404, title=rw.words(lang)["not_found"],
                               message=rw.words(lang)["not_found"]), 404
    form = request.form
    body = {"issued_on": form.get("issued_on", "").strip() or None, "measures": form.getlist("measures"),
            "questions": form.getlist("questions")}
    if "text_ko" in form:  # an emptied box removes the translation
        body["text_ko"] = form["text_ko"].strip() or None
    if state["mechanism"] == "upr":
        body["response"] = form.get("response", "").strip() or None
        body["recommending_state"] = form.get("recommending_state", "").strip() or None
    try:
        store.edit(recommendation_id, recs.RecommendationEdit().load(body), actor=g.user["id"],
                   publisher=resources().publisher, now=utcnow())
    except ValidationError as exc:
        return render_template("recommendation.html", rec={**state, **{k: v for k, v in body.items()}},
                               followed=None, errors={}, values={},
                               exact_allowed=True, today=dt.date.today().isoformat(), sexes=domain.SEXES,
                               **{**_editing(True), "edit_errors": _errors(exc)}, **_context(lang)), 422
    flash(rw.words(lang)["saved"])
    return redirect(url_for("recommendation_pages.recommendation", recommendation_id=recommendation_id))
