"""The only, zdr and order plugins, seen through HTTP: which providers a request may reach, in which order."""

from __future__ import annotations

import pytest

from tests.conftest import sdk
from tests.fakes import failing, start_fake

ROUTING = ["only", "zdr", "order"]
CHAT = {"model": "meta/llama", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def fakes(aiohttp_server):
    """Three upstreams serving meta/llama, in this file order: alpha (no ZDR), beta (ZDR), gamma (no ZDR)."""
    return {name: await start_fake(aiohttp_server) for name in ("alpha", "beta", "gamma")}


def routing_config(fakes, **extra):
    providers = {
        name: {
            "kind": "openai-chat",
            "base_url": fake.url,
            "api_key": f"sk-{name}-secret",
            "zdr": name == "beta",
            "serves": {"meta/llama": f"llama-{name}"},
            "max_retries": 0,
        }
        for name, fake in fakes.items()
    }
    return {"plugins": {"enabled": ROUTING}, "providers": providers, **extra}


def counts(fakes):
    return {name: len(fake.requests) for name, fake in fakes.items()}


async def post(client, gateway=None, body=CHAT):
    payload = dict(body) if gateway is None else {**body, "gateway": gateway}
    return await client.post("/v1/chat/completions", json=payload)


# ---------------------------------------------------------------- only


async def test_default_rank_is_file_order(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "alpha"
    assert fakes["alpha"].last.json["model"] == "llama-alpha"


async def test_only_filters_routes(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"only": ["gamma"]})
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "gamma"
    assert counts(fakes) == {"alpha": 0, "beta": 0, "gamma": 1}


@pytest.mark.parametrize(
    ("gateway", "param", "reason"),
    [
        ({"only": ["openai", "nowhere"]}, "gateway.only", "openai, nowhere"),
        ({"zdr": True, "only": ["alpha", "gamma"]}, "gateway.zdr", "not marked zdr = true"),
    ],
    ids=["only", "zdr"],
)
async def test_a_request_no_route_may_serve_is_403(make_gateway, fakes, gateway, param, reason):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, gateway)
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "policy_violation" and error["param"] == param
    assert "meta/llama" in error["message"] and reason in error["message"]
    assert counts(fakes) == {"alpha": 0, "beta": 0, "gamma": 0}


async def test_only_is_never_violated_during_fallback(make_gateway, fakes):
    fakes["alpha"].handler = fakes["beta"].handler = failing(500)
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"only": ["alpha", "beta"]})
    assert resp.status == 502
    assert counts(fakes) == {"alpha": 1, "beta": 1, "gamma": 0}


@pytest.mark.parametrize(
    ("value", "param"),
    [("alpha", "gateway.only"), ([""], "gateway.only[0]"), ([3], "gateway.only[0]"), ({"a": 1}, "gateway.only")],
)
async def test_only_rejects_bad_values(make_gateway, fakes, value, param):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"only": value})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == param
    assert counts(fakes) == {"alpha": 0, "beta": 0, "gamma": 0}


# ---------------------------------------------------------------- order


async def test_order_ranks_listed_providers_first_and_ignores_unknown_names(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"order": ["nowhere", "gamma"]})
    assert resp.headers["x-router-provider"] == "gamma"
    assert counts(fakes) == {"alpha": 0, "beta": 0, "gamma": 1}


async def test_order_is_the_fallback_path(make_gateway, fakes):
    fakes["gamma"].handler = fakes["beta"].handler = failing(503)
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"order": ["gamma", "beta"]})
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "alpha"
    assert resp.headers["x-router-fallbacks"] == "2"
    assert counts(fakes) == {"alpha": 1, "beta": 1, "gamma": 1}


async def test_only_then_order(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"only": ["alpha", "beta"], "order": ["gamma", "beta"]})
    assert resp.headers["x-router-provider"] == "beta"


async def test_server_default_order_and_request_override(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes, gateway={"order": ["gamma"]}))
    assert (await post(client)).headers["x-router-provider"] == "gamma"
    assert (await post(client, {"order": ["beta"]})).headers["x-router-provider"] == "beta"


# ---------------------------------------------------------------- zdr


async def test_zdr_keeps_only_compliant_providers(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"zdr": True, "order": ["gamma", "alpha"]})
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "beta"
    assert counts(fakes) == {"alpha": 0, "beta": 1, "gamma": 0}
    assert "store" not in fakes["beta"].last.json  # openai-chat servers get no OpenAI-only switch


async def test_zdr_never_falls_back_to_a_non_compliant_provider(make_gateway, fakes):
    fakes["beta"].handler = failing(500)
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"zdr": True})
    assert resp.status == 502
    assert counts(fakes) == {"alpha": 0, "beta": 1, "gamma": 0}


async def test_policy_zdr_cannot_be_turned_off_by_a_request(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes, policy={"zdr": True}))
    for gateway in (None, {"zdr": False}, {"order": ["alpha"]}):
        resp = await post(client, gateway)
        assert resp.status == 200
        assert resp.headers["x-router-provider"] == "beta"
    assert counts(fakes) == {"alpha": 0, "beta": 3, "gamma": 0}


async def test_zdr_rejects_a_non_boolean(make_gateway, fakes):
    client = await make_gateway(routing_config(fakes))
    resp = await post(client, {"zdr": "yes"})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "gateway.zdr"


@pytest.mark.parametrize("dialect", ["responses", "chat"])
async def test_zdr_sends_store_false_to_openai(make_gateway, upstream, dialect):
    client = await make_gateway({"plugins": {"enabled": ROUTING}, "providers": {"openai": {"zdr": True}}})
    api = sdk(client)
    extra = {"gateway": {"zdr": True}}
    if dialect == "responses":
        await api.responses.create(model="openai/gpt-4o", input="hi", extra_body=extra)
    else:
        await api.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_body=extra
        )
    assert upstream.last.json["store"] is False
    await api.responses.create(model="openai/gpt-4o", input="hi")
    assert "store" not in upstream.last.json


async def test_zdr_switches_per_provider_from_config(make_gateway, fakes):
    config = routing_config(fakes)
    config["providers"]["beta"]["options"] = {"zdr_switches": {"data_retention": "none"}}
    client = await make_gateway(config)
    await post(client, {"zdr": True})
    assert fakes["beta"].last.json["data_retention"] == "none"


async def test_zdr_side_calls_follow_the_same_rule(make_gateway, fakes):
    """A plugin's side call (planner, LLM scorer) is routed through the same filters."""
    from router_core import Call, Message, hookimpl

    class SideCaller:
        @hookimpl
        async def pre_request(self, ctx):
            await ctx.complete(Call("chat", "meta/llama", [Message.of_text("user", "plan")]))

    client = await make_gateway(routing_config(fakes), plugins=[("side", SideCaller())])
    resp = await post(client, {"zdr": True})
    assert resp.status == 200
    assert counts(fakes) == {"alpha": 0, "beta": 2, "gamma": 0}


async def test_zdr_is_fail_closed():
    from router_plugins.routing import zdr

    assert zdr.FAIL_CLOSED is True
