"""Random ids for requests and answers, from one ``getrandom`` call per 256 ids instead of one each.

The bytes come from ``os.urandom`` (the kernel's CSPRNG), so ids stay unguessable; a forked
worker starts with an empty pool, so no two processes hand out the same id.
"""

from __future__ import annotations

import os
import threading
import time

_POOL_BYTES = 4096


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.buffer = b""
        self.used = 0

    def take(self, n: int) -> bytes:
        with self.lock:
            if self.used + n > len(self.buffer):
                self.buffer, self.used = os.urandom(max(_POOL_BYTES, n)), 0
            start, self.used = self.used, self.used + n
            return self.buffer[start : self.used]


_pool = _Pool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_pool.reset)


def random_hex(nbytes: int = 16) -> str:
    """``2 * nbytes`` random hex digits (16 bytes: as unguessable as a uuid4)."""
    return _pool.take(nbytes).hex()


def uuid7_hex() -> str:
    """A version-7 UUID (RFC 9562) as 32 hex digits: 48 bits of Unix milliseconds, then 74 random bits.

    Ids made later sort later, so a store keyed by them appends to its index instead of
    writing all over it (the response store, the ledger's request ids); as unguessable as
    the 74 bits make it.
    """
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6) + _pool.take(10))
    raw[6] = 0x70 | raw[6] & 0x0F  # version 7
    raw[8] = 0x80 | raw[8] & 0x3F  # variant 0b10
    return raw.hex()


def uuid7_str() -> str:
    """:func:`uuid7_hex` in the UUID's usual 8-4-4-4-12 form."""
    h = uuid7_hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
