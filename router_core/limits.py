"""Bounds on what a client controls: how fast its body arrives, how big and how deep it is."""

from __future__ import annotations

import asyncio
import ctypes
import platform
from typing import Any

import attrs
import orjson
from aiohttp import web

from .config import ServerConfig
from .errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

# glibc keeps the heap pages a cut body freed (100 uploads cut one byte short of 8 MB left the
# gateway at 693 MB); malloc_trim hands them back to the OS. It is asked for after a refused
# body this big, once a second at most: on a heap that held 800 MB it takes ~90 ms.
TRIM_AFTER_BYTES = 1024 * 1024
TRIM_DELAY = 1.0


def _find_malloc_trim() -> Any:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


@attrs.define
class MemoryTrim:
    """One pending malloc_trim per app: many bodies cut at once cost one trim."""

    pending: bool = False

    def soon(self) -> None:
        if self.pending or _malloc_trim is None:
            return
        self.pending = True
        asyncio.get_running_loop().call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self.pending = False
        _malloc_trim(0)


TRIM = web.AppKey("limits.trim", MemoryTrim)

# A slow start is normal (TLS proxies, a busy client); the minimum rate applies after it.
BODY_GRACE_SECONDS = 1.0
# A body that stops arriving for this long is given up on, whatever credit its rate has.
BODY_STALL_SECONDS = 5.0
# orjson refuses to write JSON nested deeper than 254 levels, and the gateway writes every
# body it forwards; a dialect translation may wrap a value in a few more levels.
MAX_JSON_DEPTH = 240
_DEPTH_PROBE = 254 - MAX_JSON_DEPTH


async def read_body(request: web.Request, server: ServerConfig) -> bytes:
    """The request body, or 408/413: it must arrive within ``server.body_timeout`` seconds,
    after its first second at ``server.body_min_rate`` bytes a second on average, and
    never pause for more than :data:`BODY_STALL_SECONDS`.

    A stalled upload is cut and its connection closed, so its buffered bytes are freed
    instead of being held for as long as the client likes.
    """
    limit = server.max_body_bytes
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        # Compressed bodies could inflate far past the limit before it is counted.
        raise UnsupportedMediaType(
            "Compressed request bodies are not accepted; send the JSON uncompressed.", param="Content-Encoding"
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(_too_large(limit))
    content = request.content
    if content.is_eof():  # the whole body came with the headers (most do): nothing to wait for
        raw = content.read_nowait()
        if len(raw) > limit:
            _release(request, len(raw))
            raise PayloadTooLarge(_too_large(limit))
        return raw
    loop = asyncio.get_running_loop()
    start = loop.time()
    hard_deadline = start + server.body_timeout
    chunks: list[bytes] = []
    received = 0
    while True:
        deadline = min(hard_deadline, loop.time() + BODY_STALL_SECONDS)
        if server.body_min_rate:
            deadline = min(deadline, start + BODY_GRACE_SECONDS + received / server.body_min_rate)
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await content.readany()
        except TimeoutError:
            chunks.clear()  # the 408 is sent with Connection: close (errors_middleware)
            _release(request, received)
            raise RequestTimeout(
                f"The request body arrived too slowly (server.body_timeout {server.body_timeout:g} s, "
                f"server.body_min_rate {server.body_min_rate} bytes/s)."
            ) from None
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            chunks.clear()
            _release(request, received)
            raise PayloadTooLarge(_too_large(limit))
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _release(request: web.Request, received: int) -> None:
    if received >= TRIM_AFTER_BYTES and TRIM in request.app:
        request.app[TRIM].soon()


def _too_large(limit: int) -> str:
    return f"The request body is larger than the gateway's limit (server.max_body_bytes = {limit})."


def check_depth(raw: bytes, body: dict[str, Any]) -> None:
    """400 for JSON nested deeper than :data:`MAX_JSON_DEPTH` (it could not be forwarded).

    Counting brackets is C-speed and rules out almost every body; the rest are probed by
    orjson itself, wrapped in enough lists that a pass is forwardable after translation.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    probe: Any = body
    for _ in range(_DEPTH_PROBE):
        probe = [probe]
    try:
        orjson.dumps(probe)
    except orjson.JSONEncodeError:
        raise BadRequest(
            f"The request body is nested deeper than the gateway's limit of {MAX_JSON_DEPTH} levels.",
            code="too_deep",
        ) from None


def check_counts(body: dict[str, Any], server: ServerConfig) -> None:
    """400 naming the limit when a request carries more messages, parts, tools or tags than allowed.

    Checked on the raw body, before any plugin does per-item work on it.
    """
    for field in ("messages", "input"):
        items = body.get(field)
        if not isinstance(items, list):
            continue
        _at_most(len(items), server.max_messages, field, "messages", "max_messages")
        for i, item in enumerate(items):
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, list):
                _at_most(len(content), server.max_parts, f"{field}[{i}].content", "content parts", "max_parts")
    tools = body.get("tools")
    if isinstance(tools, list):
        _at_most(len(tools), server.max_tools, "tools", "tools", "max_tools")
    gateway = body.get("gateway")
    tags = gateway.get("tags") if isinstance(gateway, dict) else None
    if isinstance(tags, list | dict):
        _at_most(len(tags), server.max_tags, "gateway.tags", "tags", "max_tags")


def _at_most(count: int, limit: int, param: str, what: str, setting: str) -> None:
    if count > limit:
        raise BadRequest(
            f"'{param}' has {count} {what}; the gateway allows at most {limit} (server.{setting}).",
            param=param,
            code="too_many_items",
        )
