"""Tag matching by meaning: the prompt's nearest tag description, against generic topics as the "no tag" bar.

Each tag's ``name: description`` and the prompt (its whole text plus its last sentence,
``ask``) are sentence vectors: all-MiniLM-L6-v2 distilled to static token vectors
(``sentence.py``) and, when loaded, the WordLlama vectors (``embed.py``); the similarity is a
weighted mean of the two cosines (``MINILM_WEIGHT``; each alone is weaker on development data).
Before comparing, half of the average prompt's vector is taken off the prompt's (``CENTRE``,
``tag_model.json``): static word vectors share one large common direction, which makes every
prompt look alike to every description. The best tag is the most
similar one. It is chosen unless the closest few of a fixed list of everyday topics
(``lexicon.TOPICS``) that no tag of the request covers are clearly closer: a prompt about
cooking sent to tags for law and medicine lands much nearer "cooking" than either, so it gets
no tag. ``[plugins.scorer] no_tag = "strict"`` raises the bar (``STRICT_MARGIN``): more
out-of-scope prompts get no tag, and more in-scope ones lose theirs. The bars (``MARGIN``,
``STRICT_MARGIN``, ``RIVALS``), the coverage cut (``COVERED``), the ask's weight and the centre were
chosen on public development data only (``bench/scoring_eval.py --bars``,
``bench/scoring_eval_fit.py``, docs/routing-intelligence.md).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .embed import Embedder
from .lexicon import TOPICS
from .sentence import CACHED_TEXT_CHARS, PROMPT_CHARS, encoder

#: Similarity = this × MiniLM cosine + (1 − this) × WordLlama cosine. Best tag on development data (half 0,
#: with the centre below): 0 (WordLlama alone) 49.5 % task types / 65.0 % subjects / 47.1 % medical
#: specialties, 0.2 49.2 / 66.6 / 48.5, 0.35 50.2 / 67.2 / 49.6, 0.5 50.5 / 66.3 / 48.1, 0.65 50.8 / 64.6 / 44.0
#: (bench/scoring_eval.py --weights); 0.35 has the highest sum.
MINILM_WEIGHT = 0.35
#: Share of the average prompt's vector taken off each prompt's (per model) before matching. Best tag on
#: development data (half 0), centre 0 → 0.5: task types 49.9 → 50.2 %, subjects 66.0 → 67.2 %, medical
#: specialties 47.5 → 49.1 % (0.3 and 0.7 sum lower; bench/scoring_eval.py --centre).
CENTRE = 0.5
#: The prompt's vector is its whole text's plus this × its ask's (its last sentence: ``ask``), re-normalised: a
#: long passage says what the prompt is about, its last sentence what to do with it. Best tag on development data
#: (half 0), 0 → 1: task types 50.2 → 51.3 %, subjects 67.2 → 67.4 %, medical specialties 49.1 → 50.1 % (0.5, 1.5
#: and 2 sum lower; bench/scoring_eval.py --ask).
ASK_WEIGHT = 1.0
#: An ask has at least this many words of letters: a line of code or of numbers is not one. (Counting numbers as
#: words scored 2.4 points more on development data, all on one-line sums such as "17 % 5 =", and would take
#: "3" from a code listing's last example line as the ask; chosen for that reason, not on a held-out figure.)
ASK_WORDS = 3
_WORD = re.compile(r"[^\W\d_]{2,}")
_CHOICE = re.compile(r"^\s*\(?[A-J][.)]\s")
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+")
#: The average prompt vectors (bench/scoring_eval_fit.py --centre), with the probe below.
MODEL_FILE = Path(__file__).with_name("tag_model.json")
#: The centre holds only for the vectors it was computed on: this sentence's MiniLM vector is saved with it.
PROBE = "Which tag fits this prompt best: law, medicine, cooking or programming?"
#: The rival is the mean of the closest this many uncovered topics: at a fixed share of removed-tag prompts
#: getting no tag, 0.5–2.6 points more accuracy on each development set than the closest topic alone.
RIVALS = 3
#: A topic at least this similar to one of the request's tags is that tag's own ground, not a rival.
COVERED = 0.6
#: The best tag may trail the rival topics by at most this much cosine, else no tag: the strictest bar
#: (0, -0.02, … -0.1) that keeps in-scope prompts losing their tag to ≤ 15 % on every development set's half 0
#: (-0.07 loses 16.5 % of task-type prompts; bench/scoring_eval.py --bars, docs/routing-intelligence.md).
MARGIN = -0.08
#: ``[plugins.scorer] no_tag = "strict"``: the tag must be at least as close as the rival topics. The rule, fixed
#: before the held-out run: the loosest bar (… -0.02, 0, +0.02) at which ≥ 60 % of the prompts whose own tag is
#: removed get no tag on both the task-type and the subject development sets' half 0 (50 % asked for, plus the
#: 8–10 points that held-out rates fell below development ones in rounds 1 and 2). There: task types 66.7 %
#: rejected, 39.9 % of in-scope prompts without a tag; subjects 62.3 % / 22.9 % (bench/scoring_eval.py --bars).
STRICT_MARGIN = 0.0
#: Cosine → 0..1 match: ``sigmoid(SLOPE × (cos − bar))``, so a match of 0.5 is exactly the bar.
SLOPE = 25.0
#: Below this match no tag is chosen (the bar above, on the 0..1 scale).
MIN_MATCH = 0.5


def tag_text(name: str, description: str) -> str:
    """What a tag is matched on: its name (words, not identifiers) and its description."""
    return f"{name.replace('_', ' ').replace('-', ' ')}: {description}"


@functools.cache
def centres() -> tuple[np.ndarray, np.ndarray]:
    """(MiniLM, WordLlama) average prompt vectors × ``CENTRE``, fitted on development prompts."""
    data = json.loads(MODEL_FILE.read_text())
    if float(np.asarray(data["probe"], dtype=np.float32) @ encoder().embed(PROBE)) < 0.99:
        raise RuntimeError("the distilled vectors differ from those the tag model was fitted on")
    return tuple(CENTRE * np.asarray(data[k], dtype=np.float32) for k in ("minilm", "wordllama"))


def _centred(vector: np.ndarray, centre: np.ndarray) -> np.ndarray:
    out = vector - centre
    return out / (float(np.linalg.norm(out)) or 1.0)


def _descriptions(texts: list[str], embedder: Embedder | None) -> np.ndarray:
    """Unit vectors of descriptions (cached per description by each model)."""
    minilm = encoder().vectors(texts)
    if embedder is None:
        return minilm
    return np.hstack([math.sqrt(MINILM_WEIGHT) * minilm, math.sqrt(1 - MINILM_WEIGHT) * embedder.vectors(texts)])


@functools.lru_cache(maxsize=4)
def _topic_vectors(embedder: Embedder | None) -> np.ndarray:
    return _descriptions(list(TOPICS), embedder)


def ask(prompt: str) -> str:
    """The prompt's ask: the last sentence of its last line of at least ``ASK_WORDS`` words that is not an answer
    choice ("B. Paris"), from its last ``PROMPT_CHARS`` characters; "" when there is none."""
    for line in reversed(prompt[-PROMPT_CHARS:].splitlines()):
        if len(_WORD.findall(line)) >= ASK_WORDS and not _CHOICE.match(line):
            return _SENTENCE_BREAK.split(line.strip())[-1]
    return ""


def _centred_pair(minilm: np.ndarray, text: str, embedder: Embedder | None) -> np.ndarray:
    centre_minilm, centre_wordllama = centres()
    minilm = _centred(minilm, centre_minilm)
    if embedder is None:
        return minilm
    wordllama = _centred(embedder.embed(text), centre_wordllama)
    return np.concatenate([math.sqrt(MINILM_WEIGHT) * minilm, math.sqrt(1 - MINILM_WEIGHT) * wordllama])


def _prompt_vector(prompt: str, embedder: Embedder | None) -> np.ndarray:
    _, minilm = encoder().read(prompt)
    if not minilm.any():
        return minilm
    vector = _centred_pair(minilm, prompt, embedder)
    question = ask(prompt)
    if ASK_WEIGHT and question and question != prompt.strip():
        vector = vector + ASK_WEIGHT * _centred_pair(encoder().embed(question), question, embedder)
        vector /= float(np.linalg.norm(vector)) or 1.0
    return vector


def match_tags(
    prompt: str, tags: Sequence[Any], embedder: Embedder | None = None, margin: float | None = None
) -> tuple[str | None, dict[str, float], str]:
    """(best tag name or None, each tag's match 0..1, why) for ``tags`` with ``name``/``description``.

    ``embedder`` is the WordLlama embedder, or None (it failed to load): MiniLM alone then.
    ``margin`` is the "no tag" bar (``MARGIN`` when None; ``STRICT_MARGIN`` rejects more).
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
    closest = np.sort(topic_similarity)[-RIVALS:]
    bar = (float(closest.mean()) if rival is not None else -1.0) + (MARGIN if margin is None else margin)
    match = [1.0 / (1.0 + math.exp(-SLOPE * (float(s) - bar))) for s in similarity]
    scores = {t.name: round(m, 3) for t, m in zip(tags, match, strict=True)}
    ranked = sorted(range(len(tags)), key=match.__getitem__, reverse=True)
    best = tags[ranked[0]].name
    runner_up = f", next {tags[ranked[1]].name} {match[ranked[1]]:.2f}" if len(tags) > 1 else ""
    nearest = f"; nearest other topic: {TOPICS[int(np.flatnonzero(free)[rival])]!r}" if rival is not None else ""
    if match[ranked[0]] < MIN_MATCH:
        return None, scores, f"no tag beats other topics (best {best} {match[ranked[0]]:.2f}{nearest})"
    return best, scores, f"{best} {match[ranked[0]]:.2f}{runner_up}"
