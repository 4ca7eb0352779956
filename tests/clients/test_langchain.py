"""langchain-openai's structured output, over the Responses API, on Chat-only and Anthropic providers."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.fakes import start_fake
from tests.plugins.test_anthropic import TEXT_REPLY, Claude

langchain_openai = pytest.importorskip("langchain_openai")

KEY = "sk-router-test"


class Place(BaseModel):
    city: str
    country: str


def chat_model(client, model: str):
    return langchain_openai.ChatOpenAI(
        model=model, base_url=str(client.make_url("/v1")), api_key=KEY, use_responses_api=True, max_retries=0
    )


async def test_with_structured_output_over_chat_only(gateway, upstream):
    upstream.text = '{"city": "Paris", "country": "France"}'
    place = await chat_model(gateway, "chatonly/llama").with_structured_output(Place).ainvoke("Where is the Louvre?")
    assert place == Place(city="Paris", country="France")
    assert upstream.last.json["response_format"]["json_schema"]["name"] == "Place"


async def test_with_structured_output_over_claude(make_gateway, aiohttp_server):
    from router_plugins.anthropic import messages

    claude = Claude(await start_fake(aiohttp_server))
    claude.reply = {
        **TEXT_REPLY,
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_9",
                "name": messages.STRUCTURED_TOOL,
                "input": {"city": "Rome", "country": "Italy"},
            }
        ],
        "stop_reason": "tool_use",
    }
    gateway = await make_gateway(
        {
            "plugins": {"enabled": ["anthropic"]},
            "providers": {"anthropic": {"kind": "anthropic", "base_url": claude.url, "api_key": "sk-ant-x"}},
        }
    )
    llm = chat_model(gateway, "anthropic/claude-sonnet-4")
    assert await llm.with_structured_output(Place).ainvoke("Where is the Colosseum?") == Place(
        city="Rome", country="Italy"
    )
    assert claude.last.json["tool_choice"] == {"type": "tool", "name": messages.STRUCTURED_TOOL}
