"""Features of a prompt's difficulty (not its length), shared by ``complexity.py`` and the fitting script."""

from __future__ import annotations

import math
import re

import numpy as np

_MATH_SYMBOL = re.compile(r"[$=^_<>≤≥±∑∫√π]|\\[a-zA-Z]+")
_CODE = re.compile(r"```|[{};]\s*$|=>|->|\bdef |\breturn\b|\(\)", re.M)
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")

RARE_ID = 10000
#: Hand features, in the order of the fitted weights (after the embedding's dimensions).
NAMES = ("length", "maths notation", "code", "rare words", "word pieces", "sentences", "digits")


def hand_features(text: str, token_ids: np.ndarray, is_piece: np.ndarray) -> np.ndarray:
    """Cheap structural features; log-scaled so that one long paste cannot dominate.

    ``token_ids`` are the prompt's WordPiece ids; ``is_piece`` marks the ids that continue
    a word ("##ing"): long or technical words split into several.
    """
    n_words = len(text.split())
    n_tokens = max(len(token_ids), 1)
    rare = float((token_ids > RARE_ID).sum()) / n_tokens  # WordPiece ids run roughly by frequency
    pieces = float(is_piece[token_ids].sum()) / n_tokens
    return np.array(
        [
            math.log1p(n_words),
            math.log1p(len(_MATH_SYMBOL.findall(text))),
            math.log1p(len(_CODE.findall(text))),
            rare,
            pieces,
            math.log1p(len(_SENTENCE_END.findall(text))),
            math.log1p(sum(c.isdigit() for c in text)),
        ],
        dtype=np.float32,
    )
