"""What makes every service answer like a hardened site: security headers on every response, a
limit on request bodies, JSON that is refused when nested too deep, and the pages' stylesheets
served as files (the pages have no inline style or script, so the policy needs no exception).

- Every response: `Content-Security-Policy` (PAGE_POLICY: only this origin, no inline script or
  style, no framing, forms posted only here), `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer`, and `Cache-Control: no-store` on everything but the stylesheets
  (pages and API answers may carry identifying data; nothing of them may stay in a cache).
  With NRW_PUBLIC_URL on https, `Strict-Transport-Security` as well.
- Letters and annexes (standalone documents made from records): `as_document` gives them
  DOCUMENT_POLICY, a sandbox in which nothing runs and nothing is fetched; only their own
  inline style applies. A PDF keeps the page policy: browsers show PDFs in a viewer of their own,
  which a sandbox stops.
- A body over `max_body_bytes` is 413 `payload_too_large` (JSON for the API, the error page for
  people) before it is read: by its Content-Length, or while it is read when it is sent in chunks.
- `parse_json` refuses JSON nested deeper than `max_json_depth` (400 `too_deeply_nested`) before
  Python's parser can run out of stack on it.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, request
from marshmallow import Schema, fields

from shared.config import Settings
from shared.errors import ApiError

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/assets"

PAGE_POLICY = ("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
               "object-src 'none'")
# A letter or an annex in HTML: its own <style> (and its charts' style attributes) and nothing else;
# `sandbox` without allowances gives it a unique origin, no script, no form, no popup.
DOCUMENT_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                   "form-action 'none'; base-uri 'none'")
HSTS = "max-age=31536000; includeSubDomains"

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def init_hardening(app: Flask, settings: Settings) -> None:
    """Body limit, security headers and the stylesheets, for one service's app."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes  # one limit: a form field may be as large as a body
    app.extensions["nrw_hardening"] = settings
    app.register_blueprint(assets_blueprint())

    @app.before_request
    def _refuse_large_bodies():
        """A declared length over the limit is refused before anything reads it (also on routes
        that would not have read it); a chunked body is stopped while it is read."""
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            abort(413)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        return secure(response, settings, static=request.blueprint == "nrw_assets")


def secure(response: Response, settings: Settings, *, static: bool = False) -> Response:
    """The security headers on one response (a document's own policy is kept)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if not static:
        headers["Cache-Control"] = "no-store"
    if settings.secure_cookies:
        headers["Strict-Transport-Security"] = HSTS
    return response


def as_document(response: Response) -> Response:
    """A letter or an annex: sandboxed when a browser could render it as a page (HTML, and
    anything else but PDF, whose viewer does not run in a sandbox)."""
    if response.mimetype != "application/pdf":
        response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    return response


def assets_blueprint() -> Blueprint:
    """The pages' stylesheets, from shared/static (the same on every service)."""
    return Blueprint("nrw_assets", __name__, static_folder=str(STATIC), static_url_path=ASSETS_PATH)


# --- JSON bodies -----------------------------------------------------------------------------------


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count),
    counted without recursion and without parsing."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub('""', text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def parse_json(raw: bytes, max_depth: int) -> Any:
    """A JSON body: 400 malformed_json if it is not JSON (or is empty), 400 too_deeply_nested if its
    arrays and objects nest deeper than `max_depth`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "The request body is not valid JSON (UTF-8).") from None
    if not text.strip():
        raise ApiError(400, "malformed_json", "The request needs a JSON body.")
    if json_depth(text) > max_depth:
        raise ApiError(400, "too_deeply_nested", f"The JSON body nests deeper than {max_depth} levels.")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, "malformed_json", "The request body is not valid JSON.") from None
    except RecursionError:  # not reached below the limit; kept so that no depth is ever a 500
        raise ApiError(400, "too_deeply_nested", f"The JSON body nests deeper than {max_depth} levels.") from None


def json_type_errors(schema: Schema, data: dict, prefix: str = "") -> dict[str, list[str]]:
    """Values of the wrong JSON type for the schema's fields, by dotted field path: marshmallow turns
    "12" into 12 and 0 into False, which the OpenAPI document (made from the same schemas) refuses,
    so the API refuses them too. None is left to the field (allow_none)."""
    errors: dict[str, list[str]] = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if key in data:
            _check_type(field, data[key], f"{prefix}{key}", errors)
    return errors


def _check_type(field: fields.Field, value: Any, path: str, errors: dict[str, list[str]]) -> None:
    if value is None:
        return
    expected = next((kinds for cls, kinds in _JSON_KINDS if isinstance(field, cls)), None)
    if expected is not None and (not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
        errors.setdefault(path, []).append(field.error_messages.get("invalid") or "Invalid type.")
        return
    if isinstance(field, fields.List) and isinstance(value, list):
        for i, item in enumerate(value):
            _check_type(field.inner, item, f"{path}.{i}", errors)
    elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        items = [(f"{path}.{i}.", v) for i, v in enumerate(value)] if field.many and isinstance(value, list) else \
            [(f"{path}.", value)]
        for prefix, item in items:
            if isinstance(item, dict):
                errors.update(json_type_errors(field.schema, item, prefix))
    elif isinstance(field, fields.Dict) and isinstance(value, dict) and field.value_field is not None:
        for key, item in value.items():
            _check_type(field.value_field, item, f"{path}.{key}", errors)


# The JSON types each kind of field takes (the first match counts: Boolean before Number).
_JSON_KINDS: tuple[tuple[type, tuple[type, ...]], ...] = (
    (fields.Boolean, (bool,)),
    (fields.Integer, (int,)),
    (fields.Number, (int, float)),
    (fields.String, (str,)),
    (fields.UUID, (str,)),
    (fields.Date, (str,)),
    (fields.DateTime, (str,)),
    (fields.Time, (str,)),
    (fields.TimeDelta, (int, float)),
    (fields.List, (list,)),
    (fields.Tuple, (list,)),
    (fields.Dict, (dict,)),
)
