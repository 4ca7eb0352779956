"""The event loop keeps answering while the heaviest allowed hostile request is redacted."""

from __future__ import annotations

import asyncio
import random
import time

import orjson

from router_plugins.redact import plugin
from router_plugins.redact.custom import MAX_CUSTOM_PATTERNS

BODY_LIMIT = 1024 * 1024  # server.max_body_bytes for this gateway: the heaviest allowed body
# Each one near the program-size cap, written to be slow for a backtracking engine.
HOSTILE_PATTERNS = [r"(?:[a-z0-9]{1,8}[ .\-]){1,40}q", r"(?:\w+\s+){0,30}zz", r"[a-z]{1,200}Q", r"(.{0,9}){9}!"] * 4


def hostile_text(size: int) -> str:
    """Dense with seeds every detector reacts to, escapes, and non-ASCII to fold."""
    rng = random.Random(3)
    pieces = [
        "sk-" * 40,
        "password=" + "a_" * 30,
        "+1 " + "2" * 40 + " ",
        "4111 1111 1111 111" + str(rng.randrange(10)) + " ",
        "x" * 20 + "@" + "a." * 20,
        "１２３\u200b-４５-６７８９ ",
        "%40%2D" * 10,
        "\\u0040" * 10,
        "1.2.3.4.5.6.7.8 ",
        "DE12 " * 10,
        "00:1a:2b:3c:4d:5e:" * 4,
        "(555) 123-4567 x12345 ",
        # values found and masked cost the most: each is Python work
        "mail jane.roe@example.org or +44 20 7946 0958, ssn 219-09-9999, card 4111 1111 1111 1111. ",
        "key sk-proj-Abc123Def456Ghi789Jkl012Mno345 and password=hunter22 at 10.20.30.40\n",
    ]
    out, length = [], 0
    while length < size:
        piece = rng.choice(pieces)
        out.append(piece)
        length += len(piece.encode())
    return "".join(out)[: size // 3]  # multi-byte characters: stay under the byte limit


async def test_healthz_stays_fast_while_a_hostile_request_is_redacted(make_gateway, upstream):
    assert len(HOSTILE_PATTERNS) == MAX_CUSTOM_PATTERNS
    config = {
        "server": {"max_body_bytes": BODY_LIMIT},
        "plugins": {"enabled": ["redact"]},
        "gateway": {
            "redact": {
                name: True for name in ("email", "phone", "ip", "uuid", "token", "credit_card", "iban", "ssn", "mac")
            }
        },
    }
    client = await make_gateway(config)
    text = hostile_text(BODY_LIMIT)
    body = orjson.dumps(
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": text}],
            "gateway": {"redact": {"custom": HOSTILE_PATTERNS}},
        }
    )
    assert len(body) < BODY_LIMIT
    assert len(text) >= plugin.OFF_LOOP_CHARS  # the off-loop path is the one under test

    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while not done.is_set():
            started = time.perf_counter()
            response = await client.get("/healthz")
            assert response.status == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    heavy = [
        client.post("/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}) for _ in range(2)
    ]
    responses = await asyncio.gather(*heavy)
    took = time.perf_counter() - started
    done.set()
    await poller
    assert [r.status for r in responses] == [200, 200]
    assert all("ssn=" in r.headers["x-router-redactions"] for r in responses)
    assert len(upstream.requests) == 2
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) >= 100 else latencies[-1]
    assert len(latencies) >= 10, (took, latencies)
    assert p99 < 0.25, f"/healthz p99 {p99 * 1000:.0f} ms while redacting ({took:.1f} s, {len(latencies)} polls)"
