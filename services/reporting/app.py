"""The reporting service's Flask app."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from shared.config import Settings
from shared.mongo import utcnow
from shared.web import create_service_app

from services.reporting import cellkey
from services.reporting.api import bp as api_bp
from services.reporting.recommendation_pages import bp as recommendation_pages_bp
from services.reporting.recommendation_store import RecommendationStore
from services.reporting.recommendations_api import bp as recommendations_api_bp
from services.reporting.store import live_population
from services.reporting.web import bp as web_bp

log = logging.getLogger(__name__)


def _prepare(db) -> None:
    """At each process's first use of its database: the shipped recommendations (each once), and
    the records' columns start loading in a thread (24 s at 100,000 cases), so the first figures
    asked need not wait for all of it."""
    RecommendationStore(db).load_shipped(utcnow())
    threading.Thread(target=_load_columns, args=(db,), name="reporting-columns", daemon=True).start()


def _load_columns(db) -> None:
    try:
        live_population(db)
    except Exception:  # the first request that needs them loads them again and reports what fails
        log.exception("reporting: loading the records' columns failed")


def create_app(config: Settings | None = None) -> Flask:
    """Build the reporting app; clients are made on first use, after gunicorn forks."""
    cellkey.configure(config or Settings.from_env())  # where public figures' secret is (read on first use)
    return create_service_app("reporting", config, [api_bp, recommendations_api_bp], on_first_use=_prepare,
                              pages=[web_bp, recommendation_pages_bp])
