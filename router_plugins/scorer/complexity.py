"""Prompt complexity 0..1: how hard the task is, learned from public difficulty-graded data, not its length.

A linear model on the prompt's sentence vector (``sentence.py``) and a few structural
features (``difficulty.NAMES``), fitted by bench/scoring_eval_fit.py on development data
sets graded from trivial (one-step arithmetic, lookup questions) to expert (medical
licensing questions), plus a bounded length term: within a data set, longer problems are
harder (competition problems with longer solutions, ARC's challenge set), which whole-set
grades cannot teach. Its weight is the largest that keeps Spearman(complexity, word count)
≤ 0.7 on development data (the issue allows 0.8). The weights ship as
``complexity_model.json``. Evaluated on data it never saw (competition maths levels,
grade-school maths): docs/routing-intelligence.md.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import difficulty
from .sentence import encoder

MODEL_FILE = Path(__file__).with_name("complexity_model.json")
MAX_CHARS = 8000  # beyond this, more text says nothing new about difficulty
_REASONS = 3  # the strongest features named in the explanation


#: The weights hold only for the vectors they were fitted on: this sentence's vector is saved with them.
PROBE = "Prove that the sum of two odd numbers is even, then explain the proof to a child."


class Model(NamedTuple):
    mean: np.ndarray  # of the features (sentence vector, then difficulty.NAMES)
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    per_log_word: float  # the length term: this × (log(1 + words, at most cap_words) − mean_log_words)
    mean_log_words: float
    cap_words: int


@functools.cache
def fitted_model() -> Model:
    """The fitted weights, checked against this install's vectors."""
    data = json.loads(MODEL_FILE.read_text())
    if float(np.asarray(data["probe"], dtype=np.float32) @ encoder().embed(PROBE)) < 0.99:
        raise RuntimeError("the distilled vectors differ from those the complexity model was fitted on")
    mean, scale, weights = (np.asarray(data[k], dtype=np.float32) for k in ("mean", "scale", "weights"))
    length = data["length"]
    return Model(
        mean, scale, weights, float(data["bias"]), length["per_log_word"], length["mean_log_words"], length["cap_words"]
    )


def length_term(n_words: int, model: Model) -> float:
    """The bounded length term's push on the logit: nothing more past ``cap_words`` words."""
    return model.per_log_word * (math.log1p(min(n_words, model.cap_words)) - model.mean_log_words)


def complexity(prompt: str) -> tuple[float, list[str]]:
    """(0..1 complexity of the prompt, the features that moved it most, with their push on the logit)."""
    model = encoder()
    text = prompt[:MAX_CHARS]
    ids, vector = model.read(text)
    hand = difficulty.hand_features(text, ids, model.is_piece)
    fitted = fitted_model()
    contributions = (np.concatenate([vector, hand]) - fitted.mean) / fitted.scale * fitted.weights
    n_hand = len(difficulty.NAMES)
    parts = {"content": float(contributions[:-n_hand].sum())}
    parts.update(zip(difficulty.NAMES, (float(c) for c in contributions[-n_hand:]), strict=True))
    n_words = len(text.split())
    parts["length"] += length_term(n_words, fitted)
    z = fitted.bias + sum(parts.values())
    strongest = sorted(parts.items(), key=lambda kv: abs(kv[1]), reverse=True)[:_REASONS]
    reasons = [f"{n_words} word{'' if n_words == 1 else 's'}"] + [
        f"{name} {value:+.2f}" for name, value in strongest if value
    ]
    return round(1.0 / (1.0 + math.exp(-z)), 3), reasons
