"""Image generation: a prompt that asks for an image goes to ``gateway.imageGenerationModel``."""

from __future__ import annotations

import base64
import logging
from typing import Any

import aiohttp
import orjson

from router_core import IMAGE, BadRequest, Message, Part, Reply, RequestContext, Route, UpstreamError, Usage, hookimpl

log = logging.getLogger("llm_router.image")

# Image generation is slow (tens of seconds) but should not hang a client forever.
TIMEOUT = aiohttp.ClientTimeout(total=180)


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
    failures = []
    for route in routes:
        try:
            answer = await generate(route, ctx.call.prompt, ctx.config.plugin_settings("image"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("image generation on %s failed: %s", route, exc)
            failures.append(f"{route.name}: {exc}")
            continue
        ctx.headers["x-router-provider"] = route.name
        ctx.headers["x-router-fallbacks"] = str(len(failures))
        return await to_reply(route, answer, ctx.call.dialect)
    raise UpstreamError("Image generation failed on every route (" + "; ".join(failures) + ").", code="upstream_error")


async def generate(route: Route, prompt: str, settings: dict[str, Any]) -> dict[str, Any]:
    """POST the provider's ``/images/generations``; the decoded answer, or an error naming the status."""
    body: dict[str, Any] = {"model": route.model, "prompt": prompt, "n": 1}
    for key in ("size", "quality", "response_format"):  # [plugins.image] may set them
        if key in settings:
            body[key] = settings[key]
    provider = route.provider
    async with provider.session.post(
        f"{provider.base_url}/images/generations", data=orjson.dumps(body), headers=provider.headers, timeout=TIMEOUT
    ) as resp:
        raw = await resp.read()
        if resp.status >= 400:
            raise ValueError(f"HTTP {resp.status}")  # the body may echo the key: never relay it
    answer = orjson.loads(raw)
    if not isinstance(answer, dict) or not answer.get("data"):
        raise ValueError("no image in the answer")
    return answer


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
    try:
        async with route.provider.session.get(url, timeout=TIMEOUT) as resp:
            return base64.b64encode(await resp.read()).decode() if resp.status < 400 else None
    except (aiohttp.ClientError, TimeoutError):
        log.warning("could not fetch the generated image from %s", url.split("?")[0])
        return None
