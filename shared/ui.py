"""What the four services' web pages share: the login session (one login for all four), CSRF
protection, English and Korean, the layout, and the page role check."""

from __future__ import annotations

import datetime as dt
import functools
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlparse

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, format_date, gettext as _
from flask_wtf.csrf import CSRFProtect
from jinja2 import ChoiceLoader, FileSystemLoader

from markupsafe import Markup

from shared import accounts, auth, identity, twofactor, words
from shared.config import SERVICES
from shared.errors import ApiError
from shared.forms import password_message

SHARED_TEMPLATES = Path(__file__).resolve().parent / "templates"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = {"en": "English", "ko": "한국어"}
# The session cookie outlives the idle limit (NRW_SESSION_IDLE_MINUTES, checked on the server
# against the session's last-seen time), so that a late request can be told why it must log in.
SESSION_COOKIE_GRACE = dt.timedelta(hours=12)

csrf = CSRFProtect()


class SharedKeySession(SecureCookieSessionInterface):
    """Signed cookie sessions under the web processes' shared cookie secret (a file, never the
    database), so that one login works on all four services (cookies are per host, not per
    port). The login itself is the issuer's signed session token inside the cookie: the cookie
    secret can sign a language or a CSRF token, never a login."""

    def open_session(self, app: Flask, request):
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()  # nothing to verify
        return super().open_session(app, request)


def ensure_secret_key(app: Flask) -> None:
    """Sign cookies and CSRF tokens with the shared cookie secret (NRW_SECRETS_DIR/web-session.secret)."""
    if not app.secret_key:
        app.secret_key = app.extensions["nrw"].cookie_secret


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
    """The logged-in user of this browser session, checked against the live account (once per
    request), or None."""
    if "page_user" in g:
        return g.page_user
    g.page_user = None
    token = session.get("auth")
    if token:
        res = current_app.extensions["nrw"]
        try:
            claims = res.token_verifier.claims(token, kinds=(auth.SESSION,))
            user = auth.live_account(res.identity_db, claims, dt.datetime.now(dt.timezone.utc))
        except ApiError:
            session.pop("auth", None)
            flash(_("Your login has ended. Please log in again."))
        else:
            g.page_user = auth.request_user(user, claims)
    return g.page_user


def issuer_url(path: str) -> str:
    """A page of the issuer (intake), where people log in and manage their account."""
    settings = current_app.extensions["nrw"].settings
    return settings.url_of("intake") + path


def _to_login():
    res = current_app.extensions["nrw"]
    if res.is_issuer:
        return redirect(url_for("ui.login", next=request.script_root + request.full_path.rstrip("?")))
    here = res.settings.url_of(res.service) + request.full_path.rstrip("?")
    return redirect(issuer_url("/login?" + urlencode({"next": here})))


def _to_setup(scope: str):
    return redirect(issuer_url("/account/2fa" if scope == auth.OTP_ENROLMENT else "/account/password"))


def login_required(*roles: str) -> Callable:
    """Page decorator: a live login with one of `roles` (admin always passes), else the login
    page; a login whose set-up is unfinished (second factor, new password) goes there first."""
    allowed = set(roles) | {"admin"}

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = page_user()
            if user is None:
                return _to_login()
            if user["scope"] != auth.FULL:
                return _to_setup(user["scope"])
            if not allowed.intersection(user["roles"]):
                abort(403)
            g.user = user
            return view(*args, **kwargs)

        return wrapper

    return decorator


def _safe_next(target: str | None) -> str:
    """Only this site's paths, or a page of one of the four services, are followed after login
    (no open redirect)."""
    if not target:
        return "/"
    if target.startswith("/") and not target.startswith("//") and not target.startswith("/\\") \
            and not urlparse(target).netloc:
        return target
    settings = current_app.extensions["nrw"].settings
    parsed = urlparse(target)
    for name in SERVICES:
        base = urlparse(settings.url_of(name))
        if (parsed.scheme, parsed.netloc) == (base.scheme, base.netloc) and "\\" not in target:
            return target
    return "/"


def _sign_in(res, user: dict, scope: str) -> None:
    token, _lifetime = accounts.start_session(res, user, kind=auth.SESSION, scope=scope,
                                              now=dt.datetime.now(dt.timezone.utc))
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["auth"] = token
    session["seen"] = _now()
    session["lang"] = request.form.get("lang") or lang or _locale()


