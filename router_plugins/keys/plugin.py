"""Client keys with limits, budgets, allow-lists and a policy of their own (``[keys.*]``, ``[store]``).

The core's gate (``register_gate``) authenticates every request (in place of ``server.api_keys``, which
stay valid as one unlimited key named ``server``); ``pre_request`` applies the key's
policy and asks the store to take what the request uses, in one atomic step whose
answer ``select_provider`` reads (before any route is used) while holding the key to
its providers; ``request_finished`` settles the real tokens and the spend and gives the
parallel slot back, in one more step.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import math
import threading
import time
from collections.abc import Awaitable
from typing import Any

import attrs
from aiohttp import web

from router_core import Outcome, PolicyViolation, RequestContext, Route, hookimpl
from router_core.config import ConfigError
from router_core.errors import GatewayError, Unauthorized
from router_core.pipeline import RUNTIME
from router_lib.store import (
    HEALTH,
    KEY_NAME,
    Admission,
    StoreUnavailable,
    app_store,
    close_app_store,
    store_settings,
)
from router_lib.store.pricing import cost_usd
from router_lib.tokens import counter, encoding_name, message_tokens, tool_tokens

from .registry import KeyRegistry
from .settings import ClientKey, config_keys, server_keys

FAIL_CLOSED = True  # a failure here refuses the request: limits and policy are security
AUTHENTICATES = True
CONFIG_TABLES = ("keys", "store")
NAME = "keys"

log = logging.getLogger("llm_router.keys")

# Conversations longer than this are counted in a thread: tiktoken on megabytes would hold the loop.
COUNT_INLINE_CHARS = 50_000

REGISTRY = web.AppKey("keys.registry", KeyRegistry)
CONFIGURED = web.AppKey("keys.configured", dict)


@attrs.define
class Admitted:
    """One request's key and what it took from the key's limits."""

    key: ClientKey
    lease: str | None = None
    counted_tokens: int = 0
    reserved_usd: float = 0.0  # the input's cost, taken from the budgets at admission
    checked: bool = False  # limits were taken from the store (not skipped by fail_open)
    verdict: Awaitable[Admission] | None = None  # the store's answer, asked for and not yet read
    body_size: int | None = None  # the request body's length when it was sent with one


#: The current request's key: set by the middleware, read by the request hooks.
CURRENT: contextvars.ContextVar[Admitted | None] = contextvars.ContextVar("llm_router_key", default=None)


class LimitExceeded(GatewayError):
    """A key is over one of its limits: 429 (rate) or 402 (budget), with Retry-After when it will pass."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, limit: str, retry_after: float | None, budget: bool = False) -> None:
        super().__init__(message, code="budget_exceeded" if budget else "rate_limit_exceeded")
        self.limit = limit
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
        if budget:
            self.status, self.type = 402, "insufficient_quota"


class StoreDown(GatewayError):
    status = 503
    type = "server_error"
    code = "store_unavailable"
    headers = {"Retry-After": "1"}  # noqa: RUF012  (read-only, as the class attribute it overrides)


# ---------------------------------------------------------------- startup


@hookimpl
def register_gate(register: Any, config: Any) -> None:
    keys = {**server_keys(config.server.api_keys), **config_keys(config.keys)}  # ConfigError names the table
    settings = store_settings(config)
    limited = [k.name for k in keys.values() if k.limits.any]
    if config.server.workers > 1 and limited and not settings.shared:
        raise ConfigError(
            [
                f"store.url: {config.server.workers} workers would each count the limits of "
                f"{', '.join(sorted(limited))} on their own (a limit would become limit × workers); "
                'set [store] url = "redis://host:6379/0" to share them, or serve with --workers 1'
            ]
        )
    register(authenticate)


@hookimpl
async def router_startup(app: web.Application, config: Any) -> None:
    keys = {**server_keys(config.server.api_keys), **config_keys(config.keys)}
    schema = app[RUNTIME].schema

    def check_policy(policy: dict[str, Any], name: str = "policy") -> None:
        schema.enforce({}, policy, name)

    for key in keys.values():
        check_policy(key.policy, f"keys.{key.name}.policy")
    try:
        store = await app_store(app, config)
    except StoreUnavailable as exc:
        raise ConfigError([f"store.url: {exc}"]) from None
    registry = KeyRegistry(keys, store, app[HEALTH], check_policy)
    await registry.start()
    app[REGISTRY] = registry
    if any(k.limits.tpm is not None or k.limits.budgeted for k in keys.values()):
        # The vocabulary loads in seconds: at startup, not on the first limited request.
        await asyncio.to_thread(count_cache, "o200k_base")


@hookimpl
async def router_shutdown(app: web.Application) -> None:
    if REGISTRY in app:
        await app[REGISTRY].stop()
    await close_app_store(app)


