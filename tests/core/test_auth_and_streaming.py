"""Client auth, and streams that are forwarded as they arrive and cancelled with the client."""

from __future__ import annotations

import asyncio
import logging

import openai
import orjson
import pytest

from tests.conftest import JSON, sdk
from tests.fakes import chat_chunks

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def locked(make_gateway):
    return await make_gateway(
        {"server": {"api_keys": ["env:ROUTER_KEY", "sk-router-literal"]}}, env={"ROUTER_KEY": "sk-router-from-env"}
    )


@pytest.mark.parametrize("key", ["sk-router-from-env", "sk-router-literal"])
async def test_valid_keys_pass(locked, key):
    answer = await sdk(locked, api_key=key).chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert answer.choices[0].message.content == "Hello from upstream"


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic sk-router-literal", "sk-router-literal"])
async def test_bad_keys_are_401(locked, upstream, header):
    headers = {"Authorization": header} if header else {}
    resp = await locked.post(
        "/v1/chat/completions", data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=headers
    )
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["type"] == "authentication_error"
    assert not upstream.requests


async def test_sdk_sees_authentication_error(locked):
    with pytest.raises(openai.AuthenticationError):
        await sdk(locked, api_key="nope").chat.completions.create(model="openai/gpt-4o", messages=HI)


async def test_healthz_is_open(locked):
    resp = await locked.get("/healthz")
    assert resp.status == 200


async def upstream_error(make_gateway, upstream, caplog, message: str, status: int):
    """Have the upstream answer ``status`` with ``message`` as its error; the gateway's status and body."""
    caplog.set_level(logging.DEBUG)
    from aiohttp import web

    async def failing(request, body):
        return web.json_response({"error": {"message": message}}, status=status)

    upstream.handler = failing
    client = await make_gateway()
    resp = await client.post(
        "/v1/chat/completions", data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON
    )
    return resp.status, await resp.text()


async def test_upstream_detail_is_scrubbed_of_keys(make_gateway, upstream, caplog):
    message = "bad key sk-test-provider-secret-123 and prompt 'hi'"
    status, text = await upstream_error(make_gateway, upstream, caplog, message, 400)
    assert status == 400
    assert "[provider key]" in text and "sk-test-provider-secret-123" not in text
    assert "prompt 'hi'" not in caplog.text  # the upstream's words reach the client, never the log


async def test_no_key_in_logs_or_answers(make_gateway, upstream, caplog):
    message = "Incorrect API key provided: sk-test-provider-secret-123"
    status, text = await upstream_error(make_gateway, upstream, caplog, message, 401)
    assert status == 502  # the gateway's credentials were refused: not the client's 401
    assert "refused the gateway's credentials" in text
    assert "sk-test-provider-secret-123" not in text
    assert "sk-test-provider-secret-123" not in caplog.text


async def test_stream_is_forwarded_without_buffering(make_gateway, upstream):
    release = asyncio.Event()

    async def slow(request, body):
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunks = chat_chunks(["first", " second"], body["model"])
        await resp.write(chunks[0] + chunks[1])
        await release.wait()  # the rest only after the client has seen the first piece
        for chunk in chunks[2:]:
            await resp.write(chunk)
        return resp

    upstream.handler = slow
    client = await make_gateway()
    stream = await sdk(client).chat.completions.create(model="openai/gpt-4o", messages=HI, stream=True)
    pieces = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            release.set()
    assert pieces == ["first", " second"]


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/x"])
async def test_client_disconnect_cancels_upstream(make_gateway, upstream, model):
    async def endless(request, body):
        chunks = chat_chunks(["tick"] * 200, body["model"]) if "chat" in request.path else None
        if chunks is None:
            from tests.fakes import responses_chunks

            chunks = responses_chunks(["tick"] * 200, body["model"])
        return await upstream.send_stream(request, chunks, delay=0.02)

    upstream.handler = endless
    client = await make_gateway()
    resp = await client.post(
        "/v1/responses", data=orjson.dumps({"model": model, "input": "hi", "stream": True}), headers=JSON
    )
    assert resp.status == 200
    await resp.content.readuntil(b"tick")
    resp.close()  # the client goes away mid-stream
    await asyncio.wait_for(upstream.disconnected.wait(), timeout=3)


async def test_mid_stream_failure_ends_with_error_event(make_gateway, upstream):
    async def cut(request, body):
        from aiohttp import web

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(chat_chunks(["partial"], body["model"])[1])
        await resp.write(b"data: {broken json\n\n")
        return resp

    upstream.handler = cut
    client = await make_gateway()
    resp = await client.post(
        "/v1/responses", data=orjson.dumps({"model": "chatonly/x", "input": "hi", "stream": True}), headers=JSON
    )
    text = await resp.text()
    assert resp.status == 200
    assert "partial" in text
    assert text.rstrip().splitlines()[-1].startswith("data: ")
    assert '"type":"error"' in text
