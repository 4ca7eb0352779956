"""Hostile clients: stalled uploads, idle and excess connections, oversized and deep bodies,
web pages calling a keyless gateway, and client keys that must never reach a log."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import socket
import time

import orjson
import pytest

from router_core.config import ConfigError, parse_config
from router_core.server import bind
from tests.conftest import JSON, sdk

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
CLIENT_KEY = "sk-router-client-secret-0123456789"


async def exchange(port: int, raw: bytes, wait: float = 5.0) -> bytes:
    """Send ``raw`` on a fresh connection and read until the server closes it (or ``wait`` passes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return data


def request_head(port: int, length: int, extra: str = "", content_type: str = "application/json") -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else 0


def body_of(raw: bytes) -> dict:
    return orjson.loads(raw.partition(b"\r\n\r\n")[2])


# ---------------------------------------------------------------- client-controlled bounds


async def test_stalled_upload_is_cut_and_its_connection_closed(served):
    port = await served({"server": {"body_timeout": 30, "body_min_rate": 1000}})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(port, 1_000_000) + b'{"model": "openai/x", ')
    await writer.drain()
    started = time.monotonic()
    async with asyncio.timeout(10):
        answer = await reader.read()  # read to EOF: the gateway must hang up
    elapsed = time.monotonic() - started
    writer.close()
    assert status_of(answer) == 408, answer
    assert "server.body_min_rate" in body_of(answer)["error"]["message"]
    assert elapsed < 5  # 1 s of grace, what 22 bytes buy at 1000 bytes/s, 2 s of lingering


async def test_whole_body_deadline_holds_for_a_client_that_trickles(served):
    port = await served({"server": {"body_timeout": 1.5, "body_min_rate": 10}})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(port, 100_000))
    started = time.monotonic()
    answer = asyncio.create_task(reader.read(65536))  # the first bytes the gateway sends
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(10):
            while not answer.done():  # fast enough for the rate, never done
                writer.write(b" " * 50)
                await writer.drain()
                await asyncio.sleep(0.1)
    assert status_of(await answer) == 408
    assert time.monotonic() - started < 3
    writer.close()


async def test_an_upload_at_a_reasonable_pace_is_served(served):
    port = await served({"server": {"body_timeout": 10, "body_min_rate": 100}})
    body = orjson.dumps({"model": "openai/gpt-4o", "messages": HI})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head(port, len(body), "Connection: close\r\n"))
    for i in range(0, len(body), 20):
        writer.write(body[i : i + 20])
        await writer.drain()
        await asyncio.sleep(0.05)
    answer = await reader.read()
    writer.close()
    assert status_of(answer) == 200, answer


async def test_oversized_header_is_a_clean_400(served):
    port = await served({"server": {"max_header_bytes": 4096}})
    answer = await exchange(port, request_head(port, 2, f"X-Big: {'a' * 10_000}\r\n") + b"{}")
    assert status_of(answer) == 400
    assert body_of(answer)["error"]["code"] == "bad_http"
    assert b"aaaa" not in answer


async def test_idle_connection_is_closed_after_the_keepalive_timeout(served):
    port = await served({"server": {"keepalive_timeout": 0.5}})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # never sent a byte: closed by the gateway
    assert time.monotonic() - started < 2.5
    writer.close()


async def test_connections_over_the_cap_get_a_503_and_the_rest_keep_working(served):
    port = await served({"server": {"max_connections": 5, "keepalive_timeout": 30}})
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    await asyncio.sleep(0.1)
    refused = await exchange(port, b"", wait=3)
    assert status_of(refused) == 503
    assert body_of(refused)["error"]["code"] == "too_many_connections"
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(0.2)
    body = orjson.dumps({"model": "openai/gpt-4o", "messages": HI})
    answer = await exchange(port, request_head(port, len(body), "Connection: close\r\n") + body)
    assert status_of(answer) == 200