def _after_login(scope: str, target: str | None):
    if scope == auth.OTP_ENROLMENT:
        return redirect(url_for("ui.enrol", next=target))
    if scope == auth.PASSWORD_CHANGE:
        return redirect(url_for("ui.own_password", next=target))
    return go_on(_safe_next(target), _("You are logged in"), _("Taking you to the page you asked for."))


def go_on(target: str, title: str, message: str):
    """After a form: a redirect on this site; to another of the four services (another origin on
    a developer's machine), a page that moves on by itself, since the pages' Content-Security-
    Policy (form-action 'self') forbids a form's answer to redirect to another origin."""
    if not urlparse(target).netloc:
        return redirect(target)
    return render_template("continue.html", target=target, title=title, message=message)


def _login_error(exc: ApiError, template: str, **context):
    if exc.code == "too_many_attempts":
        message = _("Too many attempts. Try again in %(seconds)s seconds.", seconds=exc.headers["Retry-After"])
    else:
        message = _("Wrong username or password.") if template == "login.html" else _("That code is not right.")
    return render_template(template, error=message, **context), exc.status, exc.headers


def ui_blueprint(service: str) -> Blueprint:
    """Log in (with the second factor), log out, the account's own settings, and the language.
    Only intake, the issuer, shows the login and account pages; the others send people there."""
    bp = Blueprint("ui", __name__)
    issuer = service == "intake"

    @bp.route("/login", methods=["GET", "POST"])
    def login():
        """The login form (first step: username and password)."""
        if not issuer:
            return redirect(issuer_url("/login?" + urlencode({"next": request.args.get("next") or
                                                                      current_app.extensions["nrw"].settings.url_of(service) + "/"})))
        target = request.args.get("next")
        if request.method == "POST":
            res = current_app.extensions["nrw"]
            now = dt.datetime.now(dt.timezone.utc)
            try:
                step = accounts.check_password_step(res, request.form.get("username", "")[:64],
                                                    request.form.get("password", "")[:256],
                                                    accounts.client_address(res), now)
            except ApiError as exc:
                return _login_error(exc, "login.html", next=target)
            if step.otp_pending:
                session["pending"] = res.token_signer.sign(step.user, session_id="pending", kind=auth.PENDING,
                                                           scope=auth.FULL, ttl_seconds=300, now=now)
                return redirect(url_for("ui.login_otp", next=target))
            _sign_in(res, step.user, step.scope)
            return _after_login(step.scope, target)
        return render_template("login.html", error=None, next=target)

    @bp.route("/login/otp", methods=["GET", "POST"])
    def login_otp():
        """The second step: a code from the authenticator app, or a recovery code."""
        target = request.args.get("next")
        res = current_app.extensions["nrw"]
        try:
            claims = res.token_verifier.claims(session.get("pending") or "", kinds=(auth.PENDING,))
        except ApiError:
            session.pop("pending", None)
            return redirect(url_for("ui.login", next=target))
        user = identity.find_user(res.identity_db, claims.username)
        if user is None or user["user_id"] != claims.user_id or int(user.get("version", 0)) != claims.version:
            session.pop("pending", None)
            return redirect(url_for("ui.login", next=target))
        if request.method == "POST":
            try:
                scope = accounts.check_otp_step(res, user, request.form.get("otp", "")[:32],
                                                accounts.client_address(res), dt.datetime.now(dt.timezone.utc))
            except ApiError as exc:
                return _login_error(exc, "login_otp.html", next=target)
            _sign_in(res, user, scope)
            return _after_login(scope, target)
        return render_template("login_otp.html", error=None, next=target)

    @bp.route("/account/2fa", methods=["GET", "POST"])
    def enrol():
        """Set up the second factor: scan the QR code, confirm a code, keep the recovery codes."""
        if not issuer:
            return redirect(issuer_url("/account/2fa"))
        user = page_user()
        if user is None:
            return _to_login()
        res = current_app.extensions["nrw"]
        target = request.args.get("next")
        if identity.find_user(res.identity_db, user["username"]).get("otp_secret"):
            return redirect(_safe_next(target))
        error = None
        if request.method == "POST":
            try:
                codes = accounts.confirm_enrolment(res, user["username"], request.form.get("otp", "")[:32],
                                                   dt.datetime.now(dt.timezone.utc))
            except ApiError:
                error = _("That code is not right. Check the time on your phone and enter the newest code.")
            else:
                session.pop("auth", None)  # enrolling ends the user's logins: the next one asks for a code
                return render_template("recovery_codes.html", codes=codes, next=target)
        secret = accounts.pending_secret(res, user["username"])
        if secret is None or request.method == "GET":
            secret = accounts.start_enrolment(res, user["username"])["secret"]
        uri = twofactor.provisioning_uri(secret, user["username"])
        return render_template("enrol.html", error=error, secret=secret, qr=Markup(twofactor.qr_svg(uri)),
                               next=target), 422 if error else 200

    @bp.route("/account/password", methods=["GET", "POST"])
    def own_password():
        """Change one's own password (also after an admin set a one-time one)."""
        if not issuer:
            return redirect(issuer_url("/account/password"))
        user = page_user()
        if user is None:
            return _to_login()
        if user["scope"] not in (auth.FULL, auth.PASSWORD_CHANGE):  # a second factor is to be set up first
            return _to_setup(user["scope"])
        errors: dict = {}
        if request.method == "POST":
            res = current_app.extensions["nrw"]
            try:
                accounts.change_password(res, user["username"], request.form.get("old_password", "")[:256],
                                         request.form.get("new_password", "")[:256])
            except ApiError as exc:
                errors = {k: [password_message(m) for m in v] for k, v in (exc.fields or {}).items()} or \
                    {"old_password": [_("Too many attempts. Try again in %(seconds)s seconds.",
                                        seconds=exc.headers.get("Retry-After", "60"))]}
            else:
                session.pop("auth", None)
                flash(_("Your password is changed. Log in with the new one."))
                return redirect(url_for("ui.login", next=request.args.get("next")))
        return render_template("own_password.html", errors=errors), 422 if errors else 200

    @bp.post("/logout")
    def logout():
        """End the login everywhere (the session is ended on the server, not only forgotten)."""
        user = page_user()
        if user is not None:
            identity.end_session(current_app.extensions["nrw"].identity_db, user["session_id"])
        lang = session.get("lang")
        session.clear()
        if lang:
            session["lang"] = lang
        if issuer:
            flash(_("You are logged out."))
            return redirect(url_for("ui.login"))
        return go_on(issuer_url("/login"), _("You are logged out."), _("Log in again to go on."))

    @bp.post("/language")
    def language():
        """Switch the pages between English and Korean."""
        if request.form.get("lang") in LANGUAGES:
            session["lang"] = request.form["lang"]
        return redirect(_safe_next(request.form.get("next")))  # the layout sends script_root + path

    return bp


