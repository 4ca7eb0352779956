"""Static word embeddings (WordLlama, shipped inside its wheel) loaded offline, once per process."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from router_lib.words import CACHED_TEXT_CHARS

from .vectors import PROMPT_CHARS, CachedVectors

log = logging.getLogger("llm_router.scorer")

# The wheel ships both files; wordllama's own loader looks for the tokenizer in a
# folder that does not exist and then tries the network, so we load them ourselves.
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
DIMENSIONS = 256
__all__ = ["DIMENSIONS", "PROMPT_CHARS", "Embedder", "embedder"]


class Embedder(CachedVectors):
    """Sentence vectors (unit length, 256 dims) from averaged static token embeddings.

    Descriptions (tags, tools) and single words repeat across requests and go through a
    bounded LRU cache (``vector``/``vectors``/``similarity``'s ``descriptions``); prompts and
    conversation turns do not repeat and are embedded uncached (``embed``/``embed_many``).
    """

    dimensions = DIMENSIONS

    def __init__(self) -> None:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference

        root = Path(wordllama.__file__).parent
        with safe_open(str(root / WEIGHTS), framework="np", device="cpu") as f:
            embedding = f.get_tensor("embedding.weight")
        self.model = WordLlamaInference(embedding, Tokenizer.from_file(str(root / TOKENIZER)))
        super().__init__()

    def encode(self, text: str) -> np.ndarray:
        return self.model.embed([text], norm=True)[0].astype(np.float32)

    def embed_many(self, texts: list[str]) -> np.ndarray:
        """Conversation texts' vectors (one row each), from their first ``PROMPT_CHARS`` characters, not cached."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return self.model.embed([t[:PROMPT_CHARS] for t in texts], norm=True).astype(np.float32)

    def vector(self, text: str) -> np.ndarray:
        """A description's vector, cached (the first ``CACHED_TEXT_CHARS`` characters)."""
        return self._cached(text[:CACHED_TEXT_CHARS])

    def similarity(self, prompt: str, descriptions: list[str]) -> np.ndarray:
        """Cosine similarity of a prompt (uncached) to each description (cached), in -1..1."""
        return self.vectors(descriptions) @ self.embed(prompt)

    def similarity_to_texts(self, prompt: str, texts: list[str]) -> np.ndarray:
        """Cosine similarity of a prompt to each conversation text, nothing cached, in -1..1."""
        return self.embed_many(texts) @ self.embed(prompt)


@functools.cache
def embedder() -> Embedder:
    """The process's one Embedder (about 0.3 s to load): read-only weights, shared by every app."""
    log.info("loading WordLlama embeddings")
    return Embedder()
