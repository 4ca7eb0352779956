"""The LLM scorer: its model's JSON decides when it answers in time; the local scorer otherwise."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest
from aiohttp import web

from tests.conftest import sdk
from tests.fakes import chat_completion

TAGS = [
    {"name": "billing", "description": "billing questions, refunds", "models": ["openai/big", "openai/small"]},
    {"name": "coding", "description": "code", "models": ["openai/coder"]},
]
CONFIG = {
    "plugins": {
        "enabled": ["redact", "llm-scorer", "scorer", "tags"],
        "llm-scorer": {"model": "chatonly/scorer", "timeout": 0.2},
    },
}


def scorer_answers(upstream, answer: dict | None, delay: float = 0.0):
    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if body["model"] == "scorer":
            await asyncio.sleep(delay)
            return web.json_response(
                chat_completion(orjson.dumps(answer).decode(), "scorer"), dumps=lambda o: orjson.dumps(o).decode()
            )
        return await upstream.default(request, body)

    upstream.handler = handler


async def ask(client, prompt="my card was billed twice"):
    return await client.chat.completions.with_raw_response.create(
        model="", messages=[{"role": "user", "content": prompt}], extra_body={"gateway": {"tags": TAGS}}
    )


@pytest.fixture
async def client(make_gateway):
    return sdk(await make_gateway(CONFIG))


async def test_llm_scores_decide_and_are_cached(client, upstream):
    scorer_answers(upstream, {"tag": "coding", "complexity": 0.95, "wants_image": False})
    raw = await ask(client)
    assert raw.headers["x-router-tag"] == "coding" and raw.headers["x-router-complexity"] == "0.95"
    await ask(client)
    assert [r.json["model"] for r in upstream.requests] == ["scorer", "coder", "coder"]  # second time: cache


async def test_timeout_falls_back_to_local_scorer(client, upstream):
    scorer_answers(upstream, {"tag": "coding", "complexity": 0.95}, delay=1.0)
    raw = await ask(client)
    assert raw.headers["x-router-tag"] == "billing"  # the local scorer's answer
    assert upstream.last.json["model"] == "small"


async def test_nonsense_falls_back(client, upstream):
    scorer_answers(upstream, {"hello": 1})
    raw = await ask(client)
    assert raw.headers["x-router-tag"] == "billing"


async def test_each_gateway_has_its_own_cache(make_gateway, upstream):
    scorer_answers(upstream, {"tag": "coding", "complexity": 0.95})
    await ask(sdk(await make_gateway(CONFIG)))
    await ask(sdk(await make_gateway(CONFIG)))  # a new app: not served from the first one's cache
    assert [r.json["model"] for r in upstream.requests] == ["scorer", "coder", "scorer", "coder"]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"model": "chatonly/scorer", "timeout": 0}, "plugins.llm-scorer.timeout"),
        ({"model": "chatonly/scorer", "cache_size": "big"}, "plugins.llm-scorer.cache_size"),
        ({"model": 42}, "plugins.llm-scorer.model"),
        ({"model": "chatonly/scorer", "timeuot": 1}, "plugins.llm-scorer.timeuot"),
    ],
)
async def test_a_bad_table_stops_startup(make_gateway, table, key):
    with pytest.raises(Exception, match=re.escape(key)):  # the core may wrap it; the message names the key
        await make_gateway({"plugins": {"enabled": ["llm-scorer", "scorer"], "llm-scorer": table}})
