"""The text embedder plugins share: loaded once by the plugin that owns it, published on the app."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web


class TextEmbedder(Protocol):
    """Cosine similarities of a prompt to texts, in -1..1 (one value per text)."""

    def similarity(self, prompt: str, descriptions: list[str]) -> Any: ...

    def similarity_to_texts(self, prompt: str, texts: list[str]) -> Any: ...


#: Set in ``router_startup`` by the plugin that loads an embedder (the local scorer);
#: absent when none is enabled or it could not load: a reader falls back to words.
EMBEDDER = web.AppKey("llm_router.embedder", TextEmbedder)