@pytest.mark.parametrize(
    "overrides, body, param, setting",
    [
        (
            {"max_tools": 3},
            {"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(4)]},
            "tools",
            "max_tools",
        ),
        ({"max_messages": 2}, {"messages": HI * 3}, "messages", "max_messages"),
        (
            {"max_parts": 2},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 3}]},
            "messages[0].content",
            "max_parts",
        ),
        ({"max_tags": 2}, {"gateway": {"tags": ["a", "b", "c"]}}, "gateway.tags", "max_tags"),
    ],
)
async def test_counts_above_the_limits_are_400s_naming_the_limit(make_gateway, overrides, body, param, setting):
    client = await make_gateway({"server": overrides, "plugins": {"enabled": ["scorer", "tags"]}})
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, **body})
    error = (await resp.json())["error"]
    assert resp.status == 400
    assert error["param"] == param and error["code"] == "too_many_items"
    assert f"server.{setting}" in error["message"]


async def test_defaults_refuse_five_thousand_tools_and_two_thousand_tags(gateway):
    tools = [{"type": "function", "function": {"name": f"t{i}"}} for i in range(5000)]
    resp = await gateway.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "tools": tools})
    assert resp.status == 400 and "server.max_tools" in (await resp.json())["error"]["message"]
    tags = {"model": "openai/gpt-4o", "messages": HI, "gateway": {"tags": [f"t{i}" for i in range(2000)]}}
    resp = await gateway.post(CHAT, json=tags)
    assert resp.status == 400 and "server.max_tags" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("depth", [254, 300, 900])
@pytest.mark.parametrize("path", [CHAT, "/v1/responses"])
async def test_deeply_nested_pass_through_field_is_a_400(gateway, depth, path):
    nested = b'{"a":' * depth + b"1" + b"}" * depth  # orjson would refuse to write it
    key = "messages" if path == CHAT else "input"
    raw = orjson.dumps({"model": "openai/gpt-4o", key: HI})[:-1] + b',"metadata_deep":' + nested + b"}"
    resp = await gateway.post(path, data=raw, headers=JSON)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "too_deep"


async def test_moderately_nested_field_still_passes(gateway, upstream):
    nested: object = 1
    for _ in range(100):
        nested = [nested]
    resp = await gateway.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "response_format": nested})
    assert resp.status == 200
    assert upstream.last.json["response_format"] == nested


async def test_compressed_request_body_is_refused(gateway):
    raw = gzip.compress(orjson.dumps({"model": "openai/gpt-4o", "messages": HI}))
    resp = await gateway.post(CHAT, data=raw, headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 415


@pytest.mark.parametrize(
    "key, value",
    [("body_timeout", 0), ("body_min_rate", -1), ("max_connections", 0), ("max_tools", -5), ("drain_timeout", -1)],
)
def test_server_limits_are_validated(key, value):
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {key: value}}, env={})
    assert f"server.{key}" in str(info.value)


# ---------------------------------------------------------------- keyless mode


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
        ({"Content-Type": "application/json", "Host": "evil.example:8080"}, 403),
        ({"Content-Type": "application/json", "Host": "127.0.0.1.nip.io"}, 403),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Host": "localhost:8080", "Origin": "http://localhost:3000"}, 200),
        ({"Content-Type": "application/json; charset=utf-8", "Host": "[::1]:8080"}, 200),
        ({"Content-Type": "application/json", "Host": "127.0.0.2"}, 200),
    ],
)
async def test_keyless_gateway_refuses_what_a_web_page_could_send(gateway, headers, status):
    raw = orjson.dumps({"model": "openai/gpt-4o", "messages": HI})
    resp = await gateway.post(CHAT, data=raw, headers=headers, skip_auto_headers=["Content-Type"])
    assert resp.status == status, await resp.text()
    if status != 200:
        error = (await resp.json())["error"]
        assert error["code"] in ("forbidden", "unsupported_media_type")


async def test_keyless_gateway_serves_the_sdk(gateway):
    reply = await sdk(gateway).chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert reply.choices[0].message.content == "Hello from upstream"


async def test_a_gateway_with_keys_takes_any_host(make_gateway):
    client = await make_gateway({"server": {"api_keys": [CLIENT_KEY]}})
    resp = await client.post(
        CHAT,
        data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}),
        headers={"Authorization": f"Bearer {CLIENT_KEY}", "Host": "gateway.internal"},
    )
    assert resp.status == 200


# ---------------------------------------------------------------- client keys


