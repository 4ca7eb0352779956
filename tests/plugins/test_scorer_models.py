"""The scorer's models: the install-time distillation, the sentence encoder's caches, the complexity weights."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from router_plugins.scorer import complexity as complexity_module
from router_plugins.scorer import difficulty, distill, intent
from router_plugins.scorer.sentence import CACHED_TEXT_CHARS, PROMPT_CHARS, SentenceEncoder, encoder


def test_install_step_built_the_vectors_from_the_pinned_model():
    directory = distill.default_dir()
    meta = json.loads((directory / distill.META_FILE).read_text())
    model, tokenizer, sha = distill.sources()
    assert meta["model_sha256"] == sha and model.is_file() and tokenizer.is_file()
    vectors = np.load(directory / distill.VECTORS_FILE, mmap_mode="r")
    assert vectors.shape == (30522, distill.DIMENSIONS) and np.isfinite(vectors[:1000]).all()
    started = time.perf_counter()
    assert distill.build(directory) == directory  # up to date: nothing is recomputed
    assert time.perf_counter() - started < 5


def test_missing_vectors_say_how_to_build_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m router_plugins\.scorer\.distill"):
        SentenceEncoder(tmp_path)


def test_prompts_are_not_cached_descriptions_are_bounded():
    model = encoder()
    before = model.cache_size()
    huge = "please summarise this log line for me " * 200_000  # ~8 MB
    ids, vector = model.read(huge)
    assert len(ids) < PROMPT_CHARS and model.cache_size() == before
    assert vector @ model.embed(huge[:PROMPT_CHARS]) == pytest.approx(1.0)
    model.vectors_of(["a long tag description " * 10_000])
    model.vectors_of([("a long tag description " * 10_000)[:CACHED_TEXT_CHARS]])  # the same, bounded, key
    assert model.cache_size() == before + 1


def test_vectors_are_unit_length_and_meaningful():
    model = encoder()
    cat, kitten, tax = (model.embed(t) for t in ("a cat sleeping", "a kitten napping", "corporate tax law"))
    assert np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-5)
    assert cat @ kitten > cat @ tax + 0.1
    assert not model.embed("").any() and not model.embed("   ").any()


def test_topics_covered_by_a_tag_are_not_its_rivals():
    """A tag that names cooking makes the built-in "cooking" topic its own ground."""
    model_vectors = intent._descriptions([intent.tag_text("cooking", "recipes, cooking and baking")], None)
    topics = intent._topic_vectors(None)
    covered = (topics @ model_vectors.T).max(axis=1) >= intent.COVERED
    assert [t for t, c in zip(intent.TOPICS, covered, strict=True) if c] == ["cooking, recipes and food"]


def test_complexity_weights_match_the_features():
    data = json.loads(complexity_module.MODEL_FILE.read_text())
    n = encoder().dimensions + len(difficulty.NAMES)
    assert len(data["weights"]) == len(data["mean"]) == len(data["scale"]) == n
    hand = data["weights"][-len(difficulty.NAMES) :]
    assert min(hand) >= 0  # the fitting prior: no structural feature makes a prompt easier
    assert "mmlu" not in data["grades"] and "gsm8k" not in data["grades"]  # reserved sets are never fitted on


def test_scoring_a_long_prompt_is_fast():
    """Generous bound for a shared CI machine; bench/scoring_eval.py --latency has the real figures."""
    prompt = ("Explain how the committee's tax policy affects small firms, step by step. " * 40)[:2000]
    tags = [type("T", (), {"name": f"t{i}", "description": f"topic number {i}"})() for i in range(6)]
    intent.match_tags(prompt, tags, None)
    times = []
    for i in range(30):
        started = time.perf_counter()
        intent.match_tags(prompt + str(i), tags, None)
        complexity_module.complexity(prompt + str(i))
        times.append(time.perf_counter() - started)
    assert sorted(times)[15] < 0.02


async def test_on_the_event_loop_scoring_runs_in_a_worker_thread(monkeypatch):
    import threading

    from router_core import Call, Config, Message, RequestContext
    from router_plugins.scorer import plugin

    threads = []
    real = plugin.complexity
    monkeypatch.setattr(plugin, "complexity", lambda p: (threads.append(threading.current_thread()), real(p))[1])
    ctx = RequestContext(
        call=Call("chat", "", [Message.of_text("user", "prove Fermat's little theorem")]),
        gateway={"planningTriggerScore": 0.5},
        config=Config(),
    )
    scores = await plugin.score_request(ctx, frozenset({"complexity"}))
    assert threads and threads[0] is not threading.main_thread() and 0 < scores["complexity"] < 1


def test_complexity_weights_fit_these_vectors():
    """The saved probe vector matches this install's vectors (a different distillation would fail here)."""
    complexity_module._model.cache_clear()
    assert complexity_module._model()[2].shape == (encoder().dimensions + len(difficulty.NAMES),)
