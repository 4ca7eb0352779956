"""POST /v1/messages: the official Anthropic SDK against every provider kind behind the gateway."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson
import pytest
from aiohttp import web

from tests.conftest import closed_after_test
from tests.fakes import chat_completion, start_fake
from tests.plugins.test_anthropic import TEXT_REPLY, TOOL_REPLY, Claude, text_stream, tool_stream

CLAUDE_KEY = "sk-ant-provider-secret-321"
CLIENT_KEY = "sk-router-client-key-1"
MODELS = {
    "openai": "openai/gpt-4o",
    "openai-chat": "chatonly/llama",
    "anthropic": "anthropic/claude-sonnet-4",
    "echo": "echo/demo",
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def claude(aiohttp_server) -> Claude:
    return Claude(await start_fake(aiohttp_server))


@pytest.fixture
async def gateway(make_gateway, claude):
    return await make_gateway(
        {
            "server": {"api_keys": [CLIENT_KEY]},
            "plugins": {"enabled": ["anthropic", "only"]},
            "providers": {"anthropic": {"kind": "anthropic", "base_url": claude.url, "api_key": CLAUDE_KEY}},
        }
    )


def claude_sdk(client, **kw: Any) -> anthropic.AsyncAnthropic:
    """The official Anthropic SDK pointed at the gateway (it sends the key as x-api-key; closed after the test)."""
    kw.setdefault("api_key", CLIENT_KEY)
    return closed_after_test(
        anthropic.AsyncAnthropic(base_url=str(client.make_url("")), max_retries=0, timeout=10, **kw)
    )


async def answer_with_tool(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """A Chat upstream calling get_weather, streamed or not."""
    call = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    if not body.get("stream"):
        answer = chat_completion("", body["model"])
        answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        answer["choices"][0]["finish_reason"] = "tool_calls"
        return web.json_response(answer)
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, **call}]}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}},
    ]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for event in events:
        await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


# ---------------------------------------------------------------- create, stream, tools: every kind


@pytest.mark.parametrize("kind", MODELS)
async def test_create_over_every_kind(gateway, kind):
    raw = await claude_sdk(gateway).messages.with_raw_response.create(
        model=MODELS[kind], max_tokens=200, system="Be brief", messages=[{"role": "user", "content": "Say hi"}]
    )
    message = await raw.parse()
    assert isinstance(message, anthropic.types.Message)
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    text = message.content[0].text
    expected = {"anthropic": "Hello from Claude", "echo": '"Be brief"'}.get(kind, "Hello from upstream")
    assert expected in text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-router-model"] == MODELS[kind]


@pytest.mark.parametrize("kind", MODELS)
async def test_stream_over_every_kind(gateway, kind):
    async with claude_sdk(gateway).messages.stream(
        model=MODELS[kind], max_tokens=200, messages=[{"role": "user", "content": "Say hi"}]
    ) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "content_block_delta" in types and "message_delta" in types
    expected = {"anthropic": "Hello from Claude", "echo": "Say hi"}.get(kind, "Hello from upstream")
    assert expected in final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


@pytest.mark.parametrize("kind", ["openai", "openai-chat", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
async def test_tool_use_over_every_kind(gateway, claude, upstream, kind, stream):
    upstream.handler = answer_with_tool
    claude.reply, claude.events = TOOL_REPLY, tool_stream()
    client = claude_sdk(gateway)
    question = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        async with client.messages.stream(model=MODELS[kind], max_tokens=200, messages=question, tools=[WEATHER]) as s:
            message = await s.get_final_message()
    else:
        message = await client.messages.create(model=MODELS[kind], max_tokens=200, messages=question, tools=[WEATHER])
    assert message.stop_reason == "tool_use"
    use = next(b for b in message.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    # the tool result goes back, and the upstream sees it in its own dialect
    upstream.handler = None
    follow_up = [
        *question,
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]},
    ]
    await client.messages.create(model=MODELS[kind], max_tokens=200, messages=follow_up, tools=[WEATHER])
    if kind == "anthropic":
        sent = claude.last.json["messages"]
        assert sent[-1]["content"] == [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]
    else:
        sent = upstream.last.json["messages"]
        assert sent[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert sent[-1] == {"role": "tool", "tool_call_id": use.id, "content": "Sunny"}


# ---------------------------------------------------------------- translation to Chat


async def test_conversation_with_images_reaches_chat(gateway, upstream):
    png = "iVBORw0KGgo="
    await claude_sdk(gateway).messages.create(
        model="chatonly/llama",
        max_tokens=100,
        system=[{"type": "text", "text": "You see images."}],
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},  # this SDK version no longer offers sampling arguments
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        tools=[WEATHER],
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "u-1"},
        messages=[
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
                ],
            },
        ],
    )
    sent = upstream.last.json
    assert sent["messages"] == [
        {"role": "system", "content": "You see images."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
            ],
        },
    ]
    assert sent["max_completion_tokens"] == 100 and sent["stop"] == ["END"] and sent["temperature"] == 0.5
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    assert sent["reasoning_effort"] == "low" and sent["user"] == "u-1"
    assert "thinking" not in sent and "metadata" not in sent and "max_tokens" not in sent


async def test_claude_only_field_on_a_chat_route_is_an_anthropic_shaped_400(gateway, upstream):
    before = len(upstream.requests)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude_sdk(gateway).messages.create(
            model="chatonly/llama", max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5}
        )
    error = caught.value.body
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "top_k" in error["error"]["message"] and "'chatonly'" in error["error"]["message"]
    assert len(upstream.requests) == before


# ---------------------------------------------------------------- Claude upstream: untouched both ways


async def test_claude_passthrough_is_byte_for_byte(gateway, claude):
    body = {
        "model": MODELS["anthropic"],
        "max_tokens": 50,
        "top_k": 3,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    resp = await gateway.post("/v1/messages", data=orjson.dumps(body), headers={"x-api-key": CLIENT_KEY})
    assert resp.status == 200
    assert await resp.read() == b"".join(text_stream())
    assert claude.last.json["top_k"] == 3 and claude.last.json["max_tokens"] == 50


async def test_claude_answer_keeps_its_fields(gateway, claude):
    message = await claude_sdk(gateway).messages.create(
        model=MODELS["anthropic"], max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == TEXT_REPLY["content"][0]["text"] and message.id.startswith("msg_gen_")
    assert claude.last.headers["x-api-key"] == CLAUDE_KEY


# ---------------------------------------------------------------- auth, gateway, errors


async def test_bearer_auth_works_too(gateway):
    client = claude_sdk(gateway, api_key=None, auth_token=CLIENT_KEY)
    message = await client.messages.create(model="echo/x", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert message.content


async def test_wrong_key_is_an_anthropic_authentication_error(gateway):
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await claude_sdk(gateway, api_key="sk-wrong").messages.create(
            model="echo/x", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"


async def test_x_api_key_is_not_a_key_for_the_openai_routes(gateway):
    body = {"model": "echo/x", "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", data=orjson.dumps(body), headers={"x-api-key": CLIENT_KEY})
    assert resp.status == 401


async def test_gateway_object_as_extra_body_field(gateway, claude, upstream):
    client = claude_sdk(gateway)
    message = await client.messages.create(
        model=MODELS["anthropic"],
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"gateway": {"only": ["anthropic"]}},
    )
    assert message.content[0].text == "Hello from Claude" and "gateway" not in claude.last.json
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(
            model="echo/x",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"gateway": {"zdr": True}},
        )
    assert (
        caught.value.body["error"]["type"] == "invalid_request_error" and "zdr" in caught.value.body["error"]["message"]
    )


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "echo/x", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"model": "echo/x", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "echo/x", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"model": "nope/x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_bad_requests_answer_in_anthropic_shape(gateway, body, param):
    resp = await gateway.post("/v1/messages", data=orjson.dumps(body), headers={"x-api-key": CLIENT_KEY})
    assert 400 <= resp.status < 500
    error = await resp.json()
    assert error["type"] == "error" and error["error"]["type"] in ("invalid_request_error", "not_found_error")
    assert param in error["error"]["message"]


async def test_upstream_stream_error_after_start_ends_in_anthropic_shape(gateway, upstream):
    from tests.fakes import cut_stream

    upstream.handler = cut_stream(3)
    body = {"model": "chatonly/x", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/messages", data=orjson.dumps(body), headers={"x-api-key": CLIENT_KEY})
    raw = await resp.read()
    assert b"event: message_start" in raw and b'"type":"error"' in raw and b"api_error" in raw


async def test_thinking_blocks_and_server_tools_reach_claude_as_sent(gateway, claude):
    thinking = {"type": "thinking", "thinking": "hm", "signature": "sig"}
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    await claude_sdk(gateway).messages.create(
        model=MODELS["anthropic"],
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[search],
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello"}]},
            {"role": "user", "content": "More"},
        ],
    )
    sent = claude.last.json
    assert sent["messages"][1]["content"] == [thinking, {"type": "text", "text": "Hello"}]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and sent["max_tokens"] == 3000
    assert sent["tools"] == [search]


CLAUDE_CODE_TURN = {
    # the shape Claude Code 2.1 sends (captured from `claude -p`), cut down
    "model": "chatonly/llama",
    "max_tokens": 32000,
    "stream": True,
    "system": [{"type": "text", "text": "You are a Claude agent.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>context</system-reminder>"}]},
        {"role": "system", "content": "Available agent types: claude"},
        {"role": "user", "content": [{"type": "text", "text": "Say hi", "cache_control": {"type": "ephemeral"}}]},
    ],
    "tools": [WEATHER],
    "metadata": {"user_id": '{"session_id":"s1"}'},
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
}


async def test_a_claude_code_turn_over_a_chat_provider(gateway, upstream):
    resp = await gateway.post("/v1/messages", json=CLAUDE_CODE_TURN, headers={"x-api-key": CLIENT_KEY})
    assert resp.status == 200 and b"message_stop" in await resp.read()
    sent = upstream.last.json
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system", "user"]
    assert sent["reasoning_effort"] == "high" and sent["max_completion_tokens"] == 32000
    assert not {"thinking", "context_management", "output_config", "metadata"} & set(sent)


async def test_a_claude_code_turn_reaches_claude_as_sent(gateway, claude):
    body = {**CLAUDE_CODE_TURN, "model": MODELS["anthropic"]}
    resp = await gateway.post("/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY})
    assert resp.status == 200 and await resp.read() == b"".join(text_stream())
    sent = claude.last.json
    assert [m["role"] for m in sent["messages"]] == ["user", "system", "user"]
    for field in ("system", "thinking", "context_management", "output_config", "metadata"):
        assert sent[field] == CLAUDE_CODE_TURN[field]
    assert sent["messages"][2]["content"] == CLAUDE_CODE_TURN["messages"][2]["content"]  # cache_control kept


async def test_count_tokens_with_the_sdk(gateway, claude, upstream):
    client = claude_sdk(gateway)
    short = await client.messages.count_tokens(model="echo/x", messages=[{"role": "user", "content": "hi"}])
    longer = await client.messages.count_tokens(
        model=MODELS["anthropic"],
        system="You forecast.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "What is the weather in Paris and in Rome tomorrow?"}],
    )
    assert 0 < short.input_tokens < longer.input_tokens
    assert upstream.requests == [] and claude.upstream.requests == []  # counted here, nothing sent


async def test_count_tokens_errors_are_anthropic_shaped(gateway):
    resp = await gateway.post("/v1/messages/count_tokens", json={"model": "x/y"}, headers={"x-api-key": CLIENT_KEY})
    error = await resp.json()
    assert resp.status == 400 and error["type"] == "error" and "messages" in error["error"]["message"]
