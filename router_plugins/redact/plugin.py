"""The redact plugin's hooks: ``gateway.redact``, masking on the way up, restoring on the way down."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
from aiohttp import web

from router_core import Manifest, ReplyBody, RequestContext, StreamPiece, hookimpl

from .custom import compile_custom
from .detectors import DETECTORS
from .redaction import Redaction
from .restore import StreamRestorer, json_escaped, restore_text
from .settings import ServerSettings

# Any exception here refuses the request: text is never forwarded unredacted.
FAIL_CLOSED = True
MANIFEST = Manifest(settings=ServerSettings)

log = logging.getLogger("llm_router.redact")

# Requests with more text than this are redacted off the event loop (a 64 KB body
# takes a few ms in place; a thread hop costs ~50 µs, not worth it for chat turns).
OFF_LOOP_CHARS = 64 * 1024
# At most this many big requests are redacted at once; others wait their turn, so a
# burst of 8 MB bodies queues instead of multiplying memory and GIL contention.
MAX_CONCURRENT = 2


def request_chars(call: Any) -> int:
    """A cheap upper bound on the text to scan: the message text (the bulk of any big body)."""
    return sum(
        len(p.text or "") + sum(len(str(v)) for v in p.source.values()) for m in call.messages for p in m.parts
    ) + sum(len(c.arguments) for m in call.messages for c in m.tool_calls)


STATE = "redact"


@attrs.frozen
class RedactSettings:
    """``gateway.redact``: which detectors run, plus the client's own RE2 patterns."""

    email: bool = False
    phone: bool = False
    ip: bool = False
    uuid: bool = False
    token: bool = False
    credit_card: bool = False
    iban: bool = False
    ssn: bool = False
    mac: bool = False
    custom: list[str] = attrs.field(factory=list)

    @property
    def enabled(self) -> list[str]:
        return [name for name in DETECTORS if getattr(self, name)]


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {"redact": RedactSettings}


# [plugins.redact], read and validated once per app in router_startup; the worker
# threads and the semaphore that bounds them live as long as the app.
SETTINGS = web.AppKey("redact.settings", ServerSettings)
EXECUTOR = web.AppKey("redact.executor", ThreadPoolExecutor)
WORKERS = web.AppKey("redact.workers", asyncio.Semaphore)


@hookimpl
def router_startup(app: web.Application, settings: ServerSettings) -> None:
    app[SETTINGS] = settings  # validated by the core from [plugins.redact]
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=MAX_CONCURRENT, thread_name_prefix="redact")
    app[WORKERS] = asyncio.Semaphore(MAX_CONCURRENT)


@hookimpl
def router_shutdown(app: web.Application) -> None:
    app[EXECUTOR].shutdown(wait=False, cancel_futures=True)


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    settings: RedactSettings | None = ctx.gateway.get("redact")
    if settings is None:
        return
    custom = compile_custom(settings.custom)
    detectors = [DETECTORS[name] for name in settings.enabled]
    if not detectors and not custom:
        return
    server = ctx.app[SETTINGS]
    redaction = Redaction(detectors, custom, server.mode == "restore", server.display)
    await redact_off_loop(ctx, redaction)
    ctx.plugin_state[STATE] = redaction
    if redaction.counts:
        for kind, count in redaction.counts.items():
            ctx.note_redactions(kind, count)
        ctx.headers["x-router-redactions"] = redaction.header()
        log.debug("redacted %s", redaction.header())
    if redaction.restore and redaction.originals:
        ctx.wants_stream_events = True


def redact_request(ctx: RequestContext, redaction: Redaction) -> None:
    """Everything that leaves: the call (see ``Call.map_text``) and the tags an LLM scorer describes upstream."""
    ctx.call.map_text(redaction.redact_text, redaction.redact_parts)
    tags = ctx.gateway.get("tags")
    if tags:
        # Shared, read-only values: the request gets its own redacted copies.
        ctx.gateway["tags"] = [
            attrs.evolve(tag, name=redaction.redact_text(tag.name), description=redaction.redact_text(tag.description))
            for tag in tags
        ]


async def redact_off_loop(ctx: RequestContext, redaction: Redaction) -> None:
    """Small requests are redacted in place; big ones on a worker thread, a bounded number at a time.

    The detectors' regex engines hold the GIL only for one search at a time, so the
    event loop keeps answering (``/healthz``, other requests) while a big body is read.
    """
    if request_chars(ctx.call) < OFF_LOOP_CHARS and not redaction.custom:
        redact_request(ctx, redaction)
        return
    async with ctx.app[WORKERS]:
        await asyncio.get_running_loop().run_in_executor(ctx.app[EXECUTOR], redact_request, ctx, redaction)


@hookimpl
def post_response(ctx: RequestContext, reply: ReplyBody) -> None:
    redaction: Redaction | None = ctx.plugin_state.get(STATE)
    if redaction is None or not redaction.originals:
        return
    originals = redaction.originals
    if ctx.app[SETTINGS].restore_into == "all":
        escaped = json_escaped(originals)
        reply.map_text(lambda text: restore_text(text, originals), lambda args: restore_text(args, escaped))
    else:
        reply.map_text(lambda text: restore_text(text, originals, plain_only=True), lambda args: args)


@hookimpl
def on_stream_event(ctx: RequestContext, piece: StreamPiece) -> list[StreamPiece] | None:
    redaction: Redaction | None = ctx.plugin_state.get(STATE)
    if redaction is None or not redaction.originals:
        return None
    if redaction.stream is None:
        everywhere = ctx.app[SETTINGS].restore_into == "all"
        redaction.stream = StreamRestorer(redaction.originals, tools=everywhere, plain_only=not everywhere)
    return redaction.stream.feed(piece)
