"""The ``toolOptimization`` gateway field and the pre_request hook that trims ``tools``."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from router_core import Manifest, RequestContext, Tool, hookimpl
from router_lib.tokens import tool_tokens

from .select import dependencies, forced_names, forces_use, used_names

MANIFEST = Manifest(requires_scores=("tool_relevance",))
FIELD = "toolOptimization"


@attrs.frozen
class ToolSettings:
    """Send tools scored at or above ``acceptScore``, plus ``alwaysInclude`` (camelCase: the JSON's own names)."""

    enabled: bool = True
    acceptScore: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    alwaysInclude: list[str] = attrs.field(factory=list)


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {FIELD: ToolSettings}


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    settings: ToolSettings | None = ctx.gateway.get(FIELD)
    call = ctx.call
    if settings is None or not settings.enabled or not any(t.type == "function" for t in call.tools):
        return
    relevance = (await ctx.scores("tool_relevance")).get("tool_relevance", {})
    pinned = set(settings.alwaysInclude) | forced_names(call.tool_choice) | used_names(call)
    # A tool the scorer did not rate is kept: optimisations fail open.
    chosen = {t.name for t in call.tools if t.type != "function" or relevance.get(t.name, 1.0) >= settings.acceptScore}
    keep = dependencies(call.tools, chosen | pinned)
    functions = [t for t in call.tools if t.type == "function"]
    if forces_use(call.tool_choice) and not any(t.name in keep for t in functions):
        keep.add(max(functions, key=lambda t: relevance.get(t.name, 0.0)).name)
    dropped = [t for t in call.tools if t.name not in keep and t.type == "function"]
    if not dropped:
        ctx.plugin_state["tools"] = {"kept": [t.name for t in call.tools], "dropped": [], "tokens_saved": 0}
        return
    call.tools = [t for t in call.tools if t.name in keep or t.type != "function"]
    if not call.tools:
        # Providers refuse tool_choice / parallel_tool_calls without tools.
        call.tool_choice = None
        call.params.pop("parallel_tool_calls", None)
    saved = await _tokens_saved(dropped, call.model)
    ctx.plugin_state["tools"] = {
        "kept": [t.name for t in call.tools],
        "dropped": [t.name for t in dropped],
        "scores": {t: round(s, 3) for t, s in relevance.items()},
        "tokens_saved": saved,
    }
    ctx.note_saved("tools", saved)


# Counting this much dropped tool text (tiktoken releases the GIL) goes to a worker thread.
THREAD_ABOVE_CHARS = 50_000


async def _tokens_saved(dropped: list[Tool], model: str) -> int:
    def count() -> int:
        return sum(tool_tokens(t, model) for t in dropped)

    if sum(len(t.description) for t in dropped) > THREAD_ABOVE_CHARS:
        return await asyncio.to_thread(count)
    return count()
