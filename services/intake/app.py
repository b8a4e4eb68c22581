"""The intake service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared import keys
from shared.config import Settings
from shared.crypto import Keyring
from shared.web import create_service_app

from services.intake.api import bp as api_bp
from services.intake.store import IntakeStore
from services.intake.web import bp as web_bp


def create_app(config: Settings | None = None) -> Flask:
    """Build the intake app; clients are made on first use, after gunicorn forks."""
    app = create_service_app("intake", config, [api_bp], on_first_use=_prepare, pages=[web_bp])
    keys.init(app.extensions["nrw"].settings)  # the issuer makes its key on the first start
    app.extensions["intake_keyring"] = Keyring.from_settings(app.extensions["nrw"].settings)
    return app


def _prepare(db) -> None:
    IntakeStore(db).ensure_indexes()
