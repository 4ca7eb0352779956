"""``[plugins.redact]``: the server's redaction settings, validated once at startup.

Parsed here, inside the plugin, so a move to the core's plugin-settings declarations
later is one import away.
"""

from __future__ import annotations

from typing import Any

import attrs

from .masking import DISPLAY

MODES = ("mask", "restore")
# Where restore mode puts values back: "text" = the answer's plain text only (never
# inside a URL or a link, never into tool-call arguments); "all" = also tool calls.
RESTORE_INTO = ("text", "all")
KNOWN = frozenset({"mode", "restore_into", "display"})


@attrs.frozen
class ServerSettings:
    mode: str = "mask"
    restore_into: str = "text"
    display: frozenset[str] = frozenset()  # detectors whose partial display mask is opted into


def read_settings(table: dict[str, Any]) -> ServerSettings:
    """``[plugins.redact]`` → :class:`ServerSettings`; anything unknown or wrong is a startup error."""
    unknown = set(table) - KNOWN
    if unknown:
        raise ValueError(f"plugins.redact: unknown setting(s) {', '.join(sorted(unknown))}")
    mode = table.get("mode", "mask")
    if mode not in MODES:
        raise ValueError(f"plugins.redact.mode: {mode!r} is not one of {', '.join(MODES)}")
    restore_into = table.get("restore_into", "text")
    if restore_into not in RESTORE_INTO:
        raise ValueError(f"plugins.redact.restore_into: {restore_into!r} is not one of {', '.join(RESTORE_INTO)}")
    display = table.get("display", [])
    if not isinstance(display, list) or not all(isinstance(d, str) for d in display):
        raise ValueError("plugins.redact.display: must be a list of detector names")
    wrong = [d for d in display if d not in DISPLAY]
    if wrong:
        raise ValueError(
            f"plugins.redact.display: {', '.join(wrong)} has no display mask (choose from {', '.join(DISPLAY)})"
        )
    return ServerSettings(mode, restore_into, frozenset(display))
