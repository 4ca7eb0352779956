"""Where stored responses live: one small async interface, SQLite (embedded) and Redis (many instances) behind it.

A record is a JSON object (the response as the client got it, the input items sent
upstream, the output items); the store only sees opaque bytes under an id, with a
time-to-live. Everything blocking runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger("llm_router.responses_store")

# Expired rows are deleted at startup and then at most this often, a second's worth at a time
# (reads already skip them).
PURGE_INTERVAL = 1.0
# Without commit_before_answer: records wait this long in memory to share one transaction ...
COMMIT_INTERVAL = 0.02
# ... and once this many wait uncommitted (a disk slower than the traffic), put() waits for the commit.
MAX_UNCOMMITTED = 10_000


class ResponseStore(Protocol):
    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None: ...

    async def get(self, response_id: str) -> dict[str, Any] | None: ...

    async def delete(self, response_id: str) -> bool: ...

    async def close(self) -> None: ...


class SQLiteStore:
    """One SQLite file in the data directory, used from one worker thread (sqlite3 connections are not shared).

    Writes are grouped: every record queued while a transaction commits (or, without
    ``commit_before_answer``, within ``COMMIT_INTERVAL``) goes into the next one, so the event
    loop hands the thread one batch, not one job per request. With ``commit_before_answer``
    ``put`` returns once its record is committed; without, it returns at once and the record is
    read from memory (``pending``) until its transaction lands, so this process reads its own
    writes either way. A read that misses then looks again after the commit interval, for a
    record another worker on the same file has not committed yet.
    """

    def __init__(self, path: Path, commit_before_answer: bool = False) -> None:
        self.path = path
        self.commit_before_answer = commit_before_answer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-store")
        self.db: sqlite3.Connection | None = None
        self.purged_at = 0.0
        # id → (expires_at, record) until committed; the queue holds the same rows in order.
        self.pending: dict[str, tuple[float, bytes]] = {}
        self.queue: list[tuple[str, tuple[float, bytes]]] = []
        self.committed: asyncio.Future[None] | None = None  # resolved when the queued rows are committed
        self.writer: asyncio.Task[None] | None = None

    async def open(self) -> SQLiteStore:
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one statement per call
        # A record is a few KB: 16 KB pages hold several, so a batch writes fewer pages (a new file only).
        self.db.execute("PRAGMA page_size=16384")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent; a power cut may lose the last writes
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, expires_at REAL, record BLOB)")
        self.db.execute("DELETE FROM responses WHERE expires_at < ?", (time.time(),))  # every expired row, once
        self.purged_at = time.monotonic()

    def _purge(self) -> None:
        """Rows are appended as they are made (rowid order), so the expired ones are at the head: delete
        up to the first that is not, without an index on the expiry (it would cost every write a third
        of its time). A row kept shorter than an older one (retention lowered) waits for it, or a restart."""
        assert self.db is not None
        self.purged_at = time.monotonic()
        now = time.time()
        kept = self.db.execute(
            "SELECT rowid FROM responses WHERE expires_at >= ? ORDER BY rowid LIMIT 1", (now,)
        ).fetchone()
        if kept is None:
            self.db.execute("DELETE FROM responses WHERE expires_at < ?", (now,))
        else:
            self.db.execute("DELETE FROM responses WHERE rowid < ?", kept)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None:
        row = (time.time() + ttl, orjson.dumps(record))
        self.pending[response_id] = row
        self.queue.append((response_id, row))
        if self.committed is None:
            self.committed = asyncio.get_running_loop().create_future()
        committed = self.committed
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_queued())
        if self.commit_before_answer or len(self.pending) > MAX_UNCOMMITTED:
            await asyncio.shield(committed)

    async def _write_queued(self) -> None:
        while self.queue:
            if not self.commit_before_answer:
                await asyncio.sleep(COMMIT_INTERVAL)
            batch, self.queue = self.queue, []
            committed, self.committed = self.committed, None
            # a row deleted (or written again) since it was queued is not this row any more
            rows = [(rid, *row) for rid, row in batch if self.pending.get(rid) is row]
            try:
                await self._run(self._put_many, rows)
            except Exception as exc:
                if not self.commit_before_answer:  # nobody waits for these: the answers are out
                    log.error("response store: could not keep %d responses: %s", len(rows), type(exc).__name__)
                _settle(committed, exc)
            else:
                _settle(committed, None)
            finally:
                for rid, row in batch:
                    if self.pending.get(rid) is row:
                        del self.pending[rid]

    def _put_many(self, rows: list[tuple[str, float, bytes]]) -> None:
        assert self.db is not None
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
        if time.monotonic() - self.purged_at > PURGE_INTERVAL:
            self._purge()

    async def get(self, response_id: str) -> dict[str, Any] | None:
        blob = self._pending(response_id)
        if blob is None:
            blob = await self._run(self._get, response_id)
        if blob is None and not self.commit_before_answer:  # another worker's record may be on its way
            await asyncio.sleep(2 * COMMIT_INTERVAL)
            blob = self._pending(response_id) or await self._run(self._get, response_id)
        return None if blob is None else orjson.loads(blob)

    def _pending(self, response_id: str) -> bytes | None:
        row = self.pending.get(response_id)
        return row[1] if row is not None and row[0] >= time.time() else None

    def _get(self, response_id: str) -> bytes | None:
        assert self.db is not None
        row = self.db.execute(
            "SELECT record FROM responses WHERE id = ? AND expires_at >= ?", (response_id, time.time())
        ).fetchone()
        return row[0] if row else None

    async def delete(self, response_id: str) -> bool:
        row = self.pending.pop(response_id, None)  # a queued write of it is dropped
        deleted = await self._run(self._delete, response_id)  # after any batch already handed to the thread
        return deleted or (row is not None and row[0] >= time.time())

    def _delete(self, response_id: str) -> bool:
        assert self.db is not None
        return self.db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    async def close(self) -> None:
        """Commits what is still queued (an orderly shutdown loses nothing)."""
        while self.writer is not None and not self.writer.done():
            await asyncio.gather(self.writer, return_exceptions=True)
        if self.db is not None:
            await self._run(self.db.close)
        self.executor.shutdown(wait=True)


def _settle(future: asyncio.Future[None] | None, exc: BaseException | None) -> None:
    if future is None or future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting


class RedisStore:
    """Records as Redis strings with an expiry, shared by every gateway instance pointed at the same server."""

    PREFIX = "llm-router:response:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url)

    async def open(self) -> RedisStore:
        await self.client.ping()  # a wrong URL stops startup instead of failing the first request
        return self

    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None:
        await self.client.set(self.PREFIX + response_id, orjson.dumps(record), px=max(int(ttl * 1000), 1))

    async def get(self, response_id: str) -> dict[str, Any] | None:
        blob = await self.client.get(self.PREFIX + response_id)
        return None if blob is None else orjson.loads(blob)

    async def delete(self, response_id: str) -> bool:
        return await self.client.delete(self.PREFIX + response_id) > 0

    async def close(self) -> None:
        await self.client.aclose()
