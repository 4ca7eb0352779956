"""The Anthropic provider: Messages API URL and key header; an error before the first byte still falls back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from router_core import Call, Dialect, Provider, UpstreamFailure
from router_plugins.anthropic.dialect import DIALECT

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    """Claude through the Messages API, whatever dialect the client speaks."""

    kind = "anthropic"

    def codec(self, call: Call) -> Dialect:
        return DIALECT

    def url(self, codec: Dialect) -> str:
        return (self.base_url or DEFAULT_BASE_URL) + "/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    @contextlib.asynccontextmanager
    async def stream(self, codec: Dialect, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        async with super().stream(codec, body) as chunks:
            yield self._refuse_early_error(chunks)

    async def _refuse_early_error(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Anthropic answers 200 and then an ``error`` event when overloaded: before the first content
        delta nothing has reached the client yet, so it is a failure the next route may take over."""
        first = True
        async for chunk in chunks:
            if first and b"error" in chunk:
                for line in chunk.split(b"\n"):
                    if b"content_block_delta" in line:
                        break  # the answer has begun: an error from here on ends the stream instead
                    if line.startswith(b"data:") and b'"error"' in line:
                        event = _event(line[5:])
                        if event.get("type") == "error":
                            error = event.get("error")
                            reason = error.get("type") if isinstance(error, dict) else None
                            raise UpstreamFailure(f"provider '{self.name}' stream failed: {reason or 'error'}")
            first = False
            yield chunk


def _event(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}
