"""Per-app plugin state found from ``ctx.config``: built once by ``router_startup``, gone with its config."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from router_core import Config

T = TypeVar("T")


class PerConfig(Generic[T]):
    """State a plugin builds from one app's config (parsed settings, a cache, the embedder).

    Why keyed by the config: request hooks get ``ctx.config`` but not the app, and each
    app has its own frozen ``Config``. The config is unhashable (it holds dicts), so the
    key is its identity; a ``weakref.finalize`` drops the entry when the config dies, so
    nothing outlives its app (no shutdown hook needed, nothing shared between apps or
    tests) and an id cannot be reused while its entry exists.
    """

    def __init__(self, build: Callable[[Config], T]) -> None:
        self._build = build
        self._entries: dict[int, tuple[weakref.ref[Config], T]] = {}

    def get(self, config: Config) -> T:
        """The state for ``config``: built on first use (``router_startup``), then looked up.

        ``build`` raising (a bad ``[plugins.<name>]`` table) stores nothing, so a
        ``router_startup`` that calls this stops the gateway from starting.
        """
        entry = self._entries.get(id(config))
        if entry is not None and entry[0]() is config:
            return entry[1]
        value = self._build(config)
        key = id(config)
        self._entries[key] = (weakref.ref(config), value)
        weakref.finalize(config, self._entries.pop, key, None)
        return value

    def __len__(self) -> int:
        return len(self._entries)
