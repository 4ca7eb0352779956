"""Planning through HTTP: the planner's plan reaches the executor above the threshold, not below."""

from __future__ import annotations

import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import sdk
from tests.fakes import chat_completion

PLAN = "1. Split the problem. 2. Check edge cases."
HARD = "Prove that every group of order p^2, with p prime, is abelian, and classify such groups up to isomorphism."
EASY = "what is 2 + 2"
MODEL = "openai/executor:planning:chatonly/planner"
CONFIG = {
    "plugins": {"enabled": ["scorer", "planning"]},
    "models": {"chatonly/planner": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}},
}


@pytest.fixture
def planner(upstream):
    """The fake answers the planner's call with a plan (with usage) and everything else as usual."""

    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if body["model"] == "planner":
            return web.json_response(chat_completion(PLAN, "planner"), dumps=lambda o: orjson.dumps(o).decode())
        return await upstream.default(request, body)

    upstream.handler = handler
    return upstream


def executor_request(upstream):
    return next(r.json for r in upstream.requests if r.json["model"] == "executor")


EXPECTED_USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "cost": (11 * 1.0 + 7 * 4.0) / 1e6}


async def test_chat_above_threshold_plans(make_gateway, planner):
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": HARD}])
    planner_call = planner.requests[0].json
    assert planner_call["model"] == "planner" and "planner" in planner_call["messages"][0]["content"]
    assert planner_call["messages"][-1]["content"] == HARD
    sent = executor_request(planner)
    assert sent["messages"][0]["role"] == "system" and PLAN in sent["messages"][0]["content"]
    assert answer.usage.model_extra["planning_usage_details"] == pytest.approx(EXPECTED_USAGE)
    assert answer.usage.total_tokens == 18  # the executor's own usage


async def test_responses_plan_goes_into_instructions(make_gateway, planner):
    client = sdk(await make_gateway(CONFIG))
    answer = await client.responses.create(model=MODEL, input=HARD, instructions="Be precise.")
    sent = executor_request(planner)
    assert sent["instructions"].startswith("Be precise.") and PLAN in sent["instructions"]
    assert answer.usage.model_extra["planning_usage_details"] == pytest.approx(EXPECTED_USAGE)


async def test_below_threshold_executor_alone(make_gateway, planner):
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": EASY}])
    assert [r.json["model"] for r in planner.requests] == ["executor"]
    assert "planning_usage_details" not in (answer.usage.model_extra or {})


async def test_trigger_score_from_gateway(make_gateway, planner):
    client = sdk(await make_gateway(CONFIG))
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": EASY}], extra_body={"gateway": {"planningTriggerScore": 0.0}}
    )
    assert [r.json["model"] for r in planner.requests] == ["planner", "executor"]


@pytest.mark.parametrize("dialect", ["chat", "responses"])
async def test_streaming_carries_planning_usage(make_gateway, planner, dialect):
    client = sdk(await make_gateway(CONFIG))
    if dialect == "chat":
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": HARD}],
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage async for c in stream if c.usage][-1]
    else:
        events = [e async for e in await client.responses.create(model=MODEL, input=HARD, stream=True)]
        usage = events[-1].response.usage
    assert usage.model_extra["planning_usage_details"] == pytest.approx(EXPECTED_USAGE)
    assert PLAN in orjson.dumps(executor_request(planner)).decode()


async def test_planner_failure_fails_open(make_gateway, upstream):
    async def handler(request, body):
        if body["model"] == "planner":
            return web.json_response({"error": {"message": "down"}}, status=500)
        return await upstream.default(request, body)

    upstream.handler = handler
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": HARD}])
    assert answer.choices[0].message.content == "Hello from upstream"
    assert upstream.last.json["messages"] == [{"role": "user", "content": HARD}]


@pytest.mark.parametrize("model", ["openai/x:planning:", ":planning:openai/y", "openai/x:planning:nope"])
async def test_malformed_planning_string_is_400(make_gateway, model):
    client = sdk(await make_gateway(CONFIG))
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model=model, messages=[{"role": "user", "content": HARD}])
    assert err.value.body["param"] == "model"


async def test_trigger_out_of_range_is_400(make_gateway):
    client = sdk(await make_gateway(CONFIG))
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": EASY}],
            extra_body={"gateway": {"planningTriggerScore": 2}},
        )
    assert err.value.body["param"] == "gateway.planningTriggerScore"
