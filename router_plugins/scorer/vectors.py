"""What both sentence-vector models share: prompts read from their first characters and never cached,
descriptions (tags, tools, topics) cached per description, cut to a bounded key."""

from __future__ import annotations

import functools

import numpy as np

from router_lib.words import CACHE_SIZE, CACHED_TEXT_CHARS

# A prompt or conversation turn is embedded from its first characters only. The vector is
# a mean of token vectors, so the ask (which comes first) is what moves it: the tag and
# tool figures do not change when long pastes are cut here, while the tokenizer's time and
# memory grow with the text (an 8 MB prompt is ~1.3 M tokens × 256 floats).
PROMPT_CHARS = 2000


class CachedVectors:
    """Unit-length sentence vectors of ``dimensions`` floats; a subclass says how one text is encoded."""

    dimensions: int

    def __init__(self) -> None:
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._one)

    def encode(self, text: str) -> np.ndarray:
        """One text's unit vector (float32)."""
        raise NotImplementedError

    def _one(self, text: str) -> np.ndarray:
        vector = self.encode(text)
        vector.setflags(write=False)
        return vector

    def embed(self, text: str) -> np.ndarray:
        """A prompt's vector from its first ``PROMPT_CHARS`` characters, not cached."""
        return self._one(text[:PROMPT_CHARS])

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Descriptions' (or words') vectors, one row each, cached per description (cut to ``CACHED_TEXT_CHARS``)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._cached(t[:CACHED_TEXT_CHARS]) for t in texts])

    def cache_size(self) -> int:
        """How many description vectors are cached."""
        return self._cached.cache_info().currsize
