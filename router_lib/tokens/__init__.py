"""Token counting shared by the context optimisers: tiktoken with vocabularies built offline at install."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import orjson

from router_core import MEDIA_KINDS, Message, Tool

from .media import media_tokens
from .paths import default_dir, vocabulary_file

__all__ = ["count_text", "encoding_name", "load_encoding", "media_tokens", "message_tokens", "tool_tokens"]

log = logging.getLogger("llm_router.tokens")

# What OpenAI's chat format adds around each message (role and separators).
MESSAGE_OVERHEAD = 3

_LOADING = threading.Lock()

# Older OpenAI models; everything else (gpt-4o, 4.1, o-series, gpt-5, other vendors) counts with o200k_base.
_CL100K_PREFIXES = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada")


def encoding_name(model: str) -> str:
    """``o200k_base`` for current models, ``cl100k_base`` for gpt-4 / gpt-3.5 era ones."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5")):
        return "o200k_base"
    return "cl100k_base" if name.startswith(_CL100K_PREFIXES) else "o200k_base"


@functools.cache
def counter(encoding: str) -> Callable[[str], int]:
    """A text → token count function; a len/4 estimate (warned once) when the vocabulary is missing."""
    try:
        enc = load_encoding(encoding)
    except Exception as exc:  # no vocabulary means estimates, never a failed request
        _warn_once(f"tiktoken {encoding} unavailable ({type(exc).__name__}); token savings are estimates (len/4)")
        return estimate
    return lambda text: len(enc.encode(text, disallowed_special=()))


def load_encoding(encoding: str) -> Any:
    """tiktoken's encoding from the offline cache built at install; never a download at run time.

    tiktoken finds its cache only through ``TIKTOKEN_CACHE_DIR``: when the user has not
    set it, it points at our cache while the vocabulary loads and is removed again, so
    importing this module (or counting) leaves the process environment as it was.
    """
    import tiktoken

    if "TIKTOKEN_CACHE_DIR" in os.environ:  # the user's own cache: theirs to fill
        return tiktoken.get_encoding(encoding)
    if not vocabulary_file(encoding).is_file():
        raise FileNotFoundError(f"no offline {encoding} vocabulary (python -m router_lib.tokens.vocab builds it)")
    with _LOADING:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(default_dir())
        try:
            return tiktoken.get_encoding(encoding)
        finally:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)


def estimate(text: str) -> int:
    return (len(text) + 3) // 4


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def count_text(text: str, model: str) -> int:
    return counter(encoding_name(model))(text) if text else 0


def message_tokens(message: Message, model: str, count: Callable[[str], int] | None = None) -> int:
    """A message's tokens as sent: text, tool calls and media, plus the per-message overhead.

    ``count`` replaces the model's text counter (a caller that caches counts passes its own).
    """
    count = count or counter(encoding_name(model))
    total = MESSAGE_OVERHEAD
    for part in message.parts:
        if part.text:
            total += count(part.text)
        elif part.kind in MEDIA_KINDS:
            total += media_tokens(part, model)
    for call in message.tool_calls:
        total += count(call.name) + count(call.arguments)
    return total


def tool_tokens(tool: Tool, model: str, count: Callable[[str], int] | None = None) -> int:
    """A tool definition's tokens, counted on its JSON (close to what providers render)."""
    definition: dict[str, Any] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    text = orjson.dumps(definition if tool.type == "function" else tool.extra).decode()
    return (count or counter(encoding_name(model)))(text) if text else 0
