"""Redaction reaches every string the gateway forwards, modelled or not (fails closed)."""

from __future__ import annotations

import orjson

from tests.conftest import sdk

EMAIL = "jane.roe@example.org"


def redact_email() -> dict:
    return {"plugins": {"enabled": ["redact"]}, "gateway": {"redact": {"email": True}}}


async def test_unmodelled_items_params_and_tools_are_redacted(make_gateway, upstream):
    client = sdk(await make_gateway(redact_email()))
    await client.responses.create(
        model="openai/gpt-4o",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": f"hi {EMAIL}"}]},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": f"sent to {EMAIL}"},
            {"role": "user", "content": [{"type": "some_future_part", "text": f"also {EMAIL}"}]},
        ],
        tools=[{"type": "function", "name": "mail", "description": f"mails {EMAIL}", "parameters": {"type": "object"}}],
        metadata={"owner": EMAIL},
        extra_body={"user": EMAIL},
    )
    sent = orjson.dumps(upstream.last.json).decode()
    assert EMAIL not in sent
    assert sent.count("ja****oe@ex****le.org") == 6


async def test_media_bytes_and_ids_are_left_alone(make_gateway, upstream):
    image = "data:image/png;base64,amFuZS5yb2VAZXhhbXBsZS5vcmc="
    client = sdk(await make_gateway(redact_email()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": EMAIL}, {"type": "image_url", "image_url": {"url": image}}],
            }
        ],
    )
    parts = upstream.last.json["messages"][0]["content"]
    assert parts[0]["text"] != EMAIL
    assert parts[1]["image_url"]["url"] == image
