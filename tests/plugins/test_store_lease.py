"""Admission leases on a real redis-server: a busy key admitted without a round trip per request,
never more than its limit across processes, exact near its limit, what is left given back, a lost
Redis outlived by at most a lease time, new limits and revoked keys within a lease time."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
import uuid

import pytest

from router_lib.store import HEALTH, STORE, Limits, StoreUnavailable
from router_lib.store.lease import LEASE_TIME
from router_lib.store.redis import RedisStore, key_of
from router_plugins.keys.plugin import REGISTRY
from router_plugins.keys.registry import REFRESH_SECONDS
from router_plugins.keys.settings import record
from tests.plugins.test_keys import post
from tests.plugins.test_keys_redis import shared


def name() -> str:
    return "l" + uuid.uuid4().hex[:10]


async def counted(redis_url: str) -> tuple[RedisStore, list]:
    """A started store whose pipelined commands are listed as they are sent."""
    store = RedisStore(redis_url, 0.5)
    await store.start()
    sent: list = []
    send = store.pipe.send
    store.pipe.send = lambda *args: (sent.append(args), send(*args))[1]
    return store, sent


async def hammer(
    store: RedisStore, n: str, limits: Limits, seconds: float, tokens: int = 0, usd: float = 0.0
) -> tuple[int, int]:
    """Eight callers asking for admissions as fast as they can for ``seconds``: how many were
    admitted, and how many of those from a lease."""
    admitted = leased = 0
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal admitted, leased
        while time.monotonic() < end:
            answer = await store.admit_soon(n, limits, tokens, time.time(), usd)
            admitted += answer.ok
            leased += answer.leased
            await asyncio.sleep(0)

    await asyncio.gather(*[caller() for _ in range(8)])
    return admitted, leased


async def test_a_busy_key_is_admitted_from_leases_and_what_they_did_not_use_goes_back(redis_server):
    store, sent = await counted(redis_server.url)
    n, limits = name(), Limits(rpm=1_000_000, tpm=10**9, daily_budget_usd=1000)
    try:
        admitted, leased = await hammer(store, n, limits, 4 * LEASE_TIME, tokens=100, usd=0.001)
        calls = sum(1 for args in sent if args[0] == b"EVALSHA")
        # The first lease time admits request by request (the key was not busy before); then leases.
        assert admitted > 200 and calls < admitted / 3 and leased > admitted / 2
        lease = store.leases[n]
        assert lease.left > 0  # room taken ahead of requests that have not come
        await asyncio.sleep(LEASE_TIME * 2)  # the lease ended: what it did not use went back
        assert lease.left == lease.tokens == lease.micro == 0
        await store.pipe.drain()
        # Spend counts exactly what was admitted: leased dollars not used came back to the budget.
        assert await store.spend(n, time.time()) == (pytest.approx(admitted * 0.001), pytest.approx(admitted * 0.001))
    finally:
        await store.close()


async def test_a_key_near_its_limit_is_admitted_request_by_request_exactly(redis_server):
    """rpm 400, asked ~600 times a second: leases while the bucket is above half, then one call per request."""
    store, sent = await counted(redis_server.url)
    n, limits = name(), Limits(rpm=400)
    try:
        started, admitted, leased = time.monotonic(), 0, 0
        while (answer := await store.admit_soon(n, limits, 0, time.time())).ok:
            admitted += 1
            leased += answer.leased
            await asyncio.sleep(0.0015)
        refilled = 400 / 60 * (time.monotonic() - started + 0.1)
        # Every request the bucket had room for, and no more (what it refilled meanwhile aside).
        assert leased > 0 and 400 <= admitted <= 400 + refilled
        assert float(await store.redis.hget(key_of(n, "rpm"), "l")) < 1
        # Near the limit, however busy the key, Redis admits each request itself and leases nothing.
        await asyncio.sleep(0.5)  # room for three requests
        store.leases[n].last = 10_000
        sent.clear()
        assert (await store.admit_soon(n, limits, 0, time.time())).ok
        assert len(sent) == 1 and store.leases[n].left == 0
    finally:
        await store.close()


CHILD = """
import asyncio, json, sys, time
from router_lib.store import Limits
from router_lib.store.redis import RedisStore
from tests.plugins.test_store_lease import hammer

