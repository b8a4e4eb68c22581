"""HTTP helpers every route uses, with nothing of the app around them: request bodies and
query parameters loaded by strict schemas, and the OpenAPI document built from the routes' own
schemas. (shared/web.py builds the app; auth, accounts and ui import only this.)"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Callable

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app, request
from marshmallow import Schema, ValidationError

from shared.errors import ApiError, flatten_messages
from shared.hardening import json_type_errors, parse_json


# --- request bodies -----------------------------------------------------------------------------


def load_body(schema: Schema) -> dict:
    """The request's JSON body loaded by a strict schema: 400 if not JSON or nested too deep, 413 if
    over the size limit (also for a body sent in chunks: reading stops at the limit), 422 if invalid
    (a value of another JSON type than its field's too: "12" for a number, 0 for a boolean)."""
    data = parse_json(request.get_data(cache=True), current_app.extensions["nrw"].settings.max_json_depth)
    if data is None:
        raise ApiError(400, "malformed_json", "The request needs a JSON body.")
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "The request body must be a JSON object.",
                       fields={"_schema": ["Expected an object."]})
    wrong_type = json_type_errors(schema, data)
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "Some fields are missing or invalid.",
                       fields={**flatten_messages(exc.messages), **wrong_type}) from None
    if wrong_type:
        raise ApiError(422, "validation_error", "Some fields are missing or invalid.", fields=wrong_type)
    return loaded


def load_query(schema: Schema) -> dict:
    """The request's query parameters loaded by a strict schema: 422 naming each bad parameter."""
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "Some query parameters are invalid.",
                       fields=flatten_messages(exc.messages)) from None


# --- OpenAPI --------------------------------------------------------------------------------------


def doc(*, summary: str, body: type[Schema] | None = None, responses: dict[int, Any] | None = None,
        query: type[Schema] | None = None, public: bool = False, headers: list[dict] | None = None,
        database: bool = True) -> Callable:
    """Describe a route for the OpenAPI document (schemas are the ones the route really uses).

    `responses`: every status the route itself answers, each with the marshmallow schema of its
    JSON body, None (no body; for an error status, the Error body), or {media type: schema or
    None} for other kinds of content. The document adds what every route of its kind answers:
    400/413/422 with a `body`, 422 with a `query`, 401/403 unless `public`, and 503 (the database
    is not answering) unless `database` is False. `headers`: OpenAPI parameter objects of the
    request headers it reads."""

    def decorator(view: Callable) -> Callable:
        view.nrw_doc = {"summary": summary, "body": body, "responses": responses or {}, "query": query,
                        "public": public, "headers": [{"in": "header", **h} for h in headers or []],
                        "database": database}
        return view

    return decorator


_RULE_ARG = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")
_ERROR = {"$ref": "#/components/schemas/Error"}


def _implied_statuses(meta: dict) -> list[int]:
    """What a route answers because of its kind: a body can be malformed or nested too deep (400),
    too large (413) or invalid (422); a query invalid (422); a route needs a token (401) with a
    role (403); and whatever uses the database answers 503 while it does not answer."""
    statuses = [400, 413, 422] if meta["body"] is not None else []
    if meta["query"] is not None:
        statuses.append(422)
    if not meta["public"]:
        statuses += [401, 403]
    if meta["database"]:
        statuses.append(503)
    return statuses


def _response(status: int, schema: Any) -> dict:
    """An OpenAPI response object: a JSON schema, none, or {media type: schema or None}."""
    out: dict[str, Any] = {"description": HTTPStatus(status).phrase}
    if isinstance(schema, dict):
        out["content"] = {media: ({"schema": s} if s is not None else {}) for media, s in schema.items()}
    elif schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    elif status >= 400:
        out["content"] = {"application/json": {"schema": _ERROR}}
    return out


def openapi_document(app: Flask, service: str) -> dict:
    """Build the service's OpenAPI 3 document from its routes' marshmallow schemas."""
    spec = APISpec(title=f"Non-Refoulement Watch: {service}", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    error_schema = {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}}}}
    spec.components.schema("Error", error_schema)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "nrw_doc", None)
        if meta is None:
            continue
        path = _RULE_ARG.sub(r"{\1}", rule.rule)
        params = [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                  for name in _RULE_ARG.findall(rule.rule)]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {"summary": meta["summary"], "responses": {}}
            roles = getattr(view, "nrw_roles", None)
            if roles:
                op["description"] = "Roles: " + ", ".join(roles)
            if not meta["public"]:
                op["security"] = [{"bearer": []}]
            if params or meta["query"] or meta["headers"]:
                query = [{"in": "query", "schema": meta["query"]}] if meta["query"] else []
                op["parameters"] = list(params) + query + meta["headers"]
            if meta["body"] is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta["body"]}}}
            for status, schema in meta["responses"].items():
                op["responses"][str(status)] = _response(status, schema)
            for status in _implied_statuses(meta):
                op["responses"].setdefault(str(status), _response(status, None))
            spec.path(path=path, operations={method.lower(): op})
    return spec.to_dict()
