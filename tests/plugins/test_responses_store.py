"""The response store: the Responses API stateful over a Chat-only provider, through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from router_core import hookimpl
from router_core.config import ConfigError
from tests.conftest import sdk
from tests.fakes import chat_completion


@pytest.fixture
def store_config(tmp_path) -> dict[str, Any]:
    return {
        "plugins": {
            "enabled": ["redact", "responses-store", "zdr"],
            "responses-store": {"path": str(tmp_path / "data" / "responses.sqlite3")},
        }
    }


@pytest.fixture
async def gateway(make_gateway, store_config):
    return await make_gateway(store_config)


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m.get("content")) for m in messages]


@pytest.mark.parametrize("stream", [False, True])
async def test_with_commit_before_answer_the_record_is_on_disk_when_the_answer_arrives(
    make_gateway, store_config, upstream, stream
):
    import sqlite3

    store_config["plugins"]["responses-store"]["commit_before_answer"] = True
    client = sdk(await make_gateway(store_config))
    if stream:
        events = await client.responses.create(model="chatonly/llama", input="My name is Ada.", stream=True)
        made_id = [e async for e in events][-1].response.id
    else:
        made_id = (await client.responses.create(model="chatonly/llama", input="My name is Ada.")).id
    with sqlite3.connect(store_config["plugins"]["responses-store"]["path"]) as db:  # as another worker reads it
        assert db.execute("SELECT 1 FROM responses WHERE id = ?", (made_id,)).fetchone() == (1,)
    await client.responses.create(model="chatonly/llama", input="Who am I?", previous_response_id=made_id)
    assert texts(upstream.last.json["messages"])[:2] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello from upstream"),
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_previous_response_id_over_a_chat_only_provider(gateway, upstream, stream):
    client = sdk(gateway)
    if stream:
        events = [
            e async for e in await client.responses.create(model="chatonly/llama", input="My name is Ada.", stream=True)
        ]
        first_id = events[-1].response.id
        assert {e.response.id for e in events if hasattr(e, "response")} == {first_id}
    else:
        first_id = (await client.responses.create(model="chatonly/llama", input="My name is Ada.")).id
    assert first_id.startswith("gen_")
    second = await client.responses.create(
        model="chatonly/llama", input="What is my name?", previous_response_id=first_id, instructions="Be brief"
    )
    assert texts(upstream.last.json["messages"]) == [
        ("system", "Be brief"),
        ("user", "My name is Ada."),
        ("assistant", "Hello from upstream"),
        ("user", "What is my name?"),
    ]
    assert "previous_response_id" not in upstream.last.json
    # a third turn chains through the second, which holds the whole conversation
    await client.responses.create(model="chatonly/llama", input="Thanks", previous_response_id=second.id)
    assert [m["role"] for m in upstream.last.json["messages"]] == ["user", "assistant", "user", "assistant", "user"]


async def call_weather(request: web.Request, body: dict[str, Any]) -> web.Response:
    answer = chat_completion("", body["model"])
    call = {"id": "call_42", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return web.json_response(answer)


async def test_across_a_tool_call(gateway, upstream):
    client = sdk(gateway)
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    upstream.handler = call_weather
    first = await client.responses.create(model="chatonly/llama", input="Weather in Oslo?", tools=[tool])
    call = next(item for item in first.output if item.type == "function_call")
    upstream.handler = None
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Snow, -3C"}
    answer = await client.responses.create(
        model="chatonly/llama", input=[output], previous_response_id=first.id, tools=[tool]
    )
    sent = upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "call_42" and sent[2] == {
        "role": "tool",
        "tool_call_id": "call_42",
        "content": "Snow, -3C",
    }
    assert answer.output_text == "Hello from upstream"


async def test_get_delete_and_input_items(gateway):
    client = sdk(gateway)
    made = await client.responses.create(model="chatonly/llama", input="Hi there", metadata={"k": "v"})
    got = await client.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == "Hello from upstream" and got.model == "chatonly/llama"
    items = await client.responses.input_items.list(made.id)
    assert [i.role for i in items.data] == ["user"] and items.data[0].content[0].text == "Hi there"
    deleted = await client.responses.delete(made.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(made.id)


async def test_input_items_pages(gateway):
    client = sdk(gateway)
    made = await client.responses.create(
        model="chatonly/llama", input=[{"role": "user", "content": f"m{i}"} for i in range(5)]
    )
    page = await client.responses.input_items.list(made.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["m0", "m1"] and page.has_more
    every = [i.content[0].text async for i in client.responses.input_items.list(made.id, limit=2)]
    assert every == ["m4", "m3", "m2", "m1", "m0"]  # desc by default, as OpenAI's


async def test_unknown_previous_id_is_a_404(gateway, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk(gateway).responses.create(model="chatonly/llama", input="hi", previous_response_id="gen_nope")
    assert caught.value.body["code"] == "previous_response_not_found"
    assert caught.value.body["param"] == "previous_response_id"


async def test_store_false_and_zdr_keep_nothing(gateway):
    client = sdk(gateway)
    unstored = await client.responses.create(model="chatonly/llama", input="hi", store=False)
    private = await client.responses.create(model="echo/demo", input="hi", extra_body={"gateway": {"zdr": True}})
    for made in (unstored, private):
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(made.id)


async def test_what_is_stored_under_redaction_is_what_went_upstream(make_gateway, store_config, upstream):
    store_config["gateway"] = {"redact": {"email": True}}
    client = sdk(await make_gateway(store_config))
    made = await client.responses.create(model="chatonly/llama", input="Mail ada@example.com please")
    sent = upstream.last.json["messages"][0]["content"]
    assert "ada@example.com" not in sent
    stored = (await client.responses.input_items.list(made.id)).data[0].content[0].text
    assert stored == sent
    await client.responses.create(model="chatonly/llama", input="Again", previous_response_id=made.id)
    assert upstream.last.json["messages"][0]["content"] == sent


async def test_retention(make_gateway, store_config):
    store_config["plugins"]["responses-store"]["retention_days"] = 0.2 / 86400  # 0.2 s
    client = sdk(await make_gateway(store_config))
    made = await client.responses.create(model="chatonly/llama", input="hi")
    assert (await client.responses.retrieve(made.id)).id == made.id
    await asyncio.sleep(0.3)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_native_provider_gets_its_own_id_back(gateway, upstream, stream):
    client = sdk(gateway)
    first = await client.responses.create(model="openai/gpt-4o", input="One", instructions="Be brief", stream=stream)
    first_id = [e async for e in first][-1].response.id if stream else first.id
    await client.responses.create(model="openai/gpt-4o", input="Two", previous_response_id=first_id)
    sent = upstream.last.json
    assert sent["previous_response_id"] == "resp_upstream"  # the fake's own id for the first answer
    assert sent["input"] == [{"role": "user", "content": "Two"}] and "instructions" not in sent


async def test_the_conversation_is_replayed_where_the_upstream_cannot_resolve_it(gateway, upstream):
    client = sdk(gateway)
    on_chat = await client.responses.create(model="chatonly/llama", input="One")
    for previous in (on_chat.id,):
        await client.responses.create(model="openai/gpt-4o", input="Two", previous_response_id=previous)
        sent = upstream.last.json
        assert "previous_response_id" not in sent
        assert [i.get("role") for i in sent["input"]] == ["user", "assistant", "user"]


async def test_chat_clients_are_not_stored(gateway, upstream):
    answer = await sdk(gateway).chat.completions.create(
        model="chatonly/llama", messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(openai.NotFoundError):
        await sdk(gateway).responses.retrieve(answer.id)


async def test_redis_backend(make_gateway, redis_server, upstream):
    config = {
        "plugins": {
            "enabled": ["responses-store"],
            "responses-store": {"backend": "redis", "redis_url": redis_server.url},
        }
    }
    one, two = sdk(await make_gateway(config)), sdk(await make_gateway(config))  # two instances, one store
    made = await one.responses.create(model="chatonly/llama", input="Remember 7")
    await two.responses.create(model="chatonly/llama", input="Which number?", previous_response_id=made.id)
    assert texts(upstream.last.json["messages"])[:2] == [("user", "Remember 7"), ("assistant", "Hello from upstream")]
    assert (await two.responses.retrieve(made.id)).id == made.id
    await two.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        await one.responses.retrieve(made.id)


@pytest.mark.parametrize(
    "table,message",
    [
        ({"backend": "postgres"}, "backend"),
        ({"backend": "redis"}, "redis_url"),
        ({"retention_days": 0}, "retention_days"),
        ({"keep": 1}, "keep"),
        ({"commit_before_answer": "yes"}, "commit_before_answer"),
    ],
)
async def test_bad_settings_stop_startup(make_gateway, table, message):
    config = {"plugins": {"enabled": ["responses-store"], "responses-store": table}}
    with pytest.raises((ConfigError, ValueError)) as caught:
        await make_gateway(config)
    assert message in str(caught.value)


async def test_native_stream_keeps_hosted_tool_events_under_the_gateway_id(gateway, upstream):
    from tests.fakes import responses_chunks

    search = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}}
    extra = [
        {"type": "response.output_item.added", "output_index": 0, "item": {**search, "status": "in_progress"}},
        {"type": "response.web_search_call.completed", "output_index": 0, "item_id": "ws_1"},
        {"type": "response.output_item.done", "output_index": 0, "item": search},
    ]

    async def with_search(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        chunks = responses_chunks(["Par", "is"], body["model"])
        hosted = [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in extra]
        return await upstream.send_stream(request, chunks[:1] + hosted + chunks[1:])

    upstream.handler = with_search
    client = sdk(gateway)
    events = [
        e
        async for e in await client.responses.create(
            model="openai/gpt-4o", input="Capital of France?", tools=[{"type": "web_search"}], stream=True
        )
    ]
    kinds = [e.type for e in events]
    assert "response.web_search_call.completed" in kinds  # a hosted tool's events pass through
    final = events[-1].response
    assert final.id.startswith("gen_") and events[0].response.id == final.id and final.model == "openai/gpt-4o"
    assert final.output_text == "Paris"
    stored = await client.responses.retrieve(final.id)
    assert stored.output_text == "Paris"


async def test_with_client_keys_a_response_belongs_to_its_key(make_gateway, store_config):
    key_a, key_b = "sk-router-team-a-0123456789abcdef", "sk-router-team-b-0123456789abcdef"
    store_config["plugins"]["enabled"] = ["keys", *store_config["plugins"]["enabled"]]
    store_config["keys"] = {"team-a": {"key": key_a}, "team-b": {"key": key_b}}
    gateway = await make_gateway(store_config)
    a, b = sdk(gateway, key_a), sdk(gateway, key_b)
    made = await a.responses.create(model="chatonly/llama", input="secret plans")
    assert (await a.responses.retrieve(made.id)).id == made.id
    with pytest.raises(openai.NotFoundError):
        await b.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        await b.responses.input_items.list(made.id)
    with pytest.raises(openai.NotFoundError):
        await b.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        await b.responses.create(model="chatonly/llama", input="and?", previous_response_id=made.id)
    await a.responses.create(model="chatonly/llama", input="and?", previous_response_id=made.id)


async def test_a_store_that_cannot_be_read_refuses_the_follow_up(gateway, upstream, monkeypatch):
    """A 503, never the follow-up sent upstream without its history."""
    import sqlite3

    from router_plugins.responses_store.store import SQLiteStore

    client = sdk(gateway)
    made = await client.responses.create(model="chatonly/llama", input="My name is Ada.")
    sent = len(upstream.requests)

    def broken(self, response_id):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SQLiteStore, "_get", broken)
    monkeypatch.setattr(SQLiteStore, "_pending", lambda self, response_id: None)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.responses.create(model="chatonly/llama", input="Who am I?", previous_response_id=made.id)
    assert caught.value.status_code == 503 and caught.value.body["code"] == "store_unavailable"
    assert len(upstream.requests) == sent


class UsageNote:
    """A plugin that adds a usage detail, as planning does."""

    @hookimpl
    def pre_request(self, ctx):
        ctx.add_usage_detail("planning_usage_details", {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10})


async def test_the_client_gets_the_same_answer_with_the_store_rendered_once(make_gateway, store_config):
    """The store renders the response once for itself and the client; the usage added since is there too."""
    body = {"model": "chatonly/llama", "input": "Hi there", "metadata": {"k": "v"}}
    answers = []
    for enabled in (["responses-store"], []):
        store_config["plugins"]["enabled"] = enabled
        gateway = await make_gateway(store_config, plugins=[("usage-note", UsageNote())])
        answer = await (await gateway.post("/v1/responses", json=body)).json()
        answers.append((gateway, answer))
    (with_store, kept), (_, plain) = answers
    assert kept["usage"]["planning_usage_details"] == {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    volatile = ("id", "created_at", "completed_at", "output")
    assert {k: v for k, v in kept.items() if k not in volatile} == {k: v for k, v in plain.items() if k not in volatile}
    assert [{**i, "id": None} for i in kept["output"]] == [{**i, "id": None} for i in plain["output"]]
    stored = await (await with_store.get(f"/v1/responses/{kept['id']}")).json()
    assert stored["output"] == kept["output"] and stored["output_text"] == kept["output_text"]
