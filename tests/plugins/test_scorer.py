"""The local scorer against its labelled development set (tests/data/scorer): tags, complexity, image intent."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from router_plugins.scorer.complexity import complexity
from router_plugins.scorer.embed import embedder
from router_plugins.scorer.image_intent import wants_image
from router_plugins.scorer.intent import match_tags

DATA = Path(__file__).parent.parent / "data" / "scorer"


def band(value: float) -> str:
    """The bands the tags plugin's 3-model lists resolve to: < 0.25 last, > 0.75 first."""
    return "low" if value < 0.25 else "high" if value > 0.75 else "mid"


def load_prompts() -> list[tuple[list, str | None, str, str]]:
    sets = json.loads((DATA / "tagsets.json").read_text())
    rows = []
    for line in (DATA / "prompts.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, tag, expected_band, prompt = line.split("|", 3)
            tags = [types.SimpleNamespace(**t) for t in sets[name]]
            rows.append((tags, None if tag == "-" else tag, expected_band, prompt.replace("\\n", "\n")))
    return rows


def load_images() -> list[tuple[bool, str]]:
    lines = (DATA / "image_intent.txt").read_text().splitlines()
    return [
        (label == "yes", prompt) for label, prompt in (x.split("|", 1) for x in lines if x and not x.startswith("#"))
    ]


def tag_accuracy(with_embeddings: bool) -> float:
    model = embedder() if with_embeddings else None
    rows = load_prompts()
    return sum(match_tags(prompt, tags, model)[0] == tag for tags, tag, _, prompt in rows) / len(rows)


def test_dev_set_is_large_and_varied():
    rows = load_prompts()
    assert len(rows) >= 250
    assert {b for _, _, b, _ in rows} == {"low", "mid", "high"}
    assert sum(tag is None for _, tag, _, _ in rows) >= 5


def test_tag_accuracy():
    assert tag_accuracy(with_embeddings=True) >= 0.88


def test_tag_accuracy_on_words_alone():
    """The fallback when the embeddings cannot load."""
    assert tag_accuracy(with_embeddings=False) >= 0.8


def test_paraphrase_without_shared_words():
    tags = [
        types.SimpleNamespace(name="billing", description="billing questions, refunds"),
        types.SimpleNamespace(name="account", description="login problems, password resets"),
    ]
    assert match_tags("my card was billed twice", tags, embedder())[0] == "billing"
    assert match_tags("you took money from me twice for the same thing", tags, embedder())[0] == "billing"


def test_complexity_band_accuracy():
    rows = load_prompts()
    assert sum(band(complexity(prompt)[0]) == b for _, _, b, prompt in rows) / len(rows) >= 0.9


def test_complexity_is_monotone_in_effort_and_explained():
    easy, why_easy = complexity("what is 2 + 2")
    hard, why_hard = complexity(load_prompts()[10][3])
    assert 0.0 <= easy < 0.25 < 0.75 < hard <= 1.0
    assert why_easy and any("words" in r for r in why_hard)


def test_image_intent_precision_and_recall():
    rows = load_images()
    predicted = [(label, wants_image(prompt)[0]) for label, prompt in rows]
    true_pos = sum(label and got for label, got in predicted)
    precision = true_pos / max(1, sum(got for _, got in predicted))
    recall = true_pos / sum(label for label, _ in predicted)
    assert precision >= 0.95 and recall >= 0.9


@pytest.mark.parametrize("prompt", ["", "   ", "?" * 5000, "日本語のテキスト"])
def test_odd_prompts_do_not_break(prompt):
    tags = [types.SimpleNamespace(name="a", description="b")]
    assert match_tags(prompt, tags, embedder())[0] in (None, "a")
    assert 0.0 <= complexity(prompt)[0] <= 1.0
    wants_image(prompt)
