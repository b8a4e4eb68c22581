"""The admins' page for the accounts (issue 9, point 3), on intake, the issuer of logins: every
user with their roles, activity, second factor and logins (never a hash or a secret), and per
user the forms to change roles, disable or enable, give a one-time password, reset the second
factor and delete (after a confirmation page); and the form to create a user.

Every action calls the same functions as the account API (shared/accounts.py), so it is written
to intake's audit trail and ends the user's logins exactly as the API does. A refused action
shows the whole page again with the problem in plain words next to its field and at the top
(422, 409 or 404), keeping what was typed except passwords; a done one redirects back with a
message saying what happened.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from shared import accounts, auth, identity
from shared.errors import ApiError, flatten_messages
from shared.forms import password_message, translate_message
from shared.i18n import N_
from shared.ui import login_required

bp = Blueprint("admin_pages", __name__)

# The roles as the page names them (auth.ROLES), so that extraction puts them in the catalog.
ROLE_NAMES = (N_("caseworker"), N_("advocate"), N_("analyst"), N_("admin"))


def _res():
    return current_app.extensions["nrw"]


def role_list(roles) -> str:
    """Roles as the page's language names them, comma-separated."""
    return ", ".join(_(r) for r in roles)


def _field_message(field: str, message: str) -> str:
    """A validation message of the create form in the page's language."""
    if field == "password":
        return password_message(message)
    if field == "username" and message == accounts.USERNAME.error:
        return _("Use 2 to 64 characters: lower-case letters, digits, dots, dashes or underscores, "
                 "starting with a letter or digit.")
    if field == "roles":
        return _("Choose at least one role.")
    return translate_message(message)


def _api_error_messages(exc: ApiError, username: str, field: str) -> dict[str, list[str]]:
    """What an account function refused, as {field: [messages in the page's language]}."""
    if exc.code == "weak_password":
        return {"password": [password_message(m) for m in (exc.fields or {}).get("password", [])]
                or [_("Choose another password.")]}
    if exc.code == "user_exists":
        return {"username": [_("A user named %(username)s already exists; choose another username.",
                               username=username)]}
    if exc.code == "last_admin":
        return {field: [_("%(username)s is the last active admin, so they cannot be disabled, deleted or lose "
                          "the admin role. Make another user an admin first.", username=username)]}
    if exc.code == "not_found":
        return {"_form": [_("There is no user named %(username)s (any more).", username=username)]}
    return {field: [_(exc.message)]}


def chosen_roles() -> list[str]:
    """The roles ticked in the form, each once, in the order of auth.ROLES (others are kept
    too, so that validation names them)."""
    ticked = request.form.getlist("roles")
    return [r for r in auth.ROLES if r in ticked] + sorted({r for r in ticked if r not in auth.ROLES})


def _roles_problem(roles: list[str]) -> list[str] | None:
    if not roles:
        return [_("Choose at least one role.")]
    if any(r not in auth.ROLES for r in roles):
        return [_("Choose one of the options.")]
    return None


def _users() -> list[dict]:
    """Every user as the API shows them (no hash, no secret), by username."""
    return [identity.public_view(u) for u in sorted(_res().identity_db["users"].find({}), key=lambda u: u["_id"])]


def users_page(*, status: int = 200, create_values: dict | None = None, create_errors: dict | None = None,
               target: str | None = None, row_errors: dict | None = None, row_values: dict | None = None):
    """The list with the create form; a refused action's errors next to its fields (for the
    create form, or for `target`'s forms) and at the top."""
    create_errors = create_errors or {}
    row_errors = row_errors or {}
    summary = []
    for name, messages in create_errors.items():
        summary.extend((f"new-{name}" if name != "_form" else None, m) for m in messages)
    for name, messages in row_errors.items():
        summary.extend((f"{name}-{target}" if name != "_form" else None, m) for m in messages)
    return render_template("admin_users.html", users=_users(), roles=auth.ROLES, summary=summary,
                           create_values=create_values or {"roles": []}, create_errors=create_errors,
                           target=target, row_errors=row_errors, row_values=row_values or {}), status


def _refused(exc: ApiError, username: str, field: str, row_values: dict | None = None):
    return users_page(status=exc.status, target=username, row_errors=_api_error_messages(exc, username, field),
                      row_values=row_values)


def _back(username: str | None = None):
    target = url_for("admin_pages.users")
    if username and identity.find_user(_res().identity_db, username) is not None:
        target += f"#user-{username}"
    return redirect(target, 303)