# ---------------------------------------------------------------- request in


def offered_key(request: web.Request) -> str:
    """The key from ``Authorization: Bearer …`` or, as the Anthropic SDK sends it, ``x-api-key``."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return request.headers.get("x-api-key", "").strip()


def authenticate(request: web.Request) -> None:
    """The core's gate (``register_gate``): who is calling, before any other work on the request.

    The key's state goes to ``pre_request`` through :data:`CURRENT`, set in the request's own
    task (aiohttp runs each request in one), so no other request ever sees it.
    """
    key = request.app[REGISTRY].lookup(offered_key(request))
    if key is None:
        raise Unauthorized("Missing or invalid API key; send 'Authorization: Bearer <key>'.")
    if key.expires_at is not None and key.expired(time.time()):
        raise Unauthorized("This API key has expired.", code="key_expired")
    if key.broken:
        raise PolicyViolation("This key's policy cannot be enforced by this gateway; ask its administrator.")
    CURRENT.set(Admitted(key, body_size=request.content_length))
    request[KEY_NAME] = key.name


class CountCache:
    """Token counts of texts seen lately: a system prompt, tool definitions or earlier turns of a
    conversation come back with every request and are counted once, not each time.

    Entries are (hash, length) → count, so no text is kept. Python's string hash is keyed per
    process (SipHash), so a client cannot aim two texts at one entry; a collision would only
    misplace a provisional count, which settling corrects with the answer's real usage.
    """

    def __init__(self, encoding: str, size: int = 8192) -> None:
        self.count = counter(encoding)
        self.size = size
        # Oldest first; a hit is one dict read (atomic under the GIL), so only changes take the lock.
        self.seen: dict[tuple[int, int], int] = {}
        self.lock = threading.Lock()  # long conversations are counted in a thread

    def __call__(self, text: str) -> int:
        key = (hash(text), len(text))
        n = self.seen.get(key)
        if n is not None:
            return n
        n = self.count(text)
        with self.lock:
            self.seen[key] = n
            if len(self.seen) > self.size:
                del self.seen[next(iter(self.seen))]
        return n


@functools.cache
def count_cache(encoding: str) -> CountCache:
    return CountCache(encoding)


def count_input(ctx: RequestContext) -> int:
    model = ctx.call.model or ""
    count = count_cache(encoding_name(model))
    total = 0
    for message in ctx.call.messages:
        total += message_tokens(message, model, count)
    for tool in ctx.call.tools:
        total += tool_tokens(tool, model, count)
    return total


def _size(ctx: RequestContext) -> int:
    return sum(len(t) for t in ctx.call.texts())


@hookimpl(tryfirst=True)
async def pre_request(ctx: RequestContext) -> None:
    state = CURRENT.get()
    if state is None:  # no HTTP request (llm-router explain)
        return
    ctx.plugin_state[NAME] = state
    key = state.key
    ctx.key_name = key.name
    if key.policy:
        ctx.gateway = ctx.app[RUNTIME].schema.enforce(ctx.gateway, key.policy, f"keys.{key.name}.policy")
    if ctx.call.model:
        check_model(key, ctx.call.model)
    if key.limits.any:
        await admit(ctx, state)


def check_model(key: ClientKey, model: str) -> None:
    if not key.allows_model(model):
        raise PolicyViolation(
            f"Key '{key.name}' may not use model '{model}' (allowed: {', '.join(key.models)}).", param="model"
        )


async def admit(ctx: RequestContext, state: Admitted) -> None:
    """Ask the store to admit the request; the answer is read in ``select_provider`` (:func:`verdict`).

    The store's round trip then overlaps the other plugins' ``pre_request`` and ``select_model``
    work; every upstream call takes its routes from ``select_provider``, so none goes out first.
    """
    limits = state.key.limits
    tokens, reserve = 0, 0.0
    if limits.tpm is not None or limits.budgeted:
        # The body's length bounds its texts' (JSON escapes and UTF-8 only add): no pass over them to measure.
        size = state.body_size if state.body_size is not None else _size(ctx)
        tokens = count_input(ctx) if size < COUNT_INLINE_CHARS else await asyncio.to_thread(count_input, ctx)
    if limits.budgeted:
        reserve = cost_usd(ctx.config, ctx.call.model, tokens, 0)
    state.counted_tokens, state.reserved_usd = tokens, reserve
    state.verdict = ctx.app[REGISTRY].store.admit_soon(state.key.name, limits, tokens, time.time(), reserve)


async def verdict(registry: KeyRegistry, state: Admitted) -> None:
    """Read the store's answer: a refusal raises (429, 402, or 503 when the store is down and fail_closed)."""
    pending, state.verdict = state.verdict, None
    health = registry.health
    try:
        answer = await pending
    except StoreUnavailable as exc:
        health.failed("a limit check", exc)
        if health.on_error == "fail_open":
            health.admitted_unchecked += 1
            return
        health.refused += 1
        raise StoreDown(
            "The gateway's shared store is unreachable, so this key's limits cannot be checked; try again shortly."
        ) from None
    if not answer.leased:  # a lease's verdict did not ask the store
        health.ok()
    if not answer.ok:
        raise over_limit(state.key, answer.limit or "", answer.retry_after, state.counted_tokens)
    state.lease, state.checked = answer.lease, True


