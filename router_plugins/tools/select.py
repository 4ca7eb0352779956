"""Which tools to send: scored ones above the bar, the pinned, the forced, the used, and their dependencies."""

from __future__ import annotations

import re
from typing import Any

import orjson

from router_core import Call, Tool


def forced_names(tool_choice: Any) -> set[str]:
    """Tool names a ``tool_choice`` forces or allows, in the Chat or the Responses spelling."""
    if not isinstance(tool_choice, dict):
        return set()
    if tool_choice.get("type") == "allowed_tools":  # Responses: {"type": "allowed_tools", "tools": [...]}
        return {n for t in tool_choice.get("tools") or [] for n in forced_names(t)}
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
    return {name} if isinstance(name, str) else set()


def forces_use(tool_choice: Any) -> bool:
    """Whether the client made tool use mandatory (then the list may never be empty)."""
    return tool_choice == "required" or bool(forced_names(tool_choice))


def used_names(call: Call) -> set[str]:
    return {tc.name for m in call.messages for tc in m.tool_calls}


def dependencies(tools: list[Tool], kept: set[str]) -> set[str]:
    """``kept`` plus every tool a kept tool names in its description or parameters, transitively."""
    mentions = {tool.name: _mentioned(tool, [t.name for t in tools if t.name != tool.name]) for tool in tools}
    closure, pending = set(kept), list(kept)
    while pending:
        for other in mentions.get(pending.pop(), ()):
            if other not in closure:
                closure.add(other)
                pending.append(other)
    return closure


def _mentioned(tool: Tool, names: list[str]) -> set[str]:
    text = tool.description + " " + (orjson.dumps(tool.parameters).decode() if tool.parameters else "")
    return {n for n in names if n and re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)}
