"""The case service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.web import create_service_app

from services.case.api import bp as api_bp
from services.case.store import CaseStore
from services.case.web import bp as web_bp


def create_app(config: Settings | None = None) -> Flask:
    """Build the case app; clients are made on first use, after gunicorn forks."""
    return create_service_app("case", config, [api_bp], on_first_use=_prepare, pages=[web_bp])


def _prepare(db) -> None:
    store = CaseStore(db)
    store.ensure_indexes()
    store.list_index().start()  # the case list's columns load while the first requests are served
