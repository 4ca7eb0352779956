"""The shared store: Redis, every admission one Lua script, keys laid out for Redis Cluster.

All the keys one script touches share a hash tag (``{k:<name>}`` for a client key's
limits and spend, ``{keys}`` for the key registry), so each script runs on one shard.
Bucket arithmetic uses the Redis server's clock, so gateway machines whose clocks
disagree still share one minute.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from string import Template

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from router_core.config import converter

from .base import (
    LEASE_SECONDS,
    MICRO,
    Admission,
    KeyRecord,
    Limits,
    Store,
    StoreUnavailable,
    day_and_month,
    seconds_to_period_end,
)
from .pipe import Pipe, ReplyError, pipe_address

PREFIX = "llmr"
# After a connection failure, calls fail at once for this long instead of each waiting
# for a timeout: a dead Redis must not add its timeout to every request.
QUIET_SECONDS = 0.5
# Settlings without a parallel slot to give back (tokens and cost after the answer) are summed
# per key for this long and sent as one script call: a busy key costs one Redis call per window,
# not one per request. A settling lands at most this much (plus a round trip) after its answer.
SETTLE_WINDOW = 0.05
BUCKET_TTL = 120  # seconds: an idle bucket has refilled long before it expires
DAY_TTL, MONTH_TTL = 3 * 86400, 40 * 86400

# Shared by the scripts: a token bucket's level now, spend added to the day and month counters, the time.
_PRELUDE = """
local function level(key, cap, now)
  local v = redis.call('HMGET', key, 'l', 't')
  local l, at = tonumber(v[1]), tonumber(v[2])
  if l == nil then return cap end
  return math.min(cap, l + (now - at) * cap / 60)
end
local function spend(day_key, month_key, micro)
  redis.call('INCRBY', day_key, micro)
  redis.call('EXPIRE', day_key, $DAY_TTL)
  redis.call('INCRBY', month_key, micro)
  redis.call('EXPIRE', month_key, $MONTH_TTL)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: rpm bucket, tpm bucket, parallel leases, day spend, month spend.
# ARGV: rpm, tpm, tokens, max_parallel, day budget µ$, month budget µ$ (-1: none),
#       lease id, lease seconds, µ$ to reserve.  A spent budget's retry time is worked out by the caller.
ADMIT = Template(
    _PRELUDE
    + """
local rpm, tpm, tokens, par = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local day_budget, month_budget = tonumber(ARGV[5]), tonumber(ARGV[6])
if day_budget >= 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= day_budget then
  return {'daily_budget_usd', '0'}
end
if month_budget >= 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= month_budget then
  return {'monthly_budget_usd', '0'}
end
if par >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= par then return {'max_parallel', '1'} end
end
local r, k
if rpm >= 0 then
  r = level(KEYS[1], rpm, now)
  if r < 1 then return {'rpm', tostring((1 - r) * 60 / rpm)} end
end
if tpm >= 0 then
  if tokens > tpm then return {'tpm', '-1'} end
  k = level(KEYS[2], tpm, now)
  if k < tokens then return {'tpm', tostring((tokens - k) * 60 / tpm)} end
end
if r then
  redis.call('HSET', KEYS[1], 'l', tostring(r - 1), 't', tostring(now))
  redis.call('EXPIRE', KEYS[1], $BUCKET_TTL)
end
if k then
  redis.call('HSET', KEYS[2], 'l', tostring(k - tokens), 't', tostring(now))
  redis.call('EXPIRE', KEYS[2], $BUCKET_TTL)
end
if par >= 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[8]), ARGV[7])
  redis.call('EXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8])))
end
local reserve = tonumber(ARGV[9])
if reserve ~= 0 then spend(KEYS[4], KEYS[5], reserve) end
return {'ok', '0'}
"""
).substitute(BUCKET_TTL=BUCKET_TTL, DAY_TTL=DAY_TTL, MONTH_TTL=MONTH_TTL)

