"""mediaOptimization: earlier media the prompt does not need becomes a marker; referenced media stays."""

from __future__ import annotations

import base64
import struct
import zlib

from tests.conftest import sdk
from tests.plugins.context_setup import context_gateway


def png(width: int, height: int) -> str:
    """A real (grey) PNG as a data URL, so the token estimate can read its size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    raw += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(raw).decode()


SCREENSHOT = png(1024, 1024)  # 85 + 4 tiles × 170 = 765 tokens at OpenAI's rates


def screenshot_turns() -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here is a screenshot of the error on our login page."},
                {"type": "image_url", "image_url": {"url": SCREENSHOT}},
            ],
        },
        {"role": "assistant", "content": "The page shows a 502 Bad Gateway from nginx."},
    ]


async def chat(client, messages, gateway):
    return await sdk(client).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, extra_body={"gateway": gateway}
    )


def saved(raw) -> dict[str, int]:
    return {k: int(v) for k, v in (kv.split("=") for kv in raw.headers["x-router-tokens-saved"].split(","))}


async def test_old_screenshot_removed_for_a_textual_question(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    messages = [*screenshot_turns(), {"role": "user", "content": "What is the capital of Australia?"}]
    raw = await chat(client, messages, {"mediaOptimization": True})
    first = upstream.last.json["messages"][0]["content"]
    assert first[1] == {"type": "text", "text": "[image removed: not needed for this question]"}
    assert first[0]["text"].startswith("Here is a screenshot")
    assert 750 <= saved(raw)["media"] < 765


async def test_screenshot_kept_when_the_question_refers_to_it(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    for prompt in ["What does the error in the screenshot mean?", "Can you read the small text in that image?"]:
        messages = [*screenshot_turns(), {"role": "user", "content": prompt}]
        raw = await chat(client, messages, {"mediaOptimization": True})
        assert upstream.last.json["messages"][0]["content"][1]["image_url"]["url"] == SCREENSHOT
        assert "x-router-tokens-saved" not in raw.headers


async def test_media_in_the_latest_turn_is_never_removed(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    latest = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Tell me a joke."},
            {"type": "image_url", "image_url": {"url": SCREENSHOT}},
        ],
    }
    await chat(client, [*screenshot_turns(), latest], {"mediaOptimization": True})
    sent = upstream.last.json["messages"]
    assert sent[0]["content"][1]["type"] == "text"
    assert sent[-1]["content"][1]["image_url"]["url"] == SCREENSHOT


async def test_off_by_default(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    messages = [*screenshot_turns(), {"role": "user", "content": "What is the capital of Australia?"}]
    await chat(client, messages, {"mediaOptimization": False})
    assert upstream.last.json["messages"][0]["content"][1]["image_url"]["url"] == SCREENSHOT
    await sdk(client).chat.completions.create(model="openai/gpt-4o", messages=messages)
    assert upstream.last.json["messages"][0]["content"][1]["image_url"]["url"] == SCREENSHOT


async def test_files_and_audio_by_name_and_kind(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    pdf = {
        "type": "file",
        "file": {"filename": "q3-report.pdf", "file_data": "data:application/pdf;base64," + "QUJD" * 4000},
    }
    audio = {"type": "input_audio", "input_audio": {"data": "UklG" * 8000, "format": "mp3"}}
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Two attachments for later."}, pdf, audio]},
        {"role": "assistant", "content": "Got them."},
    ]
    raw = await chat(
        client,
        [*history, {"role": "user", "content": "Summarise q3-report.pdf in two lines."}],
        {"mediaOptimization": True},
    )
    parts = upstream.last.json["messages"][0]["content"]
    assert parts[1]["type"] == "file" and parts[2] == {
        "type": "text",
        "text": "[audio removed: not needed for this question]",
    }
    assert saved(raw)["media"] > 0
    await chat(
        client,
        [*history, {"role": "user", "content": "Transcribe the recording, please."}],
        {"mediaOptimization": True},
    )
    parts = upstream.last.json["messages"][0]["content"]
    assert parts[1] == {"type": "text", "text": "[file q3-report.pdf removed: not needed for this question]"}
    assert parts[2]["type"] == "input_audio"


async def test_threshold_from_the_plugin_table(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media", settings={"media": {"threshold": 0.0}})
    messages = [*screenshot_turns(), {"role": "user", "content": "What is the capital of Australia?"}]
    await chat(client, messages, {"mediaOptimization": True})
    assert upstream.last.json["messages"][0]["content"][1]["image_url"]["url"] == SCREENSHOT


async def test_responses_input_image(make_gateway, upstream):
    client = await context_gateway(make_gateway, "media")
    items = [
        {
            "role": "user",
            "content": [{"type": "input_text", "text": "My cat"}, {"type": "input_image", "image_url": SCREENSHOT}],
        },
        {"role": "assistant", "content": "A lovely grey cat."},
        {"role": "user", "content": "Write a SQL query that counts orders per day."},
    ]
    await sdk(client).responses.create(
        model="openai/gpt-4o", input=items, extra_body={"gateway": {"mediaOptimization": True}}
    )
    assert upstream.last.json["input"][0]["content"][1] == {
        "type": "input_text",
        "text": "[image removed: not needed for this question]",
    }


async def test_after_history_compression_the_right_part_is_judged(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history", "media")
    messages = [
        {"role": "user", "content": "Recommend three hiking trails near Grenoble."},
        {"role": "assistant", "content": "Moucherotte, Chamechaude and Lac du Crozet."},
        *screenshot_turns(),
        {"role": "user", "content": "Unrelated: how do I hash the password of a login page in Django?"},
    ]
    raw = await chat(client, messages, {"chatHistoryCompression": {}, "mediaOptimization": True})
    sent = upstream.last.json["messages"]
    assert len(sent) == 3  # the hiking turn went, the login turn stayed
    assert sent[0]["content"][1] == {"type": "text", "text": "[image removed: not needed for this question]"}
    assert set(saved(raw)) == {"history", "media"}
