"""API errors and their JSON shape: {"error": {"code", "message", "fields"?, ...}}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the API reports to its caller as JSON with a status code."""

    def __init__(self, status: int, code: str, message: str, *, fields: dict | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.extra = extra

    def body(self) -> dict:
        """The JSON body of the response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        error.update(self.extra)
        return {"error": error}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict as dotted field paths: {"person.sex": ["..."]}."""
    if isinstance(messages, dict):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name or "_schema")
            flat.update(flatten_messages(value, path))
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    if isinstance(messages, list):
        flat = {}
        for item in messages:
            for key, value in flatten_messages(item, prefix).items():
                flat.setdefault(key, []).extend(value)
        return flat
    return {prefix or "_schema": [str(messages)]}
