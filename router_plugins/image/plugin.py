"""Image generation: a prompt that asks for an image goes to ``gateway.imageGenerationModel``."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp

from router_core import (
    IMAGE,
    BadRequest,
    Message,
    Part,
    Reply,
    RequestContext,
    Route,
    UpstreamFailure,
    Usage,
    hookimpl,
    try_routes,
)

log = logging.getLogger("llm_router.image")

# Image generation is slow (tens of seconds) but should not hang a client forever.
GENERATION_TIMEOUT = 180.0
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=60)
# A generated image is a few MB at most; a bigger download is not an image we asked for.
MAX_IMAGE_BYTES = 32 * 1024 * 1024


@hookimpl
def gateway_fields():
    return {"imageGenerationModel": str}


@hookimpl
def pre_request(ctx: RequestContext) -> None:
    model = ctx.gateway.get("imageGenerationModel")
    if model is not None and ("/" not in model or model.startswith("/") or model.endswith("/")):
        raise BadRequest(
            f"Invalid value for 'gateway.imageGenerationModel': expected 'provider/model', got {model!r}.",
            param="gateway.imageGenerationModel",
            code="invalid_gateway_field",
        )


@hookimpl
async def select_model(ctx: RequestContext) -> str | None:
    model = ctx.gateway.get("imageGenerationModel")
    if not model or not (await ctx.scores()).wants_image:
        return None
    ctx.plugin_state["image"] = True
    return model


@hookimpl
async def serve_request(ctx: RequestContext, routes: list[Route]) -> Reply | None:
    if not ctx.plugin_state.get("image"):
        return None
    settings = ctx.config.plugin_settings("image")

    async def generate(route: Route) -> dict[str, Any]:
        body: dict[str, Any] = {"model": route.model, "prompt": ctx.call.prompt, "n": 1}
        for key in ("size", "quality", "response_format"):  # [plugins.image] may set them
            if key in settings:
                body[key] = settings[key]
        provider = route.provider
        answer = await provider.post_json(f"{provider.base_url}/images/generations", body, GENERATION_TIMEOUT)
        if not isinstance(answer.get("data"), list) or not answer["data"] or not isinstance(answer["data"][0], dict):
            raise UpstreamFailure(f"provider '{provider.name}' answered without an image")
        return answer

    # The core's route walk: keys, breaker, retries and fallback as for any request.
    answer, route, failures, _ = await try_routes(routes, generate)
    ctx.headers["x-router-provider"] = route.name
    ctx.headers["x-router-fallbacks"] = str(len(failures))
    ctx.note_route(route.name, len(failures))
    return await to_reply(route, answer, ctx.call.dialect)


async def to_reply(route: Route, answer: dict[str, Any], dialect: str) -> Reply:
    image = answer["data"][0]
    source = {k: image[k] for k in ("b64_json", "url", "revised_prompt") if image.get(k)}
    if dialect == "responses" and "b64_json" not in source and "url" in source:
        source["b64_json"] = await fetch_base64(route, source["url"])  # the Responses item carries bytes
    usage = answer.get("usage") or {}
    return Reply(
        model=route.model,
        messages=[Message("assistant", [Part(IMAGE, source=source)])],
        usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
    )


async def fetch_base64(route: Route, url: str) -> str | None:
    """The image behind a provider's URL, base64-encoded (the Responses item carries bytes)."""
    try:
        async with route.provider.session.get(url, timeout=FETCH_TIMEOUT) as resp:
            if resp.status >= 400 or (resp.content_length or 0) > MAX_IMAGE_BYTES:
                return None
            data = await resp.content.read(MAX_IMAGE_BYTES + 1)
            while len(data) <= MAX_IMAGE_BYTES and not resp.content.at_eof():
                data += await resp.content.read(MAX_IMAGE_BYTES + 1 - len(data))
            return base64.b64encode(data).decode() if len(data) <= MAX_IMAGE_BYTES else None
    except (aiohttp.ClientError, TimeoutError):
        log.warning("could not fetch the generated image from provider %s", route.name)
        return None
