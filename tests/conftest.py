"""Fixtures: a fake upstream, a gateway built on it, the official OpenAI SDK pointed at it."""

from __future__ import annotations

import copy
import os
from typing import Any

import hypothesis
import openai
import pytest

from router_core.app import create_app
from router_core.config import parse_config
from router_core.gateway import deep_merge
from router_core.server import Serving, bind
from tests.fakes import FakeUpstream, fake_app
from tests.services import postgres_url, redis_server  # noqa: F401  (fixtures for every test module)

# The suite is deterministic: generated inputs come from a fixed seed. HYPOTHESIS_PROFILE=explore
# draws fresh ones (and more of them) when hunting for new failures.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis.settings.register_profile("explore", max_examples=2000, deadline=None, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
async def upstream(aiohttp_server) -> FakeUpstream:
    """An OpenAI-compatible fake on loopback; ``upstream.url`` is its ``/v1`` base URL."""
    fake = FakeUpstream()
    server = await aiohttp_server(fake_app(fake))
    fake.url = str(server.make_url("/v1"))
    return fake


# A gateway without client keys takes JSON only (a web page cannot POST it cross-site).
JSON = {"Content-Type": "application/json"}


def base_config(upstream_url: str) -> dict[str, Any]:
    """A config with an ``openai`` (native) and a ``chatonly`` (openai-chat) provider on the fake."""
    return {
        "plugins": {"enabled": []},
        "providers": {
            "openai": {"kind": "openai", "base_url": upstream_url, "api_key": "sk-test-provider-secret-123"},
            "chatonly": {"kind": "openai-chat", "base_url": upstream_url, "api_key": "sk-test-chatonly-secret-456"},
            "echo": {"kind": "echo", "zdr": True},
        },
    }


@pytest.fixture
def make_gateway(aiohttp_client, upstream):
    """``await make_gateway(config_overrides, plugins=[(name, obj)], env={})`` → aiohttp TestClient.

    Overrides are deep-merged into :func:`base_config`; ``plugins`` are throwaway
    plugin objects registered after the enabled ones.
    """

    async def make(overrides: dict[str, Any] | None = None, plugins=(), env: dict[str, str] | None = None):
        raw = deep_merge(base_config(upstream.url), copy.deepcopy(overrides or {}))
        config = parse_config(raw, env=env or {})
        return await aiohttp_client(create_app(config, list(plugins)))

    return make


@pytest.fixture
async def served(upstream):
    """``await served(overrides)`` → a port on 127.0.0.1 where the gateway runs as ``serve`` runs
    it (router_core.server: client limits, handler cancellation, its HTTP error handler)."""
    started: list[Serving] = []

    async def serve(overrides: dict[str, Any] | None = None) -> int:
        raw = deep_merge(base_config(upstream.url), copy.deepcopy(overrides or {}))
        config = parse_config(raw, env={})
        sock = bind("127.0.0.1", 0)
        serving = Serving(create_app(config), config.server)
        await serving.start(sock)
        started.append(serving)
        return sock.getsockname()[1]

    yield serve
    for serving in started:
        await serving.stop()


@pytest.fixture
async def gateway(make_gateway):
    return await make_gateway()


_open_sdks: list[Any] = []


def closed_after_test(made: Any) -> Any:
    """``made``, an SDK client (OpenAI, Anthropic …), to be closed when the test ends."""
    _open_sdks.append(made)
    return made


def sdk(client, api_key: str = "sk-router-test") -> openai.AsyncOpenAI:
    """The official OpenAI SDK, pointed at a gateway TestClient (closed after the test)."""
    return closed_after_test(
        openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=api_key, max_retries=0, timeout=10)
    )


@pytest.fixture(autouse=True)
async def _close_sdks():
    yield
    while _open_sdks:
        await _open_sdks.pop().close()
