"""What every service's Flask app shares, wired in one place: per-process resources (clients and
keys), JSON errors, health and readiness, the OpenAPI route, logging, and the app factory that
puts the account routes, pages and hardening together. Nothing in shared/ imports this module
but the services' app factories and their routes (for `resources`)."""

from __future__ import annotations

import logging
import re
import threading
from typing import Callable

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from pymongo import MongoClient
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from shared import admin_pages, auth, keys, twofactor
from shared import identity as identity_store
from shared.accounts import accounts_blueprint
from shared.bus import BackgroundPublisher, kafka_status
from shared.config import TOPICS, Settings
from shared.errors import ApiError
from shared.hardening import init_hardening
from shared.http import doc, openapi_document
from shared.mongo import connect, ping
from shared.ui import csrf, init_ui

log = logging.getLogger(__name__)


def configure_logging(service: str, level: int = logging.INFO) -> None:
    """One line per record: time, level, service, logger, message. Never identifying data."""
    root = logging.getLogger()
    if getattr(root, "_nrw_configured", False):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every refused connection at ERROR while a broker restarts; our own code
    # reports broker outages once per retry, so its own chatter is kept to real failures.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    root._nrw_configured = True


class Resources:
    """Clients a service process needs, made on first use (after gunicorn forks), shared by threads.

    The first use of a database also prepares it, once per process: indexes, the admin bootstrap,
    and the service's own preparation (`on_first_use`, given the service's database).
    """

    def __init__(self, settings: Settings, service: str, on_first_use: Callable | None = None):
        self.settings = settings
        self.service = service
        self.topic = TOPICS[service]
        self.on_first_use = on_first_use
        self._lock = threading.RLock()
        self._client: MongoClient | None = None
        self._publisher: BackgroundPublisher | None = None
        self._verifier: auth.TokenVerifier | None = None
        self._signer: auth.TokenSigner | None = None
        self._otp_key: bytes | None = None
        self._cookie_secret: str | None = None
        self._prepared = False
        self.kafka_admin: dict = {}

    @property
    def client(self) -> MongoClient:
        """This process's MongoDB client."""
        with self._lock:
            if self._client is None:
                self._client = connect(self.settings, self.service)
            return self._client

    def _prepare(self) -> None:
        if self._prepared:
            return
        with self._lock:
            if self._prepared:
                return
            identity = self.client[self.settings.database_name("identity")]
            identity_store.ensure_indexes(identity)
            if self.is_issuer:
                identity_store.bootstrap_admin(identity, self.settings.admin_password)
            if self.on_first_use:
                self.on_first_use(self.client[self.settings.database_name(self.service)])
            self._prepared = True

    @property
    def db(self):
        """The service's own database."""
        self._prepare()
        return self.client[self.settings.database_name(self.service)]

    @property
    def identity_db(self):
        """The users database, shared by the four services' auth."""
        self._prepare()
        return self.client[self.settings.database_name("identity")]

    @property
    def publisher(self) -> BackgroundPublisher:
        """This process's Kafka producer: a request hands it what it stored and answers; its own
        threads publish (shared/bus.py BackgroundPublisher), so no request waits on the broker."""
        with self._lock:
            if self._publisher is None:
                self._publisher = BackgroundPublisher(self.settings, principal=self.service,
                                                      client_id=f"nrw-{self.service}-web", cooldown_s=5.0)
            return self._publisher

    def wait_published(self, timeout_s: float) -> bool:
        """Wait until the background publisher has sent (or left to the relay) all it was handed:
        for in-process tests that read a topic right after a request."""
        return self._publisher is None or self._publisher.wait_idle(timeout_s)

    @property
    def token_verifier(self) -> auth.TokenVerifier:
        """Checks tokens and page sessions with the issuer's public key (and, on intake, the
        service accounts' public keys)."""
        if self._verifier is None:
            with self._lock:
                services = {}
                if self.service == "intake":
                    services = {name: keys.load_public(keys.service_public_path(self.settings, name))
                                for name in keys.SERVICE_ACCOUNTS}
                self._verifier = auth.TokenVerifier(keys.load_public(keys.token_public_path(self.settings)), services)
        return self._verifier

    @property
    def is_issuer(self) -> bool:
        """True for the one process kind that signs tokens and sessions (intake's web)."""
        return self.service == "intake"

    @property
    def token_signer(self) -> auth.TokenSigner:
        """Signs tokens and page sessions: only the issuer reads the private key."""
        if not self.is_issuer:
            raise RuntimeError("only intake's web process issues tokens")
        if self._signer is None:
            with self._lock:
                self._signer = auth.TokenSigner(keys.load_private(keys.token_key_path(self.settings)))
        return self._signer

    @property
    def otp_key(self) -> bytes:
        """The key that seals second-factor secrets (issuer only; derived from its private key)."""
        if not self.is_issuer:
            raise RuntimeError("only intake's web process checks second factors")
        if self._otp_key is None:
            self._otp_key = twofactor.sealing_key(keys.load_private(keys.token_key_path(self.settings)))
        return self._otp_key

    @property
    def cookie_secret(self) -> str:
        """The web processes' shared cookie-signing secret (it cannot make a login)."""
        if self._cookie_secret is None:
            self._cookie_secret = keys.web_session_secret(self.settings)
        return self._cookie_secret

    def service_signing_key(self):
        """This service's own account key (advocacy, to ask intake for names for letters)."""
        return keys.load_private(keys.service_key_path(self.settings, self.service))


