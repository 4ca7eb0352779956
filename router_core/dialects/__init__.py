"""The wire dialects (Responses, Chat Completions; Anthropic Messages in its plugin) and what they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from ..call import Call, Part, Reply, StreamPiece, Usage
from ..errors import BadRequest, GatewayError
from ..ids import uuid7_str

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


def markdown_image(part: Part) -> str:
    """A generated image as a Markdown image: what chat UIs render where a dialect has no image output."""
    url = part.source.get("url") or f"data:image/png;base64,{part.source.get('b64_json', '')}"
    return f"![image]({url})"


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        return ""  # allowed: a model-selecting plugin (tags) may pick one
    return expect(model, str, "model", "a string")


def require_stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream")
    return False if stream is None else expect(stream, bool, "stream", "a boolean")


class StreamDecoder:
    """One upstream stream's events → canonical pieces; one object per stream, so it may keep state.

    ``feed`` takes one event's parsed JSON and returns the pieces it yields (often none).
    ``reply_id`` is the upstream's own id for the answer, once an event has named it.
    """

    reply_id: str | None = None

    def feed(self, event: dict[str, Any]) -> list[StreamPiece]:
        raise NotImplementedError


class StreamEncoder:
    """Canonical pieces → one client stream's events; one object per stream."""

    def start(self) -> list[dict[str, Any]]:
        return []

    def encode(self, piece: StreamPiece) -> list[dict[str, Any]]:
        raise NotImplementedError

    def image(self, part: Part) -> list[dict[str, Any]]:
        """A generated image (``part.source``: ``b64_json`` or ``url``), as this dialect streams one."""
        return []

    def close(self) -> list[dict[str, Any]]:
        return []


class Dialect:
    """A wire dialect (Responses, Chat Completions, Anthropic Messages), on either side of the gateway.

    Subclasses set the class attributes and implement the codec methods. The core never
    asks *which* dialect it holds, only what this object says: its ids, how its streams
    are framed and ended, how an error looks in it. Two ends speak the same dialect when
    their ``name`` is equal; then a stream may pass through untouched.
    """

    name: ClassVar[str]
    id_prefix: ClassVar[str]
    # SSE framing: an ``event: <type>`` line before each ``data:`` line (Responses, Messages).
    named_events: ClassVar[bool] = False
    # The data line that ends a stream (Chat's ``[DONE]``), or None.
    done_marker: ClassVar[bytes | None] = None
    # A header other than ``Authorization: Bearer`` that carries the client's key (Anthropic's ``x-api-key``).
    key_header: ClassVar[str | None] = None
    # Whether a stream from an upstream of the same dialect may reach the client byte for byte.
    passthrough_streams: ClassVar[bool] = True

    # --- requests
    def decode_request(self, body: dict[str, Any]) -> Call:
        """A client's body → Call; unknown fields carried in ``params``. Raises BadRequest."""
        raise NotImplementedError

    def encode_request(self, call: Call, model: str) -> dict[str, Any]:
        """Call → a body for the upstream ``model`` (its own name). Raises BadRequest for what it cannot say."""
        raise NotImplementedError

    # --- replies
    def decode_reply(self, body: dict[str, Any]) -> Reply:
        """An upstream answer → Reply; raises ValueError (or KeyError/TypeError) for anything else."""
        raise NotImplementedError

    def encode_reply(self, reply: Reply, reply_id: str, call: Call | None = None) -> dict[str, Any]:
        """Reply → the answer a client of this dialect expects; ``call`` is the request it answers."""
        raise NotImplementedError

    def restamp(self, body: dict[str, Any], reply: Reply) -> None:
        """An upstream answer in this very dialect, passed through: give it the gateway's id and model name."""
        body["id"], body["model"] = reply.id, reply.model

    def restamp_event(self, event: dict[str, Any], reply_id: str, model: str, usage_extra: dict[str, Any]) -> None:
        """An upstream stream event in this very dialect, relayed: the gateway's id and model name in
        it, ``usage_extra`` in its usage. By default nothing (the stream carries neither)."""
        return None

    def reply_usage(self, body: dict[str, Any]) -> Usage:
        raise NotImplementedError

    def map_reply_text(
        self, body: dict[str, Any], fn: Callable[[str], str], arguments: Callable[[str], str] | None = None
    ) -> None:
        raise NotImplementedError

    # --- streams
    def stream_encoder(self, reply_id: str, model: str, call: Call | None) -> StreamEncoder:
        raise NotImplementedError

    def stream_decoder(self) -> StreamDecoder:
        raise NotImplementedError

    def stream_error(self, message: str) -> dict[str, Any]:
        """The event that ends a stream that failed after its first byte."""
        return {"error": {"message": message, "type": "upstream_error", "param": None, "code": "upstream_error"}}

    def frame(self, event: dict[str, Any]) -> bytes:
        payload = orjson.dumps(event)
        if self.named_events:
            return b"event: " + event["type"].encode() + b"\ndata: " + payload + b"\n\n"
        return b"data: " + payload + b"\n\n"

    def frames(self, events: list[dict[str, Any]]) -> bytes:
        return b"".join(self.frame(e) for e in events)

    @property
    def end_of_stream(self) -> bytes:
        return b"data: " + self.done_marker + b"\n\n" if self.done_marker else b""

    # --- errors and ids
    def error_body(self, error: GatewayError) -> dict[str, Any]:
        """A refused request in this dialect's error shape (OpenAI's by default)."""
        return error.body()

    def new_id(self) -> str:
        return self.id_prefix + uuid7_str()
