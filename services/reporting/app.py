"""The reporting service's Flask app (health, readiness, identity and OpenAPI; its own API comes later)."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings
from shared.web import create_service_app


def create_app(config: Settings | None = None) -> Flask:
    """Build the reporting app; clients are made on first use, after gunicorn forks."""
    return create_service_app("reporting", config, [])
