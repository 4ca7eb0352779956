"""Client keys on a real redis-server: limits shared by two gateways, Redis dying mid-test, the keys CLI."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid

import attrs
import pytest

from router_core.cli import main
from router_core.config import ConfigError
from router_lib.store import HEALTH, STORE, Limits, StoreUnavailable
from router_lib.store.redis import RedisStore
from router_plugins.keys.plugin import REGISTRY
from tests.plugins.test_keys import CHAT, post


def name() -> str:
    return "k" + uuid.uuid4().hex[:10]


def shared(redis_url: str, on_error: str = "fail_closed", **tables) -> dict:
    return {"plugins": {"enabled": ["keys"]}, "keys": tables, "store": {"url": redis_url, "on_error": on_error}}


async def test_two_gateways_share_one_rpm_limit_exactly(make_gateway, redis_server):
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    config = shared(redis_server.url, **{n: {"key": key, "rpm": 30}})
    one, two = await make_gateway(config), await make_gateway(config)
    replies = await asyncio.gather(*[post(g, key) for _ in range(40) for g in (one, two)])
    statuses = [r.status for r in replies]
    assert statuses.count(200) == 30 and statuses.count(429) == 50


async def test_two_gateways_share_max_parallel(make_gateway, redis_server, upstream):
    gate = asyncio.Event()

    async def slow(request, body):
        await gate.wait()
        return await upstream.default(request, body)

    upstream.handler = slow
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    config = shared(redis_server.url, **{n: {"key": key, "max_parallel": 3}})
    one, two = await make_gateway(config), await make_gateway(config)
    held = [asyncio.ensure_future(post(g, key)) for g in (one, two, one)]
    while len(upstream.requests) < 3:
        await asyncio.sleep(0.01)
    assert (await post(two, key)).status == 429
    gate.set()
    assert [(await h).status for h in held] == [200, 200, 200]
    # A slot is given back by request_finished, just after its answer was sent: the client can
    # see the 200 a moment before the lease is released, so the freed slot is awaited, not assumed.
    for _ in range(100):
        if (status := (await post(two, key)).status) == 200:
            break
        await asyncio.sleep(0.02)
    assert status == 200


async def test_two_gateways_share_a_budget(make_gateway, redis_server):
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    config = shared(redis_server.url, **{n: {"key": key, "monthly_budget_usd": 0.5}})
    one, two = await make_gateway(config), await make_gateway(config)
    assert (await post(one, key)).status == 200
    await one.app[STORE].settle(n, Limits(monthly_budget_usd=0.5), 0, 0.5, time.time())  # spent on gateway one
    resp = await post(two, key)
    assert resp.status == 402 and "monthly_budget_usd ($0.5 per UTC month)" in (await resp.json())["error"]["message"]
    assert await two.app[STORE].spend(n, time.time()) == (0.5, 0.5)


async def test_two_gateways_share_a_budget_exactly_under_concurrency(make_gateway, redis_server, upstream):
    gate = asyncio.Event()

    async def held(request, body):  # no answer (and so no settling) until every request was judged
        await gate.wait()
        return await upstream.default(request, body)

    upstream.handler = held
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    config = shared(redis_server.url, **{n: {"key": key, "daily_budget_usd": 50}})
    config["models"] = {"openai/gpt-4o": {"input_per_mtok": 1e6, "output_per_mtok": 0}}  # 5 input tokens: $5
    one, two = await make_gateway(config), await make_gateway(config)
    replies = [asyncio.ensure_future(post(g, key)) for _ in range(15) for g in (one, two)]
    for _ in range(500):  # over-admission would leave fewer than 20 refused: then the assert below says so
        if sum(r.done() for r in replies) >= 20:
            break
        await asyncio.sleep(0.01)
    gate.set()
    statuses = [(await r).status for r in replies]
    assert statuses.count(200) == 10 and statuses.count(402) == 20


async def test_budget_settles_from_real_usage(make_gateway, redis_server):
    """The fake upstream reports 11 input and 7 output tokens; at $1M/Mtok that is $18 a request."""
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    config = shared(redis_server.url, **{n: {"key": key, "daily_budget_usd": 30}})
    config["models"] = {"openai/gpt-4o": {"input_per_mtok": 1e6, "output_per_mtok": 1e6}}
    gateway = await make_gateway(config)
    assert (await post(gateway, key)).status == 200
    for _ in range(50):
        if (await gateway.app[STORE].spend(n, time.time()))[0] >= 18:
            break
        await asyncio.sleep(0.02)
    assert (await gateway.app[STORE].spend(n, time.time()))[0] == pytest.approx(18)
    assert (await post(gateway, key)).status == 200  # 18 < 30
    await asyncio.sleep(0.1)
    resp = await post(gateway, key)  # 36 >= 30
    assert resp.status == 402


@pytest.mark.parametrize("on_error", ["fail_closed", "fail_open"])
async def test_redis_killed_mid_test(make_gateway, redis_server, on_error, caplog):
    key, n = f"sk-router-{uuid.uuid4().hex}", name()
    gateway = await make_gateway(shared(redis_server.url, on_error, **{n: {"key": key, "rpm": 2}}))
    assert [(await post(gateway, key)).status for _ in range(3)] == [200, 200, 429]
    caplog.set_level(logging.INFO, logger="llm_router.store")
    redis_server.stop()
    try:
        statuses = [(await post(gateway, key)).status for _ in range(5)]
        if on_error == "fail_closed":
            assert statuses == [503] * 5
            resp = await post(gateway, key)
            assert (await resp.json())["error"]["code"] == "store_unavailable" and resp.headers["Retry-After"] == "1"
        else:
            assert statuses == [200] * 5
        health = gateway.app[HEALTH]
        assert not health.up and health.errors >= 5
        assert (health.refused if on_error == "fail_closed" else health.admitted_unchecked) >= 5
    finally:
        redis_server.start()
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        status = (await post(gateway, key)).status
        if status == 429:  # Redis answers again and still holds the bucket: the limit is back
            break
        await asyncio.sleep(0.1)
    assert status == 429
    down = [r for r in caplog.records if "store unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "store reachable again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1  # logged once per change of state, not per request


async def test_unreachable_redis_at_startup_is_a_clear_error(make_gateway):
    from tests.services import free_port

    config = shared(f"redis://127.0.0.1:{free_port()}/0", **{name(): {"key": f"sk-router-{uuid.uuid4().hex}"}})
    with pytest.raises(ConfigError, match=r"store.url: cannot reach the Redis store"):
        await make_gateway(config)


async def test_a_redis_that_refuses_scripts_is_refused_at_startup(redis_server):
    # A real refusal, as a proxy gives one: a Redis user that may run everything but scripts.
    import redis.asyncio as aioredis

    user, password = name(), uuid.uuid4().hex
    admin = aioredis.Redis.from_url(redis_server.url)
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all", "-@scripting")
    url = redis_server.url.replace("redis://", f"redis://{user}:{password}@", 1)
    store = RedisStore(url, 0.5)
    assert store.pipe is not None  # the pipelined connection is the one that must refuse
    try:
        with pytest.raises(StoreUnavailable, match=r"refuses Lua scripts.*EVAL/EVALSHA"):
            await store.start()
        allowed = RedisStore(redis_server.url, 0.5)
        await allowed.start()  # the same server with a user that may: starts
        await allowed.close()
    finally:
        await store.close()
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


@attrs.define
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, config: str) -> Ran:
    """`llm-router keys …` in this process (its own event loop, in a thread), output captured."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["keys", *args, "--config", config])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue())


