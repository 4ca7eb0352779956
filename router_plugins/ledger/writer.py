"""Rows leave the request path through a bounded queue and reach the database in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import attrs

from .backends import Ledger
from .schema import Batch, Row

log = logging.getLogger("llm_router.ledger")


@attrs.define
class LedgerWriter:
    """``add`` never waits: a full queue drops the row and counts it. One task writes batches.

    A batch is written when ``batch_size`` rows wait or ``flush_seconds`` passed since the
    first row of its window. A failed write drops that batch (counted, logged by type) and
    the writer carries on: the ledger must never take requests down with it. ``add`` puts
    the row's columns and totals into the open batch (no task, no timer per row): one timer
    per batch window wakes the writer, and the database gets batches ready to write.
    """

    ledger: Ledger
    queue_size: int = 10_000
    batch_size: int = 500
    flush_seconds: float = 0.2
    written: int = 0
    dropped: int = 0  # the queue was full
    failed: int = 0  # the database refused a batch
    batches: list[Batch] = attrs.field(factory=list)  # queued: not yet handed to the database, oldest first
    rows: int = 0  # in those batches
    wake: asyncio.Event = attrs.field(factory=asyncio.Event)
    due: bool = False  # the window of the oldest queued row has passed
    timer: asyncio.TimerHandle | None = None
    stopping: bool = False
    task: asyncio.Task | None = None
    _last_drop_log: float = 0.0

    def add(self, row: Row) -> None:
        if self.rows >= self.queue_size:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 10:  # at most one line per 10 s, with the running count
                self._last_drop_log = now
                log.warning("usage ledger queue full: %d rows dropped so far (the database is too slow)", self.dropped)
            return
        batches = self.batches
        if not batches or len(batches[-1]) >= self.batch_size:
            batches.append(Batch())
        batch = batches[-1]
        batch.add(row)
        self.rows += 1
        if len(batch) == self.batch_size:
            self.wake.set()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.flush_seconds, self._window_passed)

    def queued(self) -> int:
        return self.rows

    def _window_passed(self) -> None:
        self.timer, self.due = None, True
        self.wake.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="ledger-writer")

    async def run(self) -> None:
        batches = self.batches
        while True:
            await self.wake.wait()
            self.wake.clear()
            while batches and (self.due or self.stopping or len(batches[0]) >= self.batch_size):
                batch = batches.pop(0)
                self.rows -= len(batch)
                if not batches:
                    self.due = False
                await self.write(batch)
            if self.stopping and not batches:
                return

    async def write(self, batch: Batch) -> None:
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
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.stopping = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except TimeoutError:
            log.error("usage ledger: %d queued rows not written at shutdown", self.rows)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
