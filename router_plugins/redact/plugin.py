"""The redact plugin's hooks: ``gateway.redact``, masking on the way up, restoring on the way down."""

from __future__ import annotations

import logging
from typing import Any

import attrs
from aiohttp import web

from router_core import ReplyBody, RequestContext, StreamPiece, hookimpl

from .custom import compile_custom
from .detectors import DETECTORS
from .redaction import Redaction
from .restore import StreamRestorer, json_escaped, restore_text

# Any exception here refuses the request: text is never forwarded unredacted.
FAIL_CLOSED = True

log = logging.getLogger("llm_router.redact")

MODES = ("mask", "restore")
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


def read_mode(settings: dict[str, Any]) -> str:
    """``[plugins.redact] mode``: ``mask`` (default) or ``restore``; anything else is a startup error."""
    mode = settings.get("mode", "mask")
    if mode not in MODES:
        raise ValueError(f"plugins.redact.mode: {mode!r} is not one of {', '.join(MODES)}")
    unknown = set(settings) - {"mode"}
    if unknown:
        raise ValueError(f"plugins.redact: unknown setting(s) {', '.join(sorted(unknown))}")
    return mode


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {"redact": RedactSettings}


# [plugins.redact] mode, read and validated once per app in router_startup.
MODE = web.AppKey("redact.mode", str)


@hookimpl
def router_startup(app: web.Application, config: Any) -> None:
    app[MODE] = read_mode(config.plugin_settings("redact"))  # a wrong mode stops startup


@hookimpl
def pre_request(ctx: RequestContext) -> None:
    settings: RedactSettings | None = ctx.gateway.get("redact")
    if settings is None:
        return
    custom = compile_custom(settings.custom)
    detectors = [DETECTORS[name] for name in settings.enabled]
    if not detectors and not custom:
        return
    restore = ctx.app[MODE] == "restore"
    redaction = Redaction(detectors, custom, restore)
    ctx.call.map_text(redaction.redact_text)
    ctx.plugin_state[STATE] = redaction
    if redaction.counts:
        for kind, count in redaction.counts.items():
            ctx.note_redactions(kind, count)
        ctx.headers["x-router-redactions"] = redaction.header()
        log.debug("redacted %s", redaction.header())
    if restore and redaction.originals:
        ctx.wants_stream_events = True


@hookimpl
def post_response(ctx: RequestContext, reply: ReplyBody) -> None:
    redaction: Redaction | None = ctx.plugin_state.get(STATE)
    if redaction is not None and redaction.originals:
        escaped = json_escaped(redaction.originals)
        reply.map_text(lambda text: restore_text(text, redaction.originals), lambda args: restore_text(args, escaped))


@hookimpl
def on_stream_event(ctx: RequestContext, piece: StreamPiece) -> list[StreamPiece] | None:
    redaction: Redaction | None = ctx.plugin_state.get(STATE)
    if redaction is None or not redaction.originals:
        return None
    if redaction.stream is None:
        redaction.stream = StreamRestorer(redaction.originals)
    return redaction.stream.feed(piece)
