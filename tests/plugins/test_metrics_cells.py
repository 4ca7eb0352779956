"""The metrics' own cells render exactly as prometheus_client's Counter and Histogram do for the same updates."""

from __future__ import annotations

import random

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from router_plugins.metrics.cells import Cells, Counter, Histogram
from router_plugins.metrics.plugin import LATENCY_BUCKETS


def samples(text: bytes) -> dict:
    """Every sample but ``_created`` (a time of creation) by name and labels; the value as given."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def created_series(text: bytes) -> set:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if s.name.endswith("_created")
    }


def test_cells_render_as_prometheus_client_does():
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    their_counter = prometheus_client.Counter("t_requests", "Requests.", ("status", "key"), registry=theirs)
    their_hist = prometheus_client.Histogram(
        "t_seconds", "Latency.", ("endpoint",), buckets=LATENCY_BUCKETS, registry=theirs
    )
    counter, hist = (
        Counter("t_requests", "Requests.", ("status", "key")),
        Histogram("t_seconds", "Latency.", ("endpoint",), LATENCY_BUCKETS),
    )
    ours.register(Cells(counter, hist))
    rng = random.Random(7)
    # every bound itself (le is inclusive), just above it, and values past the last bound
    values = [*LATENCY_BUCKETS, *(b * 1.0001 for b in LATENCY_BUCKETS), 0.0, 1e-9, 301.0, 5000.0]
    values += [rng.uniform(0, 400) for _ in range(300)]
    for v in values:
        endpoint = rng.choice(["chat", "responses"])
        status, key = rng.choice([200, 429, 502]), rng.choice(["team-a", ""])
        n = rng.choice([1, 2, 17])
        their_counter.labels(str(status), key).inc(n)
        counter.cell(status, key)[0] += n
        their_hist.labels(endpoint).observe(v)
        hist.observe(hist.cell(endpoint), v)
    expected, got = generate_latest(theirs), generate_latest(ours)
    assert samples(got) == samples(expected) and len(samples(got)) > 40
    assert created_series(got) == created_series(expected)
    help_lines = [ln for ln in expected.decode().splitlines() if ln.startswith(("# HELP", "# TYPE"))]
    assert help_lines == [ln for ln in got.decode().splitlines() if ln.startswith(("# HELP", "# TYPE"))]


def test_a_series_appears_once_it_counted_something():
    registry = CollectorRegistry()
    counter, hist = Counter("t_tokens", "Tokens.", ("kind",)), Histogram("t_up", "Upstream.", ("provider",), (0.1, 1))
    registry.register(Cells(counter, hist))
    counter.cell("planner")  # made with its request's other cells, never incremented
    hist.cell("")
    counter.cell("input")[0] += 5
    hist.observe(hist.cell("openai"), 0.1)
    got = samples(generate_latest(registry))
    assert got[("t_tokens_total", (("kind", "input"),))] == 5
    assert got[("t_up_bucket", (("le", "0.1"), ("provider", "openai")))] == 1
    assert not [k for k in got if ("kind", "planner") in k[1] or ("provider", "") in k[1]]
