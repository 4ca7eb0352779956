"""The ``chatHistoryCompression`` gateway field and the pre_request hook that applies it."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from router_core import GatewayField, Manifest, RequestContext, hookimpl
from router_lib.embedding import EMBEDDER
from router_lib.tokens import count_text, message_tokens

from .compress import Limits, compress

MANIFEST = Manifest(requires_scores=("history_dependency",), settings=Limits)
FIELD = "chatHistoryCompression"
_unit = [attrs.validators.ge(0.0), attrs.validators.le(1.0)]
# Conversations longer than this are compressed in a worker thread.
THREAD_ABOVE = 64


@attrs.frozen
class HistorySettings:
    """Compress when the latest message's dependency on the history is below ``score``."""

    enabled: bool = True
    score: float = attrs.field(default=0.6, validator=_unit)


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {FIELD: GatewayField(HistorySettings, aliases=("chatHistoryOptimization",))}


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    settings: HistorySettings | None = ctx.gateway.get(FIELD)
    if settings is None or not settings.enabled or not _has_history(ctx):
        return
    # Unscored (the scorer failed) counts as fully dependent: optimisations fail open.
    dependency = (await ctx.scores("history_dependency")).get("history_dependency", 1.0)
    state: dict[str, Any] = {"dependency": dependency, "threshold": settings.score}
    ctx.plugin_state["history"] = state
    if dependency >= settings.score:
        state["action"] = "kept: the prompt depends on the history"
        return
    model = ctx.call.model
    # The shared embedder when a plugin (the local scorer) published one, else words alone.
    args = (ctx.call, ctx.settings("history"), ctx.app.get(EMBEDDER))
    # A long conversation takes a while to judge turn by turn: off the event loop, so other
    # requests are not held (the call is this request's own; the embedder only reads).
    result = await asyncio.to_thread(compress, *args) if len(ctx.call.messages) > THREAD_ABOVE else compress(*args)
    saved = sum(message_tokens(m, model) for m in result.dropped)
    saved += sum(count_text(before, model) - count_text(after, model) for before, after in result.shortened)
    state.update(
        action="compressed",
        dropped_messages=len(result.dropped),
        shortened_blocks=len(result.shortened),
        kept_turns=result.kept_turns,
        tokens_saved=saved,
    )
    ctx.note_saved("history", saved)


def _has_history(ctx: RequestContext) -> bool:
    """Only a conversation with earlier turns is worth scoring."""
    return sum(1 for m in ctx.call.messages if m.role == "user") > 1 or any(
        m.role == "assistant" for m in ctx.call.messages
    )
