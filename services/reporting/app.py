"""The reporting service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.web import create_service_app

from services.reporting.api import bp as api_bp
from services.reporting.web import bp as web_bp


def create_app(config: Settings | None = None) -> Flask:
    """Build the reporting app; clients are made on first use, after gunicorn forks."""
    return create_service_app("reporting", config, [api_bp], pages=[web_bp])