def resources() -> Resources:
    """The current app's Resources."""
    return current_app.extensions["nrw"]


# --- the app --------------------------------------------------------------------------------------


def _health_blueprint(service: str) -> Blueprint:
    bp = Blueprint("health", __name__)

    status = {"type": "object", "required": ["status", "service"],
              "properties": {"status": {"type": "string", "enum": ["ok", "unavailable"]}, "service": {"type": "string"}}}
    ready = {**status, "required": ["status", "service", "checks"],
             "properties": {**status["properties"], "checks": {"type": "object", "additionalProperties": {"type": "string"}}}}

    @bp.get("/healthz")
    @doc(summary="Liveness: the process answers", responses={200: {"application/json": status}}, public=True,
         database=False)
    def healthz():
        """Liveness: the process runs."""
        return jsonify({"status": "ok", "service": service})

    @bp.get("/readyz")
    @doc(summary="Readiness: the service's database and the Kafka broker answer", public=True,
         responses={200: {"application/json": ready}, 503: {"application/json": ready}})
    def readyz():
        """Readiness: the service's database and the Kafka broker answer."""
        res = resources()
        checks = {"mongo": ping(res.client), "kafka": kafka_status(res.kafka_admin, res.settings, res.service)}
        if all(v == "ok" for v in checks.values()):
            return jsonify({"status": "ok", "service": service, "checks": checks})
        return jsonify({"status": "unavailable", "service": service, "checks": checks}), 503

    @bp.get("/openapi.json")
    @doc(summary="This document", responses={200: {"application/json": {"type": "object"}}}, public=True,
         database=False)
    def openapi():
        """The service's OpenAPI 3 document."""
        app = current_app
        if "nrw_openapi" not in app.extensions:
            app.extensions["nrw_openapi"] = openapi_document(app, service)
        return jsonify(app.extensions["nrw_openapi"])

    return bp


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz", "/openapi.json") or \
        request.accept_mimetypes.best == "application/json"


def _error_page(status: int, title: str, message: str):
    return render_template("error.html", code=status, title=title, message=message)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # werkzeug's own headers are kept (405's Allow, 429's Retry-After), only not its content type.
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if exc.code == 413:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            code, title = "payload_too_large", exc.name
            message = f"The request body is larger than the limit of {limit} bytes."
        else:
            code = re.sub(r"[^a-z]+", "_", (exc.name or "error").lower()).strip("_")
            title, message = exc.name, exc.description or exc.name
        if _wants_json():
            return jsonify({"error": {"code": code, "message": message}}), exc.code, headers
        return _error_page(exc.code, title, message), exc.code, headers

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        if _wants_json():
            return jsonify({"error": {"code": "csrf_failed", "message": exc.description}}), 400
        return _error_page(400, _("The form could not be accepted"),
                           _("The form was not sent from this site or has expired. Reload the page and try again.")), 400

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        from shared.mongo import is_server_internal, is_transient
        if is_transient(exc) or is_server_internal(exc):
            if is_transient(exc):
                log.warning("database unavailable during %s %s: %s", request.method, request.path, type(exc).__name__)
            else:
                log.exception("database internal error during %s %s", request.method, request.path)
            message = "The database is not answering; try again shortly."
            if _wants_json():
                return jsonify({"error": {"code": "unavailable", "message": message}}), 503
            return _error_page(503, _("Unavailable"), _(message)), 503
        log.exception("unhandled error during %s %s", request.method, request.path)
        message = "Something went wrong on our side; it has been logged."
        if _wants_json():
            return jsonify({"error": {"code": "internal_error", "message": message}}), 500
        return _error_page(500, _("Error"), _(message)), 500


def create_service_app(service: str, settings: Settings | None, blueprints: list[Blueprint],
                       on_first_use: Callable | None = None, pages: list[Blueprint] = ()) -> Flask:
    """The Flask app of one service: health, auth, its JSON blueprints, its web pages (with the
    shared session, CSRF and languages), JSON errors for the API and error pages for people."""

    configure_logging(service)
    settings = settings or Settings.from_env()
    app = Flask(f"services.{service}")
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False
    res = Resources(settings, service, on_first_use)
    app.extensions["nrw"] = res
    if settings.trusted_proxies:  # behind the TLS proxy: the client's address is the one it saw
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0)
    init_hardening(app, settings)  # first: the body limit applies before any other handler reads the body
    init_ui(app, service)
    app.register_blueprint(_health_blueprint(service))
    api = [accounts_blueprint(service), *blueprints]
    for bp in api:
        csrf.exempt(bp)  # bearer tokens, not cookies: cross-site forgery does not apply
        app.register_blueprint(bp)
    for bp in pages:
        app.register_blueprint(bp)
    if service == "intake":  # the issuer: the admins' account pages
        app.register_blueprint(admin_pages.bp)
    _register_error_handlers(app)

    return app
