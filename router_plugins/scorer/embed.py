"""Static word embeddings (WordLlama, shipped inside its wheel) loaded offline, once per process."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from router_lib.words import CACHE_SIZE, CACHED_TEXT_CHARS

log = logging.getLogger("llm_router.scorer")

# The wheel ships both files; wordllama's own loader looks for the tokenizer in a
# folder that does not exist and then tries the network, so we load them ourselves.
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
DIMENSIONS = 256
# A prompt or conversation turn is embedded from its first characters only. The vector is
# a mean of token vectors, so the ask (which comes first) is what moves it: the tag and
# tool figures do not change when long pastes are cut here, while the tokenizer's time and
# memory grow with the text (an 8 MB prompt is ~1.3 M tokens × 256 floats). Such text is
# never cached; description vectors are, cut to CACHED_TEXT_CHARS.
PROMPT_CHARS = 2000


class Embedder:
    """Sentence vectors (unit length, 256 dims) from averaged static token embeddings.

    Descriptions (tags, tools) and single words repeat across requests and go through a
    bounded LRU cache (``vector``/``vectors``/``similarity``'s ``descriptions``); prompts and
    conversation turns do not repeat and are embedded uncached (``embed``/``embed_many``).
    """

    def __init__(self) -> None:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference

        root = Path(wordllama.__file__).parent
        with safe_open(str(root / WEIGHTS), framework="np", device="cpu") as f:
            embedding = f.get_tensor("embedding.weight")
        self.model = WordLlamaInference(embedding, Tokenizer.from_file(str(root / TOKENIZER)))
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._one)

    def _one(self, text: str) -> np.ndarray:
        vector = self.model.embed([text], norm=True)[0].astype(np.float32)
        vector.setflags(write=False)
        return vector

    def embed(self, text: str) -> np.ndarray:
        """A prompt's vector from its first ``PROMPT_CHARS`` characters, not cached."""
        return self._one(text[:PROMPT_CHARS])

    def embed_many(self, texts: list[str]) -> np.ndarray:
        """Conversation texts' vectors (one row each), from their first ``PROMPT_CHARS`` characters, not cached."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return self.model.embed([t[:PROMPT_CHARS] for t in texts], norm=True).astype(np.float32)

    def vector(self, text: str) -> np.ndarray:
        """A description's vector, cached (the first ``CACHED_TEXT_CHARS`` characters)."""
        return self._cached(text[:CACHED_TEXT_CHARS])

    def vectors(self, texts: list[str]) -> np.ndarray:
        """Descriptions' (or words') vectors, one row each, cached row by row."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([self._cached(t[:CACHED_TEXT_CHARS]) for t in texts])

    def similarity(self, prompt: str, descriptions: list[str]) -> np.ndarray:
        """Cosine similarity of a prompt (uncached) to each description (cached), in -1..1."""
        return self.vectors(descriptions) @ self.embed(prompt)

    def similarity_to_texts(self, prompt: str, texts: list[str]) -> np.ndarray:
        """Cosine similarity of a prompt to each conversation text, nothing cached, in -1..1."""
        return self.embed_many(texts) @ self.embed(prompt)

    def cache_size(self) -> int:
        """How many description vectors are cached."""
        return self._cached.cache_info().currsize


@functools.cache
def embedder() -> Embedder:
    """The process's one Embedder (about 0.3 s to load): read-only weights, shared by every app."""
    log.info("loading WordLlama embeddings")
    return Embedder()
