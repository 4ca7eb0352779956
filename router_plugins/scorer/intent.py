"""Tag matching by meaning: embeddings of prompt vs tag, plus shared words and domain keyword cues."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from router_lib.words import CACHED_TEXT_CHARS, cached_stems, content_words, stem

from .embed import PROMPT_CHARS
from .lexicon import cue_words

if TYPE_CHECKING:
    from .embed import Embedder

# A logistic model over five features, fitted on tests/data/scorer (docs/routing-intelligence.md).
W_SENTENCE = 0.73  # cosine: prompt vs the tag's name + description
W_CUED = 1.06  # cosine: prompt vs name + description + the domain's keyword cues
W_WORDS = 0.30  # mean cosine of the prompt's two closest words to the tag: one telling word can decide
W_SHARED = 0.59  # per stem shared with the tag's own words (at most 3)
W_CUES = 2.25  # per keyword cue of the tag's domain in the prompt (at most 3)
BIAS = -2.65
# The fitted model gives about 0.1 to a borderline match (four tags share the mass); shift so that is 0.5.
SHIFT = 2.2
#: Below this match no tag is chosen.
MIN_MATCH = 0.5
MAX_WORDS = 64  # a long paste adds nothing to intent; the first words carry the ask


@functools.lru_cache(maxsize=1024)
def tag_profile(name: str, description: str) -> tuple[str, str, frozenset[str], frozenset[str]]:
    """(own text, text with cues, own stems, cue stems) of a tag — cached, since tags repeat."""
    own = f"{name.replace('_', ' ').replace('-', ' ')}: {description}"
    cues = cue_words(frozenset(own.lower().replace(",", " ").replace(":", " ").split()))
    return own, f"{own} {cues}", cached_stems(own), cached_stems(cues)


def match_tags(prompt: str, tags: Sequence[Any], embedder: Embedder | None) -> tuple[str | None, dict[str, float], str]:
    """(best tag name or None, each tag's match 0..1, why) for ``tags`` with ``name``/``description``."""
    if not tags:
        return None, {}, "no tags"
    words = content_words(prompt[:PROMPT_CHARS])[:MAX_WORDS]
    prompt_stems = frozenset(stem(w) for w in words)
    # Cut before the cache: a client's 8 MB description must not become a cache key.
    profiles = [tag_profile(t.name[:CACHED_TEXT_CHARS], t.description[:CACHED_TEXT_CHARS]) for t in tags]
    z = np.full(len(tags), BIAS + SHIFT, dtype=np.float64)
    if embedder is not None and words:
        prompt_vector = embedder.embed(" ".join(words))
        own = embedder.vectors([p[0] for p in profiles])
        z += W_SENTENCE * (own @ prompt_vector)
        z += W_CUED * (embedder.vectors([p[1] for p in profiles]) @ prompt_vector)
        per_word = own @ embedder.vectors(words).T  # tags × words (word vectors are cached: words repeat)
        z += W_WORDS * np.sort(per_word, axis=1)[:, -2:].mean(axis=1)
    for i, (_, _, own_stems, cue_stems) in enumerate(profiles):
        z[i] += W_SHARED * min(len(prompt_stems & own_stems), 3) + W_CUES * min(len(prompt_stems & cue_stems), 3)
    match = [1.0 / (1.0 + math.exp(-v)) for v in z]
    scores = {t.name: round(m, 3) for t, m in zip(tags, match, strict=True)}
    ranked = sorted(range(len(tags)), key=match.__getitem__, reverse=True)
    best = tags[ranked[0]].name
    runner_up = f", next {tags[ranked[1]].name} {match[ranked[1]]:.2f}" if len(tags) > 1 else ""
    if match[ranked[0]] < MIN_MATCH:
        return None, scores, f"no tag reaches {MIN_MATCH} (best {best} {match[ranked[0]]:.2f})"
    return best, scores, f"{best} {match[ranked[0]]:.2f}{runner_up}"