# KEYS: tpm bucket, day spend, month spend, parallel leases.  ARGV: tpm (-1: none), token delta, µ$, lease ('': none).
SETTLE = Template(
    _PRELUDE
    + """
local tpm, delta, micro = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm >= 0 and delta ~= 0 then
  local l = math.max(-tpm, level(KEYS[1], tpm, now) - delta)
  redis.call('HSET', KEYS[1], 'l', tostring(l), 't', tostring(now))
  redis.call('EXPIRE', KEYS[1], $BUCKET_TTL)
end
if micro ~= 0 then spend(KEYS[2], KEYS[3], micro) end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[4], ARGV[4]) end
return 1
"""
).substitute(BUCKET_TTL=BUCKET_TTL, DAY_TTL=DAY_TTL, MONTH_TTL=MONTH_TTL)

# KEYS: records hash, version.  ARGV: name, record JSON, replace (1/0).
PUT_KEY = """
if ARGV[3] == '0' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
"""

# KEYS: records hash, version.  ARGV: name.
DELETE_KEY = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('INCR', KEYS[2])
return 1
"""


def key_of(name: str, what: str) -> str:
    return f"{PREFIX}:{{k:{name}}}:{what}"


LEASE_ARG = str(LEASE_SECONDS)

REGISTRY = (f"{PREFIX}:{{keys}}:records", f"{PREFIX}:{{keys}}:version")


def _none(value: float | None, scale: float = 1) -> str:
    return "-1" if value is None else str(round(value * scale))


class RedisStore(Store):
    def __init__(self, url: str, timeout: float) -> None:
        # Admissions and settlings (two per limited request) go through one self-pipelining
        # connection; redis-py keeps the rest, and all of it for Redis Cluster.
        address = pipe_address(url)
        self.pipe = Pipe(address, timeout) if address is not None else None
        options = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # No hidden retries on the request path: the caller decides at once. Off it (key
            # registry, spend, the CLI) one immediate retry replaces a pooled connection that a
            # Redis restart left dead, instead of reporting an outage that is already over.
            "retry": Retry(NoBackoff(), 0 if self.pipe is None else 1),
            "decode_responses": True,
        }
        if "+cluster://" in url:  # redis+cluster://one-node:6379: the client finds the others
            self.redis = RedisCluster.from_url(url.replace("+cluster://", "://", 1), **options)
        else:
            self.redis = aioredis.Redis.from_url(url, **options)
        self.scripts = {
            name: self.redis.register_script(text)
            for name, text in (("admit", ADMIT), ("settle", SETTLE), ("put", PUT_KEY), ("delete", DELETE_KEY))
        }
        self.quiet_until = 0.0
        # Settlings nobody waits for, summed per (key, tpm, day, month) until the window closes.
        self.owed: dict[tuple, list] = {}
        self.owed_at: asyncio.TimerHandle | None = None
        super().__init__()
        # Lease ids: unique across processes (a random prefix) and cheap within one.
        self.lease_prefix = secrets.token_hex(6) + "-"
        self.lease_ids = itertools.count(1)

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The StoreUnavailable for a failed command; a connection failure starts the quiet period."""
        if isinstance(exc, ReplyError) or (isinstance(exc, ResponseError) and "NOSCRIPT" not in str(exc)):
            return StoreUnavailable(f"Redis refused a command ({type(exc).__name__})")
        self.quiet_until = time.monotonic() + QUIET_SECONDS
        return StoreUnavailable(f"Redis is unreachable ({type(exc).__name__})")

    async def _run(self, coro_fn, *args, **kwargs):
        if time.monotonic() < self.quiet_until:
            raise StoreUnavailable("the store failed moments ago")
        try:
            return await coro_fn(*args, **kwargs)
        except (RedisError, ReplyError, OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None

    async def _eval(self, name: str, keys: list[str], args: list[str]):
        """One script by its sha; loaded again when Redis lost it (a restart empties its script cache)."""
        script = self.scripts[name]
        if self.pipe is None:
            return await script(keys=keys, args=args)
        try:
            return await self.pipe.call(b"EVALSHA", script.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.pipe.call(b"SCRIPT", b"LOAD", script.script)
        return await self.pipe.call(b"EVALSHA", script.sha, len(keys), *keys, *args)

    async def start(self) -> None:
        """Check the connection and that Lua scripts run (some Redis proxies refuse EVAL)."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach the Redis store ({type(exc).__name__})") from None
        try:
            probe = [key_of("_probe", w) for w in ("rpm", "tpm", "par", "d", "m")]
            await self._eval("admit", probe, ["-1", "-1", "0", "-1", "-1", "-1", "x", "1", "0"])
            if self.pipe is not None:  # settlings need not find it missing first
                await self.pipe.call(b"SCRIPT", b"LOAD", self.scripts["settle"].script)
        except (ResponseError, ReplyError) as exc:
            raise StoreUnavailable(
                f"the Redis store refuses Lua scripts ({type(exc).__name__}), which exact limits need; "
                "point [store] url at Redis itself or at a proxy that allows EVAL/EVALSHA"
            ) from None
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"cannot reach the Redis store ({type(exc).__name__})") from None

    async def close(self) -> None:
        self.closed = True
        if self.owed_at is not None:  # what is owed goes now, not after the window
            self.owed_at.cancel()
            self._settle_owed()
        if self.pipe is not None:
            await self.pipe.drain()  # settlings nobody waits for; a NOSCRIPT one goes on in a task
        if self.background:  # those tasks (and, on Redis Cluster or while reconnecting, all of them)
            await asyncio.wait(self.background, timeout=5)
        if self.pipe is not None:
            self.pipe.close()
        await self.redis.aclose()

    async def admit(self, name: str, limits: Limits, tokens: int, now: float, reserve_usd: float = 0.0) -> Admission:
        return await self.admit_soon(name, limits, tokens, now, reserve_usd)

    def admit_soon(
        self, name: str, limits: Limits, tokens: int, now: float, reserve_usd: float = 0.0
    ) -> Awaitable[Admission]:
        day, month = day_and_month(now)
        lease = f"{self.lease_prefix}{next(self.lease_ids)}"
        keys = [key_of(name, "rpm"), key_of(name, "tpm"), key_of(name, "par"), key_of(name, day), key_of(name, month)]
        args = [
            _none(limits.rpm),
            _none(limits.tpm),
            str(tokens),
            _none(limits.max_parallel),
            _none(limits.daily_budget_usd, MICRO),
            _none(limits.monthly_budget_usd, MICRO),
            lease,
            LEASE_ARG,
            str(round(reserve_usd * MICRO)),
        ]
        pipe, sent = self.pipe, None
        if pipe is not None and pipe.connected and time.monotonic() >= self.quiet_until:
            sent = pipe.send(b"EVALSHA", self.scripts["admit"].sha, len(keys), *keys, *args)  # goes out this turn
        return self._admitted(sent, keys, args, lease if limits.max_parallel is not None else None, now)

    async def _admitted(
        self, sent: asyncio.Future | None, keys: list[str], args: list[str], lease: str | None, now: float
    ) -> Admission:
        reply = None
        if sent is not None:
            try:
                reply = await sent
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise self._unavailable(exc) from None
            except (OSError, TimeoutError) as exc:
                raise self._unavailable(exc) from None
        if reply is None:  # not sent yet (to connect first), or sent to a Redis that lost the script
            reply = await self._run(self._eval, "admit", keys, args)
        verdict, retry = reply
        if isinstance(verdict, bytes):
            verdict, retry = verdict.decode(), retry.decode()
        if verdict == "ok":
            return Admission(True, lease=lease)
        if verdict.endswith("_budget_usd"):
            to_day, to_month = seconds_to_period_end(now)
            return Admission(False, verdict, to_day if verdict.startswith("daily") else to_month)
        seconds = float(retry)
        return Admission(False, verdict, None if seconds < 0 else seconds)

    @staticmethod
    def _settling(
        name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, lease: str | None
    ) -> tuple[list[str], list[str]] | None:
        """The settle script's keys and arguments, or ``None`` when there is nothing to settle."""
        micro = round(cost_usd * MICRO)
        if not micro and lease is None and not (limits.tpm is not None and token_delta):
            return None
        day, month = day_and_month(now)
        keys = [key_of(name, "tpm"), key_of(name, day), key_of(name, month), key_of(name, "par")]
        return keys, [_none(limits.tpm), str(token_delta), str(micro), lease or ""]

    async def settle(
        self, name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, lease: str | None = None
    ) -> None:
        settling = self._settling(name, limits, token_delta, cost_usd, now, lease)
        if settling is not None:
            await self._run(self._eval, "settle", *settling)

    def settle_soon(
        self,
        name: str,
        limits: Limits,
        token_delta: int,
        cost_usd: float,
        now: float,
        failed: Callable[[StoreUnavailable], None],
    ) -> None:
        """Added to what the key owes; what keys owe goes to Redis once per :data:`SETTLE_WINDOW`."""
        micro = round(cost_usd * MICRO)
        delta = token_delta if limits.tpm is not None else 0
        if not micro and not delta:
            return
        group = (name, limits.tpm, *day_and_month(now))
        owed = self.owed.get(group)
        if owed is None:
            self.owed[group] = [delta, micro, failed]
        else:
            owed[0] += delta
            owed[1] += micro
        if self.owed_at is None:
            self.owed_at = asyncio.get_running_loop().call_later(SETTLE_WINDOW, self._settle_owed)

    def _settle_owed(self) -> None:
        """One settle script per key (and UTC day) for the window's settlings, all in one write."""
        self.owed_at = None
        owed, self.owed = self.owed, {}
        pipe, sha = self.pipe, self.scripts["settle"].sha
        direct = pipe is not None and pipe.connected and time.monotonic() >= self.quiet_until
        for (name, tpm, day, month), (delta, micro, failed) in owed.items():
            keys = [key_of(name, "tpm"), key_of(name, day), key_of(name, month), key_of(name, "par")]
            settling = (keys, [_none(tpm), str(delta), str(micro), ""])
            if direct:  # no task: the reply is checked by a callback
                reply = pipe.send(b"EVALSHA", sha, len(keys), *settling[0], *settling[1])
                reply.add_done_callback(functools.partial(self._settled, settling, failed))
            else:  # Redis Cluster, or a connection to make first (or refused during the quiet period)
                self._track(self._settle_again(settling, failed))

    def _settled(
        self, settling: tuple[list[str], list[str]], failed: Callable[[StoreUnavailable], None], reply: asyncio.Future
    ) -> None:
        exc = reply.exception()
        if exc is None:
            return
        if isinstance(exc, ReplyError) and str(exc).startswith("NOSCRIPT"):  # a restarted Redis: load, then again
            self._track(self._settle_again(settling, failed))
            return
        failed(self._unavailable(exc))

    async def _settle_again(
        self, settling: tuple[list[str], list[str]], failed: Callable[[StoreUnavailable], None]
    ) -> None:
        try:
            await self._run(self._eval, "settle", *settling)
        except StoreUnavailable as exc:
            failed(exc)

    async def spend(self, name: str, now: float) -> tuple[float, float]:
        day, month = day_and_month(now)
        spent_day, spent_month = await self._run(self.redis.mget, key_of(name, day), key_of(name, month))
        return int(spent_day or 0) / MICRO, int(spent_month or 0) / MICRO

    async def add_key(self, record: KeyRecord, replace: bool = False) -> bool:
        text = orjson.dumps(converter.unstructure(record)).decode()
        done = await self._run(
            self.scripts["put"], keys=list(REGISTRY), args=[record.name, text, "1" if replace else "0"]
        )
        return bool(done)

    async def remove_key(self, name: str) -> bool:
        return bool(await self._run(self.scripts["delete"], keys=list(REGISTRY), args=[name]))

    async def keys(self) -> list[KeyRecord]:
        raw = await self._run(self.redis.hvals, REGISTRY[0])
        return [converter.structure(orjson.loads(text), KeyRecord) for text in raw]

    async def keys_version(self) -> int:
        return int(await self._run(self.redis.get, REGISTRY[1]) or 0)
