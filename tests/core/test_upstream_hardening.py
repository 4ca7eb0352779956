"""Hostile upstreams and clients that leave: redirects, compression bombs, non-event streams,
malformed answers, disconnects that must cancel every upstream call behind them, and what the
circuit breaker counts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import zlib
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from router_core.breaker import MemoryBreaker
from router_core.pipeline import RUNTIME
from tests.conftest import JSON, sdk
from tests.core.test_fallback import FAST, two_routes
from tests.fakes import chat_chunks, chat_completion, failing, in_sequence, start_fake

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
BODY = {"model": "meta/llama", "messages": HI}
STREAM = {**BODY, "stream": True}
# The loop may stall ~100 ms at most; the rest is headroom for a busy test machine (a
# 0.5 MB gzip bomb used to stall it 3.8 s).
STALL = 0.2


@pytest.fixture
async def second(aiohttp_server):
    return await start_fake(aiohttp_server)


@functools.cache
def gzip_bomb(inflated: int = 128 * 1024 * 1024, prefix: bytes = b"") -> bytes:
    """``prefix`` then zeros, ``inflated`` bytes in all, gzip-compressed (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(prefix)]
    block = bytes(1024 * 1024)
    for _ in range((inflated - len(prefix)) // len(block)):
        out.append(packer.compress(block))
    out.append(packer.flush())
    return b"".join(out)


def compressed(payload: bytes, content_type: str, encoding: str = "gzip"):
    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=payload, headers={"Content-Type": content_type, "Content-Encoding": encoding})

    return handler


@contextlib.asynccontextmanager
async def loop_watch(period: float = 0.005):
    """Yields a list that ends up holding the longest stall of the event loop seen meanwhile."""
    worst = [0.0]

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(period)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - period)
            last = now

    task = asyncio.create_task(tick())
    try:
        yield worst
    finally:
        task.cancel()


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("stream", [False, True])
async def test_redirect_is_a_route_failure_and_nothing_reaches_the_other_host(
    make_gateway, upstream, second, aiohttp_server, status, stream
):
    elsewhere = await start_fake(aiohttp_server)

    async def redirect(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": elsewhere.url + "/chat/completions"})

    upstream.handler = redirect
    client = await make_gateway(two_routes(upstream.url, second.url, first={"headers": {"X-Org-Secret": "org-s3cret"}}))
    resp = await client.post(CHAT, json=STREAM if stream else BODY)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "second"
    await resp.read()
    assert elsewhere.requests == []  # neither the prompt nor the key nor the header secret went there


async def test_redirect_on_the_only_route_is_a_502_not_the_other_hosts_answer(make_gateway, upstream, aiohttp_server):
    elsewhere = await start_fake(aiohttp_server)
    elsewhere.text = "answer from somewhere else"

    async def redirect(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": elsewhere.url + "/chat/completions"})

    upstream.handler = redirect
    client = await make_gateway()
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status == 502
    assert "somewhere else" not in await resp.text()
    assert elsewhere.requests == []


# ---------------------------------------------------------------- request headers


async def test_upstream_gets_a_user_agent_and_configured_headers_replace_defaults_whatever_their_case(
    make_gateway, upstream
):
    client = await make_gateway()
    await sdk(client).chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    seen = upstream.last.headers
    assert (
        seen["User-Agent"].startswith("llm-router/") and seen["Authorization"] == "Bearer sk-test-provider-secret-123"
    )
    assert seen["Accept-Encoding"] == "gzip, deflate" and seen["Content-Type"] == "application/json"
    client = await make_gateway({"providers": {"openai": {"headers": {"user-agent": "team-gateway/2"}}}})
    await sdk(client).chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [v for k, v in upstream.requests[-1].headers.items() if k.lower() == "user-agent"] == ["team-gateway/2"]


# ---------------------------------------------------------------- compression


async def test_gzip_answer_is_inflated(make_gateway, upstream):
    payload = zlib.compress(orjson.dumps(chat_completion("zipped hello", "llama-first")), wbits=16 + zlib.MAX_WBITS)
    upstream.handler = compressed(payload, "application/json")
    client = await make_gateway(two_routes(upstream.url, upstream.url))
    reply = await sdk(client).chat.completions.create(**BODY)
    assert reply.choices[0].message.content == "zipped hello"


async def test_gzip_bomb_is_a_route_failure_without_stalling_the_loop(make_gateway, upstream, second):
    upstream.handler = compressed(gzip_bomb(), "application/json")
    client = await make_gateway(two_routes(upstream.url, second.url))
    async with loop_watch() as worst:
        resp = await client.post(CHAT, json=BODY)
    assert resp.status == 200
    assert resp.headers["x-router-provider"] == "second"
    assert worst[0] < STALL, f"the loop stalled {worst[0] * 1000:.0f} ms"


async def test_gzip_bomb_in_a_stream_is_a_route_failure(make_gateway, upstream, second):
    upstream.handler = compressed(gzip_bomb(prefix=b"data: {"), "text/event-stream")
    client = await make_gateway(two_routes(upstream.url, second.url))
    async with loop_watch() as worst:
        resp = await client.post(CHAT, json=STREAM)
        text = await resp.text()
    assert resp.status == 200 and resp.headers["x-router-provider"] == "second"
    assert "upstream" in text
    assert worst[0] < STALL, f"the loop stalled {worst[0] * 1000:.0f} ms"


async def test_unknown_content_encoding_falls_back(make_gateway, upstream, second):
    upstream.handler = compressed(b"\x00\x01garbage", "application/json", encoding="br")
    client = await make_gateway(two_routes(upstream.url, second.url))
    resp = await client.post(CHAT, json=BODY)
    assert resp.status == 200 and resp.headers["x-router-provider"] == "second"


# ---------------------------------------------------------------- streams that are not event streams


def raw(payload: bytes, content_type: str):
    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=payload, headers={"Content-Type": content_type})

    return handler


@pytest.mark.parametrize(
    "payload, content_type",
    [
        (orjson.dumps(chat_completion("not a stream")), "application/json"),
        (b"data: " + orjson.dumps(chat_completion("json typed")) + b"\n\n", "application/json"),
        (b"<html>502 Bad Gateway</html>", "text/html"),
        (b"\x00\xff garbage \x13\n\n", "text/event-stream"),
        (b'{"id": "x", "choices": []}', "text/event-stream"),
        (b"data: {not json\n\n", "text/event-stream"),
        (b"data: [1, 2]\n\n", "text/event-stream"),
        (b"\n\n\n", "text/event-stream"),
    ],
)
async def test_stream_answered_with_something_else_falls_back(make_gateway, upstream, second, payload, content_type):
    upstream.handler = raw(payload, content_type)
    client = await make_gateway(two_routes(upstream.url, second.url))
    resp = await client.post(CHAT, json=STREAM)
    text = await resp.text()
    assert resp.status == 200 and resp.headers["x-router-provider"] == "second"
    assert "upstream" in text and "not a stream" not in text


async def test_stream_answered_with_json_on_the_only_route_is_a_502(make_gateway, upstream):
    upstream.handler = raw(orjson.dumps(chat_completion("not a stream")), "application/json")
    client = await make_gateway()
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "stream": True})
    assert resp.status == 502
    assert resp.content_type == "application/json"


