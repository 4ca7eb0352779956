"""The local scorer: tags, complexity, image intent and context scores, offline and deterministic."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from router_core import Config, RequestContext, Scores, hookimpl

from .complexity import complexity
from .embed import Embedder, embedder
from .image_intent import wants_image
from .intent import match_tags

log = logging.getLogger("llm_router.scorer")

_loaded: dict[str, Any] = {}  # the process's embedder (or None when it failed to load), set at startup


@hookimpl
def router_startup(config: Config) -> None:
    if "embedder" in _loaded:
        return
    try:
        _loaded["embedder"] = embedder()
    except Exception as exc:  # the scorer still works on words alone
        log.warning("WordLlama embeddings unavailable (%s); tag matching falls back to words", type(exc).__name__)
        _loaded["embedder"] = None


def _embedder() -> Embedder | None:
    return _loaded.get("embedder")


def _context_scores() -> Any:
    """The context-score module, or None until it exists (it is developed separately)."""
    try:
        return importlib.import_module(f"{__package__}.context")
    except ImportError:
        return None


@hookimpl(trylast=True)
def score_request(ctx: RequestContext) -> Scores:
    call, model = ctx.call, _embedder()
    prompt = call.prompt
    scores = Scores()
    scores.complexity, why = complexity(prompt)
    scores.reasons["complexity"] = why
    scores.wants_image, scores.reasons["wants_image"] = wants_image(prompt)
    tags = ctx.gateway.get("tags")
    if tags:
        scores.tag, scores.tag_scores, scores.reasons["tag"] = match_tags(prompt, tags, model)
    context = _context_scores()
    if context is not None:
        _add_context_scores(ctx, scores, context, model)
    return scores


def _add_context_scores(ctx: RequestContext, scores: Scores, context: Any, model: Embedder | None) -> None:
    """History, media and tool scores; each only when the request has something to score."""
    call = ctx.call
    try:
        if sum(m.role in ("user", "assistant") for m in call.messages) > 1:
            scores.history_dependency, scores.reasons["history_dependency"] = context.history_dependency(call, model)
        if any(p.kind != "text" for m in call.messages for p in m.parts):
            scores.media_relevance = context.media_relevance(call, model)
        if call.tools:
            scores.tool_relevance = context.tool_relevance(call, model)
    except Exception:  # an optimisation input: neutral defaults beat refusing the request
        log.warning("context scores failed; defaults kept", exc_info=True)
