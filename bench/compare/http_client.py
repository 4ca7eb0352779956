"""CPU per upstream POST: aiohttp's ClientSession against the gateway's own client (router_core/http1.py).

Starts the fake upstream (bench/servers.py) pinned to core 1, then, in this process pinned to
core 0, keeps 8 POSTs of the benchmark's chat body in flight for a few seconds with each client in
turn, reading and parsing every answer, and prints the process CPU time per request.

usage: python bench/compare/http_client.py [--seconds 4] [--rounds 3] [--conns 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
import run as B  # noqa: E402  bench/run.py: the body and free ports

from router_core.http1 import Client, Target  # noqa: E402

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-upstream-key"}


async def measure(name: str, url: str, body: bytes, seconds: float, conns: int) -> tuple[int, float]:
    end = time.monotonic() + seconds
    done = 0
    if name == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def one() -> None:
            async with session.post(url, data=body, headers=HEADERS, allow_redirects=False) as resp:
                orjson.loads(await resp.read())

    else:
        client, target = Client(), Target(url, HEADERS)

        async def one() -> None:
            async with await client.post(target, body, connect_timeout=5) as resp:
                orjson.loads(await resp.read())

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            await one()
            done += 1

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(conns)))
    cpu = time.process_time() - cpu
    await (session.close() if name == "aiohttp" else client.close())
    return done, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=8)
    a = ap.parse_args()
    port = B.free_port()
    up = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, str(BENCH / "servers.py"), "upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        B.wait_ready("upstream", up, port, None)
        os.sched_setaffinity(0, {0})
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        results: dict[str, list[float]] = {"aiohttp": [], "router_core.http1": []}
        for _ in range(a.rounds):
            for name in results:
                n, cpu = uvloop.run(measure(name, url, B.chat_body(), a.seconds, a.conns))
                results[name].append(1e6 * cpu / n)
        for name, figures in results.items():
            print(
                f"{name:18s} CPU per request (µs), {a.rounds} rounds: {' '.join(f'{f:.0f}' for f in sorted(figures))}"
            )
    finally:
        up.terminate()
        up.wait()


if __name__ == "__main__":
    main()
