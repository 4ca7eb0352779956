"""Token counting shared by the context optimisers."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from router_core import MEDIA_KINDS, Message, RequestContext, Tool

from .media import media_tokens

__all__ = ["count_text", "encoding_name", "media_tokens", "message_tokens", "record_saved", "tool_tokens"]
from .paths import default_dir

log = logging.getLogger("llm_router.tokens")

# What OpenAI's chat format adds around each message (role and separators).
MESSAGE_OVERHEAD = 3

# tiktoken reads a pre-filled cache from here and never needs the network.
if "TIKTOKEN_CACHE_DIR" not in os.environ and default_dir().is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(default_dir())

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
        import tiktoken

        enc = tiktoken.get_encoding(encoding)
    except Exception as exc:  # no vocabulary means estimates, never a failed request
        _warn_once(f"tiktoken {encoding} unavailable ({type(exc).__name__}); token savings are estimates (len/4)")
        return estimate
    return lambda text: len(enc.encode(text, disallowed_special=()))


def estimate(text: str) -> int:
    return (len(text) + 3) // 4


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def count_text(text: str, model: str) -> int:
    return counter(encoding_name(model))(text) if text else 0


def message_tokens(message: Message, model: str) -> int:
    """A message's tokens as sent: text, tool calls and media, plus the per-message overhead."""
    count = counter(encoding_name(model))
    total = MESSAGE_OVERHEAD
    for part in message.parts:
        if part.text:
            total += count(part.text)
        elif part.kind in MEDIA_KINDS:
            total += media_tokens(part, model)
    for call in message.tool_calls:
        total += count(call.name) + count(call.arguments)
    return total


def tool_tokens(tool: Tool, model: str) -> int:
    """A tool definition's tokens, counted on its JSON (close to what providers render)."""
    definition: dict[str, Any] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return count_text(orjson.dumps(definition if tool.type == "function" else tool.extra).decode(), model)


def record_saved(ctx: RequestContext, plugin: str, tokens: int) -> None:
    """Add a plugin's savings to the request (its Outcome and the ``x-router-tokens-saved`` header)."""
    ctx.note_saved(plugin, tokens)
