"""request_finished: one Outcome per request, answered or refused, streamed or not; x-request-id on every answer."""

from __future__ import annotations

import asyncio
import logging

import openai
import orjson
import pytest

from router_core import Call, Message, Outcome, hookimpl
from tests.conftest import JSON, sdk
from tests.fakes import chat_chunks, failing

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


class Finished:
    """A throwaway plugin that records every Outcome."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, Outcome]] = []
        self.arrived = asyncio.Event()

    @hookimpl
    def request_finished(self, ctx, outcome):
        self.seen.append((ctx, outcome))
        self.arrived.set()

    async def one(self) -> Outcome:
        """The single Outcome of the single request (the hook runs just after the answer is sent)."""
        await asyncio.wait_for(self.arrived.wait(), 3)
        await asyncio.sleep(0.05)  # a second call would have arrived by now
        assert len(self.seen) == 1, self.seen
        return self.seen[0][1]


@pytest.fixture
def finished() -> Finished:
    return Finished()


async def test_chat_answer(make_gateway, finished):
    client = await make_gateway(plugins=[("finished", finished)])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI}, headers={"x-request-id": "abc-1"})
    assert resp.status == 200
    assert resp.headers["x-request-id"] == "abc-1"
    out = await finished.one()
    assert out.request_id == "abc-1" and finished.seen[0][0].request_id == "abc-1"
    assert (out.status, out.endpoint, out.stream) == (200, "chat", False)
    assert (out.model_requested, out.model, out.provider, out.fallbacks) == (
        "openai/gpt-4o",
        "openai/gpt-4o",
        "openai",
        0,
    )
    assert (out.input_tokens, out.output_tokens, out.planner_tokens) == (11, 7, 0)
    assert out.error_code is None
    assert 0 < out.first_byte_ms <= out.latency_ms


async def test_sdk_gets_a_generated_request_id(make_gateway, finished):
    client = sdk(await make_gateway(plugins=[("finished", finished)]))
    raw = await client.responses.with_raw_response.create(model="chatonly/x", input="hi")
    out = await finished.one()
    assert raw.headers["x-request-id"] == out.request_id and len(out.request_id) == 32
    assert (out.endpoint, out.provider, out.input_tokens, out.output_tokens) == ("responses", "chatonly", 11, 7)


@pytest.mark.parametrize("offered", ["has space", "x" * 129, "tab\there", "é"])
async def test_insane_request_id_is_replaced(make_gateway, finished, offered):
    client = await make_gateway(plugins=[("finished", finished)])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI}, headers={"x-request-id": offered})
    out = await finished.one()
    assert resp.headers["x-request-id"] == out.request_id != offered


@pytest.mark.parametrize(("path", "model", "endpoint"), [(CHAT, "openai/gpt-4o", "chat"), (CHAT, "chatonly/x", "chat")])
async def test_streamed_chat_counts_tokens_after_the_last_byte(make_gateway, finished, path, model, endpoint):
    client = sdk(await make_gateway(plugins=[("finished", finished)]))
    stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from upstream"
    out = await finished.one()
    assert (out.endpoint, out.stream, out.status, out.error_code) == (endpoint, True, 200, None)
    assert (out.input_tokens, out.output_tokens) == (5, 4)
    assert out.first_byte_ms is not None and out.first_byte_ms <= out.latency_ms


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/x"])
async def test_streamed_responses_counts_tokens(make_gateway, finished, model):
    client = sdk(await make_gateway(plugins=[("finished", finished)]))
    stream = await client.responses.create(model=model, input="hi", stream=True)
    events = [e.type async for e in stream]
    assert events[-1] == "response.completed"
    out = await finished.one()
    assert (out.endpoint, out.stream, out.provider) == ("responses", True, model.split("/")[0])
    assert out.input_tokens > 0 and out.output_tokens > 0


async def test_client_hanging_up_mid_stream(make_gateway, upstream, finished):
    async def endless(request, body):
        return await upstream.send_stream(request, chat_chunks(["tick"] * 200, body["model"]), delay=0.02)

    upstream.handler = endless
    client = await make_gateway(plugins=[("finished", finished)])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "stream": True})
    await resp.content.readuntil(b"tick")
    resp.close()
    out = await finished.one()
    assert (out.status, out.stream, out.error_code) == (200, True, "client_closed")


async def test_refused_before_a_context_exists(make_gateway, finished):
    client = await make_gateway(plugins=[("finished", finished)])
    resp = await client.post(CHAT, data=b"{not json", headers={**JSON, "x-request-id": "bad-json-1"})
    assert resp.status == 400 and resp.headers["x-request-id"] == "bad-json-1"
    out = await finished.one()
    assert finished.seen[0][0] is None
    assert (out.status, out.endpoint, out.error_code, out.model) == (400, "chat", "invalid_json", None)


async def test_unauthorized_and_unknown_paths(make_gateway, finished):
    client = await make_gateway({"server": {"api_keys": ["sk-router-literal"]}}, plugins=[("finished", finished)])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status == 401 and resp.headers["x-request-id"]
    out = await finished.one()
    assert (out.status, out.error_code, out.key_name) == (401, "invalid_api_key", None)
    finished.seen.clear()
    finished.arrived.clear()
    resp = await client.get("/nowhere", headers={"Authorization": "Bearer sk-router-literal"})
    assert resp.status == 404 and resp.headers["x-request-id"]
    out = await finished.one()
    assert (out.status, out.endpoint, out.error_code) == (404, "unknown", "not_found")


async def test_upstream_failure(make_gateway, upstream, finished):
    upstream.handler = failing(500)
    client = await make_gateway(plugins=[("finished", finished)])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status >= 500
    out = await finished.one()
    assert out.status == resp.status and out.provider is None and out.error_code
    assert out.model == "openai/gpt-4o"


class Noting:
    """Reports savings, a tag, a key name and makes a side call, as plugins do."""

    @hookimpl
    async def pre_request(self, ctx):
        ctx.note_saved("history", 120)
        ctx.note_saved("tools", 30)
        ctx.note_saved("history", 5)
        ctx.tag = "code"
        ctx.key_name = "team-a"
        await ctx.complete(Call(dialect="chat", model="chatonly/side", messages=[Message.of_text("user", "plan it")]))


async def test_what_plugins_note_reaches_the_outcome(make_gateway, finished):
    client = await make_gateway(
        {"plugins": {"enabled": ["redact"]}, "gateway": {"redact": {"email": True}}},
        plugins=[("noting", Noting()), ("finished", finished)],
    )
    messages = [{"role": "user", "content": "mail a@example.com or b@example.org"}]
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": messages})
    assert resp.status == 200
    assert resp.headers["x-router-tokens-saved"] == "history=125,tools=30"
    out = await finished.one()
    assert out.tokens_saved == {"history": 125, "tools": 30}
    assert out.redactions == {"email": 2}
    assert (out.tag, out.key_name, out.planner_tokens) == ("code", "team-a", 18)


class Broken:
    @hookimpl
    async def request_finished(self, outcome):
        raise RuntimeError("secret text from the prompt")


async def test_a_failing_impl_never_changes_the_answer(make_gateway, finished, caplog):
    client = sdk(await make_gateway(plugins=[("broken", Broken()), ("finished", finished)]))
    with caplog.at_level(logging.WARNING):
        answer = await client.chat.completions.create(model="openai/gpt-4o", messages=HI)
        await finished.one()
    assert answer.choices[0].message.content == "Hello from upstream"
    assert "RuntimeError" in caplog.text and "secret text" not in caplog.text


async def test_sdk_error_carries_request_id(make_gateway, finished):
    client = sdk(await make_gateway(plugins=[("finished", finished)]))
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nobody/x", messages=HI)
    out = await finished.one()
    assert info.value.response.headers["x-request-id"] == out.request_id
    assert out.status == 404 and out.error_code == "model_not_found"


async def test_no_impl_no_cost(make_gateway):
    client = await make_gateway()
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status == 200 and resp.headers["x-request-id"]
    assert orjson.loads(await resp.read())["choices"]


async def test_messages_ingress_reports_its_endpoint(make_gateway, finished):
    client = await make_gateway({"plugins": {"enabled": ["anthropic"]}}, plugins=[("finished", finished)])
    body = {"model": "echo/claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert resp.status == 200, await resp.text()
    out = await finished.one()
    assert (out.endpoint, out.provider, out.model) == ("messages", "echo", "echo/claude")
    assert resp.headers["x-request-id"] == out.request_id