@pytest.mark.parametrize("keys", [[""], ["   "], ["short"], [f" {CLIENT_KEY}"], [CLIENT_KEY, ""]])
def test_unusable_client_keys_are_a_config_error(keys):
    with pytest.raises(ConfigError) as info:
        parse_config({"server": {"api_keys": keys}}, env={})
    assert "server.api_keys" in str(info.value)
    assert CLIENT_KEY not in str(info.value)


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {CLIENT_KEY}\x01",
        f"Bearer \x7f{CLIENT_KEY}",
        f"Bearer {CLIENT_KEY}\x00x",
        f"Bearer {CLIENT_KEY}" + "A" * 20_000,
        f"Bearer {CLIENT_KEY}\xff\xfe",
    ],
)
async def test_client_key_never_reaches_a_log_or_an_error(served, caplog, header):
    port = await served({"server": {"api_keys": [CLIENT_KEY]}})
    caplog.set_level(logging.DEBUG)
    body = orjson.dumps({"model": "openai/gpt-4o", "messages": HI})
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    answer = await exchange(port, head.encode("latin-1") + body)
    assert status_of(answer) in (400, 401), answer[:200]
    assert CLIENT_KEY.encode() not in answer
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        assert CLIENT_KEY not in text, (record.name, record.levelname)
        assert CLIENT_KEY[10:] not in text


def test_fd_limit_is_checked_before_listening():
    from router_core.config import ServerConfig
    from router_core.server import raise_fd_limit

    server, problem = raise_fd_limit(ServerConfig(max_connections=100))
    assert problem is None and server.max_connections == 100
    _, problem = raise_fd_limit(ServerConfig(max_connections=10**9))
    assert problem and "server.max_connections" in problem


def test_bind_refuses_a_port_in_use():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError):
            bind("127.0.0.1", holder.getsockname()[1])


# ---------------------------------------------------------------- CPU-heavy requests

ALL_PLUGINS = ["redact", "history", "media", "tools", "scorer", "tags", "image", "planning", "only", "zdr", "order"]
WORDS = [
    "deploy",
    "the",
    "kubernetes",
    "cluster",
    "with",
    "terraform",
    "then",
    "check",
    "the",
    "postgres",
    "replication",
    "lag",
    "before",
    "migrating",
]


def prose(n: int, seed: int) -> str:
    return " ".join(WORDS[(i * 7 + seed) % len(WORDS)] for i in range(n))


def heaviest_requests() -> dict[str, dict]:
    """The biggest of each kind the default limits let through (about 1–3 MB each)."""
    return {
        "128 tools of 20 KB": {
            "messages": [{"role": "user", "content": prose(20_000, 1)}],
            "tools": [
                {"type": "function", "function": {"name": f"tool_{i}", "description": prose(3000, i)}}
                for i in range(128)
            ],
            "gateway": {"toolOptimization": {"acceptScore": 0.5}},
        },
        "64 tags of 14 KB": {
            "messages": [{"role": "user", "content": prose(20_000, 2)}],
            "gateway": {
                "tags": [
                    {"name": f"t{i}", "description": prose(2000, i), "models": ["openai/a", "openai/b"]}
                    for i in range(64)
                ]
            },
        },
        "2048 messages": {
            "messages": [
                {"role": "user" if i % 2 == 0 else "assistant", "content": prose(150, i)} for i in range(2048)
            ],
            "gateway": {"chatHistoryCompression": {"score": 0.9}},
        },
    }


async def test_heaviest_allowed_requests_do_not_hold_the_loop(make_gateway):
    from tests.core.test_upstream_hardening import STALL, loop_watch

    client = await make_gateway({"plugins": {"enabled": ALL_PLUGINS}})
    for name, body in heaviest_requests().items():
        raw = orjson.dumps({"model": "openai/gpt-4o", **body})
        resp = await client.post(CHAT, data=raw, headers=JSON)  # warm: lazy models and caches load once
        assert resp.status == 200, (name, await resp.text())
        async with loop_watch() as worst:
            resp = await client.post(CHAT, data=raw, headers=JSON)
            await resp.read()
        assert worst[0] < STALL, f"{name}: the loop stalled {worst[0] * 1000:.0f} ms"
