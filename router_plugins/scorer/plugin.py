"""The local scorer: tags, complexity, image intent and context scores, offline and deterministic."""

from __future__ import annotations

import asyncio
import functools
import logging

from router_core import RequestContext, Scores, hookimpl
from router_plugins.planning.plugin import SEPARATOR as PLANNING_SEPARATOR

from . import context
from .complexity import complexity
from .embed import Embedder, embedder
from .image_intent import wants_image
from .intent import match_tags
from .sentence import encoder

log = logging.getLogger("llm_router.scorer")


@functools.cache
def loaded_embedder() -> Embedder | None:
    """The process's one embedder (immutable, shared by every app), or None (words only) when it cannot load."""
    try:
        return embedder()
    except Exception as exc:  # the scorer still works on words alone
        log.warning("WordLlama embeddings unavailable (%s); tag matching falls back to words", type(exc).__name__)
        return None


@hookimpl
def router_startup() -> None:
    loaded_embedder()  # load the embeddings (about 0.3 s) before the first request
    encoder()  # the distilled MiniLM vectors (built at install); missing ones stop startup with how to build them


def _enabled(ctx: RequestContext, field: str) -> bool:
    """Whether the request turned on an optimisation (``True`` or a settings object with ``enabled``)."""
    value = ctx.gateway.get(field)
    return bool(getattr(value, "enabled", value))


@hookimpl(trylast=True)
async def score_request(ctx: RequestContext) -> Scores:
    """``score_now`` in a worker thread: tags and complexity take 1–3 ms on a long prompt, too long for the loop."""
    return await asyncio.to_thread(score_now, ctx)


def score_now(ctx: RequestContext) -> Scores:
    """Only the scores some plugin of this request will read; the others keep their neutral defaults."""
    call, gateway = ctx.call, ctx.gateway
    model = loaded_embedder()
    prompt = call.prompt
    scores = Scores()
    tags = gateway.get("tags")
    if tags or PLANNING_SEPARATOR in call.model or "planningTriggerScore" in gateway:
        scores.complexity, scores.reasons["complexity"] = complexity(prompt)
    if gateway.get("imageGenerationModel"):
        scores.wants_image, scores.reasons["wants_image"] = wants_image(prompt)
    if tags:
        scores.tag, scores.tag_scores, scores.reasons["tag"] = match_tags(prompt, tags, model)
    try:
        _add_context_scores(ctx, scores, model)
    except Exception as exc:  # an optimisation input: neutral defaults beat refusing the request
        # The type only (traceback at debug level): the message may quote the prompt.
        log.warning(
            "context scores failed (%s); defaults kept", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG)
        )
    return scores


def _add_context_scores(ctx: RequestContext, scores: Scores, model: Embedder | None) -> None:
    """History, media and tool scores, each only when its optimisation is on and there is something to score."""
    call = ctx.call
    if _enabled(ctx, "chatHistoryCompression") and sum(m.role in ("user", "assistant") for m in call.messages) > 1:
        scores.history_dependency, scores.reasons["history_dependency"] = context.history_dependency(call, model)
    if _enabled(ctx, "mediaOptimization") and any(p.kind != "text" for m in call.messages for p in m.parts):
        scores.media_relevance = context.media_relevance(call, model)
    if _enabled(ctx, "toolOptimization") and call.tools:
        scores.tool_relevance = context.tool_relevance(call, model)
