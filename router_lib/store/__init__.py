"""Shared state for limits, budgets and client keys: one interface, in memory or in Redis.

Plugins open the store of an app with :func:`app_store` (once per app, closed with it);
the ``[store]`` table of plugins.toml says which one. Every admission decision is one
atomic step in the store (a Lua script in Redis), so limits hold across workers and
machines without any per-process counter.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs
from aiohttp import web

from router_core.config import ConfigError, converter, validation_errors

from .base import (
    Admission,
    KeyRecord,
    Limits,
    Store,
    StoreUnavailable,
)

__all__ = [
    "GAUGES",
    "HEALTH",
    "KEY_NAME",
    "STORE",
    "Admission",
    "KeyRecord",
    "Limits",
    "Store",
    "StoreHealth",
    "StoreSettings",
    "StoreUnavailable",
    "app_store",
    "close_app_store",
    "open_store",
    "publish",
    "store_settings",
]

log = logging.getLogger("llm_router.store")


def _url(_: Any, attribute: attrs.Attribute, value: str) -> None:
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if value != "memory://" and not value.startswith(schemes):
        raise ValueError(
            f"'{attribute.name}' must be \"memory://\", redis://…, rediss://…, unix://… or redis+cluster://…"
        )


def _on_error(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in ("fail_closed", "fail_open"):
        raise ValueError(f'\'{attribute.name}\' must be "fail_closed" or "fail_open", not {value!r}')


@attrs.frozen
class StoreSettings:
    """``[store]``: where shared state lives and what limits do when it cannot be reached."""

    url: str = attrs.field(default="memory://", validator=_url, repr=False)  # may carry a password
    on_error: str = attrs.field(default="fail_closed", validator=_on_error)
    # Seconds a Redis command may take before the store counts as unreachable.
    timeout: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))

    @property
    def shared(self) -> bool:
        return self.url != "memory://"


def store_settings(config: Any) -> StoreSettings:
    """The config's ``[store]`` table, validated; a ConfigError names the key."""
    try:
        return converter.structure(dict(config.store), StoreSettings)
    except Exception as exc:
        raise ConfigError([f"store{path[1:]}: {message}" for path, message in validation_errors(exc)]) from None


def open_store(settings: StoreSettings) -> Store:
    if not settings.shared:
        from .memory import MemoryStore

        return MemoryStore()
    from .redis import RedisStore

    return RedisStore(settings.url, settings.timeout)


@attrs.define
class StoreHealth:
    """Whether the store answers, with errors counted and each change of state logged once.

    ``fail_open`` decides what a caller does while it is down; this only keeps the score.
    """

    on_error: str
    up: bool = True
    errors: int = 0  # store operations that failed (for /metrics)
    admitted_unchecked: int = 0  # requests let through without a limit check (fail_open)
    refused: int = 0  # requests refused because the store was down (fail_closed)
    changed_at: float = attrs.field(factory=time.monotonic)

    def failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        if self.up:
            self.up, self.changed_at = False, time.monotonic()
            action = "admitting requests unchecked" if self.on_error == "fail_open" else "refusing requests"
            log.error("store unreachable during %s (%s): %s until it answers", what, type(exc).__name__, action)

    def ok(self) -> None:
        if not self.up:
            self.up, self.changed_at = True, time.monotonic()
            log.warning("store reachable again: limits are enforced")


STORE = web.AppKey("llm_router.store", Store)
#: Figures a plugin publishes for /metrics: ``app[GAUGES]["ledger_rows_dropped"] = lambda: n``
#: (read at scrape time; a name ending in ``_total`` is a counter).
GAUGES = web.AppKey("llm_router.gauges", dict)
#: The name of the client key a request was made with, set by the plugin that checks keys
#: (routes outside the request pipeline, such as a ledger lookup, read it here).
KEY_NAME = web.RequestKey("llm_router.key_name", str)
HEALTH = web.AppKey("llm_router.store_health", StoreHealth)


async def app_store(app: web.Application, config: Any) -> Store:
    """The app's store, opened (and checked) on first use and closed with the app.

    Several plugins may ask; they share one connection pool. A Redis that cannot run
    the limit scripts stops startup here with a message saying why. The app is frozen
    by then, so whoever opens it closes it with :func:`close_app_store` at shutdown.
    """
    if STORE in app:
        return app[STORE]
    settings = store_settings(config)
    store = open_store(settings)
    await store.start()
    app[STORE] = store
    app[HEALTH] = StoreHealth(settings.on_error)
    return store


async def close_app_store(app: web.Application) -> None:
    """Close the app's store (from ``router_shutdown``); a second call does nothing."""
    store = app.get(STORE)
    if store is not None and not store.closed:
        await store.close()


def publish(app: web.Application, name: str, read: Any) -> None:
    """Publish a figure for /metrics (see :data:`GAUGES`)."""
    app.setdefault(GAUGES, {})[name] = read
