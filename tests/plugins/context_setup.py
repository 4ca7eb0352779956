"""Shared by the context optimiser tests: a gateway with the real scorer and the named plugins enabled."""

from __future__ import annotations

from typing import Any


async def context_gateway(make_gateway, *names: str, settings: dict[str, Any] | None = None, **overrides: Any):
    """``settings`` are the plugins' own tables (``{"media": {"threshold": 0.4}}``)."""
    enabled = ["scorer", *names]
    return await make_gateway({"plugins": {"enabled": enabled, **(settings or {})}, **overrides})