async def test_malformed_first_anthropic_event_falls_back(make_gateway, upstream, second):
    async def broken_start(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'event: message_start\ndata: {"type": "message_start", "message": "oops"}\n\n')
        await resp.write_eof()
        return resp

    upstream.handler = broken_start
    config = {
        "plugins": {"enabled": ["anthropic"]},
        "providers": {
            "claude": {
                "kind": "anthropic",
                "base_url": upstream.url,
                "api_key": "sk-ant-x",
                "serves": {"meta/llama": "c"},
                **FAST,
            },
            "backup": {"kind": "openai-chat", "base_url": second.url, "serves": {"meta/llama": "b"}, **FAST},
        },
    }
    client = await make_gateway(config)
    for body in (STREAM, BODY):
        resp = await client.post(CHAT, json=body)
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-router-provider"] == "backup"


# ---------------------------------------------------------------- malformed answers


@pytest.mark.parametrize(
    "choices",
    [
        [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}, 5],
        [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}, {"message": "x"}],
        [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok", "tool_calls": [7]},
                "finish_reason": "stop",
            }
        ],
    ],
)
async def test_malformed_choices_in_restore_mode_is_a_clean_502(make_gateway, upstream, choices):
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({**chat_completion("ok"), "choices": choices})

    upstream.handler = answer
    client = await make_gateway(
        {"plugins": {"enabled": ["redact"], "redact": {"mode": "restore"}}, "gateway": {"redact": {"email": True}}}
    )
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "a@b.io"}]})
    assert resp.status == 502, await resp.text()
    assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", [CHAT, "/v1/responses"])
@pytest.mark.parametrize(
    "message",
    [
        {"role": ["user"], "content": "hi"},
        {"role": {"a": 1}, "content": "hi"},
        {"role": "user", "content": [{"type": ["text"], "text": "hi"}]},
        {"role": "user", "content": [{"type": {"t": 1}, "text": "hi"}]},
        {"type": ["message"], "role": "user", "content": "hi"},
    ],
)
async def test_non_string_role_or_type_is_a_400(gateway, path, message):
    if path == CHAT and "type" in message:
        return  # Chat messages have no type: it is an unknown key, carried to the upstream
    key = "messages" if path == CHAT else "input"
    resp = await gateway.post(path, json={"model": "openai/gpt-4o", key: [message]})
    assert resp.status == 400, await resp.text()


