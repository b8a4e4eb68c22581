"""What the four services' web pages share: the login session (one login for all four), CSRF
protection, English and Korean, the layout, and the page role check."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, format_date, gettext as _
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader

from shared import auth
from shared.config import SERVICES
from shared.mongo import is_transient

SHARED_TEMPLATES = Path(__file__).resolve().parent / "templates"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = {"en": "English", "ko": "한국어"}
# The session cookie outlives the idle limit (NRW_SESSION_IDLE_MINUTES, checked on the server
# against the session's last-seen time), so that a late request can be told why it must log in.
SESSION_COOKIE_GRACE = dt.timedelta(hours=12)

csrf = CSRFProtect()


class SharedKeySession(SecureCookieSessionInterface):
    """Signed cookie sessions under a key derived from the token key, so that a login on one
    service's pages is valid on all four (cookies are per host, not per port)."""

    def open_session(self, app: Flask, request):
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # nothing to verify: no key, no database needed
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask):
        try:
            ensure_secret_key(app)
        except Exception as exc:  # the key lives in the database, which may be down
            if not is_transient(exc):
                raise
            return None  # no session for this request; health checks and errors still answer
        return super().get_signing_serializer(app)


def ensure_secret_key(app: Flask) -> None:
    """Sign sessions and CSRF tokens with a key derived from the token key (shared by the four services)."""
    if not app.secret_key:
        token_key = app.extensions["nrw"].token_key
        app.secret_key = hmac.new(token_key.encode(), b"nrw web session", hashlib.sha256).hexdigest()


def _locale() -> str:
    chosen = session.get("lang")
    return chosen if chosen in LANGUAGES else request.accept_languages.best_match(LANGUAGES) or "en"


def _now() -> float:
    """Seconds since the epoch: the clock of the inactivity check."""
    return time.time()


def _is_page(path: str) -> bool:
    """True for people's pages; the API (bearer tokens) and health checks have no session."""
    return not path.startswith("/api/") and path not in ("/healthz", "/readyz", "/openapi.json")


def page_user() -> dict | None:
    """The logged-in user of this browser session, or None."""
    return session.get("user")


def login_required(*roles: str) -> Callable:
    """Page decorator: a logged-in user with one of `roles` (admin always passes), else the login page."""
    allowed = set(roles) | {"admin"}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = page_user()
            if user is None:
                return redirect(url_for("ui.login", next=request.full_path))
            if not allowed.intersection(user["roles"]):
                abort(403)
            g.user = user
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlparse(target).netloc:
        return target
    return "/"


def ui_blueprint() -> Blueprint:
    """Log in, log out and choose the language: the same on every service."""
    bp = Blueprint("ui", __name__)

    @bp.route("/login", methods=["GET", "POST"])
    def login():
        """The login form."""
        error = None
        if request.method == "POST":
            res = current_app.extensions["nrw"]
            user = auth.authenticate(res.identity_db, request.form.get("username", ""), request.form.get("password", ""))
            if user is None:
                error = _("Wrong username or password.")
            else:
                session.clear()
                session.permanent = True
                session["user"] = {"id": user["user_id"], "username": user["_id"], "roles": user["roles"]}
                session["seen"] = _now()
                session["lang"] = request.form.get("lang") or _locale()
                return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", error=error, next=request.args.get("next")), 401 if error else 200

    @bp.post("/logout")
    def logout():
        """End the session."""
        session.clear()
        flash(_("You are logged out."))
        return redirect(url_for("ui.login"))

    @bp.post("/language")
    def language():
        """Switch the pages between English and Korean."""
        if request.form.get("lang") in LANGUAGES:
            session["lang"] = request.form["lang"]
        return redirect(_safe_next(request.form.get("next")))

    return bp


def init_ui(app: Flask, service: str) -> None:
    """Sessions, CSRF, translations, templates and the shared pages, for one service's app."""
    settings = app.extensions["nrw"].settings
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    app.session_interface = SharedKeySession()
    app.config.update(
        SESSION_COOKIE_NAME="nrw_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=idle + SESSION_COOKIE_GRACE,
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which already expires
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
    )
    app.jinja_loader = ChoiceLoader([app.jinja_loader, FileSystemLoader(str(SHARED_TEMPLATES))])
    csrf.init_app(app)
    Babel(app, locale_selector=_locale)
    app.register_blueprint(ui_blueprint())

    @app.before_request
    def _page_key():
        if _is_page(request.path):
            ensure_secret_key(app)  # pages make CSRF tokens, which need it even before a session exists

    @app.before_request
    def _end_idle_session():
        """A page request after more than the idle limit without one logs the user out (the
        login page says why); any earlier request starts the limit again."""
        if not _is_page(request.path) or page_user() is None:
            return
        now = _now()
        if now - session.get("seen", now) > idle.total_seconds():
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            minutes = f"{settings.session_idle_minutes:g}"
            flash(_("You were logged out after %(minutes)s minutes without activity. Please log in again.",
                    minutes=minutes))
            return  # the page's login_required sends the browser to the login page
        session["seen"] = now

    @app.template_filter("format_date_iso")
    def _format_date_iso(value: str | None) -> str:
        """An ISO business date as people read it in the page's language."""
        return format_date(dt.date.fromisoformat(value), "long") if value else "—"

    @app.context_processor
    def _layout():
        links = {name: settings.url_of(name) for name in SERVICES}
        return {"service": service, "user": page_user(), "links": links, "languages": LANGUAGES,
                "lang": _locale()}


def N_(message: str) -> str:
    """Mark a word for translation where it is shown later through _(value)."""
    return message


# Enum values shown on pages, so that extraction puts them in the catalog.
TERMS = (
    N_("female"), N_("male"), N_("unknown"), N_("named"), N_("anonymous"), N_("none"),
    N_("confirmed"), N_("probable"), N_("unverified"),
    N_("family"), N_("fellow_escapee"), N_("broker"), N_("church_partner"), N_("ngo_partner"), N_("media"), N_("other"),
    N_("minor"), N_("pregnant"), N_("elderly"), N_("ill"), N_("prior_repatriation"), N_("religious_contact"),
    N_("contact_with_south_koreans"), N_("trafficking_victim"),
    N_("reported"), N_("detained"), N_("deportation_imminent"), N_("released"), N_("in_third_country"),
    N_("whereabouts_unknown"), N_("repatriated"), N_("resettled"), N_("deceased"), N_("closed_duplicate"),
    N_("closed_unfounded"), N_("first report"),
)
