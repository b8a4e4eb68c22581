"""The advocacy service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.web import create_service_app

from services.advocacy.api import bp as api_bp
from services.advocacy.store import AdvocacyStore
from services.advocacy.web import bp as web_bp


def create_app(config: Settings | None = None) -> Flask:
    """Build the advocacy app; clients are made on first use, after gunicorn forks."""
    return create_service_app("advocacy", config, [api_bp], on_first_use=_prepare, pages=[web_bp])


def _prepare(db) -> None:
    store = AdvocacyStore(db)
    store.ensure_indexes()
    store.start_lists()  # the appeal and request lists' columns load while the first requests are served
