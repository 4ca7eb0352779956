"""Prompt complexity 0..1: how hard the task is, learned from public difficulty-graded data, not its length.

A linear model on the prompt's sentence vector (``sentence.py``) and a few structural
features (``difficulty.NAMES``), fitted by bench/scoring_eval_fit.py on development data
sets graded from trivial (one-step arithmetic, lookup questions) to expert (medical
licensing questions); the weights ship as ``complexity_model.json``. Evaluated on data it
never saw (competition maths levels, grade-school maths): docs/routing-intelligence.md.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from . import difficulty
from .sentence import encoder

MODEL_FILE = Path(__file__).with_name("complexity_model.json")
MAX_CHARS = 8000  # beyond this, more text says nothing new about difficulty
_REASONS = 3  # the strongest features named in the explanation


#: The weights hold only for the vectors they were fitted on: this sentence's vector is saved with them.
PROBE = "Prove that the sum of two odd numbers is even, then explain the proof to a child."


@functools.cache
def fitted_model() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(means, scales, weights, bias), checked against this install's vectors."""
    data = json.loads(MODEL_FILE.read_text())
    if float(np.asarray(data["probe"], dtype=np.float32) @ encoder().embed(PROBE)) < 0.99:
        raise RuntimeError("the distilled vectors differ from those the complexity model was fitted on")
    arrays = (np.asarray(data[k], dtype=np.float32) for k in ("mean", "scale", "weights"))
    mean, scale, weights = arrays
    return mean, scale, weights, float(data["bias"])


def complexity(prompt: str) -> tuple[float, list[str]]:
    """(0..1 complexity of the prompt, the features that moved it most, with their push on the logit)."""
    model = encoder()
    text = prompt[:MAX_CHARS]
    ids, vector = model.read(text)
    hand = difficulty.hand_features(text, ids, model.is_piece)
    mean, scale, weights, bias = fitted_model()
    contributions = (np.concatenate([vector, hand]) - mean) / scale * weights
    n_hand = len(difficulty.NAMES)
    parts = {"content": float(contributions[:-n_hand].sum())}
    parts.update(zip(difficulty.NAMES, (float(c) for c in contributions[-n_hand:]), strict=True))
    z = bias + sum(parts.values())
    strongest = sorted(parts.items(), key=lambda kv: abs(kv[1]), reverse=True)[:_REASONS]
    n_words = len(text.split())
    reasons = [f"{n_words} word{'' if n_words == 1 else 's'}"] + [
        f"{name} {value:+.2f}" for name, value in strongest if value
    ]
    return round(1.0 / (1.0 + math.exp(-z)), 3), reasons
