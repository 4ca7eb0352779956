"""Registers the ``anthropic`` provider kind and the ``/v1/messages`` ingress (Anthropic SDK, Claude Code)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router_core import RequestContext, Route, hookimpl
from router_core.app import serve_dialect
from router_core.dialects.fates import Untranslatable
from router_plugins.anthropic import ingress
from router_plugins.anthropic.dialect import DIALECT
from router_plugins.anthropic.provider import AnthropicProvider


@hookimpl
def register_providers(register: Any) -> None:
    register("anthropic", AnthropicProvider)


@hookimpl
def register_routes(app: web.Application) -> None:
    serve_dialect(app, "/v1/messages", DIALECT)


@hookimpl
def upstream_request(ctx: RequestContext, route: Route) -> None:
    """A Messages client's Claude-only field (top_k, mcp_servers …) on a non-Claude route: a 400, not a silent drop."""
    if ctx.call.dialect == DIALECT.name and route.provider.codec(ctx.call).name != DIALECT.name:
        field = ingress.refused_elsewhere(ctx.call)
        if field is not None:
            why = "is an Anthropic Messages field that only Claude honours"
            raise Untranslatable(field, why).for_provider(route.name, route.provider.kind)
