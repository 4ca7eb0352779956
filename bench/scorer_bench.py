"""Scorer figures on tests/data/scorer: tag and complexity-band accuracy, image intent, latency p50/p99."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_core import Call, Config, Message, RequestContext
from router_plugins.scorer import plugin
from tests.plugins.test_scorer import band, load_images, load_prompts


def main() -> None:
    t0 = time.perf_counter()
    plugin.router_startup({}, plugin.Settings())
    print(f"embedder load: {time.perf_counter() - t0:.2f} s")
    rows = load_prompts()
    tag_ok = band_ok = 0
    latencies = []
    for _ in range(3):  # the first pass warms the tag-vector and word caches, as a running gateway would
        latencies.clear()
        tag_ok = band_ok = 0
        for tags, tag, expected_band, prompt in rows:
            ctx = RequestContext(
                call=Call("chat", "", [Message.of_text("user", prompt)]), gateway={"tags": tags}, config=Config()
            )
            start = time.perf_counter()
            scores = plugin.score_now(ctx, frozenset({"tag", "tag_scores", "complexity"}))
            latencies.append((time.perf_counter() - start) * 1e6)
            tag_ok += scores["tag"] == tag
            band_ok += band(scores["complexity"]) == expected_band
    images = load_images()
    got = [(label, plugin.wants_image(p)[0]) for label, p in images]
    tp = sum(a and b for a, b in got)
    print(
        f"prompts: {len(rows)}  tag accuracy: {tag_ok / len(rows):.1%}  complexity band accuracy: {band_ok / len(rows):.1%}"
    )
    print(
        f"image intent ({len(images)}): precision {tp / max(1, sum(b for _, b in got)):.1%} recall {tp / sum(a for a, _ in got):.1%}"
    )
    q = statistics.quantiles(latencies, n=100)
    print(f"score_request latency (warm caches): p50 {q[49]:.0f} µs  p99 {q[98]:.0f} µs  max {max(latencies):.0f} µs")


if __name__ == "__main__":
    main()
