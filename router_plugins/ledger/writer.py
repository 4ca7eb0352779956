"""Rows leave the request path through a bounded queue and reach the database in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import attrs

from .backends import Ledger
from .schema import Row

log = logging.getLogger("llm_router.ledger")


@attrs.define
class LedgerWriter:
    """``add`` never waits: a full queue drops the row and counts it. One task writes batches.

    A batch is written when ``batch_size`` rows wait or ``flush_seconds`` passed since its
    first row. A failed write drops that batch (counted, logged by type) and the writer
    carries on: the ledger must never take requests down with it.
    """

    ledger: Ledger
    queue_size: int = 10_000
    batch_size: int = 500
    flush_seconds: float = 0.2
    written: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0  # the database refused a batch
    queue: asyncio.Queue[Row] = attrs.field(init=False)
    task: asyncio.Task | None = None
    _last_drop_log: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)

    def add(self, row: Row) -> None:
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:  # at most one line per 10 s, with the running count
                self._last_drop_log = now
                log.warning("usage ledger queue full: %d rows dropped so far (the database is too slow)", self.dropped)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="ledger-writer")

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < self.batch_size:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            await self.write(batch)
            for _ in batch:
                self.queue.task_done()

    async def write(self, batch: list[Row]) -> None:
        try:
            await self.ledger.write(batch)
            self.written += len(batch)
        except Exception as exc:  # the database's trouble, never the request's
            self.failed += len(batch)
            log.error("usage ledger: a batch of %d rows was not written (%s)", len(batch), type(exc).__name__)

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop."""
        if self.task is None:
            return
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            log.error("usage ledger: %d queued rows not written at shutdown", self.queue.qsize())
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
