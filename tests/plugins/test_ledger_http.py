"""The ledger through HTTP: every request a row, the caller's own row by id, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from router_plugins.ledger.plugin import WRITER
from tests.conftest import sdk
from tests.fakes import failing

KEY_A = "sk-router-ledger-a-0123456789abcdef"
KEY_B = "sk-router-ledger-b-0123456789abcdef"
PRICES = {"openai/gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}


def ledger_config(url: str) -> dict:
    return {
        "plugins": {"enabled": ["keys", "ledger"]},
        "keys": {"a": {"key": KEY_A}, "b": {"key": KEY_B}},
        "usage": {"url": url, "flush_seconds": 0.01},
        "models": PRICES,
    }


async def generation(client, request_id: str, key: str):
    """Poll: rows reach the database within a batch interval of the answer."""
    for _ in range(100):
        resp = await client.get(f"/v1/generations/{request_id}", headers={"Authorization": f"Bearer {key}"})
        if resp.status == 200 or key != KEY_A:
            return resp
        await asyncio.sleep(0.02)
    return resp


async def check_rows(client, upstream) -> None:
    openai = sdk(client, KEY_A)
    raw = await openai.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hello, my mail is a@b.example"}]
    )
    request_id = raw.headers["x-request-id"]
    resp = await generation(client, request_id, KEY_A)
    assert resp.status == 200
    row = (await resp.json())["data"]
    assert row["id"] == request_id and row["key_name"] == "a" and row["status"] == 200
    assert (row["model"], row["provider"], row["input_tokens"], row["output_tokens"]) == (
        "openai/gpt-4o",
        "openai",
        11,
        7,
    )
    assert row["cost_usd"] == pytest.approx(11 * 2.5e-6 + 7 * 10e-6)
    assert "a@b.example" not in str(row) and "hello" not in str(row)  # figures, never text
    # Another key asking for it: not found, as if it did not exist.
    other = await generation(client, request_id, KEY_B)
    assert other.status == 404
    # A streamed answer and a failed one are rows too; the client's own x-request-id is kept.
    stream = await openai.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"x-request-id": "my-stream-1"},
    )
    async for _ in stream:
        pass
    row = (await (await generation(client, "my-stream-1", KEY_A)).json())["data"]
    assert row["stream"] is True and row["first_byte_ms"] is not None and row["output_tokens"] == 4
    upstream.handler = failing(500)
    failed = await client.post(
        "/v1/chat/completions",
        json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {KEY_A}", "x-request-id": "my-failed-1"},
    )
    assert failed.status == 502
    row = (await (await generation(client, "my-failed-1", KEY_A)).json())["data"]
    assert row["status"] == 502 and row["error_code"] and row["cost_usd"] == 0
    writer = client.app[WRITER]
    usage = {r["name"]: r for r in await writer.ledger.usage("key", "2000-01-01")}
    assert usage["a"]["requests"] >= 3 and usage["a"]["errors"] >= 1


async def test_sqlite_ledger_through_http(make_gateway, upstream, tmp_path):
    client = await make_gateway(ledger_config(f"sqlite:///{tmp_path}/usage.db"))
    await check_rows(client, upstream)


async def test_postgres_ledger_through_http(make_gateway, upstream, postgres_url):
    client = await make_gateway(ledger_config(postgres_url))
    await check_rows(client, upstream)


async def test_unauthenticated_requests_are_rows_without_a_key(make_gateway, tmp_path):
    client = await make_gateway(ledger_config(f"sqlite:///{tmp_path}/usage.db"))
    resp = await client.post("/v1/chat/completions", json={}, headers={"x-request-id": "anon-1"})
    assert resp.status == 401
    writer = client.app[WRITER]
    for _ in range(100):
        found = await writer.ledger.generation("anon-1", None)
        if found:
            break
        await asyncio.sleep(0.02)
    assert found["status"] == 401 and found["key_name"] is None


async def test_a_request_never_waits_on_the_ledger(make_gateway, tmp_path):
    client = await make_gateway(ledger_config(f"sqlite:///{tmp_path}/usage.db"))
    writer = client.app[WRITER]
    gate = asyncio.Event()
    real_write = writer.ledger.write

    async def stuck(rows):
        await gate.wait()
        await real_write(rows)

    writer.ledger.write = stuck
    replies = await asyncio.gather(
        *[
            client.post(
                "/v1/chat/completions",
                json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {KEY_A}"},
            )
            for _ in range(20)
        ]
    )
    assert all(r.status == 200 for r in replies)  # the database is stuck, the gateway is not
    gate.set()