@bp.get("/admin/users")
@login_required("admin")
def users():
    """Every user, with the forms that change them, and the form to create one."""
    return users_page()


@bp.post("/admin/users")
@login_required("admin")
def create_user():
    """Create a user with a password and roles (the API's rules: a valid username, a strong
    password, at least one role)."""
    typed = {"username": request.form.get("username", "").strip(), "roles": chosen_roles()}
    password = request.form.get("password", "")
    try:
        data = accounts.UserCreate().load({**typed, "password": password})
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for path, messages in flatten_messages(exc.messages).items():
            field = path.split(".")[0]
            bucket = errors.setdefault(field, [])
            bucket.extend(m for m in (_field_message(field, m) for m in messages) if m not in bucket)
        return users_page(status=422, create_values=typed, create_errors=errors)
    res = _res()
    try:
        user = accounts.create_account(res, data["username"], data["password"], data["roles"])
    except ApiError as exc:
        return users_page(status=exc.status, create_values=typed,
                          create_errors=_api_error_messages(exc, typed["username"], "username"))
    flash(_("User %(username)s was created with the roles: %(roles)s.", username=user["_id"],
            roles=role_list(user["roles"])))
    return _back(user["_id"])


@bp.post("/admin/users/<username>/roles")
@login_required("admin")
def change_roles(username: str):
    """Give a user other roles; their logins end."""
    roles = chosen_roles()
    problem = _roles_problem(roles)
    if problem:
        return users_page(status=422, target=username, row_errors={"roles": problem}, row_values={"roles": roles})
    try:
        user = accounts.update_user(_res(), username, {"roles": roles})
    except ApiError as exc:
        return _refused(exc, username, "roles", {"roles": roles})
    flash(_("The roles of %(username)s are now: %(roles)s. Their logins have ended.", username=username,
            roles=role_list(user["roles"])))
    return _back(username)


@bp.post("/admin/users/<username>/disable")
@login_required("admin")
def disable(username: str):
    """Disable a user: they cannot log in, and their logins end (not the last active admin)."""
    try:
        accounts.update_user(_res(), username, {"active": False})
    except ApiError as exc:
        return _refused(exc, username, "active")
    flash(_("%(username)s is disabled: they cannot log in, and their logins have ended.", username=username))
    return _back(username)


@bp.post("/admin/users/<username>/enable")
@login_required("admin")
def enable(username: str):
    """Let a disabled user log in again."""
    try:
        accounts.update_user(_res(), username, {"active": True})
    except ApiError as exc:
        return _refused(exc, username, "active")
    flash(_("%(username)s is enabled and can log in again.", username=username))
    return _back(username)


@bp.post("/admin/users/<username>/password")
@login_required("admin")
def one_time_password(username: str):
    """Give a user a one-time password, to be changed at their next login; their logins end."""
    res = _res()
    try:
        accounts.give_one_time_password(res, username, request.form.get("password", ""))
    except ApiError as exc:
        return _refused(exc, username, "password")
    flash(_("%(username)s has a one-time password now and must choose a new one at the next login. "
            "Their logins have ended.", username=username))
    return _back(username)


@bp.post("/admin/users/<username>/second-factor/reset")
@login_required("admin")
def reset_second_factor(username: str):
    """Remove a user's second factor (authenticator app and recovery codes); their logins end."""
    try:
        accounts.reset_second_factor(_res(), username)
    except ApiError as exc:
        return _refused(exc, username, "second_factor")
    flash(_("The second factor of %(username)s is removed; they set up a new one at the next login if their "
            "roles need one. Their logins have ended.", username=username))
    return _back(username)


@bp.get("/admin/users/<username>/delete")
@login_required("admin")
def confirm_delete(username: str):
    """Ask before deleting a user."""
    user = identity.find_user(_res().identity_db, username)
    if user is None:
        return _refused(ApiError(404, "not_found", "No user with that username."), username, "delete")
    return render_template("admin_user_delete.html", user=identity.public_view(user))


@bp.post("/admin/users/<username>/delete")
@login_required("admin")
def delete(username: str):
    """Delete a user (not the last active admin); their logins end, the audit trail keeps naming them."""
    try:
        accounts.remove_user(_res(), username)
    except ApiError as exc:
        return _refused(exc, username, "delete")
    flash(_("User %(username)s was deleted. The audit trail still names them.", username=username))
    return _back()
