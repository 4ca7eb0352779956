"""The anthropic provider kind: Chat and Responses clients (official SDK) against a recorded-shape Messages API fake."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from router_plugins.anthropic import messages
from tests.conftest import sdk

MODEL = "anthropic/claude-sonnet-4"
KEY = "sk-ant-test-secret-789"

TEXT_REPLY = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4",
    "content": [{"type": "text", "text": "Hello from Claude"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 6},
}
TOOL_REPLY = {
    **TEXT_REPLY,
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
}


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events]


def text_stream(pieces=("Hel", "lo from", " Claude")) -> list[bytes]:
    start = {**TEXT_REPLY, "content": [], "stop_reason": None, "usage": {"input_tokens": 25, "output_tokens": 1}}
    return sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
        {"type": "message_stop"},
    )


def tool_stream() -> list[bytes]:
    start = {**TEXT_REPLY, "content": [], "stop_reason": None, "usage": {"input_tokens": 30, "output_tokens": 1}}
    tool = {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}
    return sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": tool},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 20},
        },
        {"type": "message_stop"},
    )


class Claude:
    """The fake upstream answering like the Messages API; set ``reply`` / ``events`` per test."""

    def __init__(self, upstream) -> None:
        self.upstream = upstream
        self.reply: dict[str, Any] = TEXT_REPLY
        self.events: list[bytes] = text_stream()
        upstream.handler = self.answer

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        assert request.path == "/v1/messages"
        if body.get("stream"):
            return await self.upstream.send_stream(request, self.events)
        return web.json_response(self.reply)

    @property
    def url(self) -> str:
        return self.upstream.url

    @property
    def last(self):
        return self.upstream.last


@pytest.fixture
def claude(upstream) -> Claude:
    return Claude(upstream)


@pytest.fixture
async def client(make_gateway, claude):
    return await make_gateway(
        {
            "plugins": {"enabled": ["anthropic"]},
            "providers": {"anthropic": {"kind": "anthropic", "base_url": claude.url, "api_key": KEY, "max_retries": 0}},
        }
    )


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# ---------------------------------------------------------------- requests


async def test_chat_round_trip_and_headers(client, claude):
    raw = await sdk(client).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hi"}]
    )
    answer = raw.parse()
    assert isinstance(answer, ChatCompletion)
    assert answer.choices[0].message.content == "Hello from Claude"
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (12, 6, 18)
    assert raw.headers["x-router-provider"] == "anthropic"
    sent = claude.last
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.json == {
        "model": "claude-sonnet-4",
        "max_tokens": 4096,
        "system": "Be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
    }


async def test_responses_round_trip(client, claude):
    answer = await sdk(client).responses.create(
        model=MODEL, input="Say hi", instructions="Be brief", max_output_tokens=300
    )
    assert isinstance(answer, Response)
    assert answer.output_text == "Hello from Claude"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (12, 6)
    assert claude.last.json["system"] == "Be brief"
    assert claude.last.json["max_tokens"] == 300


async def test_conversation_translation(client, claude):
    png = "data:image/png;base64,iVBORw0KGgo="
    await sdk(client).chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You forecast."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21C"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And these?"},
                    {"type": "image_url", "image_url": {"url": png}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
        ],
        tools=[WEATHER],
        tool_choice="required",
        max_completion_tokens=100,
        temperature=1.5,
        stop="END",
        seed=7,
        parallel_tool_calls=False,
    )
    sent = claude.last.json
    assert sent["system"] == "You forecast."
    assert sent["max_tokens"] == 100 and sent["temperature"] == 1.0 and sent["stop_sequences"] == ["END"]
    assert "seed" not in sent and "parallel_tool_calls" not in sent  # OpenAI-only fields would be a 400
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["function"]["parameters"]}
    ]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {
            "role": "user",  # the tool result and the next user message merge into one user turn
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny, 21C"},
                {"type": "text", "text": "And these?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
    ]


async def test_responses_tool_items_and_forced_tool(client, claude):
    await sdk(client).responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_9", "output": "Rain"},
        ],
        tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    sent = claude.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_9", "content": "Rain"}]


def test_consecutive_user_messages_merge_and_empty_text_is_dropped():
    from router_core import Call, Message

    call = Call(
        "chat", MODEL, [Message.of_text("user", "a"), Message.of_text("user", ""), Message.of_text("user", "b")]
    )
    assert messages.encode_request(call, "m")["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_usage_counts_cached_input():
    usage = messages.decode_usage({"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5})
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (100, 90, 5)


# ---------------------------------------------------------------- replies


async def test_tool_use_reply_in_chat(client, claude):
    claude.reply = TOOL_REPLY
    answer = await sdk(client).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, orjson.loads(call.function.arguments)) == (
        "toolu_01A09q90qw90lq917835lq9",
        "get_weather",
        {"city": "Paris"},
    )


async def test_tool_use_reply_in_responses(client, claude):
    claude.reply = TOOL_REPLY
    answer = await sdk(client).responses.create(
        model=MODEL, input="Weather in Paris?", tools=[{"type": "function", "name": "get_weather"}]
    )
    calls = [item for item in answer.output if item.type == "function_call"]
    assert calls[0].name == "get_weather" and orjson.loads(calls[0].arguments) == {"city": "Paris"}


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")]
)
async def test_stop_reasons(client, claude, reason, finish):
    claude.reply = {**TEXT_REPLY, "stop_reason": reason}
    answer = await sdk(client).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].finish_reason == finish


async def test_upstream_error_is_scrubbed(client, claude):
    async def overloaded(request, body):
        error = {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad key {KEY}"}}
        return web.json_response(error, status=400)

    claude.upstream.handler = overloaded
    resp = await client.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert resp.status == 400
    assert KEY not in await resp.text()


# ---------------------------------------------------------------- streams


async def test_chat_stream(client, claude):
    stream = await sdk(client).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Claude"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (25, 15)
    assert claude.last.json["stream"] is True


async def test_responses_stream(client, claude):
    async with sdk(client).responses.stream(model=MODEL, input="hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == "Hello from Claude"
    assert final.output_text == "Hello from Claude"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (25, 15)


async def test_chat_stream_tool_call(client, claude):
    claude.events = tool_stream()
    stream = await sdk(client).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
    assert list(calls) == [0]  # numbered among tool calls, not among content blocks
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and calls[0]["name"] == "get_weather"
    assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert finish == "tool_calls"


async def test_responses_stream_tool_call(client, claude):
    claude.events = tool_stream()
    async with sdk(client).responses.stream(
        model=MODEL, input="Weather?", tools=[{"type": "function", "name": "get_weather"}]
    ) as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Checking."
    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "get_weather" and orjson.loads(call.arguments) == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens) == (30, 20)


async def test_stream_error_event_mid_way_ends_the_stream(client, claude):
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    claude.events = text_stream()[:4] + sse(overloaded)
    raw = await client.post(
        "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    body = await raw.read()
    assert b'"Hel"' in body
    assert b"stream failed: overloaded_error" in body and b"[DONE]" not in body


async def test_stream_failing_before_the_first_byte_falls_back_to_another_kind(make_gateway, claude, aiohttp_server):
    from tests.fakes import start_fake

    claude.events = sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    backup = await start_fake(aiohttp_server)
    client = await make_gateway(
        {
            "plugins": {"enabled": ["anthropic"]},
            "providers": {
                "anthropic": {"kind": "anthropic", "base_url": claude.url, "api_key": KEY, "max_retries": 0},
                "backup": {"kind": "openai-chat", "base_url": backup.url, "serves": {MODEL: "claude-via-backup"}},
            },
        }
    )
    stream = await sdk(client).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello from upstream"
    assert backup.last.json["model"] == "claude-via-backup"


# ---------------------------------------------------------------- Responses fields on Claude


async def test_responses_parse_over_claude_uses_a_forced_schema_tool(client, claude):
    from pydantic import BaseModel

    class Place(BaseModel):
        city: str

    claude.reply = {
        **TEXT_REPLY,
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": messages.STRUCTURED_TOOL, "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use",
    }
    parsed = await sdk(client).responses.parse(
        model=MODEL,
        input="Where is the Louvre?",
        text_format=Place,
        include=["reasoning.encrypted_content"],
        store=True,
    )
    assert parsed.output_parsed == Place(city="Paris") and parsed.status == "completed"
    sent = claude.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": messages.STRUCTURED_TOOL}
    assert sent["tools"][0]["input_schema"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert "include" not in sent and "store" not in sent and "text" not in sent


async def test_structured_answer_streams_as_text(client, claude):
    tool = {"type": "tool_use", "id": "toolu_2", "name": messages.STRUCTURED_TOOL, "input": {}}
    start = {**TEXT_REPLY, "content": [], "stop_reason": None, "usage": {"input_tokens": 9, "output_tokens": 1}}
    claude.events = sse(
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": tool},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    )
    events = [
        e
        async for e in await sdk(client).responses.create(
            model=MODEL, input="Where?", stream=True, text={"format": {"type": "json_object"}}
        )
    ]
    assert events[-1].response.output_text == '{"city":"Rome"}' and events[-1].response.status == "completed"


@pytest.mark.parametrize("effort,budget,max_tokens", [("low", 1024, 4096 + 1024), ("high", 16384, 4096 + 16384)])
async def test_reasoning_effort_becomes_a_thinking_budget(client, claude, effort, budget, max_tokens):
    await sdk(client).responses.create(model=MODEL, input="Think", reasoning={"effort": effort, "summary": "auto"})
    sent = claude.last.json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget} and sent["max_tokens"] == max_tokens
    assert "reasoning" not in sent


async def test_reasoning_under_a_small_limit_is_refused(client, claude):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(client).responses.create(
            model=MODEL, input="Think", reasoning={"effort": "high"}, max_output_tokens=600
        )
    assert caught.value.body["param"] == "reasoning.effort" and "'anthropic'" in caught.value.body["message"]


async def test_truncation_auto_is_refused_for_claude(client, claude):
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(client).responses.create(model=MODEL, input="hi", truncation="auto")
    assert caught.value.body["param"] == "truncation"


@pytest.mark.parametrize(
    "tool_choice,expected_choice,offered",
    [
        (None, {"type": "any"}, ["get_weather", messages.STRUCTURED_TOOL]),  # its tools stay callable
        ("required", {"type": "any"}, ["get_weather"]),  # a forced tool call is the answer
        ({"type": "function", "name": "get_weather"}, {"type": "tool", "name": "get_weather"}, ["get_weather"]),
        ("none", {"type": "tool", "name": messages.STRUCTURED_TOOL}, [messages.STRUCTURED_TOOL]),
    ],
)
async def test_structured_output_with_tools_of_its_own(client, claude, tool_choice, expected_choice, offered):
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    extra = {"tool_choice": tool_choice} if tool_choice is not None else {}
    await sdk(client).responses.create(
        model=MODEL, input="Weather?", tools=[tool], text={"format": {"type": "json_object"}}, **extra
    )
    sent = claude.last.json
    assert sent["tool_choice"] == expected_choice and [t["name"] for t in sent["tools"]] == offered


@pytest.mark.parametrize(
    "extra,field",
    [({"n": 2}, "n"), ({"presence_penalty": 0.5}, "presence_penalty"), ({"logit_bias": {"42": 5}}, "logit_bias")],
)
async def test_chat_fields_claude_cannot_honour_are_refused(client, claude, extra, field):
    import openai

    before = len(claude.upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(client).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], **extra)
    assert caught.value.body["param"] == field and "'anthropic'" in caught.value.body["message"]
    assert len(claude.upstream.requests) == before


async def test_neutral_values_and_bookkeeping_fields_pass_quietly(client, claude):
    await sdk(client).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        n=1,
        presence_penalty=0,
        seed=3,
        logprobs=True,
        store=False,
        metadata={"a": "b"},
        user="u-9",
    )
    sent = claude.last.json
    assert sent["metadata"] == {"user_id": "u-9"}
    assert not {"n", "presence_penalty", "seed", "logprobs", "store"} & set(sent)