async def acli(*args: str, config: str) -> Ran:
    return await asyncio.to_thread(cli, *args, config=config)


async def test_keys_cli_create_list_rotate_revoke(make_gateway, redis_server, tmp_path):
    config = tmp_path / "plugins.toml"
    config.write_text(
        f'[plugins]\nenabled = ["keys", "zdr"]\n[store]\nurl = "{redis_server.url}"\n'
        '[providers.echo]\nkind = "echo"\nzdr = true\n'
    )
    n = name()
    made = await acli("create", n, "--rpm", "5", "--models", "echo/*", "--policy", '{"zdr": true}', config=str(config))
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-router-") and len(key) > 40
    gateway = await make_gateway(shared(redis_server.url) | {"plugins": {"enabled": ["keys", "zdr"]}})
    assert (await post(gateway, key, {**CHAT, "model": "echo/x"})).status == 200
    assert (await post(gateway, key)).status == 403  # openai/* is not in its models
    listed = await acli("list", config=str(config))
    assert n in listed.stdout and "rpm=5" in listed.stdout and key not in listed.stdout + listed.stderr
    assert (await acli("create", n, config=str(config))).returncode == 2  # the name is taken
    bad = await acli("create", name(), "--policy", '{"tags": 1}', config=str(config))
    assert bad.returncode == 2 and "--policy.tags: no enabled plugin owns" in bad.stderr
    rotated = await acli("rotate", n, config=str(config))
    new_key = rotated.stdout.strip()
    assert rotated.returncode == 0 and new_key != key
    await gateway.app[REGISTRY].refresh()  # what the refresh task does every second
    assert (await post(gateway, key, {**CHAT, "model": "echo/x"})).status == 401
    assert (await post(gateway, new_key, {**CHAT, "model": "echo/x"})).status == 200
    assert (await acli("revoke", n, config=str(config))).returncode == 0
    await asyncio.sleep(1.3)  # the refresh task picks it up on its own
    assert (await post(gateway, new_key, {**CHAT, "model": "echo/x"})).status == 401


