"""Registers the ``anthropic`` provider kind and the ``/v1/messages`` ingress (Anthropic SDK, Claude Code)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router_core import hookimpl
from router_core.app import serve_dialect
from router_plugins.anthropic.dialect import DIALECT
from router_plugins.anthropic.provider import AnthropicProvider


@hookimpl
def register_providers(register: Any) -> None:
    register("anthropic", AnthropicProvider)


@hookimpl
def register_routes(app: web.Application) -> None:
    serve_dialect(app, "/v1/messages", DIALECT)
