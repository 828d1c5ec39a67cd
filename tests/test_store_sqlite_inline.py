"""sqlite statements on the event loop: those that finish at once run there; one that must wait for
another connection's lock, or runs long, goes to the connection's thread, changing nothing twice,
and the loop serves meanwhile. WAL checkpoints are made on a thread of their own."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from boocode_mcp.store import open_db
from boocode_mcp.store.db import CHECKPOINT_CHANGES, Database

pytestmark = pytest.mark.anyio

# A query that runs for a while (far longer than INLINE_BUDGET_S), whatever the machine.
_LONG_QUERY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) SELECT count(*) FROM n"
)


async def _ticks_during(db_call: object) -> tuple[object, int]:
    """The call's result, and how many times another task of the loop ran while it was awaited."""
    ticks = 0
    result: object = None

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        result = await db_call  # type: ignore[misc]
        tg.cancel_scope.cancel()
    return result, ticks


@contextlib.contextmanager
def _write_locked(path: Path, seconds: float, row: str | None = None) -> Iterator[None]:
    """Another connection holds the database's write lock (having written `row`, if given) for
    `seconds`, then commits."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    if row is not None:
        other.execute("INSERT INTO t (v) VALUES (?)", (row,))
    release = threading.Timer(seconds, lambda: other.execute("COMMIT"))
    release.start()
    try:
        yield
    finally:
        release.join()
        other.close()


async def _table(db: Database) -> None:
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")


async def test_a_statement_waiting_for_another_connections_lock_lets_the_loop_run(tmp_path: Path) -> None:
    path = tmp_path / "boo.db"
    async with open_db(path) as db:
        await _table(db)
        with _write_locked(path, 0.3, "theirs"):
            _, ticks = await _ticks_during(db.execute("INSERT INTO t (v) VALUES ('ours')"))
        # It waited for the lock (the other's row landed first), on the thread: the loop ran on.
        rows = await db.execute_fetchall("SELECT v FROM t ORDER BY id")
        assert [r[0] for r in rows] == ["theirs", "ours"]
        assert ticks > 10


async def test_a_long_query_is_cut_short_on_the_loop_and_answered_from_the_thread(tmp_path: Path) -> None:
    async with open_db(tmp_path / "boo.db") as db:
        result, ticks = await _ticks_during(db.execute(_LONG_QUERY))
        assert result.rows[0][0] == 3_000_000  # type: ignore[attr-defined]
        assert ticks > 10
        # Known to be long from now on: straight to the thread.
        _, ticks = await _ticks_during(db.execute(_LONG_QUERY))
        assert ticks > 10


async def test_a_batch_sent_to_the_thread_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "boo.db"
    async with open_db(path) as db:
        await _table(db)
        with _write_locked(path, 0.2):
            await db.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, f"v{i}") for i in range(50)])
        assert (await db.execute_fetchall("SELECT count(*), count(DISTINCT id) FROM t"))[0][:] == (50, 50)


async def test_statements_that_finish_at_once_run_on_the_loop(tmp_path: Path) -> None:
    async with open_db(tmp_path / "boo.db") as db:
        await _table(db)
        # Nothing else runs while it is awaited: it never left the loop.
        _, ticks = await _ticks_during(db.execute("INSERT INTO t (v) VALUES ('x')"))
        assert ticks == 0
        _, ticks = await _ticks_during(db.execute("SELECT v FROM t"))
        assert ticks == 0


async def test_checkpoints_are_made_on_their_own_thread_which_close_ends(tmp_path: Path) -> None:
    path = tmp_path / "boo.db"
    async with open_db(path) as db:
        assert (await db.execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 0
        await _table(db)
        for i in range(CHECKPOINT_CHANGES + 10):
            await db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
        # Asked for as the CHECKPOINT_CHANGES-th row was written: its thread runs.
        assert any(t.name == "boocode-sqlite-checkpoints" for t in threading.enumerate())
    assert not any(t.name == "boocode-sqlite-checkpoints" for t in threading.enumerate())
    # Every row is in the file, whoever checkpointed last.
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == CHECKPOINT_CHANGES + 10
    finally:
        check.close()


async def test_a_quick_transaction_runs_on_the_loop_or_waits_on_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "boo.db"
    async with open_db(path) as db:
        await _table(db)

        async def write(v: str) -> None:
            async with db.transaction(quick=True) as tx:
                await tx.execute("INSERT INTO t (v) VALUES (?)", (v,))
                async with tx.transaction() as inner:  # a savepoint, inline as well
                    await inner.execute("INSERT INTO t (v) VALUES (?)", (v + "+",))

        _, ticks = await _ticks_during(write("free"))
        assert ticks == 0
        with _write_locked(path, 0.3):
            _, ticks = await _ticks_during(write("waited"))
        assert ticks > 10
        with pytest.raises(RuntimeError):
            async with db.transaction(quick=True) as tx:
                await tx.execute("INSERT INTO t (v) VALUES ('undone')")
                raise RuntimeError("the caller's failure")
        rows = await db.execute_fetchall("SELECT v FROM t ORDER BY id")
        assert [r[0] for r in rows] == ["free", "free+", "waited", "waited+"]
