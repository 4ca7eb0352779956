"""Tag matching by meaning: the prompt's nearest tag description, against generic topics as the "no tag" bar.

Each tag's ``name: description`` and the prompt are sentence vectors: all-MiniLM-L6-v2
distilled to static token vectors (``sentence.py``) and, when loaded, the WordLlama vectors
(``embed.py``); the similarity is the mean of the two cosines (``MINILM_WEIGHT``; each alone
is weaker on development data). The best tag is the most similar one. It is chosen unless
the closest of a fixed list of everyday topics (``lexicon.TOPICS``) that no tag of the
request covers is clearly closer: a prompt about cooking sent to tags
for law and medicine lands much nearer "cooking" than either, so it gets no tag. The bar
(``MARGIN``) and the coverage cut (``COVERED``) were chosen on public development data only
(``bench/scoring_eval.py --bars``, docs/routing-intelligence.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .embed import Embedder
from .lexicon import TOPICS
from .sentence import CACHED_TEXT_CHARS, encoder

#: Similarity = this × MiniLM cosine + (1 − this) × WordLlama cosine. Best tag on development data:
#: 0 (WordLlama alone) 47.8 % task types / 68.5 % subjects, 0.35 52.5 / 74.4, 0.5 53.5 / 73.8, 0.65 54.8 / 71.9
#: (bench/scoring_eval.py --weights); 0.5 has the highest sum.
MINILM_WEIGHT = 0.5
#: A topic at least this similar to one of the request's tags is that tag's own ground, not a rival.
COVERED = 0.6
#: The best tag may trail the closest uncovered topic by at most this much cosine, else no tag.
#: At 0 a nearby generic topic ("greetings and small talk", "geography") took 31 % of the
#: in-scope development task prompts; at -0.06 it takes 15 % (subjects: 9 % → 2 %), and a
#: prompt whose tag was removed gets no tag 22 % / 19 % of the time instead of 42 % / 47 %.
MARGIN = -0.06
#: Cosine → 0..1 match: ``sigmoid(SLOPE × (cos − bar))``, so a match of 0.5 is exactly the bar.
SLOPE = 25.0
#: Below this match no tag is chosen (the bar above, on the 0..1 scale).
MIN_MATCH = 0.5


def tag_text(name: str, description: str) -> str:
    """What a tag is matched on: its name (words, not identifiers) and its description."""
    return f"{name.replace('_', ' ').replace('-', ' ')}: {description}"


def _descriptions(texts: list[str], embedder: Embedder | None) -> np.ndarray:
    """Unit vectors of descriptions (cached per description by each model)."""
    minilm = encoder().vectors_of(texts)
    if embedder is None:
        return minilm
    return np.hstack([math.sqrt(MINILM_WEIGHT) * minilm, math.sqrt(1 - MINILM_WEIGHT) * embedder.vectors(texts)])


@functools.lru_cache(maxsize=4)
def _topic_vectors(embedder: Embedder | None) -> np.ndarray:
    return _descriptions(list(TOPICS), embedder)


def _prompt_vector(prompt: str, embedder: Embedder | None) -> np.ndarray:
    _, minilm = encoder().read(prompt)
    if embedder is None or not minilm.any():
        return minilm
    return np.concatenate([math.sqrt(MINILM_WEIGHT) * minilm, math.sqrt(1 - MINILM_WEIGHT) * embedder.embed(prompt)])


def match_tags(
    prompt: str, tags: Sequence[Any], embedder: Embedder | None = None
) -> tuple[str | None, dict[str, float], str]:
    """(best tag name or None, each tag's match 0..1, why) for ``tags`` with ``name``/``description``.

    ``embedder`` is the WordLlama embedder, or None (it failed to load): MiniLM alone then.
    """
    if not tags:
        return None, {}, "no tags"
    prompt_vector = _prompt_vector(prompt, embedder)
    if not prompt_vector.any():
        return None, {t.name: 0.0 for t in tags}, "no words to match"
    # Cut before the cache: a client's 8 MB description must not become a cache key.
    tag_vectors = _descriptions(
        [tag_text(t.name[:CACHED_TEXT_CHARS], t.description[:CACHED_TEXT_CHARS]) for t in tags], embedder
    )
    similarity = tag_vectors @ prompt_vector
    topics = _topic_vectors(embedder)
    free = (topics @ tag_vectors.T).max(axis=1) < COVERED
    topic_similarity = topics[free] @ prompt_vector
    rival = int(np.argmax(topic_similarity)) if free.any() else None
    bar = (float(topic_similarity[rival]) if rival is not None else -1.0) + MARGIN
    match = [1.0 / (1.0 + math.exp(-SLOPE * (float(s) - bar))) for s in similarity]
    scores = {t.name: round(m, 3) for t, m in zip(tags, match, strict=True)}
    ranked = sorted(range(len(tags)), key=match.__getitem__, reverse=True)
    best = tags[ranked[0]].name
    runner_up = f", next {tags[ranked[1]].name} {match[ranked[1]]:.2f}" if len(tags) > 1 else ""
    nearest = f"; nearest other topic: {TOPICS[int(np.flatnonzero(free)[rival])]!r}" if rival is not None else ""
    if match[ranked[0]] < MIN_MATCH:
        return None, scores, f"no tag beats other topics (best {best} {match[ranked[0]]:.2f}{nearest})"
    return best, scores, f"{best} {match[ranked[0]]:.2f}{runner_up}"
