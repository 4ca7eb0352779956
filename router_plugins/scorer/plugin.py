"""The local scorer: tags, complexity, image intent and context scores, offline and deterministic."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import attrs
from aiohttp import web

from router_core import Manifest, RequestContext, hookimpl
from router_lib.embedding import EMBEDDER

from . import context, intent
from .complexity import complexity, fitted_model
from .embed import Embedder, embedder
from .image_intent import wants_image
from .intent import match_tags
from .sentence import encoder

log = logging.getLogger("llm_router.scorer")

SCORES = ("tag", "tag_scores", "complexity", "wants_image", "history_dependency", "media_relevance", "tool_relevance")


@attrs.frozen
class Settings:
    """``[plugins.scorer]``. ``no_tag``: how readily a prompt gets no tag. ``"lenient"`` (the default) keeps
    in-scope prompts (a model-less request with no tag is a 400); ``"strict"`` sends most prompts that fit none of
    the tags to the request's fallback ``model``, and loses more in-scope ones (docs/routing-intelligence.md)."""

    no_tag: str = attrs.field(default="lenient", validator=attrs.validators.in_(("lenient", "strict")))


MANIFEST = Manifest(provides_scores=SCORES, settings=Settings)
MARGINS = {"lenient": intent.MARGIN, "strict": intent.STRICT_MARGIN}
# The "no tag" bar of each app, from its settings (apps never share it).
MARGIN = web.AppKey("scorer.no_tag_margin", float)


@functools.cache
def loaded_embedder() -> Embedder | None:
    """The process's one embedder (immutable, shared by every app), or None (words only) when it cannot load."""
    try:
        return embedder()
    except Exception as exc:  # the scorer still works on words alone
        log.warning("WordLlama embeddings unavailable (%s); tag matching falls back to words", type(exc).__name__)
        return None


@hookimpl
def router_startup(app: web.Application, settings: Settings) -> None:
    app[MARGIN] = MARGINS[settings.no_tag]
    model = loaded_embedder()  # load the embeddings (about 0.3 s) before the first request
    if model is not None:
        app[EMBEDDER] = model  # shared with the plugins that compare texts, never a second copy
    encoder()  # the distilled MiniLM vectors (built at install); missing ones stop startup with how to build them
    fitted_model()  # the complexity weights and the tag centre must fit those vectors: a mismatch stops startup
    intent.centres()


@hookimpl(trylast=True)
async def score_request(ctx: RequestContext, wanted: frozenset[str]) -> dict[str, Any]:
    """``score_now`` in a worker thread: tags and complexity take 1–3 ms on a long prompt, too long for the loop."""
    return await asyncio.to_thread(score_now, ctx, wanted)


def score_now(ctx: RequestContext, wanted: frozenset[str]) -> dict[str, Any]:
    """Exactly the scores asked for; the scorer knows nothing of who asks."""
    call = ctx.call
    model = loaded_embedder()
    prompt = call.prompt
    scores: dict[str, Any] = {}
    reasons: dict[str, str] = ctx.plugin_state.setdefault("scorer", {})  # explain shows why
    if "complexity" in wanted:
        scores["complexity"], reasons["complexity"] = complexity(prompt)
    if "wants_image" in wanted:
        scores["wants_image"], reasons["wants_image"] = wants_image(prompt)
    if "tag" in wanted or "tag_scores" in wanted:
        # The tags offered are the input, not a consumer: whoever asks, they are in the request.
        margin = ctx.app.get(MARGIN) if ctx.app is not None else None
        scores["tag"], scores["tag_scores"], reasons["tag"] = match_tags(
            prompt, ctx.gateway.get("tags") or (), model, margin
        )
    try:
        if "history_dependency" in wanted:
            scores["history_dependency"], reasons["history_dependency"] = context.history_dependency(call, model)
        if "media_relevance" in wanted:
            scores["media_relevance"] = context.media_relevance(call, model)
        if "tool_relevance" in wanted:
            scores["tool_relevance"] = context.tool_relevance(call, model)
    except Exception as exc:  # an optimisation input: the asker's neutral default beats refusing the request
        # The type only (traceback at debug level): the message may quote the prompt.
        log.warning(
            "context scores failed (%s); not given", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG)
        )
    return scores
