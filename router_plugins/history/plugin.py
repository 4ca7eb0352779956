"""The ``chatHistoryCompression`` gateway field and the pre_request hook that applies it."""

from __future__ import annotations

from typing import Any

import attrs

from router_core import Config, GatewayField, RequestContext, hookimpl
from router_plugins.scorer import plugin as scorer
from router_plugins.scorer.state import PerConfig
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


# [plugins.history] parsed once per app (per config); see router_plugins/scorer/state.py.
_limits: PerConfig[Limits] = PerConfig(lambda config: Limits.from_settings(config.plugin_settings("history")))


@hookimpl
def router_startup(config: Config) -> None:
    _limits.get(config)  # a wrong [plugins.history] table stops startup; requests only look it up
    _embedder(config)  # the scorer's one embedder (loaded once per process), also with an LLM scorer


def _embedder(config: Config) -> Any:
    """The scorer's per-config embedder (shared, never a second copy), or None: turns are then kept on words."""
    return scorer._embedders.get(config)


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
    result = compress(ctx.call, _limits.get(ctx.config), _embedder(ctx.config))
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
