"""Every client key an app accepts: plugins.toml's, and the store's, refreshed without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from router_core.config import ConfigError
from router_lib.store import Store, StoreHealth, StoreUnavailable
from router_lib.store.lease import LEASE_TIME

from .settings import ClientKey

log = logging.getLogger("llm_router.keys")

# How often each process asks the store whether a key was added, rotated, revoked or given other
# limits: a revoked key stops working everywhere within this many seconds, and new limits take
# effect as fast as the store's admission leases end.
REFRESH_SECONDS = LEASE_TIME


class KeyRegistry:
    """sha256 of a key → what it may do. Lookups are local; the store is read only when keys change."""

    def __init__(
        self,
        configured: dict[str, ClientKey],
        store: Store,
        health: StoreHealth,
        check_policy: Callable[[dict[str, Any]], None],
    ) -> None:
        self.configured = configured
        self.store = store
        self.health = health
        self.check_policy = check_policy
        self.keys: dict[bytes, ClientKey] = {bytes.fromhex(d): k for d, k in configured.items()}
        # Keys that were offered and found, by their text: a client's every request after its first
        # is one dict read, not a sha256. Only known keys get in (a stranger's guesses do not), and
        # the whole map goes whenever the key set changes (a revoked key is never found here).
        self.found: dict[str, ClientKey] = {}
        self.version: int | None = None
        self._task: asyncio.Task | None = None
        store.failed = self.settle_failed

    def lookup(self, key: str) -> ClientKey | None:
        found = self.found.get(key)
        if found is None:
            found = self.keys.get(hashlib.sha256(key.encode()).digest())
            if found is not None and len(self.found) < len(self.keys):  # at most one text per key
                self.found[key] = found
        return found

    async def refresh(self) -> None:
        """Reload the store's keys if their version changed; keep the last good set if the store is down."""
        try:
            version = await self.store.keys_version()
            if version == self.version:
                return
            records = await self.store.keys()
        except StoreUnavailable as exc:
            self.health.failed("a key refresh", exc)
            return
        self.health.ok()
        taken = {k.name for k in self.configured.values()}
        keys = {bytes.fromhex(d): k for d, k in self.configured.items()}
        for record in records:
            if record.name in taken:
                log.warning("key %s: defined in plugins.toml and in the store; the plugins.toml one wins", record.name)
                continue
            key = ClientKey.from_record(record)
            try:
                self.check_policy(key.policy)
            except ConfigError as exc:
                # Fail closed: a key whose policy cannot be enforced is refused, not served without it.
                log.error("key %s: its policy cannot be enforced (%s); requests with it are refused", key.name, exc)
                key = ClientKey.from_record(record)
                object.__setattr__(key, "broken", str(exc))
            keys[bytes.fromhex(record.digest)] = key
        self.keys, self.version, self.found = keys, version, {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            await self.refresh()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="keys-refresh")

    def settle_failed(self, exc: StoreUnavailable) -> None:
        """A settling or a lease given back failed; nobody waited for it (a parallel slot then frees
        itself after LEASE_SECONDS; what a lease held stays taken)."""
        self.health.failed("settling usage", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
