"""Redaction reaches every string the gateway forwards, by position, never by key name.

Each test puts an e-mail, an SSN and a card number in one place of a request and asserts,
on what the fake upstream received, that none of them got through — in any spelling
(separators, full-width digits and zero-width characters are folded before comparing).
"""

from __future__ import annotations

import re
import unicodedata

import orjson
import pytest
from aiohttp import web

from tests.conftest import sdk
from tests.fakes import chat_completion

EMAIL = "jane.roe@example.org"
SSN = "219-09-9999"
CARD = "4111 1111 1111 1111"
VALUES = (EMAIL, SSN, CARD)
IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
ON = {"email": True, "ssn": True, "credit_card": True, "phone": True, "token": True}


def config(**extra) -> dict:
    return {"plugins": {"enabled": ["redact"]}, "gateway": {"redact": ON}, **extra}


def compact(text: str) -> str:
    """Letters and digits only, after Unicode folding and un-escaping: how a leak is looked for."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)
    return "".join(ch for ch in text if ch.isalnum()).lower()


def assert_no_leak(upstream, values=VALUES) -> str:
    body = orjson.dumps([r.json for r in upstream.requests]).decode()
    seen = compact(body)
    leaked = [v for v in values if compact(v) in seen]
    assert leaked == [], body
    return body


# ---------------------------------------------------------------- chat positions


def tool_with(value: str) -> dict:
    """A tool whose schema uses the key names once skipped (id, url, data, format, type) — all text here."""
    return {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": f"finds {value}",
            "parameters": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": f"e.g. {value}", "default": value},
                    "url": {"type": "string", "enum": [value]},
                    "data": {"type": "string", "examples": [value]},
                    "format": {"type": "string", "const": value},
                    "type": {"type": "string", "title": value},
                    value: {"type": "string"},  # a property named by the value: keys are text
                },
            },
        },
    }


@pytest.mark.parametrize("value", VALUES)
async def test_chat_every_position(make_gateway, upstream, value):
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {"role": "system", "content": f"owner {value}"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"see {value}"},
                    {"type": "image_url", "image_url": {"url": f"https://img.example.com/{value}.png"}},
                    {"type": "image_url", "image_url": {"url": IMAGE}},
                    {
                        "type": "file",
                        "file": {"filename": f"{value}.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": value,
                        "type": "function",
                        "function": {"name": "lookup", "arguments": orjson.dumps({"id": value}).decode()},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": value, "content": f"found {value}"},
        ],
        tools=[tool_with(value)],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "out",
                "schema": {"type": "object", "properties": {"id": {"type": "string", "default": value}}},
            },
        },
        metadata={"id": value, "url": value, "data": value, "format": value, "type": value},
        extra_body={"user": value},
    )
    body = assert_no_leak(upstream, [value])
    assert IMAGE in body  # an inline image's base64 payload is opaque: untouched


async def test_chat_message_name_and_data_url_text(make_gateway, upstream):
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {
                "role": "user",
                "name": "jane",
                "content": [
                    {"type": "text", "text": "read this"},
                    {"type": "image_url", "image_url": {"url": "data:text/plain,mail%20jane.roe%40example.org"}},
                ],
            },
        ],
    )
    assert_no_leak(upstream, [EMAIL])


async def test_upstream_ids_and_enums_stay_as_they_are(make_gateway, upstream):
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_Ab12Cd34Ef56", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_Ab12Cd34Ef56", "content": "ok"},
        ],
    )
    sent = upstream.last.json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == "call_Ab12Cd34Ef56"


# ---------------------------------------------------------------- responses positions


@pytest.mark.parametrize("value", VALUES)
async def test_responses_every_position(make_gateway, upstream, value):
    client = sdk(await make_gateway(config()))
    await client.responses.create(
        model="openai/gpt-4o",
        instructions=f"owner {value}",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": f"hi {value}"},
                    {"type": "input_image", "image_url": f"https://img.example.com/{value}.png"},
                    {"type": "input_image", "image_url": IMAGE},
                    {
                        "type": "input_file",
                        "filename": f"{value}.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0xLjQK",
                    },
                ],
            },
            {
                "type": "function_call",
                "call_id": value,
                "name": "lookup",
                "arguments": orjson.dumps({"url": value}).decode(),
            },
            {"type": "function_call_output", "call_id": value, "output": f"found {value}"},
            {"type": "custom_tool_call_output", "call_id": value, "output": value},
        ],
        tools=[{"type": "function", **tool_with(value)["function"]}],
        text={
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {
                    "type": "object",
                    "properties": {"id": {"type": "string", "description": value}, "format": {"const": value}},
                },
            }
        },
        metadata={"id": value},
    )
    body = assert_no_leak(upstream, [value])
    assert IMAGE in body


# ---------------------------------------------------------------- side calls


async def test_llm_scorer_sees_redacted_prompt_and_tag_descriptions(make_gateway, upstream):
    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if body["model"] == "scorer":
            answer = orjson.dumps({"tag": "billing", "complexity": 0.5}).decode()
            return web.json_response(chat_completion(answer, "scorer"))
        return await upstream.default(request, body)

    upstream.handler = handler
    tags = [
        {"name": "billing", "description": f"refunds; escalate to {EMAIL}, ssn {SSN}", "models": ["openai/big"]},
        {"name": "coding", "description": f"code, card {CARD}", "models": ["openai/coder"]},
    ]
    cfg = config()
    cfg["plugins"] = {"enabled": ["redact", "llm-scorer", "scorer", "tags"], "llm-scorer": {"model": "chatonly/scorer"}}
    client = sdk(await make_gateway(cfg))
    await client.chat.completions.create(
        model="",
        messages=[{"role": "user", "content": f"refund {CARD} for {EMAIL}"}],
        extra_body={"gateway": {"tags": tags}},
    )
    assert [r.json["model"] for r in upstream.requests] == ["scorer", "big"]
    assert_no_leak(upstream)


async def test_planner_sees_the_redacted_call(make_gateway, upstream):
    hard = "Implement a thread-safe LRU cache in Rust with TTL expiry, lock-free reads and unit tests; explain memory ordering. "
    cfg = config()
    cfg["plugins"] = {"enabled": ["redact", "scorer", "planning"]}
    client = sdk(await make_gateway(cfg))
    await client.chat.completions.create(
        model="openai/executor:planning:chatonly/planner",
        messages=[{"role": "user", "content": f"{hard} Mail {EMAIL}, ssn {SSN}, card {CARD}."}],
        extra_body={"gateway": {"planningTriggerScore": 0.0}},
    )
    assert {r.json["model"] for r in upstream.requests} == {"planner", "executor"}
    assert_no_leak(upstream)


async def test_image_prompt_is_redacted(make_gateway, upstream):
    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if request.path == "/v1/images/generations":
            return web.json_response({"created": 1, "data": [{"b64_json": "aW1hZ2U="}]})
        return await upstream.default(request, body)

    upstream.handler = handler
    cfg = config(gateway={"redact": ON, "imageGenerationModel": "openai/gpt-image-1"})
    cfg["plugins"] = {"enabled": ["redact", "scorer", "image"]}
    client = sdk(await make_gateway(cfg))
    await client.responses.create(model="openai/gpt-4o", input=f"draw a poster with {EMAIL} and {SSN} on it")
    assert upstream.last.path == "/v1/images/generations"
    assert_no_leak(upstream, [EMAIL, SSN])


# ---------------------------------------------------------------- evasion


EVASIONS = {
    "no-break spaces": "card 4111\u00a01111\u00a01111\u00a01111",
    "full-width digits": "ssn ２１９-０９-９９９９",
    "arabic-indic digits": "card ٤١١١ ١١١١ ١١١١ ١١١١",
    "zero-width inside": "mail jane.roe\u200b@exam\u200cple.org, ssn 219-09\u200b-9999",
    "en-dash separators": "ssn 219\u201309\u20139999, card 4111\u20131111\u20131111\u20131111",
    "full-width email": "ｊａｎｅ．ｒｏｅ＠ｅｘａｍｐｌｅ．ｏｒｇ",
    "url-encoded": "https://example.com/?to=jane.roe%40example.org&ssn=219%2D09%2D9999",
    "json escapes": '{"to": "jane.roe\\u0040example.org", "card": "4111\\u00201111\\u00201111\\u00201111"}',
    "soft hyphen": "card 4111\u00ad1111\u00ad1111\u00ad1111",
}


@pytest.mark.parametrize("text", EVASIONS.values(), ids=EVASIONS.keys())
async def test_formatting_does_not_evade(make_gateway, upstream, text):
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {"role": "user", "content": text},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_Ab12Cd34",
                        "type": "function",
                        "function": {"name": "f", "arguments": orjson.dumps({"v": text}).decode()},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_Ab12Cd34", "content": "ok"},
        ],
    )
    assert_no_leak(upstream, [v for v in VALUES if compact(v) in compact(text)])


@pytest.mark.parametrize(
    "parts", [["mail jane.roe@exa", "mple.org now"], ["ssn 219-0", "9-9999"], ["card 4111 1111 ", "1111 1111 ok"]]
)
async def test_a_value_split_across_text_parts_is_found(make_gateway, upstream, parts):
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": [{"type": "text", "text": p} for p in parts]}]
    )
    assert_no_leak(upstream, [v for v in VALUES if compact(v) in compact("".join(parts))])
    assert len(upstream.last.json["messages"][0]["content"]) == 2


@pytest.mark.parametrize("position", [0, 16_380, 40_000, 199_000])
async def test_big_texts_are_searched_everywhere(make_gateway, upstream, position):
    filler = ("The quarterly report covers revenue, churn and hiring; see section 4.2.1 and 2024-03-15. " * 2400)[
        :200_000
    ]
    text = filler[:position] + f" {EMAIL} {SSN} {CARD} +44 20 7946 0958 " + filler[position:]
    client = sdk(await make_gateway(config()))
    await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": text}])
    assert_no_leak(upstream, [*VALUES, "+44 20 7946 0958"])
