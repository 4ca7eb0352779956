"""Where stored responses live: one small async interface, SQLite (embedded) and Redis (many instances) behind it.

A record is a JSON object (the response as the client got it, the input items sent
upstream, the output items); the store only sees opaque bytes under an id, with a
time-to-live. Everything blocking runs off the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
import time
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
# Rows go in as multi-row INSERTs of these sizes: a few statements per batch, not one per row
# (sqlite3 lets other threads run during each statement, so each is a switch on a busy core).
CHUNKS = (100, 10, 1)
INSERTS = {n: "INSERT OR REPLACE INTO responses VALUES " + ",".join(["(?, ?, ?)"] * n) for n in CHUNKS}

Row = tuple[float, bytes]  # (expires_at, record as JSON)


class ResponseStore(Protocol):
    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None: ...

    async def get(self, response_id: str) -> dict[str, Any] | None: ...

    async def delete(self, response_id: str) -> bool: ...

    async def close(self) -> None: ...


class SQLiteStore:
    """One SQLite file in the data directory, used by one thread of its own (sqlite3 connections are not shared).

    Writes are grouped: ``put`` queues the row and the thread commits every row queued while
    it waited (``COMMIT_INTERVAL``) or, with ``commit_before_answer``, while the previous
    transaction committed, in one transaction; the event loop hands it nothing per request.
    With ``commit_before_answer`` ``put`` returns once its record is committed; without, it
    returns at once and the record is read from memory (``pending``) until its transaction
    lands, so this process reads its own writes either way. A read that misses then looks
    again after the commit interval, for a record another worker on the same file has not
    committed yet. Reads and deletes run on the same thread, in order after the writes queued
    before them.
    """

    def __init__(self, path: Path, commit_before_answer: bool = False) -> None:
        self.path = path
        self.commit_before_answer = commit_before_answer
        self.db: sqlite3.Connection | None = None
        self.purged_at = 0.0
        # id → row until committed; ``rows`` holds the same rows in order, with who waits for them.
        self.pending: dict[str, Row] = {}
        self.rows: collections.deque[tuple[str, Row, asyncio.Future[None] | None]] = collections.deque()
        self.flush_queued = False
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="responses-store", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> SQLiteStore:
        self.loop = asyncio.get_running_loop()
        self.thread.start()
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

    # ------------------------------------------------------------ the event loop's side

    async def _run(self, fn, *args):
        """``fn(*args)`` on the store's thread, after everything queued before it."""
        assert self.loop is not None
        done = self.loop.create_future()
        self.jobs.put((fn, args, done))
        return await done

    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None:
        row = (time.time() + ttl, orjson.dumps(record))
        self.pending[response_id] = row
        waits = self.commit_before_answer or len(self.pending) > MAX_UNCOMMITTED
        committed = asyncio.get_running_loop().create_future() if waits else None
        self.rows.append((response_id, row, committed))
        if not self.flush_queued:  # one wake-up of the thread per batch, not per row
            self.flush_queued = True
            self.jobs.put(_FLUSH)
        if committed is not None:
            await committed

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

    async def delete(self, response_id: str) -> bool:
        row = self.pending.pop(response_id, None)  # a queued write of it is dropped
        deleted = await self._run(self._delete, response_id)  # after a batch that already holds it
        return deleted or (row is not None and row[0] >= time.time())

    async def committed(self) -> None:
        """Returns once every row queued so far is committed (or given up)."""
        await self._run(_nothing)

    async def close(self) -> None:
        """Commits what is still queued (an orderly shutdown loses nothing), then stops the thread."""
        if self.thread.is_alive():
            self.jobs.put(_STOP)
            await asyncio.to_thread(self.thread.join)

    # ------------------------------------------------------------ the store's thread

    def _serve(self) -> None:
        while True:
            job = self.jobs.get()
            if job is _FLUSH:
                if not self.commit_before_answer:
                    time.sleep(COMMIT_INTERVAL)  # let the batch fill
                self._flush()
            elif job is _STOP:
                self._flush()
                if self.db is not None:
                    self.db.close()
                return
            else:
                fn, args, done = job
                try:
                    result = fn(*args)
                except Exception as exc:
                    self._settle([done], exc)
                else:
                    self._settle([done], None, result)

    def _flush(self) -> None:
        self.flush_queued = False  # before draining: a row queued from now on queues the next flush
        batch = []
        while self.rows:
            batch.append(self.rows.popleft())
        # a row deleted (or written again) since it was queued is not this row any more
        rows = [(rid, *row) for rid, row, _ in batch if self.pending.get(rid) is row]
        waiters = [done for _, _, done in batch if done is not None]
        error: Exception | None = None
        if rows:
            try:
                self._put_many(rows)
            except Exception as exc:
                error = exc
                if not self.commit_before_answer:  # nobody waits for these: the answers are out
                    log.error("response store: could not keep %d responses: %s", len(rows), type(exc).__name__)
        for rid, row, _ in batch:
            if self.pending.get(rid) is row:
                self.pending.pop(rid, None)
        if waiters:
            self._settle(waiters, error)

    def _put_many(self, rows: list[tuple[str, float, bytes]]) -> None:
        assert self.db is not None
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            i = 0
            for n in CHUNKS:
                while len(rows) - i >= n:
                    self.db.execute(INSERTS[n], [value for row in rows[i : i + n] for value in row])
                    i += n
        if time.monotonic() - self.purged_at > PURGE_INTERVAL:
            self._purge()

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

    def _get(self, response_id: str) -> bytes | None:
        assert self.db is not None
        row = self.db.execute(
            "SELECT record FROM responses WHERE id = ? AND expires_at >= ?", (response_id, time.time())
        ).fetchone()
        return row[0] if row else None

    def _delete(self, response_id: str) -> bool:
        assert self.db is not None
        return self.db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    def _settle(self, futures: list[asyncio.Future[Any]], exc: BaseException | None, result: Any = None) -> None:
        """Resolve futures of the event loop from this thread: one wake-up of the loop for all of them."""
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(_settle, futures, exc, result)


_FLUSH, _STOP = object(), object()


def _nothing() -> None:
    return None


def _settle(futures: list[asyncio.Future[Any]], exc: BaseException | None, result: Any) -> None:
    for future in futures:
        if future.done():
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)


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