def over_limit(key: ClientKey, limit: str, retry_after: float | None, tokens: int) -> LimitExceeded:
    limits = key.limits
    described = {
        "rpm": lambda: f"rpm limit ({limits.rpm} requests per minute)",
        "tpm": lambda: f"tpm limit ({limits.tpm} tokens per minute)",
        "max_parallel": lambda: f"max_parallel limit ({limits.max_parallel} requests at once)",
        "daily_budget_usd": lambda: f"daily_budget_usd (${limits.daily_budget_usd:g} per UTC day)",
        "monthly_budget_usd": lambda: f"monthly_budget_usd (${limits.monthly_budget_usd:g} per UTC month)",
    }
    what = described[limit]() if limit in described else limit
    budget = limit.endswith("_budget_usd")
    if retry_after is None:
        message = f"This request counts {tokens} input tokens, more than key '{key.name}''s whole {what}."
    else:
        verb = "has spent its" if budget else "is over its"
        message = f"Key '{key.name}' {verb} {what}; retry in {max(1, math.ceil(retry_after))} s."
    return LimitExceeded(message, limit=limit, retry_after=retry_after, budget=budget)


# ---------------------------------------------------------------- route


@hookimpl(trylast=True)
async def select_provider(ctx: RequestContext, routes: list[Route]) -> list[Route] | None:
    state: Admitted | None = ctx.plugin_state.get(NAME)
    if state is None:
        return None
    if state.verdict is not None:  # before any route is used: the limits' answer
        await verdict(ctx.app[REGISTRY], state)
    key = state.key
    check_model(key, ctx.call.model)  # the model tags or planning chose
    if not key.providers:
        return None
    kept = [route for route in routes if route.name in key.providers]
    if not kept:
        raise PolicyViolation(
            f"Key '{key.name}' may use providers {', '.join(key.providers)}; none of them serves '{ctx.call.model}'."
        )
    return kept


# ---------------------------------------------------------------- after the answer


@hookimpl
def request_finished(ctx: RequestContext | None, outcome: Outcome) -> Awaitable[None] | None:
    """Settle after the answer went out: real tokens and cost, and the parallel slot back.

    The core calls this exactly once per request, a client that left mid-stream
    included, so the parallel slot always comes back here. A slot is given back before
    this returns (the client's next request on the connection must find it free); tokens
    and cost alone settle in the background, so the connection is free at once. Only
    what must be awaited (a verdict not read yet, a slot to give back) makes a coroutine.
    """
    state: Admitted | None = ctx.plugin_state.get(NAME) if ctx is not None else None
    if state is None:
        return None
    if state.verdict is not None:  # refused before its routes were chosen: what the store took still counts
        return finish_after_verdict(ctx, state, outcome)
    return finish(ctx, state, outcome)


async def finish_after_verdict(ctx: RequestContext, state: Admitted, outcome: Outcome) -> None:
    with contextlib.suppress(GatewayError):
        await verdict(ctx.app[REGISTRY], state)
    settling = finish(ctx, state, outcome)
    if settling is not None:
        await settling


def finish(ctx: RequestContext, state: Admitted, outcome: Outcome) -> Awaitable[None] | None:
    if not state.checked:
        return None
    limits = state.key.limits
    used = outcome.input_tokens + outcome.output_tokens + outcome.planner_tokens
    cost = cost_usd(ctx.config, outcome.model, outcome.input_tokens, outcome.output_tokens)
    token_delta = used - state.counted_tokens if limits.tpm is not None else 0
    registry = ctx.app[REGISTRY]
    if state.lease is not None:
        return settle(registry, state, token_delta, cost - state.reserved_usd)
    registry.store.settle_soon(
        state.key.name, limits, token_delta, cost - state.reserved_usd, time.time(), registry.settle_failed
    )
    return None


async def settle(registry: KeyRegistry, state: Admitted, token_delta: int, cost: float) -> None:
    try:
        await registry.store.settle(state.key.name, state.key.limits, token_delta, cost, time.time(), state.lease)
    except StoreUnavailable as exc:  # a parallel slot then frees itself after LEASE_SECONDS
        registry.health.failed("settling usage", exc)
