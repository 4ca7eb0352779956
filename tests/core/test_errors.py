"""Bad input and failing upstreams: every one an OpenAI-shaped error with the right status."""

from __future__ import annotations

import asyncio
import socket

import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import JSON, sdk

CHAT = "/v1/chat/completions"


def error_of(body: dict) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def post(client, path: str, data, **kw):
    kw["headers"] = {**JSON, **kw.get("headers", {})}
    resp = await client.post(path, data=data if isinstance(data, (bytes, str)) else orjson.dumps(data), **kw)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "body, param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"model": "openai/gpt-4o"}, "messages"),
        ({"model": "openai/gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "openai/gpt-4o", "messages": []}, "messages"),
        ({"model": 7, "messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "openai/gpt-4o", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, "stream"),
        ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": {}}, "tools"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "gateway": []}, "gateway"),
    ],
)
async def test_chat_bad_input_is_400(gateway, upstream, body, param):
    status, answer = await post(gateway, CHAT, body)
    assert status == 400
    error = error_of(answer)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert not upstream.requests


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "openai/gpt-4o"}, "input"),
        ({"model": "openai/gpt-4o", "input": 3}, "input"),
        (
            {"model": "openai/gpt-4o", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"model": "openai/gpt-4o", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"model": "openai/gpt-4o", "input": "hi", "instructions": ["a"]}, "instructions"),
    ],
)
async def test_responses_bad_input_is_400(gateway, body, param):
    status, answer = await post(gateway, "/v1/responses", body)
    assert status == 400
    assert error_of(answer)["param"] == param


async def test_unknown_model_is_404(gateway):
    status, answer = await post(
        gateway, CHAT, {"model": "nobody/model", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 404
    assert error_of(answer)["code"] == "model_not_found"


async def test_unknown_gateway_field_lists_enabled_plugins(gateway):
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "gateway": {"zdr": True}}
    status, answer = await post(gateway, CHAT, body)
    assert status == 400
    error = error_of(answer)
    assert error["param"] == "gateway.zdr"
    assert "enabled plugins: none" in error["message"]


async def test_oversized_body_is_413(make_gateway, upstream):
    client = await make_gateway({"server": {"max_body_bytes": 1024}})
    big = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x" * 4096}]}
    status, answer = await post(client, CHAT, big)
    assert status == 413
    assert error_of(answer)["code"] == "payload_too_large"
    assert not upstream.requests


async def test_unknown_route_and_method(gateway):
    resp = await gateway.get("/v1/nowhere")
    assert resp.status == 404
    error_of(await resp.json())
    resp = await gateway.get(CHAT)
    assert resp.status == 405
    error_of(await resp.json())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_down_is_503(make_gateway, stream):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = await make_gateway({"providers": {"openai": {"base_url": url}}})
    with pytest.raises(openai.APIStatusError) as caught:
        await sdk(client).chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert caught.value.status_code == 503
    assert "sk-test-provider-secret-123" not in str(caught.value.body)


async def answer_500(request, body):
    return web.json_response({"error": {"message": "boom with key sk-test-provider-secret-123"}}, status=500)


async def answer_garbage(request, body):
    return web.Response(body=b"<html>not json", content_type="application/json")


async def answer_hang(request, body):
    await asyncio.sleep(5)
    return web.json_response({})


async def answer_wrong_shape(request, body):
    return web.json_response({"unexpected": True})


@pytest.mark.parametrize(
    "handler, status",
    [(answer_500, 502), (answer_garbage, 502), (answer_wrong_shape, 502), (answer_hang, 504)],
)
async def test_failing_upstream_maps_to_5xx(make_gateway, upstream, handler, status):
    upstream.handler = handler
    client = await make_gateway({"providers": {"openai": {"first_byte_timeout": 0.3, "max_retries": 0}}})
    status_seen, answer = await post(
        client, CHAT, {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status_seen == status
    error = error_of(answer)
    assert "sk-test-provider-secret-123" not in orjson.dumps(answer).decode()
    assert error["type"] in ("upstream_error", "server_error")


async def test_upstream_4xx_is_passed_on_not_retried(make_gateway, upstream):
    async def bad_request(request, body):
        return web.json_response({"error": {"message": "max_tokens is too large"}}, status=400)

    upstream.handler = bad_request
    client = await make_gateway()
    status, answer = await post(
        client, CHAT, {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 400
    assert "max_tokens is too large" in error_of(answer)["message"]
    assert len(upstream.requests) == 1


async def test_missing_provider_key_is_503_naming_the_variable(make_gateway, upstream):
    client = await make_gateway({"providers": {"openai": {"api_key": "env:OPENAI_KEY_FOR_TEST"}}}, env={})
    status, answer = await post(
        client, CHAT, {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert status == 503
    assert "OPENAI_KEY_FOR_TEST" in error_of(answer)["message"]
    assert not upstream.requests
