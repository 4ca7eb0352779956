"""Image routing: a prompt asking for an image goes to the image model through the images API."""

from __future__ import annotations

import openai
import pytest
from aiohttp import web

from tests.conftest import sdk

CONFIG = {"plugins": {"enabled": ["scorer", "image"]}, "gateway": {"imageGenerationModel": "openai/gpt-image-1"}}


@pytest.fixture
def images(upstream):
    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if request.path == "/v1/images/generations":
            return web.json_response(
                {
                    "created": 1,
                    "data": [{"b64_json": "aW1hZ2U=", "revised_prompt": "a red fox"}],
                    "usage": {"input_tokens": 9, "output_tokens": 4160, "total_tokens": 4169},
                }
            )
        return await upstream.default(request, body)

    upstream.handler = handler
    return upstream


async def test_responses_image_item(make_gateway, images):
    client = sdk(await make_gateway(CONFIG))
    raw = await client.responses.with_raw_response.create(model="openai/gpt-4o", input="draw a red fox in the snow")
    answer = raw.parse()
    item = answer.output[0]
    assert item.type == "image_generation_call" and item.result == "aW1hZ2U="
    assert raw.headers["x-router-model"] == "openai/gpt-image-1"
    assert images.last.path == "/v1/images/generations"
    assert images.last.json == {"model": "gpt-image-1", "prompt": "draw a red fox in the snow", "n": 1}
    assert answer.usage.output_tokens == 4160


async def test_chat_markdown_image(make_gateway, images):
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "generate an image of a sunset"}]
    )
    assert answer.choices[0].message.content == "![image](data:image/png;base64,aW1hZ2U=)"


async def test_other_prompts_untouched(make_gateway, images):
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "describe this image"}]
    )
    assert answer.choices[0].message.content == "Hello from upstream"
    assert images.last.path == "/v1/chat/completions"


async def test_image_failure_is_502(make_gateway, upstream):
    async def handler(request, body):
        return web.json_response({"error": {"message": "nope"}}, status=500)

    upstream.handler = handler
    client = sdk(await make_gateway(CONFIG))
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "draw a cat"}]
        )
    assert err.value.status_code == 502 and "sk-test" not in str(err.value.body)


async def test_bad_image_model_is_400(make_gateway):
    client = sdk(await make_gateway({"plugins": {"enabled": ["scorer", "image"]}}))
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="openai/x",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"gateway": {"imageGenerationModel": "dalle"}},
        )
    assert err.value.body["param"] == "gateway.imageGenerationModel"


async def test_streamed_image_answers_carry_the_image(make_gateway, images):
    client = sdk(await make_gateway(CONFIG))
    stream = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "generate an image of a sunset"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "![image](data:image/png;base64,aW1hZ2U=)"
    async with client.responses.stream(model="openai/gpt-4o", input="draw a red fox in the snow") as events:
        kinds = [e.type async for e in events]
        final = await events.get_final_response()
    assert "response.output_item.done" in kinds
    item = final.output[0]
    assert item.type == "image_generation_call" and item.result == "aW1hZ2U="
