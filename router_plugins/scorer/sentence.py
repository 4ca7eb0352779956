"""Sentence vectors from all-MiniLM-L6-v2 distilled into static token vectors (``distill.py``), loaded once.

A sentence is the mean of its WordPiece tokens' vectors, unit length: the Rust tokenizer plus
one gather, under a millisecond for a 2,000-character prompt on an idle core (the scorer still
runs it in a worker thread). The vectors are built offline at install time; nothing downloads here.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import numpy as np

from . import distill

log = logging.getLogger("llm_router.scorer")

#: A prompt is read from its first characters only: the ask comes first, and the cost grows with the text.
PROMPT_CHARS = 2000
CACHE_SIZE = 4096
CACHED_TEXT_CHARS = 2000


class SentenceEncoder:
    """Unit-length sentence vectors (``distill.DIMENSIONS`` dims); descriptions are cached, prompts are not."""

    def __init__(self, directory: Path | None = None) -> None:
        from tokenizers import Tokenizer

        directory = directory or distill.default_dir()
        if not (directory / distill.META_FILE).is_file():
            raise FileNotFoundError(f"no distilled vectors in {directory}: run python -m router_plugins.scorer.distill")
        self.vectors = np.load(directory / distill.VECTORS_FILE)  # float16: 16 MB; rows are widened when read
        self.vectors.setflags(write=False)
        self.tokenizer = Tokenizer.from_file(str(directory / distill.TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dimensions = self.vectors.shape[1]
        vocab = self.tokenizer.get_vocab()
        self.is_piece = np.zeros(self.vectors.shape[0], dtype=bool)
        self.is_piece[[i for token, i in vocab.items() if token.startswith("##")]] = True
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._one)
        self._lock = threading.Lock()  # the tokenizer object is shared; keep calls from threads apart
        self._last: tuple[str, np.ndarray, np.ndarray] | None = None

    def token_ids(self, text: str) -> np.ndarray:
        """WordPiece ids of the text, without [CLS]/[SEP]."""
        with self._lock:
            return np.asarray(self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def mean_vector(self, ids: np.ndarray) -> np.ndarray:
        """The unit-length mean of the tokens' vectors (zeros for no tokens)."""
        if not len(ids):
            return np.zeros(self.dimensions, dtype=np.float32)
        vector = self.vectors[ids].astype(np.float32).mean(axis=0)
        vector /= float(np.linalg.norm(vector)) or 1.0
        return vector

    def _one(self, text: str) -> np.ndarray:
        vector = self.mean_vector(self.token_ids(text))
        vector.setflags(write=False)
        return vector

    def embed(self, text: str) -> np.ndarray:
        """A prompt's vector from its first ``PROMPT_CHARS`` characters, not cached."""
        return self._one(text[:PROMPT_CHARS])

    def read(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, vector) of a prompt's first ``PROMPT_CHARS`` characters; the last prompt is remembered,
        since tags and complexity read the same prompt one after the other."""
        text = prompt[:PROMPT_CHARS]
        last = self._last
        if last is not None and last[0] == text:
            return last[1], last[2]
        ids = self.token_ids(text)
        vector = self.mean_vector(ids)
        ids.setflags(write=False)
        vector.setflags(write=False)
        self._last = (text, ids, vector)
        return ids, vector

    def vectors_of(self, texts: list[str]) -> np.ndarray:
        """Descriptions' vectors, one row each, cached per description (cut to ``CACHED_TEXT_CHARS``)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._cached(t[:CACHED_TEXT_CHARS]) for t in texts])

    def cache_size(self) -> int:
        return self._cached.cache_info().currsize


@functools.cache
def encoder() -> SentenceEncoder:
    """The process's one encoder (read-only float16 vectors: 16 MB on disk and in memory)."""
    log.info("loading distilled MiniLM sentence vectors")
    return SentenceEncoder()
