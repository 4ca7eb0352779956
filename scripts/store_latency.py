"""Time the Redis store's two steps per request (admission, settling) on a throwaway redis-server.

``python scripts/store_latency.py [--n 3000]``: needs redis-server on PATH. Every limit is set,
so each step runs its whole script; the first 500 calls are warm-up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_lib.store.base import Limits
from router_lib.store.redis import RedisStore
from tests.services import measure_on_a_redis


async def measure(url: str, n: int) -> None:
    store = RedisStore(url, 0.5)
    await store.start()
    limits = Limits(rpm=10**9, tpm=10**12, max_parallel=10**6, daily_budget_usd=1e9, monthly_budget_usd=1e9)
    admit, settle = [], []
    for _ in range(n):
        t = time.perf_counter()
        admission = await store.admit("latency", limits, 100, time.time(), 0.001)
        admit.append(time.perf_counter() - t)
        t = time.perf_counter()
        await store.settle("latency", limits, -10, 0.0005, time.time(), admission.lease)
        settle.append(time.perf_counter() - t)
    await store.close()
    for name, xs in (("admit (before the upstream call)", admit), ("settle (after the answer is sent)", settle)):
        xs = sorted(xs[500:])
        print(f"{name}: p50 {xs[len(xs) // 2] * 1e3:.3f} ms, p99 {xs[int(len(xs) * 0.99)] * 1e3:.3f} ms")


def main() -> None:
    measure_on_a_redis(measure, 3000)


if __name__ == "__main__":
    main()
