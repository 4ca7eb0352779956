"""Client keys: auth, limits, budgets, allow-lists, per-key policy, through HTTP with the OpenAI SDK."""

from __future__ import annotations

import asyncio
import logging

import openai
import pytest

from router_core.config import ConfigError, parse_config
from router_core.plugins import PluginHost
from router_lib.store import STORE, Limits
from router_lib.store.memory import MemoryStore
from router_plugins.keys.plugin import REGISTRY
from router_plugins.keys.settings import record
from tests.conftest import base_config, sdk

KEY_A = "sk-router-team-a-0123456789abcdef"
KEY_B = "sk-router-team-b-0123456789abcdef"
CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hello there"}]}


def keys_config(**tables) -> dict:
    return {"plugins": {"enabled": ["keys"]}, "keys": tables}


async def post(client, key: str, body: dict | None = None, path: str = "/v1/chat/completions"):
    return await client.post(path, json=body or CHAT, headers={"Authorization": f"Bearer {key}"})


async def test_configured_key_is_served_and_others_are_refused(make_gateway):
    client = await make_gateway(keys_config(**{"team-a": {"key": KEY_A}}))
    answer = await sdk(client, KEY_A).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content == "Hello from upstream"
    with pytest.raises(openai.AuthenticationError):
        await sdk(client, "sk-router-wrong-0123456789abcdef").chat.completions.create(**CHAT)
    resp = await client.get("/healthz")
    assert resp.status == 200


async def test_env_key_and_server_keys_stay_valid(make_gateway):
    client = await make_gateway(
        {**keys_config(**{"team-a": {"key": "env:TEAM_A_KEY"}}), "server": {"api_keys": ["sk-server-key-0123456789"]}},
        env={"TEAM_A_KEY": KEY_A},
    )
    assert (await post(client, KEY_A)).status == 200
    assert (await post(client, "sk-server-key-0123456789")).status == 200
    assert (await post(client, "sk-nope-0123456789abcdef")).status == 401


def test_bad_tables_are_config_errors():
    def build(raw, env=None):
        config = parse_config({**base_config("http://127.0.0.1:9/v1"), **raw}, env=env or {})
        from router_core.app import create_app

        create_app(config)

    with pytest.raises(ConfigError, match=r"keys.a.key: environment variable NOPE is unset"):
        build(keys_config(a={"key": "env:NOPE"}))
    with pytest.raises(ConfigError, match=r"keys.a.rpm"):
        build(keys_config(a={"key": KEY_A, "rpm": 0}))
    with pytest.raises(ConfigError, match=r"keys.a.expires"):
        build(keys_config(a={"key": KEY_A, "expires": "soon"}))
    with pytest.raises(ConfigError, match=r"keys.a.key: shorter"):
        build(keys_config(a={"key": "short"}))
    with pytest.raises(ConfigError, match=r"keys.a"):
        build(keys_config(a={"key": KEY_A, "rmp": 5}))
    # [keys] with the keys plugin off would be silently ignored: refused instead.
    with pytest.raises(ConfigError, match=r"keys: no enabled plugin reads this table \(enable one of: keys\)"):
        build({"keys": {"a": {"key": KEY_A}}})
    with pytest.raises(ConfigError, match=r"store.on_error"):
        build({**keys_config(a={"key": KEY_A}), "store": {"on_error": "maybe"}})
    with pytest.raises(ConfigError, match=r"store\.url") as bad_url:
        build({**keys_config(a={"key": KEY_A}), "store": {"url": "mysql://user:hunter2secret@db/x"}})
    assert "hunter2secret" not in str(bad_url.value)  # a URL may carry a password


def test_workers_with_limits_and_a_memory_store_refuse_to_start():
    raw = {**base_config("http://127.0.0.1:9/v1"), **keys_config(a={"key": KEY_A, "rpm": 5})}
    raw["server"] = {"workers": 4}
    from router_core.app import create_app

    with pytest.raises(
        ConfigError, match=r'4 workers would each count the limits of a .* set \[store\] url = "redis://'
    ):
        create_app(parse_config(raw, env={}))
    assert PluginHost(parse_config(raw, env={})).authenticates


