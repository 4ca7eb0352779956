"""The one-process store: plain dicts, atomic because no step awaits."""

from __future__ import annotations

import itertools

import attrs

from .base import LEASE_SECONDS, MICRO, Admission, KeyRecord, Limits, Store, day_and_month, seconds_to_period_end


@attrs.define
class Bucket:
    """A token bucket that refills ``capacity`` per minute; starts full."""

    level: float
    at: float

    def refill(self, capacity: int, now: float) -> float:
        self.level = min(capacity, self.level + (now - self.at) * capacity / 60.0)
        self.at = now
        return self.level


class MemoryStore(Store):
    def __init__(self) -> None:
        super().__init__()
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.leases: dict[str, dict[str, float]] = {}
        self.spent: dict[tuple[str, str], int] = {}  # (name, period) → micro-dollars
        self.records: dict[str, KeyRecord] = {}
        self.version = 0
        self._lease_ids = itertools.count(1)

    def _bucket(self, name: str, kind: str, capacity: int, now: float) -> Bucket:
        bucket = self.buckets.get((name, kind))
        if bucket is None:
            bucket = self.buckets[(name, kind)] = Bucket(capacity, now)
        bucket.refill(capacity, now)
        return bucket

    async def admit(self, name: str, limits: Limits, tokens: int, now: float, reserve_usd: float = 0.0) -> Admission:
        day, month = day_and_month(now)
        if limits.daily_budget_usd is not None and self.spent.get((name, day), 0) >= limits.daily_budget_usd * MICRO:
            return Admission(False, "daily_budget_usd", seconds_to_period_end(now)[0])
        if (
            limits.monthly_budget_usd is not None
            and self.spent.get((name, month), 0) >= limits.monthly_budget_usd * MICRO
        ):
            return Admission(False, "monthly_budget_usd", seconds_to_period_end(now)[1])
        leases = None
        if limits.max_parallel is not None:
            leases = self.leases.setdefault(name, {})
            for lease, until in list(leases.items()):
                if until <= now:
                    del leases[lease]
            if len(leases) >= limits.max_parallel:
                return Admission(False, "max_parallel", 1.0)
        rpm = tpm = None
        if limits.rpm is not None:
            rpm = self._bucket(name, "rpm", limits.rpm, now)
            if rpm.level < 1:
                return Admission(False, "rpm", (1 - rpm.level) * 60.0 / limits.rpm)
        if limits.tpm is not None:
            if tokens > limits.tpm:
                return Admission(False, "tpm", None)
            tpm = self._bucket(name, "tpm", limits.tpm, now)
            if tpm.level < tokens:
                return Admission(False, "tpm", (tokens - tpm.level) * 60.0 / limits.tpm)
        if rpm is not None:
            rpm.level -= 1
        if tpm is not None:
            tpm.level -= tokens
        lease = None
        if leases is not None:
            lease = str(next(self._lease_ids))
            leases[lease] = now + LEASE_SECONDS
        self._spend(name, reserve_usd, now)
        return Admission(True, lease=lease)

    def _spend(self, name: str, usd: float, now: float) -> None:
        micro = round(usd * MICRO)
        if micro:
            for period in day_and_month(now):
                self.spent[(name, period)] = self.spent.get((name, period), 0) + micro

    async def settle(
        self, name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, lease: str | None = None
    ) -> None:
        self._settle(name, limits, token_delta, cost_usd, now, lease)

    def settle_soon(self, name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, failed) -> None:
        self._settle(name, limits, token_delta, cost_usd, now, None)  # nothing here can fail or wait

    def _settle(
        self, name: str, limits: Limits, token_delta: int, cost_usd: float, now: float, lease: str | None
    ) -> None:
        if lease is not None:
            self.leases.get(name, {}).pop(lease, None)
        if limits.tpm is not None and token_delta:
            bucket = self._bucket(name, "tpm", limits.tpm, now)
            bucket.level = max(-limits.tpm, bucket.level - token_delta)  # a debt of at most a minute
        self._spend(name, cost_usd, now)

    async def spend(self, name: str, now: float) -> tuple[float, float]:
        day, month = day_and_month(now)
        return self.spent.get((name, day), 0) / MICRO, self.spent.get((name, month), 0) / MICRO

    async def add_key(self, record: KeyRecord, replace: bool = False) -> bool:
        if record.name in self.records and not replace:
            return False
        self.records[record.name] = record
        self.version += 1
        return True

    async def remove_key(self, name: str) -> bool:
        if self.records.pop(name, None) is None:
            return False
        self.version += 1
        return True

    async def keys(self) -> list[KeyRecord]:
        return list(self.records.values())

    async def keys_version(self) -> int:
        return self.version
