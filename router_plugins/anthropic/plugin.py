"""Registers the ``anthropic`` provider kind and the ``/v1/messages`` ingress (Anthropic SDK, Claude Code)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from router_core import RequestContext, Route, hookimpl
from router_core.app import serve_dialect
from router_core.dialects.fates import Untranslatable
from router_core.pipeline import RUNTIME, read_json
from router_lib.tokens import message_tokens, tool_tokens
from router_plugins.anthropic import ingress
from router_plugins.anthropic.dialect import DIALECT
from router_plugins.anthropic.provider import AnthropicProvider


@hookimpl
def register_providers(register: Any) -> None:
    register("anthropic", AnthropicProvider)


@hookimpl
def register_routes(app: web.Application) -> None:
    serve_dialect(app, "/v1/messages", DIALECT)
    serve_dialect(app, "/v1/messages/count_tokens", DIALECT, count_tokens, name="messages_count_tokens")


async def count_tokens(request: web.Request) -> web.Response:
    """``POST /v1/messages/count_tokens``: the gateway's own count (tiktoken, the model's OpenAI
    encoding or o200k), an estimate for Claude models; nothing is sent upstream."""
    body = await read_json(request, request.app[RUNTIME].config.server)
    call = ingress.decode_request({**body, "max_tokens": 1})  # count_tokens takes no max_tokens
    counted = await asyncio.to_thread(_count, call)  # a big body is seconds of tokenizing: off the loop
    return web.Response(body=orjson.dumps({"input_tokens": counted}), content_type="application/json")


def _count(call: Any) -> int:
    return sum(message_tokens(m, call.model) for m in call.messages) + sum(
        tool_tokens(t, call.model) for t in call.tools
    )


@hookimpl
def upstream_request(ctx: RequestContext, route: Route) -> None:
    """A Messages client's Claude-only field (top_k, mcp_servers …) on a non-Claude route: a 400, not a silent drop."""
    if ctx.call.dialect == DIALECT.name and route.provider.codec(ctx.call).name != DIALECT.name:
        field = ingress.refused_elsewhere(ctx.call)
        if field is not None:
            why = "is an Anthropic Messages field that only Claude honours"
            raise Untranslatable(field, why).for_provider(route.name, route.provider.kind)
