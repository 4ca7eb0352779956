"""Static word embeddings (WordLlama, shipped inside its wheel) loaded offline, once."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("llm_router.scorer")

# The wheel ships both files; wordllama's own loader looks for the tokenizer in a
# folder that does not exist and then tries the network, so we load them ourselves.
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
# Description vectors are cached by text: tags and tools repeat across requests.
CACHE_SIZE = 4096


class Embedder:
    """Sentence vectors (unit length, 256 dims) from averaged static token embeddings."""

    def __init__(self) -> None:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference

        root = Path(wordllama.__file__).parent
        with safe_open(str(root / WEIGHTS), framework="np", device="cpu") as f:
            embedding = f.get_tensor("embedding.weight")
        self.model = WordLlamaInference(embedding, Tokenizer.from_file(str(root / TOKENIZER)))
        self.cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._one)

    def _one(self, text: str) -> np.ndarray:
        vector = self.model.embed([text], norm=True)[0].astype(np.float32)
        vector.setflags(write=False)
        return vector

    def embed(self, text: str) -> np.ndarray:
        """One text's vector, not cached (use for prompts, which do not repeat)."""
        return self._one(text)

    def vector(self, text: str) -> np.ndarray:
        """One text's vector, cached (use for descriptions that repeat)."""
        return self.cached(text)

    def vectors(self, texts: list[str]) -> np.ndarray:
        """A matrix of unit vectors, one row per text, cached row by row."""
        if not texts:
            return np.zeros((0, 256), dtype=np.float32)
        return np.stack([self.cached(t) for t in texts])

    def similarity(self, text: str, others: list[str]) -> np.ndarray:
        """Cosine similarity of ``text`` to each of ``others``, in -1..1."""
        return self.vectors(others) @ self.vector(text)


@functools.cache
def embedder() -> Embedder:
    """The process's one Embedder (about 0.3 s to load; call at startup)."""
    log.info("loading WordLlama embeddings")
    return Embedder()
