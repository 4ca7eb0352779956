"""The gateway's own CPU per limited request in the Redis store: one admission and one settling.

``python scripts/store_cpu.py [--n 4000]``: needs redis-server on PATH (a throwaway one is
started). Measured with the process's CPU clock (redis-server's CPU is not in it), on the
event loop the gateway runs (uvloop), at 1 and 8 requests at once, for three clients:

- ``redis-py``: every command through redis-py's asyncio client (with hiredis when installed),
  as the store did before its pipelined connection; settlings awaited one by one.
- ``pipe``: admissions through the store's self-pipelining connection, settlings awaited
  through it (what a key with ``max_parallel`` does).
- ``pipe, settled soon``: settlings summed per key and sent once per window (what a key
  without ``max_parallel`` did before admission leases).
- ``leases, settled soon``: admissions from admission leases (what a busy key without
  ``max_parallel`` does: mostly no round trip), settlings summed per window.

The first three ask Redis for every admission (the store's request-by-request path, which a
key with ``max_parallel``, a quiet key and a key near its limit take).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_lib.store.base import Limits
from router_lib.store.redis import RedisStore
from tests.services import measure_on_a_redis

LIMITS = Limits(rpm=10**9, tpm=10**12, daily_budget_usd=1e9)


async def per_request(store: RedisStore, mode: str, n: int, at_once: int) -> float:
    """CPU seconds per admission + settling, ``at_once`` requests in flight."""

    admit = store.admit_soon if mode == "leases" else store._admit_one  # request by request

    async def one() -> None:
        admission = await admit("cpu", LIMITS, 250, time.time(), 0.0003)
        if mode in ("soon", "leases"):
            store.settle_soon("cpu", LIMITS, 30, 0.0001, time.time(), print)
        else:
            await store.settle("cpu", LIMITS, 30, 0.0001, time.time(), admission.lease)

    async def worker(k: int) -> None:
        for _ in range(k):
            await one()

    await worker(300)  # warm-up
    started = time.process_time()
    await asyncio.gather(*[worker(n // at_once) for _ in range(at_once)])
    return (time.process_time() - started) / n


async def measure(url: str, n: int) -> None:
    modes = (
        ("redis-py", "redis-py"),
        ("pipe", "pipe"),
        ("pipe, settled soon", "soon"),
        ("leases, settled soon", "leases"),
    )
    for label, mode in modes:
        store = RedisStore(url, 0.5)
        if mode == "redis-py":
            store.pipe = None  # every command through redis-py
        await store.start()
        figures = [await per_request(store, mode, n, at_once) for at_once in (1, 8)]
        await store.close()
        print(f"{label:<22} CPU per admission + settling: c1 {figures[0] * 1e6:5.0f} µs, c8 {figures[1] * 1e6:5.0f} µs")


def main() -> None:
    measure_on_a_redis(measure, 4000)


if __name__ == "__main__":
    main()
