"""Generated hostile bodies through keys (every limit set), ledger and metrics: never a 500, never the key."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_fuzz import body, deep_body

KEY = "sk-router-fuzz-0123456789abcdef"


async def test_generated_bodies_never_crash_keys_ledger_metrics(make_gateway, tmp_path):
    limits = {"rpm": 100000, "tpm": 10**9, "max_parallel": 1000, "daily_budget_usd": 1e6}
    client = await make_gateway(
        {
            "plugins": {"enabled": ["keys", "redact", "tools", "scorer", "tags", "ledger", "metrics"]},
            "keys": {"fuzz": {"key": KEY, "models": ["echo/*", "openai/*"], **limits}},
            "usage": {"url": f"sqlite:///{tmp_path}/usage.db"},
            "models": {"openai/gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}},
        }
    )
    cases: list[bytes] = []

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(body, deep_body))
    def collect(generated):
        cases.append(orjson.dumps(generated))

    collect()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    statuses: set[int] = set()
    for raw in cases:
        for path in ("/v1/chat/completions", "/v1/responses"):
            resp = await client.post(path, data=raw, headers=headers)
            text = await resp.text()
            assert resp.status != 500, (path, raw, text)
            assert KEY not in text
            statuses.add(resp.status)
    assert 200 in statuses and 400 in statuses
    metrics = await (await client.get("/metrics", headers=headers)).text()
    assert KEY not in metrics and 'key="fuzz"' in metrics