async def test_rpm_limit_is_a_429_with_retry_after_naming_it(make_gateway):
    client = await make_gateway(keys_config(**{"team-a": {"key": KEY_A, "rpm": 3}, "team-b": {"key": KEY_B}}))
    statuses = [(await post(client, KEY_A)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await post(client, KEY_A)
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 20
    error = (await resp.json())["error"]
    assert "rpm limit (3 requests per minute)" in error["message"] and error["code"] == "rate_limit_exceeded"
    assert KEY_A not in await resp.text()
    assert (await post(client, KEY_B)).status == 200  # another key's room is its own


async def test_rpm_exact_under_concurrency(make_gateway):
    client = await make_gateway(keys_config(a={"key": KEY_A, "rpm": 25}))
    statuses = await asyncio.gather(*[post(client, KEY_A) for _ in range(60)])
    assert sorted(r.status for r in statuses).count(200) == 25


async def test_max_parallel(make_gateway, upstream):
    gate = asyncio.Event()

    async def slow(request, body):
        await gate.wait()
        return await upstream.default(request, body)

    upstream.handler = slow
    client = await make_gateway(keys_config(a={"key": KEY_A, "max_parallel": 2}))
    first = [asyncio.ensure_future(post(client, KEY_A)) for _ in range(2)]
    while len(upstream.requests) < 2:
        await asyncio.sleep(0.01)
    third = await post(client, KEY_A)
    assert third.status == 429 and "max_parallel limit (2 requests at once)" in (await third.json())["error"]["message"]
    gate.set()
    assert [(await f).status for f in first] == [200, 200]
    for _ in range(100):  # slots come back in request_finished, just after each answer is sent
        if (status := (await post(client, KEY_A)).status) == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200


async def test_tpm_counts_input_before_the_call_and_settles_after(make_gateway):
    client = await make_gateway(keys_config(a={"key": KEY_A, "tpm": 100}))
    long = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "word " * 150}]}
    resp = await post(client, KEY_A, long)
    assert resp.status == 429 and "Retry-After" not in resp.headers
    assert "more than key 'a''s whole tpm limit (100 tokens per minute)" in (await resp.json())["error"]["message"]
    # 34 tokens counted before each call; the fake upstream then reports 11 + 7 = 18 used,
    # and the bucket is settled to that: 100 → 82 → 64 → 46 → 28 (< 34: refused).
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "word " * 30}]}
    statuses = []
    for _ in range(5):
        statuses.append((await post(client, KEY_A, body)).status)
        await asyncio.sleep(0.02)  # request_finished runs just after the answer is sent
    assert statuses == [200, 200, 200, 200, 429]


async def test_budget_spent_is_a_402_naming_it(make_gateway):
    client = await make_gateway(keys_config(a={"key": KEY_A, "daily_budget_usd": 1.0}))
    store: MemoryStore = client.app[STORE]
    assert (await post(client, KEY_A)).status == 200
    import time

    await store.settle("a", Limits(daily_budget_usd=1.0), 0, 1.0, time.time())
    resp = await post(client, KEY_A)
    assert resp.status == 402
    error = (await resp.json())["error"]
    assert error["code"] == "budget_exceeded" and "daily_budget_usd ($1 per UTC day)" in error["message"]
    assert int(resp.headers["Retry-After"]) <= 86400


async def test_budget_exact_under_concurrency(make_gateway):
    """Each request's input (5 tokens at $1 each) is taken from the budget as it is admitted."""
    config = keys_config(a={"key": KEY_A, "daily_budget_usd": 50})
    config["models"] = {"openai/gpt-4o": {"input_per_mtok": 1e6, "output_per_mtok": 0}}
    client = await make_gateway(config)
    statuses = [r.status for r in await asyncio.gather(*[post(client, KEY_A) for _ in range(30)])]
    assert statuses.count(200) == 10 and statuses.count(402) == 20


async def test_model_and_provider_allow_lists(make_gateway):
    client = await make_gateway(keys_config(a={"key": KEY_A, "models": ["openai/gpt-4o*"], "providers": ["chatonly"]}))
    resp = await post(client, KEY_A, {**CHAT, "model": "anthropic/claude"})
    assert resp.status == 403 and (await resp.json())["error"]["param"] == "model"
    resp = await post(client, KEY_A, {**CHAT, "model": "openai/gpt-4o-mini"})
    assert resp.status == 403 and "providers chatonly" in (await resp.json())["error"]["message"]


