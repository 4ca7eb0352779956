"""The SQLite store itself: group commit, reads of records not committed yet, delete, expiry, shutdown, failures."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from router_plugins.responses_store import store as store_module
from router_plugins.responses_store.store import SQLiteStore


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "responses.sqlite3"


def on_disk(path, response_id: str) -> bool:
    """What another process reading the file sees."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT 1 FROM responses WHERE id = ?", (response_id,)).fetchone() is not None


async def test_put_returns_before_the_commit_and_reads_its_own_writes(path):
    store = await SQLiteStore(path).open()
    try:
        await store.put("gen_a", {"n": 1}, ttl=60)
        assert "gen_a" in store.pending and not on_disk(path, "gen_a")  # answered before the commit ...
        assert await store.get("gen_a") == {"n": 1}  # ... and already readable here
        await store.committed()
        assert store.pending == {} and on_disk(path, "gen_a")
        assert await store.get("gen_a") == {"n": 1}  # from the file now
    finally:
        await store.close()


async def test_many_puts_share_one_transaction(path, monkeypatch):
    store = await SQLiteStore(path).open()
    batches: list[int] = []
    put_many = store._put_many
    monkeypatch.setattr(store, "_put_many", lambda rows: (batches.append(len(rows)), put_many(rows))[1])
    try:
        for n in range(123):  # 100 + 2 × 10 + 3 × 1 rows per INSERT
            await store.put(f"gen_{n}", {"n": n}, ttl=60)
        await store.committed()
        assert batches == [123]
        with sqlite3.connect(path) as db:
            stored = db.execute("SELECT id, record FROM responses ORDER BY rowid").fetchall()
        assert stored == [(f"gen_{n}", b'{"n":%d}' % n) for n in range(123)]
    finally:
        await store.close()


async def test_delete_wins_over_a_queued_write_and_expiry_is_honoured_before_the_commit(path):
    store = await SQLiteStore(path).open()
    try:
        await store.put("gen_b", {"n": 2}, ttl=60)
        assert await store.delete("gen_b") is True
        assert await store.delete("gen_b") is False
        await store.put("gen_c", {"n": 3}, ttl=-1)  # already expired: never served, even before its commit
        assert await store.get("gen_c") is None
        await store.committed()
        assert not on_disk(path, "gen_b")
        assert await store.get("gen_b") is None and await store.get("gen_c") is None
    finally:
        await store.close()


async def test_a_delete_after_the_batch_left_for_the_thread_still_deletes(path):
    store = await SQLiteStore(path).open()
    try:
        await store.put("gen_d", {"n": 4}, ttl=60)
        await asyncio.sleep(store_module.COMMIT_INTERVAL * 1.5)  # the batch is being committed or done
        assert await store.delete("gen_d") is True
        await store.committed()
        assert not on_disk(path, "gen_d") and await store.get("gen_d") is None
    finally:
        await store.close()


async def test_an_orderly_shutdown_commits_what_is_queued(path):
    store = await SQLiteStore(path).open()
    await store.put("gen_e", {"n": 5}, ttl=60)
    await store.close()
    assert on_disk(path, "gen_e")
    reopened = await SQLiteStore(path).open()
    try:
        assert await reopened.get("gen_e") == {"n": 5}
    finally:
        await reopened.close()


async def test_another_worker_on_the_same_file_finds_a_record_being_committed(path):
    """A miss looks again after the commit interval: a follow-up landing on another worker finds the record."""
    one, two = await SQLiteStore(path).open(), await SQLiteStore(path).open()
    try:
        await one.put("gen_f", {"n": 6}, ttl=60)
        assert not on_disk(path, "gen_f")
        assert await two.get("gen_f") == {"n": 6}
        assert await two.get("gen_unknown") is None
    finally:
        await one.close()
        await two.close()


async def test_commit_before_answer_returns_once_the_record_is_on_disk(path):
    store = await SQLiteStore(path, commit_before_answer=True).open()
    try:
        await asyncio.gather(*(store.put(f"gen_{n}", {"n": n}, ttl=60) for n in range(5)))
        assert store.pending == {} and all(on_disk(path, f"gen_{n}") for n in range(5))
    finally:
        await store.close()


async def test_a_failed_commit_is_logged_and_forgotten(path, monkeypatch, caplog):
    store = await SQLiteStore(path).open()

    def full_disk(rows):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_put_many", full_disk)
    try:
        with caplog.at_level(logging.ERROR, "llm_router.responses_store"):
            await store.put("gen_g", {"n": 7}, ttl=60)  # the answer is out already
            await store.committed()
        assert "could not keep 1 responses: OperationalError" in caplog.text
        assert store.pending == {} and await store.get("gen_g") is None
    finally:
        await store.close()


async def test_with_commit_before_answer_a_failed_commit_reaches_the_writer(path, monkeypatch):
    store = await SQLiteStore(path, commit_before_answer=True).open()

    def full_disk(rows):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_put_many", full_disk)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await store.put("gen_h", {"n": 8}, ttl=60)
    finally:
        await store.close()


async def test_a_slow_disk_makes_put_wait_instead_of_growing_memory(path, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_UNCOMMITTED", 3)
    store = await SQLiteStore(path).open()
    try:
        for n in range(3):
            await store.put(f"gen_{n}", {"n": n}, ttl=60)
        assert len(store.pending) == 3
        await store.put("gen_3", {"n": 3}, ttl=60)  # one too many: waits for the commit
        assert store.pending == {} and on_disk(path, "gen_3")
    finally:
        await store.close()


async def test_new_files_get_16k_pages(path):
    store = await SQLiteStore(path).open()
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (16384,)


async def test_expired_rows_are_purged_at_startup_and_from_the_head_while_running(path):
    store = await SQLiteStore(path).open()
    await store.put("gen_old", {"n": 0}, ttl=-1)
    await store.put("gen_short", {"n": 1}, ttl=0.05)
    await store.put("gen_new", {"n": 2}, ttl=60)
    await store.put("gen_later_short", {"n": 3}, ttl=-1)  # behind a row that is still kept
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (4,)
    await (await SQLiteStore(path).open()).close()  # startup: every expired row
    assert not on_disk(path, "gen_old") and not on_disk(path, "gen_later_short")
    assert on_disk(path, "gen_short") and on_disk(path, "gen_new")

    store = await SQLiteStore(path).open()
    try:
        await asyncio.sleep(0.06)
        await store.put("gen_next", {"n": 4}, ttl=-1)
        await store.put("gen_last", {"n": 5}, ttl=60)
        store.purged_at -= store_module.PURGE_INTERVAL  # due at the next commit
        await store.committed()
        assert not on_disk(path, "gen_short")  # expired at the head: gone
        # behind a kept row: read as missing, deleted at the next start
        assert on_disk(path, "gen_new") and on_disk(path, "gen_next")
        assert await store.get("gen_next") is None
    finally:
        await store.close()
