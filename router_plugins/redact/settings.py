"""``[plugins.redact]``: the server's redaction settings, declared to the core, which validates them."""

from __future__ import annotations

import attrs

from .masking import DISPLAY

MODES = ("mask", "restore")
# Where restore mode puts values back: "text" = the answer's plain text only (never
# inside a URL or a link, never into tool-call arguments); "all" = also tool calls.
RESTORE_INTO = ("text", "all")


def _displayable(instance: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    wrong = sorted(set(value) - set(DISPLAY))
    if wrong:
        known = ", ".join(DISPLAY)
        raise ValueError(
            f"'{attribute.name}' names {', '.join(wrong)}, which has no display mask (choose from {known})"
        )


@attrs.frozen
class ServerSettings:
    mode: str = attrs.field(default="mask", validator=attrs.validators.in_(MODES))
    restore_into: str = attrs.field(default="text", validator=attrs.validators.in_(RESTORE_INTO))
    # detectors whose partial display mask is opted into
    # (a TOML array: declared as a list so that a bare string is refused, kept as a tuple)
    display: list[str] = attrs.field(factory=tuple, converter=tuple, validator=_displayable)
