"""One request's redaction: find every value, mask it or swap in a placeholder, count."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs
import re2

from .custom import find_custom
from .detectors import DETECTORS, Detector, Finding
from .restore import StreamRestorer

ORDER = (*DETECTORS, "custom")  # header order, and who wins a tie between two detectors
RANK = {name: i for i, name in enumerate(ORDER)}


@functools.lru_cache(maxsize=len(DETECTORS) * 8)
def seed_set(detectors: tuple[Detector, ...]) -> Any:
    """One RE2 set of the detectors' seeds, built once per combination of detectors."""
    seeds = re2.Set.SearchSet()
    for detector in detectors:
        seeds.Add(detector.seed)
    seeds.Compile()
    return seeds


# Texts up to this size are searched whole; bigger ones only around their seeds' matches.
WHOLE_TEXT = 16_384
# Context searched on each side of a seed match: more than any value reaches beyond its
# seed. A finding that still touches a window's edge widens the window and is searched again.
MARGIN = 256


@functools.lru_cache(maxsize=len(DETECTORS))
def seed_pattern(detector: Detector) -> Any:
    return re2.compile(detector.seed)


def find_near_seeds(text: str, detector: Detector) -> list[Finding]:
    """``detector.find`` over the parts of ``text`` its seed matched, with context around them."""
    if len(text) <= WHOLE_TEXT:
        return list(detector.find(text))
    windows: list[list[int]] = []
    for m in seed_pattern(detector).finditer(text):
        start, end = max(0, m.start() - MARGIN), min(len(text), m.end() + MARGIN)
        if windows and start <= windows[-1][1]:
            windows[-1][1] = end
        else:
            windows.append([start, end])
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


def find_all(text: str, detectors: Sequence[Detector], custom: Sequence[Any] = ()) -> list[Finding]:
    """Every value to hide in ``text``, left to right, without overlaps.

    Where two findings overlap the one that starts first wins, then the longer one,
    then the detector listed first in :data:`ORDER`.
    """
    found: list[Finding] = []
    if detectors:
        hits = seed_set(tuple(detectors)).Match(text) or ()
        for index in sorted(hits):
            found.extend(find_near_seeds(text, detectors[index]))
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
    return kept


@attrs.define
class Redaction:
    """What one request hid: counts per detector and, in restore mode, the placeholder map.

    Lives in ``ctx.plugin_state["redact"]`` and dies with the request.
    """

    detectors: Sequence[Detector]
    custom: Sequence[Any] = ()
    restore: bool = False
    counts: Counter[str] = attrs.field(factory=Counter)
    originals: dict[str, str] = attrs.field(factory=dict)  # placeholder → value
    placeholders: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (detector, value) → placeholder
    stream: StreamRestorer | None = None  # restore mode, streamed answers
    _numbers: Counter[str] = attrs.field(factory=Counter)

    def redact_text(self, text: str) -> str:
        """``text`` with every finding masked (or replaced by its placeholder in restore mode)."""
        findings = find_all(text, self.detectors, self.custom)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        for finding in findings:
            out.append(text[pos : finding.start])
            value = text[finding.start : finding.end]
            out.append(self.placeholder(finding.detector, value) if self.restore else finding.mask)
            self.counts[finding.detector] += 1
            pos = finding.end
        out.append(text[pos:])
        return "".join(out)

    def placeholder(self, detector: str, value: str) -> str:
        """The same value gets the same placeholder for the whole request: ``[EMAIL_1]``."""
        key = (detector, value)
        placeholder = self.placeholders.get(key)
        if placeholder is None:
            self._numbers[detector] += 1
            placeholder = f"[{detector.upper()}_{self._numbers[detector]}]"
            self.placeholders[key] = placeholder
            self.originals[placeholder] = value
        return placeholder

    def header(self) -> str:
        """``email=2,phone=1``: counts only, in detector order; never a value."""
        return ",".join(f"{name}={self.counts[name]}" for name in ORDER if self.counts[name])
