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


def test_the_distillation_recipe_keeps_the_teachers_main_directions_and_weights_rarer_tokens_up():
    # Any teacher's per-token outputs go through distill.reduce (bench/scoring_eval_teacher.py distils a second one).
    rng = np.random.default_rng(0)
    topics = rng.normal(size=(3, 48)) * 10  # three strong directions, plus small noise in every direction
    outputs = (topics[rng.integers(0, 3, size=600)] + rng.normal(size=(600, 48))).astype(np.float32)
    reduced = distill.reduce(outputs, dimensions=3)
    assert reduced.shape == (600, 3) and reduced.dtype == np.float32
    # each row is unit length times log(1 + id): the id order is the frequency order, later ids say more
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), np.log1p(np.arange(600)), rtol=1e-4)
    unit = reduced[1:] / np.linalg.norm(reduced[1:], axis=1, keepdims=True)
    same = (outputs[1:, None] - outputs[None, 1:]) ** 2
    nearest = same.sum(-1).argsort(axis=1)[:, 1]  # each row's nearest other row in the teacher's space
    assert np.mean(np.sum(unit * unit[nearest], axis=1) > 0.9) > 0.95
    # the kept directions come from the covariance alone, signs fixed: negated outputs give negated rows
    np.testing.assert_allclose(distill.reduce(-outputs, dimensions=3), -reduced, atol=1e-4)


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
    model.vectors(["a long tag description " * 10_000])
    model.vectors([("a long tag description " * 10_000)[:CACHED_TEXT_CHARS]])  # the same, bounded, key
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


def test_tag_centre_fits_these_vectors_and_no_reserved_set():
    """The average prompt vectors come from development sets only, and from this install's distilled vectors."""
    data = json.loads(intent.MODEL_FILE.read_text())
    reserved = {"mmlu", "math", "gsm8k", "humaneval", "bbh", "agieval", "gpqa", "truthfulqa"}
    assert data["sets"] and not reserved & set(data["sets"])
    assert len(data["minilm"]) == encoder().dimensions and len(data["wordllama"]) == 256
    intent.centres.cache_clear()
    minilm, wordllama = intent.centres()
    assert np.linalg.norm(minilm) == pytest.approx(intent.CENTRE * np.linalg.norm(data["minilm"]), rel=1e-4)
    assert wordllama.shape == (256,)


def test_centring_pulls_unrelated_prompts_apart():
    """Static vectors share one common direction; taking half the average prompt off makes unrelated prompts
    less alike while a paraphrase stays close."""
    model = encoder()
    centre, _ = intent.centres()
    texts = ("Which drug lowers blood pressure fastest?", "Who won the football world cup in 1998?")
    raw = [model.embed(t) for t in texts]
    centred = [intent._centred(v, centre) for v in raw]
    assert centred[0] @ centred[1] < raw[0] @ raw[1] - 0.1
    paraphrase = intent._centred(model.embed("What medicine reduces high blood pressure quickly?"), centre)
    assert paraphrase @ centred[0] > centred[0] @ centred[1] + 0.2


def test_the_bar_is_the_mean_of_the_closest_uncovered_topics():
    tags = [type("T", (), {"name": "law", "description": "legal questions, contracts and courts"})()]
    prompt = "my landlord kept the deposit: can I take him to a small claims court?"
    _, scores, _ = intent.match_tags(prompt, tags, None)
    prompt_vector = intent._prompt_vector(prompt, None)
    tag_vector = intent._descriptions([intent.tag_text("law", tags[0].description)], None)[0]
    topics = intent._topic_vectors(None)
    free = topics @ tag_vector < intent.COVERED
    assert 0 < free.sum() < len(topics)  # "law and legal questions" is the tag's own ground
    bar = np.sort(topics[free] @ prompt_vector)[-intent.RIVALS :].mean() + intent.MARGIN
    expected = 1 / (1 + np.exp(-intent.SLOPE * (tag_vector @ prompt_vector - bar)))
    assert scores["law"] == pytest.approx(expected, abs=1e-3)


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
    complexity_module.fitted_model.cache_clear()
    assert complexity_module.fitted_model()[2].shape == (encoder().dimensions + len(difficulty.NAMES),)
