"""Which tools to send: scored ones above the bar, the pinned, the forced, the used, and their dependencies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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


# A tool name as providers accept it (``^[a-zA-Z0-9_-]{1,64}$``): a mention is a whole
# identifier, so "get_context" is not found in "get_context_v2" nor "my-get_context".
_IDENTIFIER = re.compile(r"[\w-]+")
# Each description and schema string is searched this far for other tools' names: a
# dependency is named near the top, and 128 tools of 20 KB each would otherwise hold the
# event loop for a quarter of a second.
MENTION_CHARS = 2000


def dependencies(tools: list[Tool], kept: set[str]) -> set[str]:
    """``kept`` plus every tool a kept tool names in its description or parameters, transitively.

    Linear in the size of the tools: each reached tool's text is split into identifiers once
    and intersected with the set of names (clients choose how many tools they send).
    """
    by_name: dict[str, list[Tool]] = {}
    for tool in tools:
        by_name.setdefault(tool.name, []).append(tool)
    names = {n for n in by_name if n}
    closure, pending = set(kept), list(kept)
    while pending:
        name = pending.pop()
        for tool in by_name.get(name, ()):
            for other in _mentioned(tool, names):
                if other not in closure:
                    closure.add(other)
                    pending.append(other)
    return closure


def _mentioned(tool: Tool, names: set[str]) -> set[str]:
    """The other tools' names that occur as identifiers in the tool's description and parameter schema."""
    found: set[str] = set()
    for text in _texts(tool):
        found.update(_IDENTIFIER.findall(text, 0, MENTION_CHARS))
    found &= names
    found.discard(tool.name)
    return found


def _texts(tool: Tool) -> Iterator[str]:
    """The description, then every key and string value of the parameter schema."""
    yield tool.description
    stack: list[Any] = [tool.parameters] if tool.parameters else []
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield str(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
