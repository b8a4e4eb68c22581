"""The intake service's Flask app."""

from __future__ import annotations

from flask import Flask

from shared import keys
from shared.config import Settings
from shared.web import create_service_app

from services.intake.api import bp as api_bp
from services.intake.datakeys import IntakeKeyring, migrate_in_background
from services.intake.store import IntakeStore
from services.intake.web import bp as web_bp


def create_app(config: Settings | None = None) -> Flask:
    """Build the intake app; clients are made on first use, after gunicorn forks."""
    app = create_service_app("intake", config, [api_bp], on_first_use=lambda db: _prepare(db, app), pages=[web_bp])
    keys.init(app.extensions["nrw"].settings)  # the issuer makes its key on the first start
    app.extensions["intake_keyring"] = IntakeKeyring.from_settings(app.extensions["nrw"].settings)
    return app


def _prepare(db, app: Flask) -> None:
    store = IntakeStore(db)
    store.ensure_indexes()
    store.report_index().start()  # the report list's and the audit trail's columns load while the
    store.audit_index().start()   # first requests are served
    migrate_in_background(db, app.extensions["intake_keyring"])  # older records get a key of their own
