"""The ``chatHistoryCompression`` gateway field and the pre_request hook that applies it."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
from aiohttp import web

from router_core import Config, GatewayField, RequestContext, hookimpl
from router_plugins.scorer import plugin as scorer
from router_plugins.tokens import count_text, message_tokens, record_saved

from .compress import Limits, compress

FIELD = "chatHistoryCompression"
_unit = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]


@attrs.frozen
class HistorySettings:
    """Compress when the latest message's dependency on the history is below ``score``."""

    enabled: bool = True
    score: float = attrs.field(default=0.6, validator=_unit)


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {FIELD: GatewayField(HistorySettings, aliases=("chatHistoryOptimization",))}


# Conversations longer than this are compressed in a worker thread.
THREAD_ABOVE = 64

# [plugins.history] parsed once per app in router_startup.
LIMITS = web.AppKey("history.limits", Limits)


@hookimpl
def router_startup(app: web.Application, config: Config) -> None:
    app[LIMITS] = Limits.from_settings(config.plugin_settings("history"))  # a wrong table stops startup
    scorer.loaded_embedder()  # the scorer's one embedder, shared (never a second copy)


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    settings: HistorySettings | None = ctx.gateway.get(FIELD)
    if settings is None or not settings.enabled or not _has_history(ctx):
        return
    scores = await ctx.scores()
    state: dict[str, Any] = {"dependency": scores.history_dependency, "threshold": settings.score}
    ctx.plugin_state["history"] = state
    if scores.history_dependency >= settings.score:
        state["action"] = "kept: the prompt depends on the history"
        return
    model = ctx.call.model
    args = (ctx.call, ctx.app[LIMITS], scorer.loaded_embedder())
    # A long conversation takes a while to judge turn by turn: off the event loop, so other
    # requests are not held (the call is this request's own; the embedder only reads).
    result = await asyncio.to_thread(compress, *args) if len(ctx.call.messages) > THREAD_ABOVE else compress(*args)
    # Media scores are keyed by message index: keep them pointing at the same parts.
    scores.media_relevance = {
        f"{result.index_map[int(i)]}:{j}": v
        for key, v in scores.media_relevance.items()
        for i, j in [key.split(":", 1)]
        if int(i) in result.index_map
    }
    saved = sum(message_tokens(m, model) for m in result.dropped)
    saved += sum(count_text(before, model) - count_text(after, model) for before, after in result.shortened)
    state.update(
        action="compressed",
        dropped_messages=len(result.dropped),
        shortened_blocks=len(result.shortened),
        kept_turns=result.kept_turns,
        tokens_saved=saved,
    )
    record_saved(ctx, "history", saved)


def _has_history(ctx: RequestContext) -> bool:
    """Only a conversation with earlier turns is worth scoring."""
    return sum(1 for m in ctx.call.messages if m.role == "user") > 1 or any(
        m.role == "assistant" for m in ctx.call.messages
    )
