"""Lexical helpers shared by the context scorer and the optimisers: words, stems, identifiers."""

from __future__ import annotations

import functools
import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SUFFIXES = ("ing", "ied", "ies", "ed", "es", "s")

_STOPWORD_TEXT = """a an the and or but if then else of to in on at by for with from as is are was were be been being am do does
    did doing have has had having i me my we our you your he she it its they them their this that these those there
    here what which who whom whose when where why how can could should would will shall may might must not no yes
    so than too very just also any all some each every both few more most other such only own same into out up down
    over under again further once about above below between through during before after while because until please
    let lets me get got make made want need like know tell give use using used s t d ll re ve m"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def split_identifier(name: str) -> str:
    """``send_email`` / ``sendEmail`` / ``search-db`` → ``send email`` / ``search db``."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").replace(".", " ").split())


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


def stem(word: str) -> str:
    """A crude suffix strip (``emails``/``email``, ``sending``/``send``), then common synonyms."""
    if word in SYNONYMS:
        return SYNONYMS[word]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return SYNONYMS.get(word, word)


def content_stems(text: str) -> frozenset[str]:
    """The stems of a text's words that carry meaning (no stopwords, no single letters)."""
    return frozenset(stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1)


# Tool and tag descriptions repeat across requests; conversation text does not, so it is not cached.
cached_stems = functools.lru_cache(maxsize=4096)(content_stems)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
