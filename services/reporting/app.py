"""The reporting service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.mongo import utcnow
from shared.web import create_service_app

from services.reporting import cellkey
from services.reporting.api import bp as api_bp
from services.reporting.recommendation_pages import bp as recommendation_pages_bp
from services.reporting.recommendation_store import RecommendationStore
from services.reporting.recommendations_api import bp as recommendations_api_bp
from services.reporting.web import bp as web_bp


def _prepare(db) -> None:
    """At each process's first use of its database: the shipped recommendations (each once)."""
    RecommendationStore(db).load_shipped(utcnow())


def create_app(config: Settings | None = None) -> Flask:
    """Build the reporting app; clients are made on first use, after gunicorn forks."""
    cellkey.configure(config or Settings.from_env())  # where public figures' secret is (read on first use)
    return create_service_app("reporting", config, [api_bp, recommendations_api_bp], on_first_use=_prepare,
                              pages=[web_bp, recommendation_pages_bp])
