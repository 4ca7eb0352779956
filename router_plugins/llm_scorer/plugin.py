"""An LLM scorer: a small model scores the request in one JSON call; the local scorer is the fallback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from typing import Any

import attrs
import orjson
from aiohttp import web

from router_core import Call, Manifest, Message, RequestContext, hookimpl

log = logging.getLogger("llm_router.llm_scorer")

DEFAULT_TIMEOUT = 2.0
CACHE_SIZE = 2048
MAX_PROMPT_CHARS = 4000  # the ask is at the start; a long paste only costs tokens
SYSTEM = (
    "You score requests for an LLM router. Reply with one JSON object and nothing else: "
    '{"tag": <one of the tag names, or null if none fits>, "tag_scores": {<tag name>: 0..1}, '
    '"complexity": 0..1 (0 trivial lookup, 0.5 a task needing some reasoning, 1 expert multi-step work), '
    '"wants_image": true only if the user asks for a generated image as output, '
    '"history_dependency": 0..1 (how much the last message needs the earlier ones), '
    '"tool_relevance": {<tool name>: 0..1}}'
)


def _model_name(instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and "/" not in value.strip("/"):
        raise ValueError(f"'{attribute.name}' must be a 'provider/model' name, got {value!r}")


@attrs.frozen
class Settings:
    """``[plugins.llm-scorer]``: no ``model`` means the plugin stays out of the way."""

    model: str | None = attrs.field(default=None, validator=_model_name)
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=attrs.validators.gt(0))
    cache_size: int = attrs.field(default=CACHE_SIZE, validator=attrs.validators.ge(0))


SCORES = ("tag", "tag_scores", "complexity", "wants_image", "history_dependency", "tool_relevance")
# The local scorer answers when the model is slow, down or talks nonsense, and gives media_relevance.
MANIFEST = Manifest(provides_scores=SCORES, requires_plugins=("scorer",), settings=Settings)


@attrs.define
class Scorer:
    """One app's settings and its cache of scores per request hash (bounded, least recently used evicted)."""

    settings: Settings
    cache: OrderedDict[str, dict[str, Any]] = attrs.field(factory=OrderedDict)

    def remember(self, key: str, scores: dict[str, Any]) -> None:
        self.cache[key] = scores
        while len(self.cache) > self.settings.cache_size:
            self.cache.popitem(last=False)


# One Scorer per app, built at startup: apps and tests never share a cache.
SCORER = web.AppKey("llm_scorer.scorer", Scorer)


@hookimpl
def router_startup(app: web.Application, settings: Settings) -> None:
    app[SCORER] = Scorer(settings)


@hookimpl(tryfirst=True)
async def score_request(ctx: RequestContext) -> dict[str, Any] | None:
    """Every score it gives, from one call: what was not asked for yet is kept for later asks."""
    scorer = ctx.app[SCORER]
    model = scorer.settings.model
    if not model:
        return None
    request = scoring_request(ctx)
    key = hashlib.sha256(orjson.dumps([model, request])).hexdigest()
    if (hit := scorer.cache.get(key)) is not None:
        scorer.cache.move_to_end(key)
        return _copy(hit)
    call = Call(
        dialect="chat",
        model=model,
        messages=[Message.of_text("system", SYSTEM), Message.of_text("user", orjson.dumps(request).decode())],
    )
    call.params = {"temperature": 0, "response_format": {"type": "json_object"}}
    try:
        reply = await asyncio.wait_for(ctx.complete(call), scorer.settings.timeout)
        scores = parse_scores(reply.text, ctx, model)
    except Exception as exc:  # slow, down or nonsense: the local scorer answers instead
        log.warning("llm-scorer %s gave no scores (%s); local scorer used", model, type(exc).__name__)
        return None
    scorer.remember(key, scores)
    return _copy(scores)


def scoring_request(ctx: RequestContext) -> dict[str, Any]:
    """What the model sees: the (already redacted) prompt, the turn count, the tags and tools offered."""
    call = ctx.call
    return {
        "prompt": call.prompt[:MAX_PROMPT_CHARS],
        "earlier_turns": sum(m.role in ("user", "assistant") for m in call.messages) - 1,
        "tags": [{"name": t.name, "description": t.description} for t in ctx.gateway.get("tags") or ()],
        "tools": [{"name": t.name, "description": t.description} for t in call.tools],
    }


def _unit(value: Any, default: float) -> float:
    return (
        min(max(float(value), 0.0), 1.0) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def parse_scores(text: str, ctx: RequestContext, model: str) -> dict[str, Any]:
    """The model's JSON → scores by name; unknown tags and tools are dropped, numbers clamped to 0..1."""
    data = orjson.loads(text.strip().removeprefix("```json").removeprefix("```").removesuffix("```"))
    if not isinstance(data, dict) or "complexity" not in data:
        raise ValueError("not a scores object")
    tag_names = {t.name for t in ctx.gateway.get("tags") or ()}
    tool_names = {t.name for t in ctx.call.tools}
    tag = data.get("tag") if data.get("tag") in tag_names else None
    return {
        "complexity": _unit(data.get("complexity"), 0.5),
        "tag": tag,
        "tag_scores": {k: _unit(v, 0.0) for k, v in (data.get("tag_scores") or {}).items() if k in tag_names},
        "wants_image": data.get("wants_image") is True,
        "history_dependency": _unit(data.get("history_dependency"), 1.0),
        "tool_relevance": {k: _unit(v, 1.0) for k, v in (data.get("tool_relevance") or {}).items() if k in tool_names},
    }


def _copy(scores: dict[str, Any]) -> dict[str, Any]:
    """The cached scores must not change, whatever a plugin does with the ones it gets."""
    return {name: dict(value) if isinstance(value, dict) else value for name, value in scores.items()}
