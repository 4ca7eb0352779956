"""Intent routing: ``gateway.tags`` picks a tag by meaning, then a model from it by complexity."""

from __future__ import annotations

import attrs

from router_core import BadRequest, Manifest, RequestContext, hookimpl

# Tags choose the model; image generation and planning act on the model a tag chose, so they
# declare themselves after tags.
MANIFEST = Manifest(requires_scores=("tag", "tag_scores", "complexity"))


def _non_empty(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not value:
        raise ValueError(f"'{attribute.name}' must not be empty")


def _model_names(instance: object, attribute: attrs.Attribute, value: list[str]) -> None:
    _non_empty(instance, attribute, value)
    for model in value:
        if "/" not in model:
            raise ValueError(f"'{attribute.name}' must hold 'provider/model' names, got {model!r}")


@attrs.frozen
class Tag:
    """One intent: prompts matching ``description`` go to ``models``, sorted most → least capable."""

    name: str = attrs.field(validator=_non_empty)
    description: str = attrs.field(validator=_non_empty)
    models: list[str] = attrs.field(validator=_model_names)


@hookimpl
def gateway_fields():
    return {"tags": list[Tag]}


def pick_model(models: list[str], complexity: float) -> str:
    """Most capable for hard prompts: 0.9 → first, 0.1 → last, 0.5 → the middle one."""
    index = round((1.0 - complexity) * (len(models) - 1))
    return models[min(max(index, 0), len(models) - 1)]


@hookimpl
async def select_model(ctx: RequestContext) -> str | None:
    tags: list[Tag] | None = ctx.gateway.get("tags")
    if not tags:
        return None
    scores = await ctx.scores("tag", "tag_scores", "complexity")
    complexity = scores.get("complexity", 0.5)
    ctx.headers["x-router-complexity"] = f"{complexity:.2f}"
    tag = next((t for t in tags if t.name == scores.get("tag")), None)
    if tag is None:
        if ctx.call.model or await _image_wanted(ctx):
            return None  # the client named a fallback model, or the image plugin answers
        best = max(scores.get("tag_scores", {}).items(), key=lambda kv: kv[1], default=None)
        detail = f" (best: '{best[0]}' at {best[1]:.2f})" if best else ""
        raise BadRequest(
            f"No tag in gateway.tags matches this prompt well enough{detail}; send 'model' as a fallback.",
            param="gateway.tags",
            code="no_matching_tag",
        )
    ctx.headers["x-router-tag"] = tag.name
    ctx.tag = tag.name
    return pick_model(tag.models, complexity)


async def _image_wanted(ctx: RequestContext) -> bool:
    """Whether a prompt that matches no tag asks for an image some plugin will generate (so no 400)."""
    if not ctx.gateway.get("imageGenerationModel"):
        return False
    return bool((await ctx.scores("wants_image")).get("wants_image"))
