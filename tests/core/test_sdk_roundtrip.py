"""The official OpenAI SDK against the gateway, against a fake OpenAI-compatible upstream."""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from tests.conftest import sdk


async def test_chat_completion_round_trip(gateway, upstream):
    client = sdk(gateway)
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Say hi"}], temperature=0.2, extra_body={"seed": 7}
    )
    assert isinstance(answer, ChatCompletion)
    assert answer.choices[0].message.content == "Hello from upstream"
    assert answer.usage.total_tokens == 18
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "gpt-4o"
    assert sent.json["temperature"] == 0.2 and sent.json["seed"] == 7  # unknown fields pass through
    assert sent.headers["Authorization"] == "Bearer sk-test-provider-secret-123"
    assert "gateway" not in sent.json


async def test_responses_round_trip_native(gateway, upstream):
    client = sdk(gateway)
    answer = await client.responses.create(model="openai/gpt-4o", input="Say hi", instructions="Be brief")
    assert isinstance(answer, Response)
    assert answer.output_text == "Hello from upstream"
    assert upstream.last.path == "/v1/responses"
    assert upstream.last.json["instructions"] == "Be brief"
    assert upstream.last.json["input"] == [{"role": "user", "content": "Say hi"}]


async def test_responses_translated_to_chat_upstream(gateway, upstream):
    client = sdk(gateway)
    raw = await client.responses.with_raw_response.create(
        model="chatonly/llama", input="Say hi", instructions="Be brief"
    )
    answer = raw.parse()
    assert isinstance(answer, Response)
    assert answer.output_text == "Hello from upstream"
    assert answer.id.startswith("gen_")
    assert answer.usage.input_tokens == 11 and answer.usage.output_tokens == 7
    assert raw.headers["x-router-provider"] == "chatonly"
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hi"},
    ]


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/llama"])
async def test_chat_stream(gateway, model):
    client = sdk(gateway)
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from upstream"


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/llama"])
async def test_responses_stream(gateway, model):
    client = sdk(gateway)
    events = [e async for e in await client.responses.create(model=model, input="hi", stream=True)]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Hello from upstream"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Hello from upstream"


async def test_responses_stream_helper_translated(gateway):
    client = sdk(gateway)
    async with client.responses.stream(model="chatonly/llama", input="hi") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    assert final.output_text == "Hello from upstream"
    assert final.usage.output_tokens == 4
