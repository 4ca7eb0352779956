"""Image routing: a prompt asking for an image goes to the image model through the images API."""

from __future__ import annotations

import asyncio
import base64
import struct

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.resolver import DefaultResolver

from router_core import images as images_module
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


# ---------------------------------------------------------------- the images capability, offline and guarded


async def test_echo_draws_a_picture_offline(make_gateway, upstream):
    config = {"plugins": {"enabled": ["scorer", "image"]}, "gateway": {"imageGenerationModel": "echo/picture"}}
    client = sdk(await make_gateway(config))
    answer = await client.responses.create(model="openai/gpt-4o", input="draw a lighthouse at dusk")
    png = base64.b64decode(answer.output[0].result)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and struct.unpack(">II", png[16:24]) == (64, 64)
    chat = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "draw a lighthouse at dusk"}]
    )
    assert chat.choices[0].message.content == f"![image](data:image/png;base64,{answer.output[0].result})"
    assert upstream.requests == []  # nothing left the machine


async def test_a_provider_without_images_is_a_clear_400(make_gateway):
    config = {"plugins": {"enabled": ["scorer", "image"]}, "gateway": {"imageGenerationModel": "chatonly/painter"}}
    client = sdk(await make_gateway(config))
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "draw a cat"}]
        )
    assert err.value.body["code"] == "no_image_provider" and "'chatonly' (openai-chat)" in err.value.body["message"]


def answering_with(upstream, image: dict) -> None:
    async def handler(request: web.Request, body: dict) -> web.StreamResponse:
        if request.path == "/v1/images/generations":
            return web.json_response({"created": 1, "data": [image]})
        return await upstream.default(request, body)

    upstream.handler = handler


@pytest.mark.parametrize("scheme_host", ["http://127.0.0.1", "https://images.example.net"])
async def test_an_image_url_that_may_not_be_fetched_is_passed_on(make_gateway, upstream, aiohttp_server, scheme_host):
    seen: list[str] = []

    async def image(request):
        seen.append(request.path)
        return web.Response(body=b"\x89PNG fake")

    app = web.Application()
    app.router.add_get("/img.png", image)
    server = await aiohttp_server(app)
    url = f"{scheme_host}:{server.port}/img.png"
    answering_with(upstream, {"url": url})
    client = sdk(await make_gateway(CONFIG))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "draw a cat"}]
    )
    assert answer.choices[0].message.content == f"![image]({url})"
    assert seen == []


async def test_dall_e_is_asked_for_base64(make_gateway, images):
    config = {"plugins": {"enabled": ["scorer", "image"]}, "gateway": {"imageGenerationModel": "openai/dall-e-3"}}
    client = sdk(await make_gateway(config))
    await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "draw a cat"}])
    assert images.last.json["response_format"] == "b64_json"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://api.example.com/files/a.png", None),
        ("http://api.example.com/files/a.png", "not https"),
        ("https://cdn.example.com/a.png", "not the provider's own host"),
        ("https://api.example.com.evil.net/a.png", "not the provider's own host"),
        ("https://user:pw@api.example.com/a.png", "credentials in the URL"),
        ("file:///etc/passwd", "not https"),
    ],
)
def test_only_https_urls_of_the_providers_own_host_are_fetched(url, why):
    assert images_module.fetchable(url, "https://api.example.com/v1") == why


async def test_names_for_this_machine_are_never_resolved_for_a_fetch():
    resolver = images_module.PublicOnlyResolver()
    try:
        for host in ("localhost", "127.0.0.1", "::1", "10.0.0.8", "169.254.169.254"):
            with pytest.raises(OSError):
                await resolver.resolve(host, 443)
    finally:
        await resolver.close()


@pytest.fixture
async def image_host(aiohttp_server, monkeypatch):
    """A loopback image server, with the URL policy and address check lifted so the fetch itself is tested."""
    app = web.Application()

    async def ok(request):
        return web.Response(body=b"\x89PNG" + b"x" * 100, content_type="image/png")

    async def big(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 1000)
        return resp

    async def moved(request):
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere.png")

    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(body=b"late")

    for path, handler in (("/ok.png", ok), ("/big.png", big), ("/moved.png", moved), ("/slow.png", slow)):
        app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    monkeypatch.setattr(images_module, "fetchable", lambda url, base: None)
    monkeypatch.setattr(images_module, "MAX_IMAGE_BYTES", 5000)
    monkeypatch.setattr(images_module, "FETCH_TIMEOUT", aiohttp.ClientTimeout(total=0.3))
    return lambda path: str(server.make_url(path))


async def test_a_fetch_is_bounded_in_size_and_time_and_never_follows_a_redirect(image_host):
    fetch = images_module.fetch_image
    assert (await fetch(image_host("/ok.png"), "", DefaultResolver())).startswith(b"\x89PNG")
    for path, reason in (("/big.png", "larger than 5000"), ("/moved.png", "answered 302"), ("/slow.png", "Timeout")):
        with pytest.raises(images_module.ImageFailure, match=reason):
            await fetch(image_host(path), "", DefaultResolver())
