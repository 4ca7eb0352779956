"""Admission leases: room on a key's limits taken from Redis ahead of the requests that will use it.

A busy key's admission script also takes, for this process, room for the requests the key
is expected to send here in the next :data:`LEASE_TIME` seconds; those requests are then
admitted here without a round trip. :class:`KeyLease` keeps that room and the key's recent
demand; :class:`~router_lib.store.redis.RedisStore` takes and gives back the room.
"""

from __future__ import annotations

import asyncio
import math

from .base import Limits

# Admission leases (see the module's docstring). A lease lives this long; what it did not use
# then goes back. A key's limits changed or revoked reach every process within this time too
# (the keys plugin reloads keys as often).
LEASE_TIME = 0.1
# A lease asks for this many times the requests the key had here in the previous lease time,
LEASE_MARGIN = 1.25
# and gets at most 1/LEASE_SHARE of what is left above half of each limit: a bucket in its lower
# half (a key near its limit) admits request by request, exactly, as if there were no leases.
LEASE_SHARE = 4
LEASE_MAX = 10_000  # requests in one lease
# A key with fewer requests than this in the previous lease time is admitted request by request:
# a lease would save little and often go back unused (one more call).
LEASE_MIN = 4
# The demand estimate: a moving average of a request's tokens and reserved cost (1/8 per request).
_AVERAGING = 1 / 8


class KeyLease:
    """This process's lease on one key's limits (what is left of it), and the key's demand here."""

    __slots__ = (
        "count",
        "fetching",
        "last",
        "left",
        "limits",
        "low",
        "micro",
        "per_micro",
        "per_tokens",
        "periods",
        "renew_at",
        "timer",
        "tokens",
        "until",
        "window_end",
    )

    def __init__(self) -> None:
        self.limits: Limits | None = None  # the limits the lease was taken under
        self.left = self.tokens = self.micro = 0  # requests, tpm tokens and budget µ$ still leased
        self.periods = ("", "")  # the UTC day and month the leased µ$ were counted in
        self.until = 0.0  # the loop time the lease ends
        self.renew_at, self.low = 0.0, 0  # more room is asked for from this time, or below this many requests
        self.timer: asyncio.TimerHandle | None = None  # gives back what is left when the lease ends
        self.fetching: asyncio.Future | None = None  # done when the admission on its way (maybe a lease) is
        self.count = self.last = 0  # requests in this lease time and in the one before
        self.window_end = 0.0
        self.per_tokens = self.per_micro = 0.0  # averages per request

    def observe(self, tokens: int, micro: int, now: float) -> None:
        """Count a request of the key (admitted here, sent to Redis, or refused)."""
        if now >= self.window_end:
            if self.window_end == 0.0:
                self.per_tokens, self.per_micro = tokens, micro
            self.last = self.count if now < self.window_end + LEASE_TIME else 0
            self.count = 0
            self.window_end = now + LEASE_TIME
        self.count += 1
        self.per_tokens += (tokens - self.per_tokens) * _AVERAGING
        self.per_micro += (micro - self.per_micro) * _AVERAGING

    def wanted(self) -> int:
        """How many requests beyond the current one to lease: none until the key was busy for a whole lease time."""
        if self.last < LEASE_MIN:
            return 0
        return min(LEASE_MAX, math.ceil(self.last * LEASE_MARGIN))

    def take(self, limits: Limits, tokens: int, micro: int, now: float) -> bool:
        """Admit one request from the lease if it still runs, was taken under ``limits`` and has room."""
        if self.left < 1 or now >= self.until or (self.limits is not limits and self.limits != limits):
            return False
        tpm = limits.tpm is not None
        if (tpm and tokens > self.tokens) or micro > self.micro:
            return False
        if tpm:
            self.tokens -= tokens
        self.micro -= micro
        self.left -= 1
        return True

    def empty(self) -> tuple[int, int, int]:
        """What is left of the lease (requests, tokens, µ$), which is then empty."""
        left = self.left, self.tokens, self.micro
        self.left = self.tokens = self.micro = 0
        return left
