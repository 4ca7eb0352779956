"""Where ledger rows go: SQLite (one file, a thread of its own) or PostgreSQL (asyncpg), same schema."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .schema import GROUPS, INSERT_ROW, MIGRATIONS, TOTALS, UPSERT_TOTALS, Batch, usage_query

SQLITE_TYPES = {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "float": "REAL", "bigint": "INTEGER", "bool": "INTEGER"}
POSTGRES_TYPES = {"id": "BIGSERIAL PRIMARY KEY", "float": "DOUBLE PRECISION", "bigint": "BIGINT", "bool": "BOOLEAN"}


class LedgerUnavailable(Exception):
    """The ledger's database cannot be opened or reached."""


class Ledger:
    """The ledger's database: migrated on start, written in batches, read by the CLI and the lookup route."""

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def write(self, batch: Batch) -> None:
        """Insert the batch's rows and add them to the daily totals, in one transaction."""
        raise NotImplementedError

    async def generation(self, request_id: str, key_name: str | None) -> dict[str, Any] | None:
        """The latest row with this request id made with this key, or ``None``."""
        raise NotImplementedError

    async def usage(self, by: str, since_day: str) -> list[dict[str, Any]]:
        """Totals per key/model/provider/tag/day since a UTC day (``YYYY-MM-DD``), from the aggregate table."""
        raise NotImplementedError


def open_ledger(url: str) -> Ledger:
    if url.startswith("sqlite:///"):
        return SqliteLedger(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(url)
    raise ValueError(f"expected sqlite:///path or postgresql://…, got {url.split(':', 1)[0]}:…")


def _migrate_statements(applied: int, types: dict[str, str]) -> list[tuple[int, list[str]]]:
    return [(v, [s.format(**types) for s in steps]) for v, steps in MIGRATIONS if v > applied]


def _background() -> None:
    """A thread that may wait: on a busy core the scheduler runs the event loop first when it wakes.

    Linux applies ``nice`` to a thread by its id; raising it needs no privilege. Elsewhere a no-op.
    """
    with contextlib.suppress(AttributeError, OSError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + BACKGROUND_NICE))


# How much lower the SQLite thread's priority is than the event loop's (Linux nice steps, up to 19).
BACKGROUND_NICE = 10


class SqliteLedger(Ledger):
    """One connection used by one thread: sqlite3 blocks, the event loop must not."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite", initializer=_background)
        self.db: sqlite3.Connection | None = None

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _open(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)")
            applied = db.execute("SELECT MAX(version) FROM ledger_schema").fetchone()[0] or 0
            for version, statements in _migrate_statements(applied, SQLITE_TYPES):
                db.execute("BEGIN IMMEDIATE")
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO ledger_schema VALUES (?)", (version,))
                db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerUnavailable(f"cannot open the SQLite ledger at {self.path} ({exc})") from None
        db.row_factory = sqlite3.Row
        self.db = db

    async def start(self) -> None:
        await self._call(self._open)

    async def close(self) -> None:
        if self.db is not None:
            await self._call(self.db.close)
            self.db = None
        self.pool.shutdown(wait=True)

    def _write(self, batch: Batch) -> None:
        assert self.db is not None
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(INSERT_ROW.format(", ".join("?" * len(batch.params[0]))), batch.params)
            db.executemany(UPSERT_TOTALS.format(", ".join("?" * (len(GROUPS) + len(TOTALS)))), batch.total_params())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def write(self, batch: Batch) -> None:
        if batch:
            await self._call(self._write, batch)

    def _generation(self, request_id: str, key_name: str | None) -> dict[str, Any] | None:
        assert self.db is not None
        found = self.db.execute(
            "SELECT * FROM requests WHERE request_id = ? AND key_name IS ? ORDER BY id DESC LIMIT 1",
            (request_id, key_name),
        ).fetchone()
        return dict(found) if found else None

    async def generation(self, request_id: str, key_name: str | None) -> dict[str, Any] | None:
        return await self._call(self._generation, request_id, key_name)

    def _usage(self, by: str, since_day: str) -> list[dict[str, Any]]:
        assert self.db is not None
        return [dict(r) for r in self.db.execute(usage_query(by, "?"), (since_day,)).fetchall()]

    async def usage(self, by: str, since_day: str) -> list[dict[str, Any]]:
        return await self._call(self._usage, by, since_day)


class PostgresLedger(Ledger):
    """asyncpg: a small pool; several gateways write to one database, each a batch at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None

    async def start(self) -> None:
        import asyncpg

        try:
            self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2, timeout=5)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise LedgerUnavailable(f"cannot reach the PostgreSQL ledger ({type(exc).__name__})") from None
        async with self.pool.acquire() as db, db.transaction():
            # One instance migrates at a time; the others wait on the lock, then find nothing to do.
            await db.execute("SELECT pg_advisory_xact_lock(7146218)")
            await db.execute("CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)")
            applied = await db.fetchval("SELECT MAX(version) FROM ledger_schema") or 0
            for version, statements in _migrate_statements(applied, POSTGRES_TYPES):
                for statement in statements:
                    await db.execute(statement)
                await db.execute("INSERT INTO ledger_schema VALUES ($1)", version)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    @staticmethod
    def _marks(n: int) -> str:
        return ", ".join(f"${i}" for i in range(1, n + 1))

    async def write(self, batch: Batch) -> None:
        if not batch:
            return
        async with self.pool.acquire() as db, db.transaction():
            await db.executemany(INSERT_ROW.format(self._marks(len(batch.params[0]))), batch.params)
            await db.executemany(UPSERT_TOTALS.format(self._marks(len(GROUPS) + len(TOTALS))), batch.total_params())

    async def generation(self, request_id: str, key_name: str | None) -> dict[str, Any] | None:
        async with self.pool.acquire() as db:
            found = await db.fetchrow(
                "SELECT * FROM requests WHERE request_id = $1 AND key_name IS NOT DISTINCT FROM $2 "
                "ORDER BY id DESC LIMIT 1",
                request_id,
                key_name,
            )
        return dict(found) if found else None

    async def usage(self, by: str, since_day: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as db:
            return [dict(r) for r in await db.fetch(usage_query(by, "$1"), since_day)]