async def main(url, n, seconds, rpm, budget):
    store = RedisStore(url, 2.0)
    await store.start()
    print("ready", flush=True)
    sys.stdin.readline()
    limits = Limits(rpm=rpm if rpm > 0 else None, daily_budget_usd=budget if budget > 0 else None)
    admitted, leased = await hammer(store, n, limits, seconds, 10, 0.01 if budget else 0.0)
    await store.close()
    print(json.dumps({"admitted": admitted, "leased": leased}))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
"""


def run_two(redis_url: str, n: str, seconds: float, rpm: int, budget: float) -> list[dict]:
    """Two processes hammering one key from the same moment; what each admitted, and from leases."""
    args = [redis_url, n, str(seconds), str(rpm), str(budget)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:  # both started and connected
            assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
        for proc in procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_processes_sharing_a_busy_key_near_its_limit_never_exceed_it(redis_server):
    """rpm 12,000: two processes ask as fast as they can for 2 s, so the bucket goes from full
    (leases) towards empty (request by request) while both compete for it."""
    seconds, rpm = 2.0, 12_000
    results = run_two(redis_server.url, name(), seconds, rpm, 0)
    admitted = sum(r["admitted"] for r in results)
    print(results)
    # Leases were in play (a process that started late may find the limit in its lower half already).
    assert sum(r["leased"] for r in results) > 0
    # The bucket's 12,000 plus what it refilled while they tried, never more.
    assert admitted <= rpm + rpm / 60 * (seconds + 0.5)


def test_two_processes_sharing_a_budget_near_its_end_spend_it_exactly(redis_server):
    """$30 at $0.01 a request: 3,000 requests; two processes ask for far more, with leases on."""
    import redis

    n = name()
    results = run_two(redis_server.url, n, 3.0, 0, 30.0)
    admitted = sum(r["admitted"] for r in results)
    print(results)
    # Leases were in play (a process that started late may find the limit in its lower half already).
    assert sum(r["leased"] for r in results) > 0
    # Never over (each request reserved its cost); none lost (leases gave back what they did not use).
    assert admitted == 3000
    day = time.strftime("%Y%m%d", time.gmtime())
    assert int(redis.Redis.from_url(redis_server.url).get(key_of(n, day))) == 30_000_000


async def test_a_lease_does_not_outlive_a_lost_redis_by_more_than_its_lease_time(redis_server):
    store, _ = await counted(redis_server.url)
    n, limits = name(), Limits(rpm=1_000_000)
    try:
        await hammer(store, n, limits, 2.5 * LEASE_TIME)
        lease = store.leases[n]
        assert lease.left > 0
        until = lease.until
        redis_server.stop()
        last_ok = None
        for _ in range(400):
            try:
                if (await store.admit_soon(n, limits, 0, time.time())).ok:
                    last_ok = asyncio.get_running_loop().time()
            except StoreUnavailable:
                break
            await asyncio.sleep(0.001)
        else:
            pytest.fail("admitted for 0.4 s with Redis gone")
        assert last_ok is None or last_ok < until  # nothing admitted from the lease after it ended
        with pytest.raises(StoreUnavailable):
            await store.admit_soon(n, limits, 0, time.time())
        assert lease.left == 0  # the failure dropped the lease; nothing comes from it until Redis is back
    finally:
        redis_server.start()
        await store.close()


async def test_a_lease_is_not_used_under_other_limits(redis_server):
    store, sent = await counted(redis_server.url)
    n, limits = name(), Limits(rpm=1_000_000)
    try:
        await hammer(store, n, limits, 2.5 * LEASE_TIME)
        assert store.leases[n].left > 0
        sent.clear()
        assert (await store.admit_soon(n, Limits(rpm=999_999), 0, time.time())).ok
        # Asked Redis under the new limits; what the old lease held is dropped, not given back (it
        # would refill the bucket after a request under the new limits).
        assert len(sent) == 1 and "999999" in sent[0]
        assert store.leases[n].limits == Limits(rpm=999_999)
    finally:
        await store.close()


async def test_revoked_keys_and_new_limits_reach_a_busy_gateway_within_a_lease_time(make_gateway, redis_server):
    """A key busy enough to be admitted from leases; its limits cut to rpm 1, then the key revoked."""
    assert REFRESH_SECONDS <= LEASE_TIME
    n, key = name(), f"sk-router-{uuid.uuid4().hex}"
    gateway = await make_gateway(shared(redis_server.url))
    store = gateway.app[STORE]
    await store.add_key(record(n, key, limits=Limits(rpm=1_000_000)))
    await gateway.app[REGISTRY].refresh()
    end = time.monotonic() + 3 * LEASE_TIME

    async def client() -> None:
        while time.monotonic() < end:
            assert (await post(gateway, key)).status == 200

    await asyncio.gather(*[client() for _ in range(4)])
    assert store.leases[n].left > 0  # admitted from a lease
    await store.add_key(record(n, key, limits=Limits(rpm=1)), replace=True)
    changed = time.monotonic()
    statuses = []
    while time.monotonic() < changed + 1:
        statuses.append(((await post(gateway, key)).status, time.monotonic() - changed))
        if statuses[-1][0] == 429:
            break
    # Within a lease time (the refresh period), with some slack for a loaded machine.
    assert statuses[-1][0] == 429 and statuses[-1][1] < REFRESH_SECONDS + 0.4
    await store.remove_key(n)
    revoked = time.monotonic()
    while (status := (await post(gateway, key)).status) != 401:
        assert status == 429 and time.monotonic() - revoked < REFRESH_SECONDS + 0.4


@pytest.mark.parametrize("on_error", ["fail_closed", "fail_open"])
async def test_a_busy_gateway_loses_redis_and_its_leases_within_a_lease_time(
    make_gateway, redis_server, on_error, caplog
):
    """fail_closed and fail_open as without leases: once the lease ended, 503s (or unchecked 200s),
    one log line per change of state, counted for /metrics."""
    n, key = name(), f"sk-router-{uuid.uuid4().hex}"
    gateway = await make_gateway(shared(redis_server.url, on_error, **{n: {"key": key, "rpm": 1_000_000}}))
    store = gateway.app[STORE]
    end = time.monotonic() + 3 * LEASE_TIME

    async def client() -> None:
        while time.monotonic() < end:
            assert (await post(gateway, key)).status == 200

    await asyncio.gather(*[client() for _ in range(4)])
    assert store.leases[n].left > 0
    caplog.set_level(logging.INFO, logger="llm_router.store")
    redis_server.stop()
    lost = time.monotonic()
    try:
        statuses = []
        while time.monotonic() < lost + 1:
            statuses.append(((await post(gateway, key)).status, time.monotonic() - lost))
        expected = 503 if on_error == "fail_closed" else 200
        late = [status for status, after in statuses if after > LEASE_TIME + 0.05]
        assert late and set(late) == {expected}  # nothing from the lease after it ended
        health = gateway.app[HEALTH]
        assert not health.up
        assert (health.refused if on_error == "fail_closed" else health.admitted_unchecked) >= len(late)
    finally:
        redis_server.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not gateway.app[HEALTH].up:
        await post(gateway, key)
        await asyncio.sleep(0.05)
    assert gateway.app[HEALTH].up
    down = [r for r in caplog.records if "store unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "store reachable again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1
