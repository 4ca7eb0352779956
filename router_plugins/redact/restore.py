"""Restore mode: put the original values back in the answer, streamed or not.

Only placeholders this request issued resolve: each carries the request's random nonce
(``[EMAIL_1_k7fq2m]``), so a literal ``[EMAIL_1]`` in a document, or a guess, stays as it
is. With ``restore_into = "text"`` (the default) values go back only into the answer's
plain text, never inside a URL or a Markdown link target, never into tool-call arguments:
a prompt-injected model cannot have a value sent where it chooses.
"""

from __future__ import annotations

import re

import attrs
import orjson

from router_core import StreamEnd, StreamPiece, TextDelta, ToolCallDelta

PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+_[a-z0-9]{6}\]")
# The longest text that may still grow into a placeholder ("[CREDIT_CARD_12345_abcdef]" is 26).
MAX_PLACEHOLDER = 40
_PARTIAL = re.compile(r"\[[A-Z_]*\d*(?:_[a-z0-9]{0,6})?")
# The non-blank run a placeholder sits in is a link when it has one of these.
_LINKISH = re.compile(r"(?i)://|\bwww\.|\]\(|mailto:|^[(<\"'=]*/|[?&=%]|^\w+:")
# Characters kept from the end of the text already sent, to tell whether the next piece
# continues a URL (a URL longer than this before the placeholder is unusual).
WORD_MEMORY = 2048


def json_escaped(originals: dict[str, str]) -> dict[str, str]:
    """The values as they must appear inside a JSON string (tool-call arguments)."""
    return {key: orjson.dumps(value).decode()[1:-1] for key, value in originals.items()}


def restore_text(text: str, originals: dict[str, str], before: str = "", plain_only: bool = False) -> str:
    """Every placeholder this request issued, replaced by its value; others stay.

    With ``plain_only`` a placeholder inside a URL or link (judged on its non-blank run,
    which may have begun in ``before``, the text already sent) is left as it is.
    """
    if "[" not in text or not originals:
        return text

    def put_back(m: re.Match[str]) -> str:
        value = originals.get(m.group())
        if value is None:
            return m.group()
        if plain_only and _LINKISH.search(_word_around(before, text, m.start(), m.end())):
            return m.group()
        return value

    return PLACEHOLDER.sub(put_back, text)


def _word_around(before: str, text: str, start: int, end: int) -> str:
    """The non-blank run around ``text[start:end]`` (which may have begun in ``before``)."""
    left = (before + text[max(0, start - WORD_MEMORY) : start])[-WORD_MEMORY:]
    right = text[end : end + WORD_MEMORY]
    left_word = "" if not left or left[-1].isspace() else left.split()[-1]
    right_word = "" if not right or right[0].isspace() else right.split()[0]
    return left_word + text[start:end] + right_word


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
    A placeholder followed by a URL's continuation in a later piece is judged on what
    has arrived with it; in ``plain_only`` mode the text kept in ``sent`` lets a piece
    that continues a URL be recognised.
    """

    originals: dict[str, str]
    tools: bool = True  # restore into tool-call arguments too
    plain_only: bool = False
    held: dict[object, str] = attrs.field(factory=dict)  # "text" or a tool call index → tail
    sent: str = ""  # the end of the answer text already let out
    escaped: dict[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.escaped = json_escaped(self.originals)

    def _restore(self, key: object, text: str) -> str:
        if key == "text":
            restored = restore_text(text, self.originals, self.sent, self.plain_only)
            self.sent = (self.sent + restored)[-WORD_MEMORY:]
            return restored
        return restore_text(text, self.escaped) if self.tools else text

    def feed(self, piece: StreamPiece) -> list[StreamPiece]:
        if isinstance(piece, StreamEnd):
            return [*self.flush(), piece]
        key: object = "text" if isinstance(piece, TextDelta) else piece.index
        out = self.flush(keep=key)
        text = self.held.pop(key, "") + (piece.text if isinstance(piece, TextDelta) else piece.arguments)
        ready, tail = split_partial(text)
        if tail:
            self.held[key] = tail
        ready = self._restore(key, ready)
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
            rest = self._restore(key, self.held.pop(key))
            out.append(TextDelta(rest) if key == "text" else ToolCallDelta(key, arguments=rest))  # type: ignore[arg-type]
        return out
