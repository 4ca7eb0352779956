"""The shared store: Redis, every admission one Lua script, keys laid out for Redis Cluster.

All the keys one script touches share a hash tag (``{k:<name>}`` for a client key's
limits and spend, ``{keys}`` for the key registry), so each script runs on one shard.
Bucket arithmetic uses the Redis server's clock, so gateway machines whose clocks
disagree still share one minute.

A busy key is admitted from a *lease*: the script that admits one of its requests also
takes, for this process, room for the requests it expects in the next
:data:`~router_lib.store.lease.LEASE_TIME` seconds (rpm tokens, tpm tokens, budget) — never more than a quarter of
what is left above half of any limit. Its requests are then admitted here without a
round trip until the lease is used up or ends; what it did not use goes back to Redis
when it ends. A quiet key, a key near its limit and a key with ``max_parallel`` are
admitted by Redis request by request.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
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
from .lease import LEASE_SHARE, LEASE_TIME, KeyLease
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

# An admission that may take a lease, or a lease given back.
# KEYS: rpm bucket, tpm bucket, day spend, month spend, the day and month spend a given-back lease counted in.
# ARGV: rpm, tpm (-1: none), tokens, day budget µ$, month budget µ$ (-1: none), µ$ to reserve,
#       requests wanted beyond this one (-1: only give back), tokens and µ$ per such request,
#       requests, tokens and µ$ given back.
# Returns the verdict, the retry time and how many requests beyond this one were leased.
LEASE = Template(
    _PRELUDE
    + """
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local day_budget, month_budget, reserve = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local want, per_tokens, per_micro = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local back_n, back_tokens, back_micro = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local function put(key, l)
  redis.call('HSET', key, 'l', tostring(l), 't', tostring(now))
  redis.call('EXPIRE', key, $BUCKET_TTL)
end
if back_n > 0 and rpm >= 0 then put(KEYS[1], math.min(rpm, level(KEYS[1], rpm, now) + back_n)) end
if back_tokens > 0 and tpm >= 0 then put(KEYS[2], math.min(tpm, level(KEYS[2], tpm, now) + back_tokens)) end
if back_micro > 0 then spend(KEYS[5], KEYS[6], -back_micro) end
if want < 0 then return {'ok', '0', 0} end
local day_spent = tonumber(redis.call('GET', KEYS[3]) or '0')
local month_spent = tonumber(redis.call('GET', KEYS[4]) or '0')
if day_budget >= 0 and day_spent >= day_budget then return {'daily_budget_usd', '0', 0} end
if month_budget >= 0 and month_spent >= month_budget then return {'monthly_budget_usd', '0', 0} end
local r, k
if rpm >= 0 then
  r = level(KEYS[1], rpm, now)
  if r < 1 then return {'rpm', tostring((1 - r) * 60 / rpm), 0} end
end
if tpm >= 0 then
  if tokens > tpm then return {'tpm', '-1', 0} end
  k = level(KEYS[2], tpm, now)
  if k < tokens then return {'tpm', tostring((tokens - k) * 60 / tpm), 0} end
end
local n = want
local function cap(room, per, limit)
  if room < limit / 2 then n = 0
  elseif per > 0 then n = math.min(n, math.floor((room - limit / 2) / ($SHARE * per))) end
