"""The store's interface and the values that cross it."""

from __future__ import annotations

import asyncio
import calendar
import functools
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import attrs

#: A key's name appears in store keys, metrics labels and the ledger: keep it plain.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MICRO = 1_000_000  # spend is kept in micro-dollars: integers add exactly
# A parallel-request slot whose holder vanished (a crashed worker) frees itself after this.
LEASE_SECONDS = 900.0


class StoreUnavailable(Exception):
    """The store did not answer (Redis down, timed out, refused a command)."""


_LIMIT_FIELDS = ("rpm", "tpm", "max_parallel", "daily_budget_usd", "monthly_budget_usd")


@attrs.frozen
class Limits:
    """What one client key may use; ``None`` means no limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None

    any: bool = attrs.field(init=False, eq=False, repr=False)  # whether any limit is set
    budgeted: bool = attrs.field(init=False, eq=False, repr=False)  # whether a budget is set

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "any", any(getattr(self, f) is not None for f in _LIMIT_FIELDS))
        budgeted = self.daily_budget_usd is not None or self.monthly_budget_usd is not None
        object.__setattr__(self, "budgeted", budgeted)


@attrs.frozen
class KeyRecord:
    """A run-time client key as the store keeps it: its sha256, never the key."""

    name: str
    digest: str  # hex sha256 of the key
    limits: Limits = attrs.field(factory=Limits)
    models: tuple[str, ...] = ()  # globs; empty: every model
    providers: tuple[str, ...] = ()  # empty: every provider
    policy: dict[str, Any] = attrs.field(factory=dict)  # enforced gateway values
    expires_at: float | None = None  # epoch seconds
    created_at: float = 0.0


@attrs.frozen
class Admission:
    """The store's answer to "may this request start now?".

    ``limit`` names what refused it (``rpm``, ``tpm``, ``max_parallel``,
    ``daily_budget_usd``, ``monthly_budget_usd``), ``retry_after`` is when it may be
    tried again in seconds (``None``: never, the request alone is above the limit).
    ``lease`` identifies the parallel-request slot to release afterwards. ``leased``: admitted
    from room this process took from the store earlier (an admission lease), without asking
    it now, so it says nothing about whether the store answers.
    """

    ok: bool
    limit: str | None = None
    retry_after: float | None = None
    lease: str | None = None
    leased: bool = False


@functools.lru_cache(maxsize=4)
def _periods(minute: int) -> tuple[str, str]:
    t = time.gmtime(minute * 60)
    return f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}", f"{t.tm_year:04d}{t.tm_mon:02d}"


def day_and_month(now: float) -> tuple[str, str]:
    """The UTC budget periods ``now`` falls in: ``20261126``, ``202611`` (worked out once a minute)."""
    return _periods(int(now // 60))


def seconds_to_period_end(now: float) -> tuple[float, float]:
    """Seconds until the next UTC midnight and until the next month begins."""
    t = time.gmtime(now)
    day_end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    month_end = calendar.timegm((year, month, 1, 0, 0, 0))
    return day_end - now, month_end - now


def _ignore(_: StoreUnavailable) -> None:
    """Until the store's owner says who hears of failures in the background."""


class Store:
    """Limits, spend and run-time keys. Each method is one atomic step in the store.

    Every method may raise :class:`StoreUnavailable`; callers decide (``on_error``).
    """

    closed = False

    def __init__(self) -> None:
        self.background: set[asyncio.Task] = set()  # settlings nobody waits for; close() does
        # Hears of a StoreUnavailable in work nobody waits for (a lease given back); the owner sets it.
        self.failed: Callable[[StoreUnavailable], None] = _ignore

    async def start(self) -> None:
        """Connect and check that the store can do what limits need; raise if it cannot."""

    async def close(self) -> None:
        self.closed = True
        if self.background:
            await asyncio.wait(self.background, timeout=5)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def admit(self, name: str, limits: Limits, tokens: int, now: float, reserve_usd: float = 0.0) -> Admission:
        """Check every limit of key ``name`` and, only if all pass, take what the request uses.

        Takes one request from the rpm bucket, ``tokens`` from the tpm bucket, a
        parallel slot and ``reserve_usd`` (the input's cost) from the budgets,
        atomically: concurrent callers on any process never see the same room twice.
        """
        raise NotImplementedError

    def admit_soon(
        self, name: str, limits: Limits, tokens: int, now: float, reserve_usd: float = 0.0
    ) -> Awaitable[Admission]:
        """:meth:`admit`, its verdict awaited later: a store that can sends the request at once, so the
        request's other work overlaps the round trip. Await what this returns exactly once."""
        return self.admit(name, limits, tokens, now, reserve_usd)

    async def settle(
        self, name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, lease: str | None = None
    ) -> None:
        """After the answer, in one step: correct the tpm bucket by ``token_delta`` (real − counted),
        the spend by ``cost_usd`` and give back the parallel slot ``lease`` taken by :meth:`admit`.

        ``cost_usd`` is the real cost less what :meth:`admit` reserved, so it may be negative.
        """
        raise NotImplementedError

    def settle_soon(
        self,
        name: str,
        limits: Limits,
        token_delta: int,
        cost_usd: float,
        now: float,
        failed: Callable[[StoreUnavailable], None],
    ) -> None:
        """:meth:`settle` without a parallel slot to give back, and without waiting for it.

        ``failed`` hears of a :class:`StoreUnavailable`; :meth:`close` waits for what is
        still on its way (at most 5 s).
        """

        async def settle() -> None:
            try:
                await self.settle(name, limits, token_delta, cost_usd, now)
            except StoreUnavailable as exc:
                failed(exc)

        self._track(settle())

    async def spend(self, name: str, now: float) -> tuple[float, float]:
        """USD spent by ``name`` this UTC day and this UTC month."""
        raise NotImplementedError

    # ------------------------------------------------------------ run-time keys

    async def add_key(self, record: KeyRecord, replace: bool = False) -> bool:
        """Store a key record; ``False`` if the name exists and ``replace`` is not set."""
        raise NotImplementedError

    async def remove_key(self, name: str) -> bool:
        """Delete a key record; ``False`` if there was none."""
        raise NotImplementedError

    async def keys(self) -> list[KeyRecord]:
        """Every run-time key record."""
        raise NotImplementedError

    async def keys_version(self) -> int:
        """A number that changes whenever a key is added, rotated or removed."""
        raise NotImplementedError
