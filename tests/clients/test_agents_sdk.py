"""The OpenAI Agents SDK, with its default Responses model, over a Chat-only provider behind the gateway."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import sdk
from tests.fakes import chat_chunks, chat_completion

agents = pytest.importorskip("agents")


def weather_then_answer(request: web.Request, body: dict[str, Any]):
    """A Chat upstream that calls get_weather first, then answers with the tool's result."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    stream = body.get("stream")
    if not results:
        call = {
            "id": "call_w1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }
        if stream:
            base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
            events = [
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, **call}]}}],
                },
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}},
            ]
            import orjson

            return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
        answer = chat_completion("", body["model"])
        answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
        answer["choices"][0]["finish_reason"] = "tool_calls"
        return answer
    text = f"It is {results[-1]['content']} in Oslo."
    return chat_chunks([text[:6], text[6:]], body["model"]) if stream else chat_completion(text, body["model"])


@pytest.fixture
async def agent_client(gateway, upstream):
    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        answer = weather_then_answer(request, body)
        if isinstance(answer, list):
            return await upstream.send_stream(request, answer)
        return web.json_response(answer)

    upstream.handler = handler
    client = sdk(gateway)
    agents.set_default_openai_client(client, use_for_tracing=False)
    agents.set_default_openai_api("responses")
    agents.set_tracing_disabled(True)
    yield client
    agents.set_tracing_disabled(False)


@agents.function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "snowing"


# The gateway's model names are provider/model: the SDK must pass them on as model ids rather
# than read the prefix as one of its own providers (it would strip "openai/" and reject others).
def gateway_names() -> Any:
    """A fresh run config per test: the provider keeps the client it first saw."""
    return agents.RunConfig(
        model_provider=agents.MultiProvider(openai_prefix_mode="model_id", unknown_prefix_mode="model_id")
    )


def weather_agent() -> Any:
    return agents.Agent(
        name="forecaster", instructions="Answer with the weather.", tools=[get_weather], model="chatonly/llama"
    )


async def test_runner_run_with_a_function_tool(agent_client, upstream):
    result = await agents.Runner.run(weather_agent(), "Weather in Oslo?", run_config=gateway_names())
    assert result.final_output == "It is snowing in Oslo."
    first, second = (r.json for r in upstream.requests[-2:])
    assert first["messages"][0] == {"role": "system", "content": "Answer with the weather."}
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "snowing"}


async def test_runner_run_streamed(agent_client, upstream):
    result = agents.Runner.run_streamed(weather_agent(), "Weather in Oslo?", run_config=gateway_names())
    kinds = [event.type async for event in result.stream_events()]
    assert result.final_output == "It is snowing in Oslo."
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert all(r.json.get("stream") for r in upstream.requests[-2:])


async def test_structured_output_type(agent_client, upstream):
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        sky: str

    upstream.handler = None
    upstream.text = '{"city": "Oslo", "sky": "snow"}'
    agent = agents.Agent(name="f", instructions="Forecast.", output_type=Forecast, model="chatonly/llama")
    result = await agents.Runner.run(agent, "Oslo?", run_config=gateway_names())
    assert result.final_output == Forecast(city="Oslo", sky="snow")
    assert upstream.last.json["response_format"]["type"] == "json_schema"