def init_ui(app: Flask, service: str) -> None:
    """Sessions, CSRF, translations, templates and the shared pages, for one service's app."""
    settings = app.extensions["nrw"].settings
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    app.session_interface = SharedKeySession()
    app.config.update(
        # over https (NRW_PUBLIC_URL), a __Host- cookie: Secure, for this host only, path /
        SESSION_COOKIE_NAME="__Host-nrw_session" if settings.secure_cookies else "nrw_session",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=idle + SESSION_COOKIE_GRACE,
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session, which already expires
        # pages send no Referer (Referrer-Policy: no-referrer), so the token and the SameSite
        # cookie are the check, not the Referer that flask-wtf would ask for over https
        WTF_CSRF_SSL_STRICT=False,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
    )
    ensure_secret_key(app)  # a file, read once: error pages made before any request hook need it too
    app.jinja_loader = ChoiceLoader([app.jinja_loader, FileSystemLoader(str(SHARED_TEMPLATES))])
    csrf.init_app(app)
    Babel(app, locale_selector=_locale)
    app.register_blueprint(ui_blueprint(service))

    @app.before_request
    def _end_idle_session():
        """A page request after more than the idle limit without one logs the user out (the
        login page says why); any earlier request starts the limit again."""
        if not _is_page(request.path) or page_user() is None:
            return
        now = _now()
        if now - session.get("seen", now) > idle.total_seconds():
            identity.end_session(app.extensions["nrw"].identity_db, g.page_user["session_id"])
            g.page_user = None
            lang = session.get("lang")
            session.clear()
            if lang:
                session["lang"] = lang
            minutes = f"{settings.session_idle_minutes:g}"
            flash(_("You were logged out after %(minutes)s minutes without activity. Please log in again.",
                    minutes=minutes))
            return  # the page's login_required sends the browser to the login page
        session["seen"] = now

    app.add_template_filter(words.label, "label")  # {{ code|label("case_status") }}

    @app.template_filter("format_date_iso")
    def _format_date_iso(value: str | None) -> str:
        """An ISO business date as people read it in the page's language."""
        return format_date(dt.date.fromisoformat(value), "long") if value else "—"

    @app.context_processor
    def _layout():
        links = {name: settings.url_of(name) for name in SERVICES}
        return {"service": service, "user": page_user(), "links": links, "languages": LANGUAGES,
                "lang": _locale()}
