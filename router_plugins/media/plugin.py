"""The ``mediaOptimization`` gateway field and the pre_request hook that strips unneeded media."""

from __future__ import annotations

from typing import Any

import attrs

from router_core import FILE, MEDIA_KINDS, TEXT, Manifest, Part, RequestContext, hookimpl
from router_lib.tokens import count_text, media_tokens
from router_lib.words import last_user_index


@attrs.frozen
class MediaSettings:
    """``[plugins.media]``: below ``threshold`` relevance an earlier media part is not sent."""

    threshold: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


MANIFEST = Manifest(requires_scores=("media_relevance",), settings=MediaSettings)
FIELD = "mediaOptimization"


@hookimpl
def gateway_fields() -> dict[str, Any]:
    return {FIELD: bool}


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    if not ctx.gateway.get(FIELD):
        return
    # Media from the latest user message on is never removed.
    last = last_user_index(ctx.call.messages) or 0
    earlier = [(i, j) for i in range(last) for j, p in enumerate(ctx.call.messages[i].parts) if p.kind in MEDIA_KINDS]
    if not earlier:
        return
    relevance = (await ctx.scores("media_relevance")).get("media_relevance", {})
    threshold = ctx.settings("media").threshold
    model, saved, removed, kept = ctx.call.model, 0, [], []
    for i, j in earlier:
        key = f"{i}:{j}"
        # A part the scorer did not rate is kept: optimisations fail open.
        if relevance.get(key, 1.0) >= threshold:
            kept.append(key)
            continue
        part = ctx.call.messages[i].parts[j]
        marker = Part(TEXT, _marker(part))
        saved += media_tokens(part, model) - count_text(marker.text or "", model)
        ctx.call.messages[i].parts[j] = marker
        removed.append(key)
    ctx.plugin_state["media"] = {"removed": removed, "kept": kept, "threshold": threshold, "tokens_saved": saved}
    if removed:
        ctx.note_saved("media", saved)


def _marker(part: Part) -> str:
    name = part.source.get("filename") if part.kind == FILE else None
    what = f"file {name}" if name else part.kind
    return f"[{what} removed: not needed for this question]"