# ---------------------------------------------------------------- clients that leave


async def leave_after(port: int, body: dict, seconds: float) -> None:
    """POST ``body`` and hang up after ``seconds``, as a client with a short timeout does."""
    timeout = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            async with session.post(f"http://127.0.0.1:{port}{CHAT}", json=body, headers=JSON) as resp:
                await resp.read()


def recording_hang(aborted: list[float]):
    """Never answers; records when the gateway closed the connection."""

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        try:
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.01)
        finally:
            aborted.append(time.monotonic())
        return web.Response(status=499)

    return handler


@pytest.mark.parametrize("stream", [False, True])
async def test_client_that_hangs_up_cancels_the_upstream_call(served, upstream, stream):
    aborted: list[float] = []
    upstream.handler = recording_hang(aborted)
    port = await served(two_routes(upstream.url, upstream.url))
    await leave_after(port, STREAM if stream else BODY, 0.3)
    left = time.monotonic()
    for _ in range(100):
        if aborted:
            break
        await asyncio.sleep(0.02)
    assert aborted and aborted[0] - left < 1.0
    await asyncio.sleep(0.5)
    assert len(upstream.requests) == 1  # no retry, no fallback after the client left


async def test_client_that_hangs_up_cancels_retries_and_fallbacks(served, upstream, second):
    async def slow_failure(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(0.4)
        return await failing(503)(request, body)

    upstream.handler = slow_failure
    slow = {"max_retries": 3, "backoff_base": 0.3, "backoff_max": 0.3}
    port = await served(two_routes(upstream.url, second.url, first=slow))
    await leave_after(port, BODY, 0.2)
    await asyncio.sleep(2.0)
    assert len(upstream.requests) == 1
    assert second.requests == []


async def test_client_that_leaves_mid_stream_closes_the_upstream_stream(served, upstream):
    async def endless(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        chunks = chat_chunks(["tick"] * 2000, body["model"])
        return await upstream.send_stream(request, chunks, delay=0.01)

    upstream.handler = endless
    port = await served(two_routes(upstream.url, upstream.url))
    await leave_after(port, STREAM, 0.3)
    async with asyncio.timeout(3):
        await upstream.disconnected.wait()


# ---------------------------------------------------------------- what the breaker counts


def first_is_open(client) -> bool:
    routes = client.server.app[RUNTIME].routes
    breaker = routes.breaker
    assert isinstance(breaker, MemoryBreaker)
    return breaker.is_open(routes.providers["first"])


async def test_long_non_streamed_generations_do_not_open_the_breaker(make_gateway, upstream, second):
    async def slow(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return await upstream.default(request, body)

    upstream.handler = slow
    client = await make_gateway(
        two_routes(upstream.url, second.url, first={"first_byte_timeout": 0.2, "breaker_failures": 2})
    )
    for _ in range(4):
        resp = await client.post(CHAT, json=BODY)
        assert resp.headers["x-router-provider"] == "second"  # timed out, fell back
    assert not first_is_open(client)


async def test_connect_failures_and_5xx_do_open_the_breaker(make_gateway, upstream, second):
    upstream.handler = failing(500)
    client = await make_gateway(two_routes(upstream.url, second.url, first={"breaker_failures": 2}))
    for _ in range(2):
        await client.post(CHAT, json=BODY)
    assert first_is_open(client)


async def test_a_stream_timing_out_mid_way_does_not_count(make_gateway, upstream, second):
    async def pause(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chat_chunks(["thinking"], body["model"])[0])
        with contextlib.suppress(ConnectionError):
            await asyncio.sleep(1.0)
        return resp

    upstream.handler = pause
    client = await make_gateway(
        two_routes(upstream.url, second.url, first={"first_byte_timeout": 0.2, "breaker_failures": 1})
    )
    resp = await client.post(CHAT, json=STREAM)
    await resp.read()
    assert not first_is_open(client)


async def test_slow_planner_is_given_up_on(make_gateway, upstream, monkeypatch):
    from router_plugins.planning import plugin as planning

    monkeypatch.setattr(planning, "PLANNER_TIMEOUT", 0.3)

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if body["model"] == "planner":
            await asyncio.sleep(5)
        return await upstream.default(request, body)

    upstream.handler = in_sequence(handler)
    client = await make_gateway({"plugins": {"enabled": ["scorer", "planning"]}})
    hard = (
        "Implement a thread-safe LRU cache in Rust with TTL expiry, eviction tasks, unit tests and memory ordering notes. "
        * 3
    )
    started = time.monotonic()
    resp = await client.post(
        CHAT,
        json={"model": "openai/executor:planning:chatonly/planner", "messages": [{"role": "user", "content": hard}]},
    )
    assert resp.status == 200
    assert time.monotonic() - started < 2.5
