"""The reporting service's JSON routes: statistics, the UPR questions, snapshots and their annex."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, url_for

from shared.auth import current_user, require_roles
from shared.errors import ApiError
from shared.hardening import as_document
from shared.mongo import utcnow
from shared.http import doc, load_body, load_query
from shared.web import resources

from services.reporting import evidence, figures, handlers, recommendations, snapshots
from services.reporting.recommendation_store import RecommendationStore
from services.reporting.schemas import (AnnexQuery, EvidenceQuery, EvidenceRegister, QuestionList, QuestionsQuery,
                                        SnapshotIn, SnapshotList, SnapshotOut, StatisticsQuery, Table)
from services.reporting.store import ReportingStore, live_population

bp = Blueprint("reporting_api", __name__)

ANY_ROLE = ("caseworker", "advocate", "analyst")
EXACT_ROLES = {"analyst", "admin"}


def _store() -> ReportingStore:
    return ReportingStore(resources().db)


def _sees_exact() -> bool:
    return bool(EXACT_ROLES & set(current_user()["roles"]))


def _disclosure(level: str) -> str:
    if level == "internal" and not _sees_exact():
        raise ApiError(403, "forbidden", "Exact figures (disclosure=internal) are for analysts and admins; "
                                         "ask for disclosure=public.")
    return level


@bp.get("/api/v1/statistics")
@require_roles(*ANY_ROLE)
@doc(summary="A measure as of a date, disaggregated (public: small cells suppressed)", query=StatisticsQuery,
     responses={200: Table})
def statistics():
    """Counts of cases from the records built from events; business dates throughout."""
    query = load_query(StatisticsQuery())
    level = _disclosure(query["disclosure"])
    return jsonify(figures.table(live_population(resources().db), measure=query["measure"], as_of=query["as_of"],
                                 since=query.get("since"), by=query["by"], disclosure_level=level))


@bp.get("/api/v1/upr/questions")
@require_roles(*ANY_ROLE)
@doc(summary="The submission's questions answered from the data", query=QuestionsQuery,
     responses={200: QuestionList})
def upr_questions():
    """Each question with a sentence ready for a submission, the tables behind it and the
    recommendations linked to it."""
    query = load_query(QuestionsQuery())
    level = _disclosure(query["disclosure"])
    items = figures.questions(live_population(resources().db), as_of=query["as_of"], since=query.get("since"),
                              disclosure_level=level)
    linked = recommendations.by_question(RecommendationStore(resources().db).all())
    for item in items:
        item["recommendations"] = [{**rec, "href": url_for("recommendations_api.get_recommendation",
                                                           recommendation_id=rec["recommendation_id"])}
                                   for rec in linked.get(item["id"], ())]
    return jsonify({"items": items})


@bp.get("/api/v1/evidence/supply-chain")
@require_roles(*ANY_ROLE)
@doc(summary="Products, facilities and companies named in after-return testimonies (public: names given by "
             "fewer than 5 persons withheld)", query=EvidenceQuery, responses={200: EvidenceRegister})
def supply_chain():
    """The evidence register, from after-return records only; never a person."""
    query = load_query(EvidenceQuery())
    level = _disclosure(query["disclosure"])
    return jsonify(evidence.register(live_population(resources().db), as_of=query["as_of"].isoformat(), disclosure_level=level))


@bp.post("/api/v1/upr/snapshots")
@require_roles("analyst")
@doc(summary="Freeze the figures for a submission as of a date", body=SnapshotIn, responses={201: SnapshotOut})
def take_snapshot():
    """The snapshot keeps its figures whatever changes later; counted cases list it."""
    cmd = load_body(SnapshotIn())
    snapshot = handlers.take_snapshot(cmd, actor=current_user()["id"], store=_store(),
                                      publisher=resources().publisher, now=utcnow())
    return jsonify(SnapshotOut().dump(snapshot)), 201


def _snapshot_out(snapshot: dict) -> dict:
    if not _sees_exact():
        return SnapshotOut().dump({k: v for k, v in snapshot.items() if k not in ("case_ids", "exact")})
    # The cases counted are in the snapshot's parts: read only for those who may see them.
    return SnapshotOut().dump({**snapshot, "case_ids": snapshots.case_ids(_store(), snapshot)})


@bp.get("/api/v1/upr/snapshots")
@require_roles(*ANY_ROLE)
@doc(summary="Snapshots, newest first", responses={200: SnapshotList})
def list_snapshots():
    """Cycle, date, title and how many cases each counted."""
    return jsonify({"items": [SnapshotOut().dump(s) for s in _store().list_snapshots()]})


@bp.get("/api/v1/upr/snapshots/<snapshot_id>")
@require_roles(*ANY_ROLE)
@doc(summary="One snapshot (the cases counted: analysts and admins only)", responses={200: SnapshotOut, 404: None})
def get_snapshot(snapshot_id: str):
    """Its frozen figures, series and answers."""
    snapshot = _store().get_snapshot(snapshot_id)
    if snapshot is None:
        raise ApiError(404, "not_found", "No snapshot with that id.")
    return jsonify(_snapshot_out(snapshot))


@bp.get("/api/v1/upr/snapshots/<snapshot_id>/annex")
@require_roles(*ANY_ROLE)
@doc(summary="The snapshot's annex: md, html, csv, xlsx or pdf, with charts, or docx (a draft to edit)", query=AnnexQuery,
     responses={200: {"text/markdown": None, "text/html": None, "text/csv": None,
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": None,
                   "application/pdf": None,
                   "application/vnd.openxmlformats-officedocument.wordprocessingml.document": None}, 404: None})
def annex(snapshot_id: str):
    """Public figures only, in the chosen format and language."""
    query = load_query(AnnexQuery())
    snapshot = _store().get_snapshot(snapshot_id)
    if snapshot is None:
        raise ApiError(404, "not_found", "No snapshot with that id.")
    from services.reporting import annex as annexes  # matplotlib loads only when an annex is made
    public = {k: v for k, v in snapshot.items() if k not in ("case_ids", "exact", "counted")}
    content, mimetype = annexes.render_annex(public, fmt=query["format"], lang=query["lang"])
    name = annexes.filename(public, fmt=query["format"], lang=query["lang"])
    return as_document(Response(content, mimetype=mimetype,
                                headers={"Content-Disposition": f'attachment; filename="{name}"'}))
