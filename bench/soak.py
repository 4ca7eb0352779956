"""Soak: many requests through a real ``llm-router serve`` while its upstream misbehaves and clients hang up.

A fake upstream (its own process) answers the primary provider with a mix of faults chosen
per request (5xx, redirects, gzip bombs, JSON or garbage to a stream request, streams cut
mid-way, answers that never come) and a steady provider behind it normally. The client mix is
plain and streamed requests plus clients that leave early. At the end it prints, as JSON:
the gateway's RSS and open file descriptors after warm-up and at the end (after a quiet
second), /healthz latency under load, statuses seen, and the upstream requests still open.

Usage: python bench/soak.py [--requests 200000] [--minutes 10] [--connections 48]
Exit status 1 when the gateway answered a 500, leaked connections or upstream requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from servers import chat_completion  # bench/servers.py, next to this script

FAULTS = [  # (fault on the primary provider, weight)
    ("ok", 60),
    ("500", 10),
    ("redirect", 6),
    ("gzip", 6),
    ("bomb", 1),
    ("json_to_stream", 5),
    ("garbage_stream", 4),
    ("cut_stream", 4),
    ("hang", 4),
]
LEAVE_EARLY = 0.04  # share of clients that hang up after 20–150 ms, whatever the fault


def answer(model: str, text: str = "steady answer") -> bytes:
    return chat_completion(model, text)


def chunks(model: str, n: int = 6) -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]} for i in range(n)
    ]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def gzip_bytes(data: bytes) -> bytes:
    return zlib.compress(data, wbits=16 + zlib.MAX_WBITS)


def upstream_main(port: int, stats_path: str) -> None:
    """The fake upstream: /primary/v1 misbehaves on request, /steady/v1 never does."""
    import uvloop

    bomb = gzip_bytes(bytes(40 * 1024 * 1024))  # 40 MB of zeros in ~40 KB: past the 32 MB cap
    open_now = [0]
    counts: collections.Counter[str] = collections.Counter()

    async def stream(request: web.Request, parts: list[bytes], cut: bool = False) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        try:
            await resp.prepare(request)
            for i, part in enumerate(parts):
                await resp.write(part)
                if cut and i == 2:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await asyncio.sleep(0.002)
            await resp.write_eof()
        except ConnectionError:  # the gateway closed it: its client left
            counts["stream_aborted"] += 1
        return resp

    async def handle(request: web.Request) -> web.StreamResponse:
        open_now[0] += 1
        try:
            body = orjson.loads(await request.read())
            model, streamed = body["model"], bool(body.get("stream"))
            fault = (body.get("metadata") or {}).get("fault", "ok") if request.path.startswith("/primary") else "ok"
            counts[fault] += 1
            if fault == "500":
                return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
            if fault == "redirect":
                return web.Response(
                    status=307, headers={"Location": f"http://127.0.0.1:{port}/steady/v1/chat/completions"}
                )
            if fault == "bomb":
                return web.Response(body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
            if fault == "hang":
                while request.transport is not None and not request.transport.is_closing():
                    await asyncio.sleep(0.05)
                counts["hang_aborted"] += 1
                return web.Response(status=499)
            if streamed:
                if fault == "json_to_stream":
                    return web.Response(body=answer(model), content_type="application/json")
                if fault == "garbage_stream":
                    return web.Response(body=b"\x00\x13<html>oops</html>\n\n", content_type="text/event-stream")
                return await stream(request, chunks(model), cut=fault == "cut_stream")
            if fault == "gzip":
                return web.Response(
                    body=gzip_bytes(answer(model)),
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                )
            return web.Response(body=answer(model), content_type="application/json")
        finally:
            open_now[0] -= 1

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"open": open_now[0], "counts": counts})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{side}/v1/chat/completions", handle)
    app.router.add_get("/stats", stats)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else float("nan")


async def soak(gateway: str, upstream: str, pid: int, total: int, seconds: float, connections: int) -> dict:
    statuses: collections.Counter[str] = collections.Counter()
    health: list[float] = []
    sent = [0]
    deadline = time.monotonic() + seconds
    faults, weights = zip(*FAULTS, strict=True)
    connector = aiohttp.TCPConnector(limit=0)
    rng = random.Random(11)
    warm: dict[str, int] = {}

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            fault = rng.choices(faults, weights)[0]
            streamed = rng.random() < 0.3
            body = orjson.dumps(
                {
                    "model": "soak/m",
                    "messages": [{"role": "user", "content": f"question {sent[0]}"}],
                    "stream": streamed,
                    "metadata": {"fault": fault},
                }
            )
            leave = fault == "hang" or rng.random() < LEAVE_EARLY
            timeout = aiohttp.ClientTimeout(total=rng.uniform(0.02, 0.15) if leave else 30)
            try:
                async with session.post(
                    gateway + "/v1/chat/completions",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=timeout,
                ) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1
            except (TimeoutError, aiohttp.ClientError):
                statuses["client left" if leave else "client error"] += 1

        async def worker() -> None:
            while sent[0] < total and time.monotonic() < deadline:
                sent[0] += 1
                if sent[0] == min(10_000, total // 10):
                    warm.update(rss_kb=rss_kb(pid), fds=fds(pid))
                await one()

        async def healthz() -> None:
            while sent[0] < total and time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.get(gateway + "/healthz") as resp:
                    await resp.read()
                health.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        started = time.monotonic()
        await asyncio.gather(healthz(), *(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    await asyncio.sleep(2.0)  # let closed connections and cancelled calls settle
    async with aiohttp.ClientSession() as session, session.get(upstream + "/stats") as resp:
        upstream_stats = await resp.json()
    return {
        "requests": sent[0],
        "seconds": round(elapsed, 1),
        "rps": round(sent[0] / elapsed),
        "statuses": dict(statuses),
        "healthz_ms": {
            "samples": len(health),
            "p50": round(percentile(health, 50) * 1000, 1),
            "p99": round(percentile(health, 99) * 1000, 1),
            "max": round(max(health, default=0) * 1000, 1),
        },
        "gateway_rss_mb": {"after_warmup": round(warm.get("rss_kb", 0) / 1024, 1), "end": round(rss_kb(pid) / 1024, 1)},
        "gateway_fds": {"after_warmup": warm.get("fds"), "end": fds(pid)},
        "upstream_open_requests_at_end": upstream_stats["open"],
        "upstream_faults_served": upstream_stats["counts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=48)
    args = parser.parse_args()

    up_port, gw_port = free_port(), free_port()
    stats_dir = tempfile.mkdtemp(prefix="soak-")
    upstream = multiprocessing.get_context("spawn").Process(target=upstream_main, args=(up_port, stats_dir))
    upstream.start()
    config = Path(stats_dir) / "soak.toml"
    fast = "max_retries = 0\nbackoff_base = 0.001\nfirst_byte_timeout = 5.0\n"
    providers = "".join(
        f"""[providers.{name}]
kind = "openai-chat"
base_url = "http://127.0.0.1:{up_port}/{name}/v1"
api_key = "sk-soak-{name}-key"
serves = {{ "soak/m" = "m" }}
{fast}
"""
        for name in ("primary", "steady")  # one fake upstream process, a faulty path and a steady one
    )
    config.write_text(f"[server]\nport = {gw_port}\nmax_connections = 2048\n{providers}")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "router_core.cli", "serve", "--config", str(config)],
        stderr=open(Path(stats_dir) / "gateway.log", "wb"),  # noqa: SIM115 (lives as long as the process)
        env={**os.environ, "LLM_ROUTER_LOG": "ERROR"},
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", gw_port), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", up_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        result = asyncio.run(
            soak(
                f"http://127.0.0.1:{gw_port}",
                f"http://127.0.0.1:{up_port}",
                gateway.pid,
                args.requests,
                args.minutes * 60,
                args.connections,
            )
        )
        errors = Path(stats_dir, "gateway.log").read_text(errors="replace").count(" ERROR ")
        result["gateway_error_log_lines"] = errors
        print(json.dumps(result, indent=2))
        bad = result["statuses"].get("500", 0) or result["upstream_open_requests_at_end"]
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
        upstream.terminate()
        upstream.join(10)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
