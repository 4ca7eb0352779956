"""Word helpers for the scorer: content words and crude stems, cached for repeated descriptions."""

from __future__ import annotations

import functools
import re

WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being am do does
    did have has had i me my we our you your he she it its they them their this that these those there here what
    which who whom when where why how can could should would will shall may might must not no yes so than too very
    just also any all some each every both few more most other such only own same into out up down over under again
    once about above below between through during before after while because until please let get got make want
    need like know tell give use s t d ll re ve m im i'm it's what's don't can't""".split()  # noqa: SIM905
)
_SUFFIXES = ("ing", "ied", "ies", "ed", "es", "s")


def stem(word: str) -> str:
    """Strip a common suffix so "refunds"/"refund" and "billed"/"bill" meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def stems(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in content_words(text))


# Tag descriptions repeat across requests; prompts do not, so only these are cached.
cached_stems = functools.lru_cache(maxsize=4096)(stems)
