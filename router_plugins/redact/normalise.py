"""The normalised view detectors read: formatting that hides a value is undone, offsets kept.

Detectors only know ASCII digits, dashes and spaces. Text can carry the same value as
full-width digits, Arabic-Indic digits, an en-dash, a no-break space, a zero-width space
inside it, ``%40`` in a URL or ``\\u0040`` in JSON. :func:`normalise` folds all of these
to ASCII and keeps a map back to the original text, so the original span is masked.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

import attrs
import re2


def _fold(ch: str) -> str | None:
    """What one character reads as for detection, or ``None`` when it stays as it is."""
    category = unicodedata.category(ch)
    if category == "Cf":  # zero-width spaces and joiners, soft hyphen, bidi marks, BOM
        return ""
    if category == "Zs" or ch in "\u2028\u2029\x85":
        return " "
    if category == "Pd" or ch in "\u2212\u2043\ufe63\uff0d":
        return "-"
    digit = unicodedata.decimal(ch, None)
    if digit is not None:
        return str(digit)
    folded = unicodedata.normalize("NFKC", ch)
    if folded != ch and folded.isascii():
        return folded
    return None


def _build_table() -> dict[str, str]:
    table = {}
    for cp in range(0x80, 0x20000):  # the BMP and the mathematical alphanumerics
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        folded = _fold(ch)
        if folded is not None:
            table[ch] = folded
    return table


FOLD = _build_table()  # built once at import (~0.1 s): about 4,000 characters


def _char_class(chars: list[str]) -> str:
    """A regex character class of ``chars`` written as ranges."""
    points = sorted(ord(c) for c in chars)
    ranges: list[list[int]] = []
    for p in points:
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    body = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return f"[{body}]"


# A run of foldable characters, a percent-escape or a JSON \\uXXXX escape.
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# JSON inside a JSON string escapes its backslash: "\\u0040" is read as "@" too (the
# backslashes before the literal "\u" are taken in by hand: a pattern that starts
# with a literal is searched for fast).
_UNICODE_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}")


def _re2_class(chars: list[str]) -> str:
    """An RE2 character class of ``chars``, written as ranges."""
    ranges: list[list[int]] = []
    for point in sorted(ord(c) for c in chars):
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return "[" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]+"


# Runs of foldable characters, found by RE2's DFA over the UTF-8 bytes in one pass:
# Python's engine checks each non-ASCII character against a class of ~2,000, and the
# re2 wrapper's character offsets cost a scan per match on text; on bytes they are free
# and the character offset is carried along by decoding the stretch between matches.
_FOLDABLE = re2.compile(_re2_class(list(FOLD)))


def _decode(token: str) -> str | None:
    """What an escape reads as, or ``None`` to leave it."""
    code = int(token[-4:] if token[0] == "\\" else token[1:], 16)
    if token[0] == "%" and not 0x20 <= code < 0x7F:
        return None  # %0A, UTF-8 bytes …: not a character a detector needs
    if 0xD800 <= code <= 0xDFFF:
        return None
    ch = chr(code)
    return FOLD.get(ch, ch)


@attrs.frozen
class View:
    """``text`` as detectors read it, and where each of its changed pieces came from.

    Segment ``k`` is ``text[norm_start[k]:norm_end[k]]``, read from the original's
    ``[orig_start[k]:orig_end[k]]``; between segments the two texts are the same.
    """

    text: str
    norm_start: list[int] = attrs.field(factory=list)
    norm_end: list[int] = attrs.field(factory=list)
    orig_start: list[int] = attrs.field(factory=list)
    orig_end: list[int] = attrs.field(factory=list)

    def start(self, pos: int) -> int:
        """The original offset a value starting at ``pos`` starts at (a changed piece is taken whole)."""
        k = bisect.bisect_right(self.norm_start, pos) - 1
        if k < 0:
            return pos
        if pos < self.norm_end[k]:
            return self.orig_start[k]
        return pos - self.norm_end[k] + self.orig_end[k]

    def end(self, pos: int) -> int:
        """The original offset a value ending at ``pos`` ends at."""
        k = bisect.bisect_left(self.norm_start, pos) - 1
        if k < 0:
            return pos
        if pos <= self.norm_end[k]:
            return self.orig_end[k]
        return pos - self.norm_end[k] + self.orig_end[k]


def _changes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, replacement)`` for every piece of ``text`` that reads differently, in order."""
    changes: list[tuple[int, int, str]] = []
    if "%" in text:
        for m in _PERCENT.finditer(text):
            decoded = _decode(m.group())
            if decoded is not None:
                changes.append((m.start(), m.end(), decoded))
    if "\\u" in text:
        for m in _UNICODE_ESCAPE.finditer(text):
            decoded = _decode(m.group())
            if decoded is not None:
                start = m.start()
                while start > 0 and m.start() - start < 8 and text[start - 1] == "\\":
                    start -= 1
                changes.append((start, m.end(), decoded))
    if not text.isascii():
        data = text.encode()
        char = byte = 0
        for m in _FOLDABLE.finditer(data):
            char += len(data[byte : m.start()].decode())
            run = data[m.start() : m.end()].decode()
            changes.extend((char + i, char + i + 1, FOLD[ch]) for i, ch in enumerate(run))
            char += len(run)
            byte = m.end()
    if len(changes) > 1:
        changes.sort()
    return changes


def normalise(text: str) -> View:
    """The detection view of ``text``; plain ASCII without escapes costs one check."""
    if text.isascii() and "%" not in text and "\\u" not in text:
        return View(text)
    changes = _changes(text)
    if not changes:
        return View(text)
    out: list[str] = []
    view = View("")
    pos = 0  # in the original
    length = 0  # of the normalised text so far
    for start, end, replacement in changes:
        if start < pos:
            continue  # inside an escape already taken
        out.append(text[pos:start])
        length += start - pos
        view.norm_start.append(length)
        view.orig_start.append(start)
        out.append(replacement)
        length += len(replacement)
        view.norm_end.append(length)
        view.orig_end.append(end)
        pos = end
    out.append(text[pos:])
    return attrs.evolve(view, text="".join(out))
