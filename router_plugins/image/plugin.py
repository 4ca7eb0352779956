"""Image generation: a prompt that asks for an image goes to ``gateway.imageGenerationModel``.

The image comes from the model's provider through its ``images`` capability
(``Provider.generate_image``: OpenAI's images API, or the offline ``echo`` picture).
"""

from __future__ import annotations

from typing import Any

import attrs

from router_core import (
    IMAGE,
    TEXT,
    BadRequest,
    GatewayField,
    GeneratedImage,
    Manifest,
    Message,
    Part,
    Reply,
    RequestContext,
    Route,
    hookimpl,
    try_routes,
)


@attrs.frozen
class ImageSettings:
    """``[plugins.image]``: passed to the provider's images API when set (else the provider's defaults)."""

    size: str | None = None  # "1024x1024"
    quality: str | None = None  # "standard", "hd", "low" … as the model accepts
    response_format: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(("url", "b64_json")))
    )


# Tags choose a model first; when the prompt asks for an image, this plugin replaces it.
MANIFEST = Manifest(requires_scores=("wants_image",), after=("tags",), settings=ImageSettings)


def _model_name(model: str) -> None:
    if "/" not in model or model.startswith("/") or model.endswith("/"):
        raise ValueError(f"expected 'provider/model', got {model!r}")


@hookimpl
def gateway_fields():
    return {"imageGenerationModel": GatewayField(str, check=_model_name)}


@hookimpl
async def select_model(ctx: RequestContext) -> str | None:
    model = ctx.gateway.get("imageGenerationModel")
    if not model or not (await ctx.scores("wants_image")).get("wants_image", False):
        return None
    ctx.plugin_state["image"] = True
    return model


@hookimpl
async def serve_request(ctx: RequestContext, routes: list[Route]) -> Reply | None:
    if not ctx.plugin_state.get("image"):
        return None
    capable = [route for route in routes if "images" in route.provider.capabilities]
    if not capable:
        names = ", ".join(f"'{r.name}' ({r.provider.kind})" for r in routes) or "none"
        raise BadRequest(
            f"No provider of '{ctx.call.model}' can generate images (routes: {names}).",
            param="gateway.imageGenerationModel",
            code="no_image_provider",
        )
    options = {k: v for k, v in attrs.asdict(ctx.settings("image")).items() if v is not None}
    prompt = ctx.call.prompt

    async def generate(route: Route) -> GeneratedImage:
        return await route.provider.generate_image(route.model, prompt, options)

    # The core's route walk: keys, breaker, retries and fallback as for any request.
    image, route, failures, _ = await try_routes(capable, generate)
    ctx.headers["x-router-provider"] = route.name
    ctx.headers["x-router-fallbacks"] = str(len(failures))
    ctx.note_route(route.name, len(failures))
    return to_reply(route, image)


def to_reply(route: Route, image: GeneratedImage) -> Reply:
    """The image as an assistant message: its bytes, or (when only a link was safe to give) the link."""
    if image.b64_json:
        source: dict[str, Any] = {"b64_json": image.b64_json}
        if image.revised_prompt:
            source["revised_prompt"] = image.revised_prompt
        part = Part(IMAGE, source=source)
    else:
        part = Part(TEXT, f"![image]({image.url})")
    return Reply(model=route.model, messages=[Message("assistant", [part])], usage=image.usage)
