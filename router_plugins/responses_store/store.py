"""Where stored responses live: one small async interface, SQLite (embedded) and Redis (many instances) behind it.

A record is a JSON object (the response as the client got it, the input items sent
upstream, the output items); the store only sees opaque bytes under an id, with a
time-to-live. Everything blocking runs off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import orjson

# Expired rows are deleted every this many writes (and at startup): reads already skip them.
PURGE_EVERY = 1000


class ResponseStore(Protocol):
    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None: ...

    async def get(self, response_id: str) -> dict[str, Any] | None: ...

    async def delete(self, response_id: str) -> bool: ...

    async def close(self) -> None: ...


class SQLiteStore:
    """One SQLite file in the data directory, used from one worker thread (sqlite3 connections are not shared)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-store")
        self.db: sqlite3.Connection | None = None
        self.writes = 0
        self.queue: list[tuple[tuple[str, float, bytes], asyncio.Future[None]]] = []
        self.writer: asyncio.Task[None] | None = None

    async def open(self) -> SQLiteStore:
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: one statement per call
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent; a power cut may lose the last writes
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (id TEXT PRIMARY KEY, expires_at REAL, record BLOB)")
        self._purge()

    def _purge(self) -> None:
        assert self.db is not None
        self.db.execute("DELETE FROM responses WHERE expires_at < ?", (time.time(),))

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def put(self, response_id: str, record: dict[str, Any], ttl: float) -> None:
        """Returns once the record is committed. Writes that queue up while one commits go
        together in the next transaction (group commit): one thread hop for many requests."""
        done = asyncio.get_running_loop().create_future()
        self.queue.append(((response_id, time.time() + ttl, orjson.dumps(record)), done))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_queued())
        await done

    async def _write_queued(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                await self._run(self._put_many, [row for row, _ in batch])
            except Exception as exc:  # every waiter hears of it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _put_many(self, rows: list[tuple[str, float, bytes]]) -> None:
        assert self.db is not None
        with self.db:  # one transaction
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
        before, self.writes = self.writes, self.writes + len(rows)
        if before // PURGE_EVERY != self.writes // PURGE_EVERY:
            self._purge()

    async def get(self, response_id: str) -> dict[str, Any] | None:
        blob = await self._run(self._get, response_id)
        return None if blob is None else orjson.loads(blob)

    def _get(self, response_id: str) -> bytes | None:
        assert self.db is not None
        row = self.db.execute(
            "SELECT record FROM responses WHERE id = ? AND expires_at >= ?", (response_id, time.time())
        ).fetchone()
        return row[0] if row else None

    async def delete(self, response_id: str) -> bool:
        return await self._run(self._delete, response_id)

    def _delete(self, response_id: str) -> bool:
        assert self.db is not None
        return self.db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0

    async def close(self) -> None:
        if self.writer is not None:
            await asyncio.gather(self.writer, return_exceptions=True)
        if self.db is not None:
            await self._run(self.db.close)
        self.executor.shutdown(wait=True)


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
