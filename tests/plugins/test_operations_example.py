"""The several-instances example's plugins.toml, with its Redis and PostgreSQL swapped for the test services."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from router_core.app import create_app
from router_core.config import parse_config
from tests.conftest import sdk

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "several-instances" / "plugins.toml"
KEY = "sk-router-example-0123456789abcdef"


async def test_example_config_serves_through_two_gateways(aiohttp_client, redis_server, postgres_url):
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["store"]["url"] = redis_server.url
    raw["usage"]["url"] = postgres_url
    raw["keys"]["team-a"]["rpm"] = 5
    config = parse_config(raw, env={"TEAM_A_KEY": KEY})
    one, two = await aiohttp_client(create_app(config)), await aiohttp_client(create_app(config))
    answers = []
    for gateway in (one, two, one):
        raw_answer = await sdk(gateway, KEY).chat.completions.with_raw_response.create(
            model="echo/x", messages=[{"role": "user", "content": "write to ann@example.com"}]
        )
        answers.append(raw_answer.headers["x-request-id"])
    statuses = [
        (
            await g.post(
                "/v1/chat/completions",
                json={"model": "echo/x", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        ).status
        for g in (two, one, two)
    ]
    assert statuses == [200, 200, 429]  # 5 a minute, shared by both
    for _ in range(100):
        found = await two.get(f"/v1/generations/{answers[0]}", headers={"Authorization": f"Bearer {KEY}"})
        if found.status == 200:  # written by gateway one, read through gateway two
            break
        await asyncio.sleep(0.02)
    row = (await found.json())["data"]
    assert row["key_name"] == "team-a" and row["provider"] == "echo"
    metrics = await one.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert 'llm_router_requests_total{endpoint="chat",key="team-a"' in await metrics.text()
