"""Resilience seen through HTTP: retries, backoff, Retry-After, timeouts, fallback, circuit breaking."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from router_core.breaker import MemoryBreaker
from router_core.config import ProviderConfig
from router_core.upstream import MAX_RETRY_AFTER, backoff
from tests.conftest import sdk
from tests.fakes import closed_port_url, cut_stream, failing, hang, in_sequence, raw_answer, start_fake, trickle

CHAT = {"model": "meta/llama", "messages": [{"role": "user", "content": "hi"}]}
FAST = {"max_retries": 0, "backoff_base": 0.001, "backoff_max": 0.002}


@pytest.fixture
async def second(aiohttp_server):
    return await start_fake(aiohttp_server)


def two_routes(first_url: str, second_url: str, first: dict | None = None, second: dict | None = None) -> dict:
    """meta/llama served by ``first`` then ``second``, both openai-chat."""

    def provider(name: str, url: str, extra: dict | None) -> dict:
        return {
            "kind": "openai-chat",
            "base_url": url,
            "api_key": f"sk-{name}-very-secret",
            "serves": {"meta/llama": f"llama-{name}"},
            **FAST,
            **(extra or {}),
        }

    return {
        "providers": {"first": provider("first", first_url, first), "second": provider("second", second_url, second)}
    }


async def post(client, body=CHAT):
    return await client.post("/v1/chat/completions", json=body)


def assert_clean_error(error: dict, *secrets: str) -> None:
    assert set(error) == {"message", "type", "param", "code"}
    text = str(error)
    assert "Traceback" not in text
    for secret in ("sk-first-very-secret", "sk-second-very-secret", *secrets):
        assert secret not in text


# ---------------------------------------------------------------- fallback


async def test_refused_connection_falls_back(make_gateway, upstream):
    client = await make_gateway(two_routes(closed_port_url(), upstream.url))
    resp = await post(client)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "second"
    assert resp.headers["x-router-model"] == "meta/llama"
    assert resp.headers["x-router-fallbacks"] == "1"
    assert upstream.last.json["model"] == "llama-second"


async def test_all_routes_failing_is_one_clean_error(make_gateway, upstream):
    upstream.handler = failing(500, "boom; key was sk-second-very-secret")
    client = await make_gateway(two_routes(closed_port_url(), upstream.url))
    resp = await post(client)
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert_clean_error(error)
    assert error["type"] == "upstream_error"
    assert "'first'" in error["message"] and "'second'" in error["message"]
    assert "boom" not in error["message"]  # a failing upstream's own words are not passed on


@pytest.mark.parametrize(
    ("handler", "status", "code"),
    [(failing(503), 502, "bad_gateway"), (failing(429), 429, "rate_limit_exceeded"), (hang, 504, "upstream_timeout")],
)
async def test_last_failure_sets_the_status(make_gateway, upstream, handler, status, code):
    upstream.handler = handler
    client = await make_gateway(
        two_routes(upstream.url, upstream.url, {"first_byte_timeout": 0.2}, {"first_byte_timeout": 0.2})
    )
    resp = await post(client)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert_clean_error(error)
    assert len(upstream.requests) == 2


async def test_sdk_sees_an_openai_error(make_gateway):
    client = await make_gateway(two_routes(closed_port_url(), closed_port_url()))
    with pytest.raises(openai.APIStatusError) as raised:
        await sdk(client).chat.completions.create(**CHAT)
    assert raised.value.status_code == 503
    assert "could not connect" in raised.value.message


async def test_client_errors_are_neither_retried_nor_fallen_back(make_gateway, upstream, second):
    upstream.handler = failing(400, "messages: bad shape")
    client = await make_gateway(two_routes(upstream.url, second.url, {"max_retries": 3}))
    resp = await post(client)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "upstream_rejected" and "bad shape" in error["message"]
    assert len(upstream.requests) == 1 and not second.requests


async def test_invalid_json_falls_back(make_gateway, upstream, second):
    upstream.handler = raw_answer(b"{not json")
    client = await make_gateway(two_routes(upstream.url, second.url))
    resp = await post(client)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "second"


async def test_a_body_that_is_not_a_reply_falls_back(make_gateway, upstream, second):
    upstream.handler = raw_answer(b'{"unexpected": true}')
    client = await make_gateway(two_routes(upstream.url, second.url))
    assert (await post(client)).headers["x-router-provider"] == "second"


# ---------------------------------------------------------------- retries


async def test_5xx_is_retried_on_the_same_route(make_gateway, upstream, second):
    upstream.handler = in_sequence(failing(500), failing(502), None)
    client = await make_gateway(two_routes(upstream.url, second.url, {"max_retries": 2}))
    resp = await post(client)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "first"
    assert resp.headers["x-router-fallbacks"] == "0"  # retries on one route are not fallbacks
    assert len(upstream.requests) == 3 and not second.requests


async def test_retries_are_bounded_then_fall_back(make_gateway, upstream, second):
    upstream.handler = failing(500)
    client = await make_gateway(two_routes(upstream.url, second.url, {"max_retries": 2}))
    resp = await post(client)
    assert resp.headers["x-router-provider"] == "second"
    assert resp.headers["x-router-fallbacks"] == "1"
    assert len(upstream.requests) == 3 and len(second.requests) == 1


async def test_retry_after_is_honoured(make_gateway, upstream):
    upstream.handler = in_sequence(failing(429, headers={"Retry-After": "0.3"}), None)
    client = await make_gateway(two_routes(upstream.url, closed_port_url(), {"max_retries": 1}))
    started = time.monotonic()
    resp = await post(client)
    assert resp.status == 200 and resp.headers["x-router-provider"] == "first"
    assert time.monotonic() - started >= 0.3


async def test_retry_after_beyond_the_cap_falls_back_at_once(make_gateway, upstream, second):
    upstream.handler = failing(429, headers={"Retry-After": "3600"})
    client = await make_gateway(two_routes(upstream.url, second.url, {"max_retries": 3}))
    started = time.monotonic()
    resp = await post(client)
    assert resp.headers["x-router-provider"] == "second"
    assert len(upstream.requests) == 1
    assert time.monotonic() - started < 1.0


def test_backoff_is_jittered_exponential_and_bounded():
    config = ProviderConfig(kind="openai", backoff_base=0.1, backoff_max=0.3)
    delays = [backoff(config, 0, None) for _ in range(50)]
    assert all(0.05 <= d <= 0.1 for d in delays) and len(set(delays)) > 1
    assert 0.1 <= backoff(config, 1, None) <= 0.2
    assert all(0.15 <= backoff(config, 5, None) <= 0.3 for _ in range(20))
    assert backoff(config, 0, 2.0) == 2.0
    assert backoff(config, 0, MAX_RETRY_AFTER + 1) is None


# ---------------------------------------------------------------- timeouts


async def test_hanging_upstream_times_out_after_first_byte_timeout(make_gateway, upstream):
    upstream.handler = hang
    client = await make_gateway(two_routes(upstream.url, closed_port_url(), {"first_byte_timeout": 0.2}))
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json={**CHAT, "gateway": None})
    elapsed = time.monotonic() - started
    assert resp.status == 503  # the second route refused: the last failure speaks
    assert 0.2 <= elapsed < 2.0
    hung = await make_gateway({"providers": {"chatonly": {"first_byte_timeout": 0.2, "max_retries": 0}}})
    resp = await hung.post("/v1/chat/completions", json={**CHAT, "model": "chatonly/llama"})
    assert resp.status == 504
    assert (await resp.json())["error"]["message"] == "provider 'chatonly' timed out"


async def test_total_timeout_bounds_a_trickling_answer(make_gateway, upstream):
    upstream.handler = trickle(0.05)
    client = await make_gateway({"providers": {"chatonly": {"total_timeout": 0.3, "max_retries": 0}}})
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "chatonly/llama"})
    assert resp.status == 504
    assert time.monotonic() - started < 2.0


# ---------------------------------------------------------------- streams


async def stream_text(client) -> str:
    stream = await sdk(client).chat.completions.create(**CHAT, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def test_stream_falls_back_before_the_first_byte(make_gateway, upstream, second):
    upstream.handler = failing(500)
    client = await make_gateway(two_routes(upstream.url, second.url))
    assert await stream_text(client) == "Hello from upstream"
    assert second.last.json["stream"] is True


async def test_stream_retries_before_the_first_byte(make_gateway, upstream, second):
    upstream.handler = in_sequence(failing(503), None)
    client = await make_gateway(two_routes(upstream.url, second.url, {"max_retries": 1}))
    raw = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert raw.headers["x-router-provider"] == "first" and raw.headers["x-router-fallbacks"] == "0"
    assert b'"Hel"' in await raw.read()
    assert not second.requests


async def test_empty_stream_falls_back(make_gateway, upstream, second):
    upstream.handler = raw_answer(b"", "text/event-stream")
    client = await make_gateway(two_routes(upstream.url, second.url))
    assert await stream_text(client) == "Hello from upstream"


async def test_hanging_stream_falls_back(make_gateway, upstream, second):
    upstream.handler = hang
    client = await make_gateway(two_routes(upstream.url, second.url, {"first_byte_timeout": 0.2}))
    assert await stream_text(client) == "Hello from upstream"


async def test_stream_cut_mid_way_ends_with_an_error_event(make_gateway, upstream, second):
    upstream.handler = cut_stream(after=3)
    client = await make_gateway(two_routes(upstream.url, second.url))
    stream = await sdk(client).chat.completions.create(**CHAT, stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello"  # what arrived before the cut was forwarded
    assert "provider 'first'" in str(raised.value.message)
    assert not second.requests  # bytes had reached the client: no fallback


# ---------------------------------------------------------------- circuit breaking


async def test_failing_provider_is_put_in_cooldown_then_probed(make_gateway, upstream, second):
    upstream.handler = failing(500)
    breaker = {"breaker_failures": 2, "breaker_cooldown": 0.3}
    client = await make_gateway(two_routes(upstream.url, second.url, breaker))
    for _ in range(4):
        resp = await post(client)
        assert resp.headers["x-router-provider"] == "second"
    assert len(upstream.requests) == 2  # open after two failures: skipped since
    assert len(second.requests) == 4
    await asyncio.sleep(0.35)  # the cooldown passes; the next request is the half-open probe
    upstream.handler = None
    resp = await post(client)
    assert resp.headers["x-router-provider"] == "first"
    assert resp.headers["x-router-fallbacks"] == "0"
    assert len(upstream.requests) == 3


async def test_only_route_in_cooldown_is_503(make_gateway, upstream):
    upstream.handler = failing(500)
    client = await make_gateway(
        {"providers": {"chatonly": {"max_retries": 0, "breaker_failures": 1, "breaker_cooldown": 60}}}
    )
    body = {**CHAT, "model": "chatonly/llama"}
    assert (await post(client, body)).status == 502
    resp = await post(client, body)
    assert resp.status == 503
    assert "cooling down" in (await resp.json())["error"]["message"]
    assert len(upstream.requests) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeProvider:
    def __init__(self, failures: int = 3, cooldown: float = 10.0) -> None:
        self.name = "p"
        self.config = ProviderConfig(kind="openai", breaker_failures=failures, breaker_cooldown=cooldown)


def test_breaker_states():
    clock, provider = Clock(), FakeProvider()
    breaker = MemoryBreaker(clock)
    for _ in range(2):
        breaker.failure(provider)
    breaker.success(provider)  # a success resets the count: failures must be consecutive
    for _ in range(2):
        breaker.failure(provider)
    assert breaker.allow(provider)
    breaker.failure(provider)
    assert breaker.is_open(provider) and not breaker.allow(provider)
    clock.now += 10
    assert breaker.allow(provider)  # half-open: one probe …
    assert not breaker.allow(provider)  # … and only one
    breaker.failure(provider)  # the probe failed: another full cooldown
    clock.now += 9.9
    assert not breaker.allow(provider)
    clock.now += 0.1
    assert breaker.allow(provider)
    breaker.success(provider)
    assert not breaker.is_open(provider) and breaker.allow(provider) and breaker.allow(provider)


def test_a_lost_probe_does_not_keep_the_circuit_half_open():
    clock, provider = Clock(), FakeProvider(failures=1)
    breaker = MemoryBreaker(clock)
    breaker.failure(provider)
    clock.now += 10
    assert breaker.allow(provider)  # the probe's request never reports back
    clock.now += 10
    assert breaker.allow(provider)
