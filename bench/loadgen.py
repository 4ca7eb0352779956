"""Fallback load generator when wrk is missing: aiohttp client, closed loop, one process.

Prints one JSON line: requests, seconds, rps, non2xx, errors, p50_ms, p99_ms.
Usage: python bench/loadgen.py --url URL --body FILE --connections N --duration S [--warmup S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(url: str, body: bytes, connections: int, duration: float, warmup: float) -> dict:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    counts = {"requests": 0, "non2xx": 0, "errors": 0}
    async with aiohttp.ClientSession(connector=connector) as session:
        clock = time.perf_counter
        start = clock()
        measure_from = start + warmup
        stop = measure_from + duration

        async def worker() -> None:
            while True:
                t0 = clock()
                if t0 >= stop:
                    return
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except aiohttp.ClientError:
                    status = -1
                t1 = clock()
                if t0 >= measure_from:
                    counts["requests"] += 1
                    latencies.append(t1 - t0)
                    if status == -1:
                        counts["errors"] += 1
                    elif not 200 <= status < 300:
                        counts["non2xx"] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = clock() - measure_from
    latencies.sort()
    return {
        **counts,
        "seconds": elapsed,
        "rps": counts["requests"] / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with open(args.body, "rb") as f:
        body = f.read()
    print(json.dumps(asyncio.run(run(args.url, body, args.connections, args.duration, args.warmup))))


if __name__ == "__main__":
    main()
