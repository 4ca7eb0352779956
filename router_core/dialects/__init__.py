"""Codecs between the wire dialects (Responses, Chat Completions) and the canonical Call/Reply."""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> Any:
    """Return ``value`` if it is of ``kind`` (a bool is never an int here), else a 400 naming ``param``."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return value
    raise BadRequest(f"'{param}' must be {what}.", param=param, code="invalid_type")


def optional(obj: dict[str, Any], key: str, kind: type, param: str, what: str) -> Any:
    value = obj.get(key)
    return None if value is None else expect(value, kind, param, what)


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        return ""  # allowed: a model-selecting plugin (tags) may pick one
    return expect(model, str, "model", "a string")


def require_stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream")
    return False if stream is None else expect(stream, bool, "stream", "a boolean")
