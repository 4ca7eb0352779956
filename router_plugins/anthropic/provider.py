"""The Anthropic provider: Messages API URL, key header, and a stream relay that carries per-stream state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson

from router_core import Call, Provider, UpstreamFailure
from router_plugins.anthropic import messages

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"
# One SSE line longer than this is garbage, not a model's answer.
MAX_LINE_BYTES = 4 * 1024 * 1024


class AnthropicProvider(Provider):
    """Claude through the Messages API, whatever dialect the client speaks."""

    kind = "anthropic"

    def codec(self, call: Call) -> ModuleType:
        return messages

    def url(self, codec: ModuleType) -> str:
        return (self.base_url or DEFAULT_BASE_URL) + "/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    @contextlib.asynccontextmanager
    async def stream(self, codec: ModuleType, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        async with super().stream(codec, body) as chunks:
            yield self._relay(chunks)

    async def _relay(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Re-emit the upstream's events with the state ``messages.decode_event`` cannot keep.

        ``decode_event`` sees one event at a time, but input tokens arrive in
        ``message_start`` and output tokens in ``message_delta``, and a tool-use block's
        position counts text blocks too. So ``message_delta`` gets the whole usage and
        tool-use events a ``tool_index`` (0, 1, … among tool calls only).
        """
        usage: dict[str, Any] = {}
        tool_index: dict[int, int] = {}
        async for data in _sse_data(chunks):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamFailure(f"provider '{self.name}' sent invalid JSON in its stream") from None
            if not isinstance(event, dict):
                raise UpstreamFailure(f"provider '{self.name}' sent a stream event that is not an object")
            kind = event.get("type")
            if kind == "ping":
                continue
            if kind == "error":
                error = event.get("error") or {}
                reason = error.get("type") if isinstance(error, dict) else None
                raise UpstreamFailure(f"provider '{self.name}' stream failed: {reason or 'error'}")
            if kind == "message_start":
                usage.update((event.get("message") or {}).get("usage") or {})
            elif kind == "content_block_start" and (event.get("content_block") or {}).get("type") == "tool_use":
                tool_index[event.get("index", 0)] = event["tool_index"] = len(tool_index)
            elif kind == "content_block_delta" and event.get("index") in tool_index:
                event["tool_index"] = tool_index[event["index"]]
            elif kind == "message_delta":
                usage.update(event.get("usage") or {})
                event["usage"] = usage
            yield b"data: " + orjson.dumps(event) + b"\n\n"


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Each SSE event's ``data`` payload; the ``event:`` line repeats the JSON's ``type``."""
    buffer = b""
    data: list[bytes] = []
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > MAX_LINE_BYTES and b"\n" not in buffer:
            raise UpstreamFailure("an upstream stream line exceeds the size limit")
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if not line and data:
                yield b"\n".join(data)
                data = []
            elif line.startswith(b"data:"):
                data.append(line[5:].lstrip(b" "))
    if buffer.startswith(b"data:"):
        data.append(buffer[5:].lstrip(b" "))
    if data:
        yield b"\n".join(data)
