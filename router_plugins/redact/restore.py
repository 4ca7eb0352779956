"""Restore mode: put the original values back in the answer, streamed or not."""

from __future__ import annotations

import re

import attrs
import orjson

from router_core import StreamEnd, StreamPiece, TextDelta, ToolCallDelta

PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
# The longest text that may still grow into a placeholder ("[CREDIT_CARD_12345]" is 19).
MAX_PLACEHOLDER = 32
_PARTIAL = re.compile(r"\[[A-Z_]*\d*")


def json_escaped(originals: dict[str, str]) -> dict[str, str]:
    """The values as they must appear inside a JSON string (tool-call arguments)."""
    return {key: orjson.dumps(value).decode()[1:-1] for key, value in originals.items()}


def restore_text(text: str, originals: dict[str, str]) -> str:
    """Every placeholder this request issued, replaced by its value; others stay."""
    if "[" not in text or not originals:
        return text
    return PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


def split_partial(text: str) -> tuple[str, str]:
    """``text`` → (what can go out now, a trailing beginning of a placeholder to hold back)."""
    cut = text.rfind("[", max(0, len(text) - MAX_PLACEHOLDER))
    if cut == -1 or "]" in text[cut:] or not _PARTIAL.fullmatch(text, cut):
        return text, ""
    return text[:cut], text[cut:]


@attrs.define
class StreamRestorer:
    """Restores placeholders in a stream whose pieces may split one anywhere.

    Each text stream (the answer's text, each tool call's arguments) holds back a
    possible partial placeholder until the next piece completes or refutes it; a held
    tail is flushed before a piece of another stream and before the ``StreamEnd``.
    """

    originals: dict[str, str]
    held: dict[object, str] = attrs.field(factory=dict)  # "text" or a tool call index → tail
    escaped: dict[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.escaped = json_escaped(self.originals)

    def _values(self, key: object) -> dict[str, str]:
        return self.originals if key == "text" else self.escaped

    def feed(self, piece: StreamPiece) -> list[StreamPiece]:
        if isinstance(piece, StreamEnd):
            return [*self.flush(), piece]
        key: object = "text" if isinstance(piece, TextDelta) else piece.index
        out = self.flush(keep=key)
        text = self.held.pop(key, "") + (piece.text if isinstance(piece, TextDelta) else piece.arguments)
        ready, tail = split_partial(text)
        if tail:
            self.held[key] = tail
        ready = restore_text(ready, self._values(key))
        if isinstance(piece, TextDelta):
            piece.text = ready
            if ready:
                out.append(piece)
        else:
            piece.arguments = ready
            out.append(piece)  # its id and name must go out even when the text is held
        return out

    def flush(self, keep: object = None) -> list[StreamPiece]:
        out: list[StreamPiece] = []
        for key in [k for k in self.held if k != keep]:
            rest = restore_text(self.held.pop(key), self._values(key))
            out.append(TextDelta(rest) if key == "text" else ToolCallDelta(key, arguments=rest))  # type: ignore[arg-type]
        return out
