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

from router_lib.words import CACHED_TEXT_CHARS

from . import distill
from .vectors import PROMPT_CHARS, CachedVectors

log = logging.getLogger("llm_router.scorer")
__all__ = ["CACHED_TEXT_CHARS", "PROMPT_CHARS", "SentenceEncoder", "encoder"]


class SentenceEncoder(CachedVectors):
    """Unit-length sentence vectors (``distill.DIMENSIONS`` dims); descriptions are cached, prompts are not."""

    def __init__(self, directory: Path | None = None) -> None:
        from tokenizers import Tokenizer

        directory = directory or distill.default_dir()
        if not (directory / distill.META_FILE).is_file():
            raise FileNotFoundError(f"no distilled vectors in {directory}: run python -m router_plugins.scorer.distill")
        self.table = np.load(directory / distill.VECTORS_FILE)  # float16: 16 MB; rows are widened when read
        self.table.setflags(write=False)
        self.tokenizer = Tokenizer.from_file(str(directory / distill.TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dimensions = self.table.shape[1]
        vocab = self.tokenizer.get_vocab()
        self.is_piece = np.zeros(self.table.shape[0], dtype=bool)
        self.is_piece[[i for token, i in vocab.items() if token.startswith("##")]] = True
        super().__init__()
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
        vector = self.table[ids].astype(np.float32).mean(axis=0)
        vector /= float(np.linalg.norm(vector)) or 1.0
        return vector

    def encode(self, text: str) -> np.ndarray:
        return self.mean_vector(self.token_ids(text))

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


@functools.cache
def encoder() -> SentenceEncoder:
    """The process's one encoder (read-only float16 vectors: 16 MB on disk and in memory)."""
    log.info("loading distilled MiniLM sentence vectors")
    return SentenceEncoder()
