"""GET /metrics parsed by prometheus_client's own parser, the JSON request log, and keys kept out of both."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router_core.config import ConfigError, parse_config
from tests.conftest import sdk
from tests.fakes import failing

KEY_A = "sk-router-metrics-a-0123456789abcdef"
PRICES = {"openai/gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}
CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def metrics_config(**over) -> dict:
    return {
        "plugins": {"enabled": ["keys", "metrics"]},
        "keys": {"team-a": {"key": KEY_A, "rpm": 3}},
        "models": PRICES,
        **over,
    }


async def scrape(client) -> dict[str, dict]:
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {KEY_A}"})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert KEY_A not in text
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    """Sum of a series' samples whose labels include ``labels``."""
    return sum(v for ls, v in samples.get(name, {}).items() if set(labels.items()) <= set(ls))


async def test_metrics_count_requests_tokens_cost_and_latency(make_gateway, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    client = await make_gateway(metrics_config())
    openai = sdk(client, KEY_A)
    await openai.chat.completions.create(**CHAT)
    stream = await openai.chat.completions.create(**CHAT, stream=True)
    async for _ in stream:
        pass
    await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-wrong-0123456789"})
    limited = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY_A}"})
    assert limited.status == 200
    limited = await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY_A}"})
    assert limited.status == 429
    s = await scrape(client)
    ok = dict(status="200", endpoint="chat", model="openai/gpt-4o", provider="openai", key="team-a")
    assert value(s, "llm_router_requests_total", **ok) == 3
    assert value(s, "llm_router_requests_total", status="401", key="") == 1
    assert value(s, "llm_router_requests_total", status="429", key="team-a") == 1
    assert value(s, "llm_router_tokens_total", kind="input", key="team-a") == 11 + 5 + 11
    assert value(s, "llm_router_tokens_total", kind="output", key="team-a") == 7 + 4 + 7
    assert value(s, "llm_router_cost_usd_total", key="team-a") == pytest.approx((27 * 2.5 + 18 * 10) / 1e6)
    assert value(s, "llm_router_request_seconds_count", endpoint="chat") == 5
    assert value(s, "llm_router_first_byte_seconds_count", endpoint="chat") >= 3
    assert value(s, "llm_router_upstream_seconds_count", provider="openai") == 3
    assert value(s, "llm_router_breaker_open", provider="openai") == 0
    assert value(s, "llm_router_store_up") == 1 and value(s, "llm_router_store_errors_total") == 0
    for record in caplog.records:
        assert KEY_A not in record.getMessage()


async def test_fallbacks_breaker_and_bounded_model_labels(make_gateway, upstream):
    client = await make_gateway(
        {
            **metrics_config(keys={"team-a": {"key": KEY_A}}),
            "providers": {"openai": {"max_retries": 0, "breaker_failures": 1}},
        }
    )
    upstream.handler = failing(500)
    headers = {"Authorization": f"Bearer {KEY_A}"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 502
    for i in range(5):  # made-up model names must not each become a series
        body = {**CHAT, "model": f"nosuch/model-{i}"}
        assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status == 404
    s = await scrape(client)
    assert value(s, "llm_router_breaker_open", provider="openai") == 1
    models = {dict(ls).get("model") for ls in s["llm_router_requests_total"]}
    assert not any(m and m.startswith("nosuch/") for m in models) and "other" in models


async def test_redactions_and_tokens_saved_are_counted(make_gateway):
    client = await make_gateway(
        {
            "plugins": {"enabled": ["keys", "redact", "metrics"]},
            "keys": {"a": {"key": KEY_A}},
            "gateway": {"redact": {"email": True}},
        }
    )
    body = {"model": "echo/x", "messages": [{"role": "user", "content": "mail a@b.example and c@d.example"}]}
    assert (
        await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"})
    ).status == 200
    s = await scrape(client)
    assert value(s, "llm_router_redactions_total", kind="email") == 2


async def test_tokens_saved_are_counted(make_gateway):
    from tests.plugins.test_tools import PRODUCT_TOOLS

    client = await make_gateway(
        {"plugins": {"enabled": ["keys", "scorer", "tools", "metrics"]}, "keys": {"a": {"key": KEY_A}}}
    )
    body = {
        "model": "echo/x",
        "messages": [{"role": "user", "content": "What is 256 multiplied by 14?"}],
        "tools": PRODUCT_TOOLS,
        "gateway": {"toolOptimization": {}},
    }
    resp = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"})
    saved = int(resp.headers["x-router-tokens-saved"].split("=")[1])
    s = await scrape(client)
    assert saved > 20 and value(s, "llm_router_tokens_saved_total", by="tools") == saved


async def test_store_errors_are_metrics(make_gateway, redis_server):
    client = await make_gateway(
        metrics_config(
            store={"url": redis_server.url, "on_error": "fail_open"}, keys={"a": {"key": KEY_A, "rpm": 1000}}
        )
    )
    headers = {"Authorization": f"Bearer {KEY_A}"}
    redis_server.stop()
    try:
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200
        s = await scrape(client)
        assert value(s, "llm_router_store_up") == 0 and value(s, "llm_router_store_errors_total") >= 1
        assert value(s, "llm_router_store_unchecked_total", action="admitted") == 1
    finally:
        redis_server.start()


async def test_one_json_log_line_per_request(make_gateway, caplog):
    caplog.set_level(logging.INFO, logger="llm_router.requests")
    client = await make_gateway(metrics_config())
    resp = await client.post(
        "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY_A}", "x-request-id": "log-1"}
    )
    assert resp.status == 200
    await asyncio.sleep(0)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "llm_router.requests"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "log-1" and line["key_name"] == "team-a" and line["status"] == 200
    assert line["input_tokens"] == 11 and line["cost_usd"] == pytest.approx((11 * 2.5 + 7 * 10) / 1e6)
    assert "hello" not in caplog.text and KEY_A not in caplog.text


async def test_request_log_off_by_a_setting(make_gateway, caplog):
    caplog.set_level(logging.INFO, logger="llm_router.requests")
    config = metrics_config()
    config["plugins"]["metrics"] = {"request_log": False}
    client = await make_gateway(config)
    await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY_A}"})
    assert not [r for r in caplog.records if r.name == "llm_router.requests"]


async def test_ledger_figures_are_metrics(make_gateway, tmp_path):
    config = metrics_config(usage={"url": f"sqlite:///{tmp_path}/u.db", "flush_seconds": 0.01})
    config["plugins"]["enabled"] = ["keys", "ledger", "metrics"]
    client = await make_gateway(config)
    assert (
        await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {KEY_A}"})
    ).status == 200
    for _ in range(100):
        s = await scrape(client)
        if value(s, "llm_router_ledger_rows_written_total") >= 1:
            break
        await asyncio.sleep(0.02)
    assert value(s, "llm_router_ledger_rows_written_total") >= 1
    assert value(s, "llm_router_ledger_rows_dropped_total") == 0 and "llm_router_ledger_queue_rows" in s


def test_bad_metrics_table_is_a_config_error():
    from router_core.app import create_app

    with pytest.raises(ConfigError, match=r"plugins\.metrics"):
        create_app(parse_config({"plugins": {"enabled": ["metrics"], "metrics": {"request_log": "yes"}}}, env={}))