async def test_key_policy_is_enforced(make_gateway, upstream):
    client = await make_gateway(
        {
            "plugins": {"enabled": ["keys", "only", "zdr"]},
            "keys": {"a": {"key": KEY_A, "policy": {"zdr": True}}, "b": {"key": KEY_B}},
        }
    )
    # Key a always gets zdr: the openai route is not zdr, so nothing may serve it.
    resp = await post(client, KEY_A, {**CHAT, "gateway": {"zdr": False}})
    assert resp.status == 403
    resp = await post(client, KEY_A, {**CHAT, "model": "echo/x"})
    assert resp.status == 200
    assert (await post(client, KEY_B)).status == 200


async def test_key_policy_naming_an_unowned_field_stops_startup(make_gateway):
    with pytest.raises(ConfigError, match=r"keys.a.policy.zdr: no enabled plugin owns"):
        await make_gateway(keys_config(a={"key": KEY_A, "policy": {"zdr": True}}))


async def test_expired_key(make_gateway):
    client = await make_gateway(keys_config(a={"key": KEY_A, "expires": "2020-01-01"}))
    resp = await post(client, KEY_A)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "key_expired"


async def test_run_time_keys_work_without_restart(make_gateway):
    client = await make_gateway(keys_config())
    store = client.app[STORE]
    key = "sk-router-runtime-0123456789abcdef"
    assert (await post(client, key)).status == 401
    await store.add_key(record("rt", key, limits=Limits(rpm=1)))
    await client.app[REGISTRY].refresh()
    assert (await post(client, key)).status == 200
    assert (await post(client, key)).status == 429
    await store.remove_key("rt")
    await client.app[REGISTRY].refresh()
    assert (await post(client, key)).status == 401


async def test_key_never_in_logs_or_errors(make_gateway, caplog):
    caplog.set_level(logging.DEBUG)
    client = await make_gateway(keys_config(a={"key": KEY_A, "rpm": 1, "models": ["openai/*"]}))
    texts = [await (await post(client, KEY_A)).text() for _ in range(2)]
    texts.append(await (await post(client, KEY_A + "x")).text())
    texts.append(await (await post(client, KEY_A, {**CHAT, "model": "x/y"})).text())
    for text in [*texts, caplog.text]:
        assert KEY_A not in text and "0123456789abcdef" not in text


async def test_a_client_leaving_mid_stream_gives_its_parallel_slot_back(make_gateway, upstream):
    async def slow_stream(request, body):
        from tests.fakes import chat_chunks

        return await upstream.send_stream(request, chat_chunks(["a"] * 50, body["model"]), delay=0.05)

    upstream.handler = slow_stream
    client = await make_gateway(keys_config(a={"key": KEY_A, "max_parallel": 1}))
    resp = await post(client, KEY_A, {**CHAT, "stream": True})
    assert resp.status == 200
    await resp.content.readany()
    assert (await post(client, KEY_A)).status == 429  # the stream holds the one slot
    resp.close()  # the client goes away mid-stream
    await asyncio.wait_for(upstream.disconnected.wait(), 5)
    upstream.handler = None
    for _ in range(50):
        status = (await post(client, KEY_A)).status
        if status == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200


async def test_the_verdict_comes_before_any_upstream_call_and_a_slot_always_comes_back(make_gateway, upstream):
    """pre_request asks the store; select_provider reads its answer before a route is used. A
    request refused in between (here by another select_provider plugin) still gives its slot back."""
    from router_core import PolicyViolation, hookimpl

    class Refuser:
        @hookimpl
        def select_provider(self, ctx, routes):
            if ctx.call.messages[-1].parts[0].text == "refuse me":
                raise PolicyViolation("refused by a test plugin")

    client = await make_gateway(
        keys_config(a={"key": KEY_A, "rpm": 3, "max_parallel": 1}), plugins=[("refuser", Refuser())]
    )
    assert (await post(client, KEY_A)).status == 200 and len(upstream.requests) == 1
    refused = {**CHAT, "messages": [{"role": "user", "content": "refuse me"}]}
    assert (await post(client, KEY_A, refused)).status == 403
    assert (await post(client, KEY_A)).status == 200  # max_parallel 1: the refused request's slot came back
    over = await post(client, KEY_A)  # the refused one took its request from the rpm bucket too
    assert over.status == 429 and len(upstream.requests) == 2  # never sent upstream
    assert client.app[STORE].leases.get("a", {}) == {}
