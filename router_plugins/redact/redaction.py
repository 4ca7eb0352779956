"""One request's redaction: find every value, mask it or swap in a placeholder, count."""

from __future__ import annotations

import base64
import bisect
import functools
import re
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import re2

from . import masking
from .custom import find_custom
from .detectors import DETECTORS, Detector, Finding
from .normalise import normalise
from .restore import StreamRestorer

ORDER = (*DETECTORS, "custom")  # header order
# Who wins a tie (same start, same length): the detector whose format is the more
# specific — checksummed or fixed-shape before a phone number, which fits many shapes.
PRIORITY = ("token", "email", "credit_card", "iban", "ssn", "uuid", "mac", "ip", "phone", "custom")
RANK = {name: i for i, name in enumerate(PRIORITY)}


@functools.lru_cache(maxsize=len(DETECTORS) * 8)
def seed_set(detectors: tuple[Detector, ...]) -> Any:
    """One RE2 set of the detectors' seeds, built once per combination of detectors."""
    seeds = re2.Set.SearchSet()
    for detector in detectors:
        seeds.Add(detector.seed)
    seeds.Compile()
    return seeds


# Texts up to this size are searched whole; bigger ones only around their seeds' matches.
WHOLE_TEXT = 2_048
# Big texts are seeded chunk by chunk: one RE2 set match per chunk, then the matching
# detectors' seeds located inside that chunk only (a Python call per seed match is
# cheap; a search over the whole text per match is not).
CHUNK = 32_768
# A chunk where a seed matches this often is searched whole: a text made of seeds
# ("sk-sk-sk-…") costs one window, not a Python step per seed.
DENSE = 64
# Context searched on each side of a seed match: more than any value reaches beyond its
# seed. A finding that still touches a window's edge widens the window and is searched again.
MARGIN = 256


@functools.lru_cache(maxsize=len(DETECTORS))
def seed_pattern(detector: Detector) -> Any:
    """The seed, compiled to search bytes: offsets come back as they are, with no
    conversion from UTF-8 offsets to characters (which costs a scan per match)."""
    return re2.compile(detector.seed.encode())


# Non-ASCII text is seeded in sub-blocks of this size (each one a window when it
# matches), since its UTF-8 offsets are not character offsets.
SUB_BLOCK = 1_024


def _add(spans: list[list[int]], start: int, end: int) -> None:
    """Add ``[start, end)`` to windows kept sorted and merged (``start`` never goes back far)."""
    while spans and start <= spans[-1][1] and end >= spans[-1][0]:
        old = spans.pop()
        start, end = min(start, old[0]), max(end, old[1])
    spans.append([start, end])


_NON_ASCII_CHAR = re.compile(r"[^\x00-\x7f]")
# A chunk with more non-ASCII characters than this (Chinese, Russian …) is seeded in
# sub-blocks instead of through a byte → character offset table.
MAX_OFFSET_TABLE = 2_048


def _char_offsets(chunk: str) -> Callable[[int], int] | None:
    """UTF-8 byte offset → character offset in ``chunk``, or ``None`` when too costly to build."""
    if chunk.isascii():
        return lambda b: b
    ends: list[int] = []  # byte offset just after each multi-byte character
    extra: list[int] = []  # bytes beyond one per character, up to and including it
    total = 0
    for n, m in enumerate(_NON_ASCII_CHAR.finditer(chunk)):
        if n == MAX_OFFSET_TABLE:
            return None
        width = len(m.group().encode()) - 1
        total += width
        ends.append(m.start() + total + 1)
        extra.append(total)

    def offset(b: int) -> int:
        k = bisect.bisect_right(ends, b)
        return b - (extra[k - 1] if k else 0)

    return offset


def seeded_windows(text: str, detectors: Sequence[Detector]) -> dict[int, list[list[int]]]:
    """Detector index → the merged ``[start, end)`` windows of ``text`` around its seed's matches."""
    seeds = seed_set(tuple(detectors))
    windows: dict[int, list[list[int]]] = {}
    for i in range(0, len(text), CHUNK):
        base = max(0, i - MARGIN)  # a seed match across a chunk's edge is whole in the wider slice
        chunk = text[base : i + CHUNK]
        hits = seeds.Match(chunk)
        if not hits:
            continue
        offset = _char_offsets(chunk)
        if offset is not None:
            data = chunk.encode()
            for index in hits:
                spans = windows.setdefault(index, [])
                for n, m in enumerate(seed_pattern(detectors[index]).finditer(data)):
                    if n == DENSE:  # searched whole
                        _add(spans, max(0, base - MARGIN), min(len(text), base + len(chunk) + MARGIN))
                        break
                    start, end = base + offset(m.start()), base + offset(m.end())
                    _add(spans, max(0, start - MARGIN), min(len(text), end + MARGIN))
            continue
        for j in range(0, len(chunk), SUB_BLOCK):
            sub_base = max(0, j - MARGIN)
            for index in seeds.Match(chunk[sub_base : j + SUB_BLOCK]) or ():
                start = base + sub_base
                _add(
                    windows.setdefault(index, []), max(0, start - MARGIN), min(len(text), base + j + SUB_BLOCK + MARGIN)
                )
    return windows


def find_in_windows(text: str, detector: Detector, windows: list[list[int]]) -> list[Finding]:
    """``detector.find`` over ``windows`` of ``text``, widening any window a finding touches the edge of."""
    found: list[Finding] = []
    i = 0
    while i < len(windows):
        start, end = windows[i]
        i += 1
        margin = MARGIN
        while True:
            # A window that grew takes in the windows it reached: each part of the text
            # is searched a bounded number of times, however many seeds one value spans.
            while i < len(windows) and windows[i][0] <= end:
                end = max(end, windows[i][1])
                i += 1
            window = text[start:end]
            hits = list(detector.find(window))
            # A window's edge is not the text's edge: a finding touching it may be cut short.
            if not any((f.start == 0 and start > 0) or (f.end == len(window) and end < len(text)) for f in hits):
                break
            margin *= 2
            start, end = max(0, start - margin), min(len(text), end + margin)
        found.extend(f._replace(start=f.start + start, end=f.end + start) for f in hits)
    return found