def test_keys_cli_needs_a_shared_store(tmp_path):
    config = tmp_path / "plugins.toml"
    config.write_text('[plugins]\nenabled = ["keys"]\n')
    done = cli("create", "x", config=str(config))
    assert done.returncode == 2 and 'set [store] url = "redis://' in done.stderr


@pytest.fixture(scope="module")
def redis_cluster(redis_server, tmp_path_factory):
    """Three redis-server nodes made one Redis Cluster (no replicas); yields a redis+cluster:// URL."""
    import shutil
    import subprocess

    from tests.services import free_port, wait_port

    if not shutil.which("redis-cli"):
        pytest.skip("redis-cli is not installed (it comes with redis-server)")
    ports, procs = [free_port() for _ in range(3)], []
    try:
        for port in ports:
            folder = tmp_path_factory.mktemp(f"cluster-{port}")
            args = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--save", ""]
            args += ["--cluster-port", str(free_port())]  # the bus port, else port + 10000
            args += ["--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder), "--appendonly", "no"]
            procs.append(subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL))
            wait_port(port, procs[-1])
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
        for port in ports:  # the nodes agree on the slots within a moment (each one: a key may live on any)
            for _ in range(100):
                info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True)
                if "cluster_state:ok" in info.stdout:
                    break
                time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


async def test_limits_and_keys_on_a_redis_cluster(make_gateway, redis_cluster):
    """Every script's keys share a hash tag, so each runs on one shard of a real cluster."""
    keys = {f"sk-router-{uuid.uuid4().hex}": name() for _ in range(6)}  # names spread over the shards
    tables = {n: {"key": k, "rpm": 3, "max_parallel": 5, "daily_budget_usd": 100} for k, n in keys.items()}
    config = shared(redis_cluster, **tables)
    config["store"]["timeout"] = 3  # about key design, not speed: a loaded CI machine must not trip it
    one, two = await make_gateway(config), await make_gateway(config)
    for key in keys:
        statuses = [(await post(g, key)).status for g in (one, two, one, two)]
        assert statuses == [200, 200, 200, 429]
    store = one.app[STORE]
    from router_plugins.keys.settings import record

    runtime_key = f"sk-router-{uuid.uuid4().hex}"
    assert await store.add_key(record(name(), runtime_key, limits=Limits(rpm=1)))
    await two.app[REGISTRY].refresh()
    assert [(await post(two, runtime_key)).status for _ in range(2)] == [200, 429]


async def test_settling_in_one_pipeline_survives_a_restart_and_reports_an_outage(redis_server):
    store = RedisStore(redis_server.url, 0.5)
    await store.start()
    n, limits = name(), Limits(tpm=1000, daily_budget_usd=10)
    try:
        await asyncio.gather(*[store.settle(n, limits, 5, 0.25, time.time()) for _ in range(8)])  # one pipeline
        assert await store.spend(n, time.time()) == (2.0, 2.0)
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            await store.settle(n, limits, 5, 0.25, time.time())
        redis_server.start()  # a new server: its script cache is empty (NOSCRIPT), its data gone
        store.quiet_until = 0.0
        await asyncio.gather(*[store.settle(n, limits, 5, 0.5, time.time()) for _ in range(4)])
        assert await store.spend(n, time.time()) == (2.0, 2.0)
    finally:
        if redis_server.proc is None:
            redis_server.start()
        await store.close()
