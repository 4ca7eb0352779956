"""Circuit breaking: providers that keep failing are skipped for a cooldown, then probed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .providers import Provider


class Breaker:
    """The interface the upstream layer uses; a shared store (Redis …) can implement it.

    Thresholds come from each provider's config (``breaker_failures``,
    ``breaker_cooldown``), so one breaker serves every provider.
    """

    def allow(self, provider: Provider) -> bool:
        """Whether an attempt on ``provider`` may start now."""
        raise NotImplementedError

    def success(self, provider: Provider) -> None:
        """An attempt on ``provider`` succeeded: close its circuit."""
        raise NotImplementedError

    def failure(self, provider: Provider) -> None:
        """An attempt on ``provider`` failed in a way that counts against it."""
        raise NotImplementedError


@attrs.define
class _Circuit:
    failures: int = 0
    opened_at: float | None = None  # set while open or half-open
    probing_since: float | None = None  # set while the one half-open probe is out


class MemoryBreaker(Breaker):
    """Per-process state: closed → open after N consecutive failures → half-open after the cooldown.

    Half-open lets exactly one probe through; its success closes the circuit, its
    failure opens it for another cooldown. A probe that never reports back (the client
    went away) is given up after one cooldown, so a circuit cannot stick half-open.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.circuits: dict[str, _Circuit] = {}

    def allow(self, provider: Provider) -> bool:
        circuit = self.circuits.get(provider.name)
        if circuit is None or circuit.opened_at is None:
            return True
        now = self.clock()
        cooldown = provider.config.breaker_cooldown
        if now - circuit.opened_at < cooldown:
            return False
        if circuit.probing_since is not None and now - circuit.probing_since < cooldown:
            return False
        circuit.probing_since = now
        return True

    def success(self, provider: Provider) -> None:
        self.circuits.pop(provider.name, None)

    def failure(self, provider: Provider) -> None:
        circuit = self.circuits.setdefault(provider.name, _Circuit())
        circuit.failures += 1
        if circuit.probing_since is not None or circuit.failures >= provider.config.breaker_failures:
            circuit.opened_at = self.clock()
            circuit.probing_since = None

    def is_open(self, provider: Provider) -> bool:
        """Whether ``provider`` is cooling down now (for logs and tests; does not take the probe)."""
        circuit = self.circuits.get(provider.name)
        return bool(circuit and circuit.opened_at is not None)
