"""Responses requests over Chat-only providers: every Responses-only field mapped, dropped or refused (docs/dialects.md)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from pydantic import BaseModel

from router_core.dialects import fates
from tests.conftest import sdk

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


async def test_structured_output_limit_and_effort_become_chat_fields(gateway, upstream):
    await sdk(gateway).responses.create(
        model="chatonly/llama",
        input="Where is the Louvre?",
        text={"format": {"type": "json_schema", "name": "place", "schema": SCHEMA, "strict": True}, "verbosity": "low"},
        max_output_tokens=300,
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        store=True,
        truncation="disabled",
        metadata={"team": "a"},
        parallel_tool_calls=False,
        temperature=0.3,
    )
    sent = upstream.last.json
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": SCHEMA, "strict": True},
    }
    assert sent["max_completion_tokens"] == 300 and sent["reasoning_effort"] == "low"
    assert sent["verbosity"] == "low" and sent["parallel_tool_calls"] is False and sent["temperature"] == 0.3
    for field in ("text", "max_output_tokens", "reasoning", "include", "store", "truncation", "metadata"):
        assert field not in sent


async def test_json_object_format(gateway, upstream):
    await sdk(gateway).responses.create(
        model="chatonly/llama", input="JSON please", text={"format": {"type": "json_object"}}
    )
    assert upstream.last.json["response_format"] == {"type": "json_object"}


async def test_responses_parse_over_chat_only(gateway, upstream):
    class Place(BaseModel):
        city: str

    upstream.text = '{"city": "Paris"}'
    parsed = await sdk(gateway).responses.parse(model="chatonly/llama", input="Where is the Louvre?", text_format=Place)
    assert parsed.output_parsed == Place(city="Paris")
    assert upstream.last.json["response_format"]["json_schema"]["name"] == "Place"


@pytest.mark.parametrize(
    "extra,field",
    [
        ({"truncation": "auto"}, "truncation"),
        ({"background": True}, "background"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"max_tool_calls": 3}, "max_tool_calls"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ],
)
async def test_what_chat_cannot_express_is_a_400_naming_field_and_provider(gateway, upstream, extra, field):
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(gateway).responses.create(model="chatonly/llama", input="hi", **extra)
    error = caught.value.body
    assert error["param"] == field and "'chatonly'" in error["message"] and field in error["message"]
    assert len(upstream.requests) == before  # nothing was sent


async def test_the_same_fields_reach_a_native_responses_upstream(gateway, upstream):
    await sdk(gateway).responses.create(
        model="openai/gpt-4o", input="hi", truncation="auto", include=["x"], max_output_tokens=9
    )
    sent = upstream.last.json
    assert sent["truncation"] == "auto" and sent["include"] == ["x"] and sent["max_output_tokens"] == 9


async def test_item_keys_and_reasoning_items_stay_out_of_chat_messages(gateway, upstream):
    items = [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
            "id": "msg_1",
            "status": "completed",
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_2",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hello"}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": "{}",
            "status": "completed",
        },
        {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "42"},
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"}]},
    ]
    await sdk(gateway).responses.create(model="chatonly/llama", input=items)
    sent = upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "assistant", "tool", "user"]
    assert all(set(m) <= {"role", "content", "tool_calls", "tool_call_id"} for m in sent)
    assert sent[-1]["content"] == [{"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}}]


async def test_stop_reasons_and_usage_details_come_back(gateway, upstream):
    from tests.fakes import chat_completion

    async def truncated(request, body):
        from aiohttp import web

        answer = chat_completion("cut", body["model"])
        answer["choices"][0]["finish_reason"] = "length"
        answer["usage"] |= {
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
        return web.json_response(answer)

    upstream.handler = truncated
    answer = await sdk(gateway).responses.create(model="chatonly/llama", input="hi", max_output_tokens=5)
    assert answer.status == "incomplete" and answer.incomplete_details.reason == "max_output_tokens"
    assert answer.usage.input_tokens_details.cached_tokens == 4
    assert answer.usage.output_tokens_details.reasoning_tokens == 3


def test_every_field_fate_is_in_the_docs():
    doc = Path("docs/dialects.md").read_text()
    for field in (*fates.RESPONSES_DROPPED, *fates.RESPONSES_REFUSED):
        assert f"`{field}`" in doc, field


async def test_raw_shape_matches_the_seed_whatever_the_provider(gateway):
    for model in ("openai/gpt-4o", "chatonly/llama", "echo/demo"):
        resp = await gateway.post("/v1/responses", json={"model": model, "input": "hi"})
        body = await resp.json()
        assert body["id"].startswith("gen_") and body["object"] == "response" and body["model"] == model
        assert isinstance(body["output_text"], str) and body["output_text"]
        usage = body["usage"]
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert set(usage["planning_usage_details"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "cost"}
        assert resp.headers["x-router-model"] == model and resp.headers["x-router-upstream-model"]


async def test_a_chat_clients_own_tool_kinds_reach_a_chat_upstream(gateway, upstream):
    custom = {"type": "custom", "custom": {"name": "grammar", "description": "free-form input"}}
    await sdk(gateway).chat.completions.create(
        model="chatonly/gpt",
        messages=[{"role": "user", "content": "hi"}],
        tools=[custom],
        tool_choice={"type": "custom", "custom": {"name": "grammar"}},
    )
    assert upstream.last.json["tools"] == [custom]
    assert upstream.last.json["tool_choice"] == {"type": "custom", "custom": {"name": "grammar"}}
