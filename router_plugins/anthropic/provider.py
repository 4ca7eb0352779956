"""The Anthropic provider: Messages API URL, key header, and a stream relay that carries per-stream state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson

from router_core import Call, Provider, UpstreamFailure, sse_data
from router_plugins.anthropic import messages

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"


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

    async def _events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for data in sse_data(chunks):
                yield data
        except ValueError as exc:  # an over-long line: garbage, not a model talking
            raise UpstreamFailure(f"provider '{self.name}' sent a malformed stream: {exc}") from None

    async def _relay(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Re-emit the upstream's events with the state ``messages.decode_event`` cannot keep.

        ``decode_event`` sees one event at a time, but input tokens arrive in
        ``message_start`` and output tokens in ``message_delta``, and a tool-use block's
        position counts text blocks too. So ``message_delta`` gets the whole usage and
        tool-use events a ``tool_index`` (0, 1, … among tool calls only).
        """
        usage: dict[str, Any] = {}
        tool_index: dict[int, int] = {}
        async for data in self._events(chunks):
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