_WORD = re.compile(r"\w")


def find_all(text: str, detectors: Sequence[Detector], custom: Sequence[Any] = ()) -> list[Finding]:
    """Every value to hide in ``text``, left to right, without overlaps.

    Where two findings overlap the one that starts first wins, then the longer one,
    then the detector listed first in :data:`PRIORITY`. A value that overlaps the winner
    and runs past its end is not dropped: the winner grows to its end, the part beyond
    masked whole (a phone number written right before a card number hides both).
    """
    found: list[Finding] = []
    if detectors:
        if len(text) <= WHOLE_TEXT:
            for index in sorted(seed_set(tuple(detectors)).Match(text) or ()):
                found.extend(detectors[index].find(text))
        else:
            for index, windows in sorted(seeded_windows(text, detectors).items()):
                found.extend(find_in_windows(text, detectors[index], windows))
    if custom:
        found.extend(find_custom(text, custom))
    if len(found) < 2:
        return found
    found.sort(key=lambda f: (f.start, f.start - f.end, RANK[f.detector]))
    kept: list[Finding] = []
    end = -1
    for finding in found:
        if finding.start >= end:
            kept.append(finding)
            end = finding.end
        elif finding.end > end:
            last = kept[-1]
            kept[-1] = last._replace(end=finding.end, mask=last.mask + _WORD.sub("*", text[end : finding.end]))
            end = finding.end
    return kept


@attrs.frozen
class Replacement:
    """``text[start:end]`` of the original is replaced by ``text``."""

    start: int
    end: int
    text: str


def apply(text: str, replacements: Sequence[Replacement], offset: int = 0) -> str:
    """``text`` (which starts at ``offset`` of the text the replacements index) rewritten.

    A replacement that starts in ``text`` is written whole; one that only overlaps it
    (a value split across two parts of a message) removes its share of the value.
    """
    out: list[str] = []
    pos = 0
    end_of_text = offset + len(text)
    for r in replacements:
        if r.end <= offset or r.start >= end_of_text:
            continue
        start, end = max(r.start - offset, 0), min(r.end - offset, len(text))
        out.append(text[pos:start])
        if r.start >= offset:
            out.append(r.text)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# Placeholders carry this many random letters per request: text that a client or a
# document supplies ("[EMAIL_1]", or a guess) never resolves to a value.
NONCE_LENGTH = 6  # base32: 30 bits, a new draw per request


def new_nonce() -> str:
    return base64.b32encode(secrets.token_bytes(5)).decode()[:NONCE_LENGTH].lower()


@attrs.define
class Redaction:
    """What one request hid: counts per detector and, in restore mode, the placeholder map.

    Lives in ``ctx.plugin_state["redact"]`` and dies with the request.
    """

    detectors: Sequence[Detector]
    custom: Sequence[Any] = ()
    restore: bool = False
    display: frozenset[str] = frozenset()  # detectors whose partial display mask was opted into
    counts: Counter[str] = attrs.field(factory=Counter)
    originals: dict[str, str] = attrs.field(factory=dict)  # placeholder → value
    placeholders: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (detector, value) → placeholder
    stream: StreamRestorer | None = None  # restore mode, streamed answers
    nonce: str = ""  # drawn with the first placeholder: masking requests pay nothing
    _numbers: Counter[str] = attrs.field(factory=Counter)

    def replacements(self, text: str) -> list[Replacement]:
        """Where ``text`` must change: findings on its normalised view, mapped to its own offsets."""
        view = normalise(text)
        found = find_all(view.text, self.detectors, self.custom)
        out = []
        for finding in found:
            start, end = view.start(finding.start), view.end(finding.end)
            if out and start < out[-1].end:  # two findings inside one folded character
                continue
            value = text[start:end]
            if self.restore:
                replacement = self.placeholder(finding.detector, value)
            elif finding.detector in self.display:
                replacement = masking.display_mask(finding.detector, view.text[finding.start : finding.end])
            else:
                replacement = finding.mask
            self.counts[finding.detector] += 1
            out.append(Replacement(start, end, replacement))
        return out

    def redact_text(self, text: str) -> str:
        """``text`` with every finding masked (or replaced by its placeholder in restore mode)."""
        return apply(text, self.replacements(text))

    def redact_parts(self, texts: list[str]) -> list[str]:
        """Adjacent text parts of one message, read as one text: a value split across them is found."""
        replacements = self.replacements("".join(texts))
        out = []
        offset = 0
        for text in texts:
            out.append(apply(text, replacements, offset))
            offset += len(text)
        return out

    def placeholder(self, detector: str, value: str) -> str:
        """The same value gets the same placeholder for the whole request: ``[EMAIL_1_k7fq2m]``."""
        key = (detector, value)
        placeholder = self.placeholders.get(key)
        if placeholder is None:
            self.nonce = self.nonce or new_nonce()
            self._numbers[detector] += 1
            placeholder = f"[{detector.upper()}_{self._numbers[detector]}_{self.nonce}]"
            self.placeholders[key] = placeholder
            self.originals[placeholder] = value
        return placeholder

    def header(self) -> str:
        """``email=2,phone=1``: counts only, in detector order; never a value."""
        return ",".join(f"{name}={self.counts[name]}" for name in ORDER if self.counts[name])