end
if r then r = r - 1; cap(r, 1, rpm) end
if k then k = k - tokens; cap(k, per_tokens, tpm) end
if day_budget >= 0 then cap(day_budget - day_spent - reserve, per_micro, day_budget) end
if month_budget >= 0 then cap(month_budget - month_spent - reserve, per_micro, month_budget) end
if n < 0 then n = 0 end
if r then put(KEYS[1], r - n) end
if k then put(KEYS[2], k - n * per_tokens) end
local micro = reserve + n * per_micro
if micro ~= 0 then spend(KEYS[3], KEYS[4], micro) end
return {'ok', '0', n}
"""
).substitute(BUCKET_TTL=BUCKET_TTL, DAY_TTL=DAY_TTL, MONTH_TTL=MONTH_TTL, SHARE=LEASE_SHARE)

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
ADMITTED, LEASED = Admission(True), Admission(True, leased=True)

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
            for name, text in (
                ("admit", ADMIT),
                ("lease", LEASE),
                ("settle", SETTLE),
                ("put", PUT_KEY),
                ("delete", DELETE_KEY),
            )
        }
        self.leases: dict[str, KeyLease] = {}  # by key name
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
        self._drop_leases()
        return StoreUnavailable(f"Redis is unreachable ({type(exc).__name__})")

    def _drop_leases(self) -> None:
        """Redis is lost: admit nothing more from leases (what they held cannot be given back now)."""
        for lease in self.leases.values():
            self._end_lease(lease)

    @staticmethod
    def _end_lease(lease: KeyLease) -> None:
        """End a lease without giving back what it holds (that stays taken until the buckets refill)."""
        lease.empty()
        lease.limits = None
        if lease.timer is not None:
            lease.timer.cancel()
            lease.timer = None

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
            if self.pipe is not None:  # settlings and leases need not find them missing first
                for script in ("settle", "lease"):
                    await self.pipe.call(b"SCRIPT", b"LOAD", self.scripts[script].script)
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
        for name, lease in self.leases.items():  # what leases did not use goes back now
            if lease.timer is not None:
                lease.timer.cancel()
                lease.timer = None
            self._give_back(name, lease)
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
        """From the key's lease when it has room; else by the lease script, which may take a new lease.

        A key with ``max_parallel`` is admitted by Redis request by request (its slot must come
        back by its id). While an admission that may bring a lease is on its way, the key's next
        requests wait for it rather than each asking Redis.
        """
        if limits.max_parallel is not None:
            return self._admit_one(name, limits, tokens, now, reserve_usd)
        lease = self.leases.get(name)
        if lease is None:
            lease = self.leases[name] = KeyLease()
        elif lease.limits is not limits and lease.limits is not None and lease.limits != limits:
            # The key's limits changed: what the lease holds is dropped, not given back, so that it
            # cannot refill the bucket under the new limits after their first request.
            self._end_lease(lease)
        micro = round(reserve_usd * MICRO)
        loop = asyncio.get_running_loop()
        at = loop.time()
        lease.observe(tokens, micro, at)
        if lease.take(limits, tokens, micro, at):
            if lease.fetching is None and (at >= lease.renew_at or lease.left < lease.low):
                if lease.wanted() > lease.left:  # topped up before it runs out, not after
                    self._fetch(lease, name, limits, 0, 0, now, renewal=True)
                else:  # room enough for its time
                    lease.renew_at, lease.low = lease.until, 0
            verdict = loop.create_future()
            verdict.set_result(LEASED)
            return verdict
        if lease.fetching is not None:
            return self._after_fetch(lease, name, limits, tokens, micro, now)
        return self._fetch(lease, name, limits, tokens, micro, now)

    async def _after_fetch(
        self, lease: KeyLease, name: str, limits: Limits, tokens: int, micro: int, now: float
    ) -> Admission:
        while lease.fetching is not None:
            await asyncio.wait([lease.fetching])
            if lease.take(limits, tokens, micro, asyncio.get_running_loop().time()):
                return LEASED
        return await self._fetch(lease, name, limits, tokens, micro, now)

    def _fetch(
        self,
        lease: KeyLease,
        name: str,
        limits: Limits,
        tokens: int,
        micro: int,
        now: float,
        renewal: bool = False,
    ) -> asyncio.Future:
        """Send the lease script for one request (and room for more); its verdict comes in the future returned.

        A ``renewal`` asks for room only, while the lease still has some: it stands for one request
        of the key's average size, which goes to the lease with the rest.
        """
        loop = asyncio.get_running_loop()
        verdict, fetching = loop.create_future(), loop.create_future()
        lease.fetching = fetching
        wanted = lease.wanted()
        per_tokens = math.ceil(lease.per_tokens) if wanted and limits.tpm is not None else 0
        per_micro = math.ceil(lease.per_micro) if wanted and limits.budgeted else 0
        if renewal:  # up to what the key is expected to need, counting what is left
            tokens, micro, wanted = per_tokens, per_micro, max(0, wanted - lease.left - 1)
        day, month = day_and_month(now)
        day_key, month_key = key_of(name, day), key_of(name, month)
        keys = [key_of(name, "rpm"), key_of(name, "tpm"), day_key, month_key, day_key, month_key]
        args = [
            _none(limits.rpm),
            _none(limits.tpm),
            str(tokens),
            _none(limits.daily_budget_usd, MICRO),
            _none(limits.monthly_budget_usd, MICRO),
            str(micro),
            str(wanted),
            str(per_tokens),
            str(per_micro),
            "0",
            "0",
            "0",
        ]
        grant = functools.partial(
            self._leased, lease, name, limits, (per_tokens, per_micro, day, month, renewal), now, verdict, fetching
        )
        self._send("lease", keys, args, grant)
        return verdict

    def _send(self, script: str, keys: list[str], args: list[str], done: Callable) -> None:
        """Run a script without waiting for it; ``done(reply, exc)`` hears how it went (``exc``: StoreUnavailable)."""
        pipe = self.pipe
        if pipe is not None and pipe.connected and time.monotonic() >= self.quiet_until:
            sent = pipe.send(b"EVALSHA", self.scripts[script].sha, len(keys), *keys, *args)
            sent.add_done_callback(functools.partial(self._sent, script, keys, args, done))
        else:  # Redis Cluster, or a connection to make first (or refused during the quiet period)
            self._track(self._send_again(script, keys, args, done))

    def _sent(self, script: str, keys: list[str], args: list[str], done: Callable, sent: asyncio.Future) -> None:
        exc = sent.exception()
        if exc is None:
            done(sent.result(), None)
        elif isinstance(exc, ReplyError) and str(exc).startswith("NOSCRIPT"):  # a restarted Redis: load, again
            self._track(self._send_again(script, keys, args, done))
        else:
            done(None, self._unavailable(exc))

    async def _send_again(self, script: str, keys: list[str], args: list[str], done: Callable) -> None:
        try:
            reply = await self._run(self._eval, script, keys, args)
        except StoreUnavailable as exc:
            done(None, exc)
            return
        done(reply, None)

    def _leased(
        self,
        lease: KeyLease,
        name: str,
        limits: Limits,
        terms: tuple[int, int, str, str, bool],
        now: float,
        verdict: asyncio.Future,
        fetching: asyncio.Future,
        reply: list | None,
        exc: StoreUnavailable | None,
    ) -> None:
        """The lease script's answer: the request's verdict, and the room it took for the key's next requests."""
        if lease.fetching is fetching:
            lease.fetching = None
        fetching.set_result(None)
        if exc is not None:
            if not verdict.done():
                verdict.set_exception(exc)
                verdict.exception()  # retrieved: its reader sees it when it awaits
            return
        answer, retry, granted = reply
        if isinstance(answer, bytes):
            answer, retry = answer.decode(), retry.decode()
        granted = int(granted) + (answer == "ok" and terms[4])  # a renewal's own request is room too
        if granted:
            self._grant(lease, name, limits, granted, terms)
        if not verdict.done():  # else its caller gave up, as it may with any admission
            verdict.set_result(ADMITTED if answer == "ok" else self._refusal(answer, retry, now))

    def _grant(
        self, lease: KeyLease, name: str, limits: Limits, granted: int, terms: tuple[int, int, str, str, bool]
    ) -> None:
        """Room for ``granted`` more requests: added to what the lease has left, and the lease runs
        :data:`LEASE_TIME` from now (Redis just answered)."""
        per_tokens, per_micro, day, month, _ = terms
        loop = asyncio.get_running_loop()
        at = loop.time()
        kept = False
        if lease.left or lease.tokens or lease.micro:  # a renewal, or an admission sent at the same time
            if lease.limits != limits:
                self._end_lease(lease)  # taken under other limits: dropped (see admit_soon)
            elif at < lease.until and lease.periods == (day, month):
                kept = True
            else:
                self._give_back(name, lease)
        if kept:
            lease.left += granted
            lease.tokens += granted * per_tokens
            lease.micro += granted * per_micro
        else:
            lease.limits, lease.periods = limits, (day, month)
            lease.left, lease.tokens, lease.micro = granted, granted * per_tokens, granted * per_micro
        if self.closed:  # an answer that came while closing: the room goes back at once
            self._give_back(name, lease)
            return
        lease.until = at + LEASE_TIME
        # Renewed halfway through its time or its room, so that requests do not wait for the next one.
        lease.renew_at, lease.low = at + LEASE_TIME / 2, lease.left // 2
        if lease.timer is not None:
            lease.timer.cancel()
        lease.timer = loop.call_at(lease.until, self._lease_ended, name, lease)

    def _lease_ended(self, name: str, lease: KeyLease) -> None:
        lease.timer = None
        self._give_back(name, lease)

    def _give_back(self, name: str, lease: KeyLease) -> None:
        """Send what the lease did not use back to Redis (the buckets and the spend it was taken from)."""
        left, tokens, micro = lease.empty()
        if not (left or tokens or micro) or lease.limits is None:
            return
        limits, (day, month) = lease.limits, lease.periods
        day_key, month_key = key_of(name, day), key_of(name, month)
        keys = [key_of(name, "rpm"), key_of(name, "tpm"), day_key, month_key, day_key, month_key]
        args = [_none(limits.rpm), _none(limits.tpm), "0", "-1", "-1", "0", "-1", "0", "0"]
        self._send("lease", keys, [*args, str(left), str(tokens), str(micro)], self._given_back)

    def _given_back(self, reply: list | None, exc: StoreUnavailable | None) -> None:
        if exc is not None:  # what it held stays taken: rpm and tpm refill, a budget counts it as spent
            self.failed(exc)

    def _admit_one(
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
        return self._refusal(verdict, retry, now)

    @staticmethod
    def _refusal(verdict: str, retry: str, now: float) -> Admission:
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
        """Asked by every process each lease time: on the pipelined connection when there is one."""
        if self.pipe is not None:
            return int(await self._run(self.pipe.call, b"GET", REGISTRY[1]) or 0)
        return int(await self._run(self.redis.get, REGISTRY[1]) or 0)
