"""Registers the ``anthropic`` provider kind."""

from __future__ import annotations

from typing import Any

from router_core import hookimpl
from router_plugins.anthropic.provider import AnthropicProvider


@hookimpl
def register_providers(register: Any) -> None:
    register("anthropic", AnthropicProvider)
