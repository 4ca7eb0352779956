"""The store's pipelined Redis connection on a real redis-server: one write per loop turn, a hung
Redis, AUTH and SELECT, settlings nobody awaits; and the token counts cached for admission."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest
import redis.asyncio as aioredis

from router_core.call import Message, Part
from router_lib.store import Limits, StoreUnavailable
from router_lib.store.pipe import Pipe, pipe_address
from router_lib.store.redis import QUIET_SECONDS, SETTLE_WINDOW, RedisStore, key_of
from router_lib.tokens import encoding_name, message_tokens
from router_plugins.keys.plugin import CountCache


def name() -> str:
    return "p" + uuid.uuid4().hex[:10]


def test_which_urls_get_the_pipelined_connection():
    assert pipe_address("redis://127.0.0.1:6379/2") == {"host": "127.0.0.1", "port": 6379, "db": 2, "ssl": None}
    assert pipe_address("unix:///run/redis.sock?db=1")["path"] == "/run/redis.sock"
    secure = pipe_address("rediss://u:p@cache.internal:6380/0")
    assert secure["ssl"] is not None and secure["username"] == "u" and secure["password"] == "p"
    # What it cannot honour stays with redis-py for every command (cluster, TLS files, URL timeouts).
    assert pipe_address("redis+cluster://127.0.0.1:7000") is None
    assert pipe_address("rediss://h/0?ssl_ca_certs=/etc/ca.pem") is None
    assert pipe_address("redis://h/0?socket_timeout=3") is None
    assert RedisStore("redis+cluster://127.0.0.1:7000", 0.5).pipe is None


async def test_a_lone_command_goes_out_at_once_and_the_rest_of_a_loop_turn_in_one_write(redis_server):
    pipe = Pipe(pipe_address(redis_server.url), 0.5)
    await pipe.connect()
    writes = []
    write = pipe.transport.write
    pipe.transport.write = lambda data: (writes.append(data), write(data))
    key = name()
    first = pipe.send(b"INCR", key)
    assert len(writes) == 1  # an idle connection: written before send() returns
    rest = [pipe.send(b"INCR", key) for _ in range(49)]
    assert len(writes) == 1  # a reply is awaited: these wait for the end of this loop turn
    replies = await asyncio.gather(first, *rest)
    assert replies == list(range(1, 51)) and len(writes) == 2  # in order; 49 commands, one write
    with pytest.raises(Exception, match="wrong number of arguments"):
        await pipe.call(b"INCR")
    assert await pipe.call(b"GET", key) == b"50"  # an error reply leaves the connection usable
    pipe.close()


async def test_auth_and_database_from_the_url(redis_server):
    user, password = name(), uuid.uuid4().hex
    admin = aioredis.Redis.from_url(redis_server.url)
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")
    url = redis_server.url.replace("redis://", f"redis://{user}:{password}@", 1).rsplit("/", 1)[0] + "/3"
    store = RedisStore(url, 0.5)
    try:
        await store.start()
        n = name()
        assert (await store.admit(n, Limits(rpm=5), 0, time.time())).ok
        db3 = aioredis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/3")
        assert await db3.exists(key_of(n, "rpm")) and not await admin.exists(key_of(n, "rpm"))
        await db3.aclose()
        wrong = RedisStore(url.replace(password, "wrong"), 0.5)
        with pytest.raises(StoreUnavailable):
            await wrong._run(
                wrong._eval, "settle", [key_of(n, w) for w in ("tpm", "d", "m", "par")], ["-1", "0", "0", ""]
            )
        await wrong.close()
    finally:
        await store.close()
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


async def test_a_hung_redis_fails_within_the_timeout_and_comes_back(redis_server):
    store = RedisStore(redis_server.url, 0.3)
    await store.start()
    n, limits = name(), Limits(rpm=100)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)  # alive, connected, silent
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *[store.admit(n, limits, 0, time.time()) for _ in range(5)], return_exceptions=True
        )
        waited = time.monotonic() - started
        assert all(isinstance(r, StoreUnavailable) for r in results) and 0.25 < waited < 1.5
        with pytest.raises(StoreUnavailable, match="failed moments ago"):  # no new wait during the quiet period
            await store.admit(n, limits, 0, time.time())
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    await asyncio.sleep(QUIET_SECONDS)
    assert (await store.admit(n, limits, 0, time.time())).ok  # a fresh connection
    await store.close()


async def settled(store: RedisStore) -> None:
    """Until what was owed when called has landed (the window closed, the replies came back)."""
    await asyncio.sleep(SETTLE_WINDOW * 2)
    await store.pipe.drain()
    if store.background:
        await asyncio.wait(store.background, timeout=2)


async def test_settlings_nobody_awaits_are_summed_per_window_and_report_an_outage(redis_server):
    store = RedisStore(redis_server.url, 0.5)
    await store.start()
    n, limits = name(), Limits(tpm=1000, daily_budget_usd=10)
    failures: list[StoreUnavailable] = []
    sent = []
    send = store.pipe.send
    store.pipe.send = lambda *args: (sent.append(args[0]), send(*args))[1]
    try:
        for _ in range(8):
            store.settle_soon(n, limits, 5, 0.25, time.time(), failures.append)
        store.settle_soon(n, limits, 0, 0, time.time(), failures.append)  # nothing owed: nothing sent
        await settled(store)
        assert sent == [b"EVALSHA"]  # eight settlings, one call (the settle script was loaded at start)
        assert await store.spend(n, time.time()) == (2.0, 2.0) and not failures
        tpm = await store.redis.hget(key_of(n, "tpm"), "l")
        assert float(tpm) == pytest.approx(960)  # a full bucket less 8 × 5 tokens
        redis_server.stop()
        store.settle_soon(n, limits, 0, 0.25, time.time(), failures.append)
        await asyncio.sleep(SETTLE_WINDOW * 4)
        assert len(failures) == 1 and "unreachable" in str(failures[0])
        redis_server.start()  # a new, empty server
        store.quiet_until = 0.0
        assert not store.pipe.connected
        store.settle_soon(n, limits, 0, 0.5, time.time(), failures.append)  # reconnects in a task,
        await settled(store)  # where NOSCRIPT loads the script again
        store.settle_soon(n, limits, 0, 0.5, time.time(), failures.append)  # pipelined again
        await settled(store)
        await store.pipe.call(b"SCRIPT", b"FLUSH")  # the script cache emptied under a pipelined settling:
        store.settle_soon(n, limits, 0, 0.5, time.time(), failures.append)
        await settled(store)  # NOSCRIPT sends it on in a task that loads the script
        assert await store.spend(n, time.time()) == (1.5, 1.5) and len(failures) == 1
        store.settle_soon(n, limits, 0, 0.5, time.time(), failures.append)
    finally:
        if redis_server.proc is None:
            redis_server.start()
        await store.close()  # sends what is owed without waiting for the window
    check = RedisStore(redis_server.url, 0.5)
    assert await check.spend(n, time.time()) == (2.0, 2.0)
    await check.close()


def test_cached_token_counts_equal_fresh_ones():
    model = "openai/gpt-4o"
    cache = CountCache(encoding_name(model), size=2)
    messages = [
        Message(role="system", parts=[Part(kind="text", text="You answer in French. " * 40)]),
        Message(role="user", parts=[Part(kind="text", text="Combien de tokens ?")]),
        Message(role="user", parts=[Part(kind="text", text="Et maintenant ?")]),
    ]
    fresh = [message_tokens(m, model) for m in messages]
    assert [message_tokens(m, model, cache) for m in messages] == fresh  # misses, one eviction
    assert [message_tokens(m, model, cache) for m in messages] == fresh  # hits and misses
    assert len(cache.seen) == 2
