"""Text helpers shared by the scorer and the context optimisers: words, stems, identifiers, the latest prompt.

One tokenizer, one stopword list and one stemmer for everything that compares words
(tag matching, history and media relevance, tool relevance, history compression), so
that a prompt and a description always meet on the same stems.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

# Words, with their inner hyphens and apostrophes ("two-factor", "don't").
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SUFFIXES = ("ing", "ied", "ies", "ed", "es", "s")

_STOPWORD_TEXT = """a an the and or but if then else of to in on at by for with from as is are was were be been being am do
    does did doing have has had having i me my we our you your he she it its they them their this that these those
    there here what which who whom whose when where why how can could should would will shall may might must not no
    yes so than too very just also any all some each every both few more most other such only own same into out up
    down over under again further once about above below between through during before after while because until
    please let lets get got make made want need like know tell give use using used s t d ll re ve m im i'm it's
    what's don't can't"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# A cached text is cut to this many characters first, so the caches hold at most
# CACHE_SIZE × this much text, whatever clients send as a tool or tag description.
CACHED_TEXT_CHARS = 2000
CACHE_SIZE = 4096

# Words people use for what tools are named after: "find" a record with ``search_db``.
SYNONYMS = {
    "find": "search",
    "lookup": "search",
    "look": "search",
    "db": "database",
    "mail": "email",
    "e-mail": "email",
    "calc": "calculat",
    "calculator": "calculat",
    "calculate": "calculat",
    "picture": "image",
    "photo": "image",
    "img": "image",
    "doc": "document",
    "msg": "message",
}


def split_identifier(name: str) -> str:
    """``send_email`` / ``sendEmail`` / ``search-db`` → ``send email`` / ``search db``."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").replace(".", " ").split())


@functools.lru_cache(maxsize=32768)  # words repeat across turns and requests; a stem is pure
def stem(word: str) -> str:
    """A crude suffix strip (``refunds``/``refund``, ``billed``/``bill``), then common synonyms."""
    if word in SYNONYMS:
        return SYNONYMS[word]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return SYNONYMS.get(word, word)


def words(text: str) -> list[str]:
    """Every word of ``text``, lower-cased, in order."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The words that carry meaning (no stopwords, no single letters), in order."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def content_stems(text: str) -> frozenset[str]:
    """The stems of a text's content words."""
    return frozenset(stem(w) for w in set(content_words(text)))  # each distinct word stemmed once


_cached_stems = functools.lru_cache(maxsize=CACHE_SIZE)(content_stems)


def cached_stems(text: str) -> frozenset[str]:
    """``content_stems`` of a description (tool, tag), cached: descriptions repeat across requests.

    Only the first ``CACHED_TEXT_CHARS`` characters count. Conversation text does not
    repeat, so it goes through ``content_stems`` and is never cached.
    """
    return _cached_stems(text[:CACHED_TEXT_CHARS])


def last_user_index(messages: Sequence[Any], before: int | None = None) -> int | None:
    """Index of the latest ``user`` message (before index ``before`` if given), or None."""
    for i in range(len(messages) if before is None else before, 0, -1):
        if messages[i - 1].role == "user":
            return i - 1
    return None
