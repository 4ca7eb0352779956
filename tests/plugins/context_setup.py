"""Shared by the context optimiser tests: a gateway with the real scorer and the named plugins enabled."""

from __future__ import annotations

from typing import Any


async def context_gateway(make_gateway, *names: str, settings: dict[str, Any] | None = None, **overrides: Any):
    """``settings`` are the plugins' own tables (``{"media": {"threshold": 0.4}}``)."""
    enabled = ["scorer", *names]
    return await make_gateway({"plugins": {"enabled": enabled, **(settings or {})}, **overrides})


def tool_exchange(question: str, function: tuple[str, str, str], result: str, answer: str) -> list[dict]:
    """A user question answered through one function call (id, name, arguments): question, call, result, answer."""
    call_id, name, arguments = function
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
        {"role": "assistant", "content": answer},
    ]
