"""A third-party plugin distribution, installed with pip, found by its entry point, enabled in plugins.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from router_core.app import create_app
from router_core.config import ConfigError, parse_config
from tests.conftest import base_config, sdk

EXAMPLE = Path(__file__).parents[2] / "examples" / "llm-router-shout"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def shout_config(upstream, **plugins):
    return parse_config({**base_config(upstream.url), "plugins": {"enabled": ["shout"], **plugins}}, env={})


@pytest.fixture
async def shouting(installed, monkeypatch, aiohttp_client, upstream):
    monkeypatch.syspath_prepend(str(installed))
    return await aiohttp_client(create_app(shout_config(upstream)))


async def test_installed_plugin_is_discovered_and_enabled(shouting):
    answer = await sdk(shouting).responses.create(
        model="openai/gpt-4o", input="hi", extra_body={"gateway": {"shout": True}}
    )
    assert answer.output_text == "HELLO FROM UPSTREAM"
    answer = await sdk(shouting).responses.create(model="openai/gpt-4o", input="hi")
    assert answer.output_text == "Hello from upstream"


async def test_installed_plugin_streams(shouting):
    stream = await sdk(shouting).chat.completions.create(
        model="chatonly/x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"gateway": {"shout": True}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "HELLO FROM UPSTREAM"


async def test_installed_plugin_validates_its_field(shouting):
    resp = await shouting.post(
        "/v1/responses", json={"model": "openai/gpt-4o", "input": "hi", "gateway": {"shout": "loud"}}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "gateway.shout"


async def test_installed_plugin_reads_its_declared_settings(installed, monkeypatch, aiohttp_client, upstream):
    monkeypatch.syspath_prepend(str(installed))
    client = sdk(await aiohttp_client(create_app(shout_config(upstream, shout={"suffix": "!!"}))))
    answer = await client.responses.create(model="openai/gpt-4o", input="hi", extra_body={"gateway": {"shout": True}})
    assert answer.output_text == "HELLO FROM UPSTREAM!!"
    stream = await client.chat.completions.create(
        model="chatonly/x",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"gateway": {"shout": True}},
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "HELLO FROM UPSTREAM!!"


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ({"shout": {"suffix": "way too long"}}, "plugins.shout.suffix:"),
        ({"shout": {"sufix": "!"}}, "plugins.shout.sufix: unknown setting"),
        ({"enabled": ["shout", "redact"]}, "'redact' must come before 'shout'"),
    ],
)
def test_installed_plugin_declarations_are_checked(installed, monkeypatch, upstream, plugins, expected):
    monkeypatch.syspath_prepend(str(installed))
    with pytest.raises(ConfigError) as info:
        create_app(shout_config(upstream, **plugins))
    assert expected in "\n".join(info.value.messages)
