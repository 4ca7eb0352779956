"""A held-out client check: clients the test suite does not use, through the gateway, to Chat-only and Claude upstreams.

    .venv/bin/pip install "pydantic-ai-slim[openai]" instructor   # not in the test extra
    .venv/bin/python scripts/heldout_clients.py

The upstreams are the strict fakes of the test suite (an unknown field is a 400) answering
from the request's own schema: a structured-output request gets JSON that fits its schema,
a forced tool gets a call whose arguments fit its parameters, a tool result gets text. So
each check passes only if the client's request survived translation with its schema intact.
Prints one line per check and exits non-zero if any failed.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

sys.path.insert(0, ".")
from router_core.app import create_app
from router_core.config import parse_config
from tests.fakes import FakeUpstream, chat_completion, fake_app

KEY = "sk-router-heldout-key-01"


class City(BaseModel):
    name: str
    country: str
    population: int


def sample(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value that fits ``schema`` (enough of JSON Schema for what clients send)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return sample(defs[schema["$ref"].split("/")[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return sample(schema[key][0], defs)
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {k: sample(v, defs) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample(schema.get("items") or {}, defs)]
    return {"integer": 7, "number": 1.5, "boolean": True, "null": None}.get(kind, "x")


async def chat_upstream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    fmt = body.get("response_format") or {}
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    answered = any(m.get("role") == "tool" for m in body["messages"])
    answer = chat_completion("", body["model"])
    message = answer["choices"][0]["message"]
    forced = choice == "required" or isinstance(choice, dict)  # a forced tool wins over a format, as at OpenAI
    if fmt.get("type") == "json_schema" and not forced:
        message["content"] = orjson.dumps(sample(fmt["json_schema"]["schema"])).decode()
    elif tools and not answered and (forced or len(tools) == 1):
        fn = (
            tools[0]["function"]
            if not isinstance(choice, dict)
            else next(t["function"] for t in tools if t["function"]["name"] == choice["function"]["name"])
        )
        arguments = orjson.dumps(sample(fn.get("parameters") or {})).decode()
        message.update(
            content=None,
            tool_calls=[{"id": "call_1", "type": "function", "function": {"name": fn["name"], "arguments": arguments}}],
        )
        answer["choices"][0]["finish_reason"] = "tool_calls"
    else:
        message["content"] = "Done." if answered else "Hello."
    return web.json_response(answer)


async def claude_upstream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    choice = body.get("tool_choice") or {}
    answered = any(
        isinstance(b, dict) and b.get("type") == "tool_result"
        for m in body["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
    )
    tools = body.get("tools") or []
    content: list[dict[str, Any]]
    if tools and not answered and (choice.get("type") in ("tool", "any") or len(tools) == 1):
        tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
        content, stop = (
            [{"type": "tool_use", "id": "toolu_1", "name": tool["name"], "input": sample(tool["input_schema"])}],
            "tool_use",
        )
    else:
        content, stop = [{"type": "text", "text": "Done." if answered else "Hello."}], "end_turn"
    return web.json_response(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


async def start(handler) -> tuple[FakeUpstream, TestServer]:
    fake = FakeUpstream(handler=handler)
    server = TestServer(fake_app(fake))
    await server.start_server()
    fake.url = str(server.make_url("/v1"))
    return fake, server


async def pydantic_ai_native_output(base_url: str, model: str) -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=base_url, api_key=KEY)
    agent = Agent(OpenAIResponsesModel(model, provider=provider), output_type=NativeOutput(City))
    result = await agent.run("Largest city in Japan?")
    assert isinstance(result.output, City), result.output


async def pydantic_ai_tool_output(base_url: str, model: str) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=base_url, api_key=KEY)
    agent = Agent(OpenAIResponsesModel(model, provider=provider), output_type=City)  # output as a tool call
    result = await agent.run("Largest city in Japan?")
    assert isinstance(result.output, City), result.output


async def pydantic_ai_function_tool(base_url: str, model: str) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    called: list[str] = []
    provider = OpenAIProvider(base_url=base_url, api_key=KEY)
    agent = Agent(OpenAIResponsesModel(model, provider=provider))

    @agent.tool_plain
    def population(city: str) -> int:
        """Population of a city."""
        called.append(city)
        return 37_000_000

    result = await agent.run("How many people live in Tokyo?")
    assert called and result.output == "Done.", (called, result.output)


async def instructor_responses_tools(base_url: str, model: str) -> None:
    import instructor
    from openai import AsyncOpenAI

    client = instructor.from_openai(AsyncOpenAI(base_url=base_url, api_key=KEY), mode=instructor.Mode.RESPONSES_TOOLS)
    city = await client.responses.create(model=model, input="Largest city in Japan?", response_model=City)
    assert isinstance(city, City), city


async def openai_stream_parse(base_url: str, model: str) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    parsed = await client.responses.parse(model=model, input="Largest city in Japan?", text_format=City)
    assert isinstance(parsed.output_parsed, City)
    await client.close()


CHECKS = [
    pydantic_ai_native_output,
    pydantic_ai_tool_output,
    pydantic_ai_function_tool,
    instructor_responses_tools,
    openai_stream_parse,
]


async def main() -> int:
    chat, chat_server = await start(chat_upstream)
    claude, claude_server = await start(claude_upstream)
    config = parse_config(
        {
            "server": {"api_keys": [KEY]},
            "plugins": {"enabled": ["anthropic"]},
            "providers": {
                "chatonly": {"kind": "openai-chat", "base_url": chat.url, "api_key": "sk-upstream-1"},
                "anthropic": {"kind": "anthropic", "base_url": claude.url, "api_key": "sk-ant-upstream-1"},
            },
        },
        env={},
    )
    gateway = TestClient(TestServer(create_app(config)))
    await gateway.start_server()
    base_url = str(gateway.make_url("/v1"))
    failed = 0
    for model in ("chatonly/llama", "anthropic/claude-sonnet-4"):
        for check in CHECKS:
            try:
                await check(base_url, model)
                print(f"pass  {model:28} {check.__name__}")
            except Exception as exc:  # a check's failure is the report
                failed += 1
                print(f"FAIL  {model:28} {check.__name__}: {type(exc).__name__}: {str(exc)[:300]}")
                if "-v" in sys.argv:
                    traceback.print_exc()
    await gateway.close()
    await chat_server.close()
    await claude_server.close()
    print(f"{len(CHECKS) * 2 - failed} of {len(CHECKS) * 2} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
