"""Opening the workspace's database: a sqlite file (the default) or a PostgreSQL URL, migrated on
open either way."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from boocode_mcp.errors import StoreError
from boocode_mcp.store.db import Database, DatabaseError, SqliteDatabase
from boocode_mcp.store.migrations import migrate

BUSY_TIMEOUT_MS = 10_000


def is_url(target: Path | str) -> bool:
    """Whether `target` names a PostgreSQL server rather than a sqlite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def _configure(db: SqliteDatabase) -> None:
    # WAL lets the CLI read while a server writes. sqlite's busy timeout is 0: a statement that
    # needs a lock another connection holds never waits on the event loop; on the connection's
    # thread it is tried again for up to BUSY_TIMEOUT_MS instead (see db.py), so two writers wait,
    # not fail.
    await db.execute("PRAGMA busy_timeout = 0")
    row = await (await db.execute("PRAGMA journal_mode = WAL")).fetchone()
    # In-memory databases report "memory"; everything on disk must be WAL.
    if row is None or str(row[0]).lower() not in ("wal", "memory"):
        raise StoreError(f"could not switch the database to WAL mode (got {row!r})")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute("PRAGMA synchronous = NORMAL")
    # Checkpoints are made on the connection's thread every CHECKPOINT_CHANGES rows instead (see db.py).
    await db.execute("PRAGMA wal_autocheckpoint = 0")
    # The default 2 MB page cache makes memory search at 100k entries read from disk every query.
    await db.execute("PRAGMA cache_size = -32768")


async def _connect_sqlite(path: Path | str) -> Database:
    where = str(path)
    if where != ":memory:":
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the database directory {p.parent}: {e.strerror}") from e
    try:
        # Used from the event loop's thread too, for statements that finish at once (see db.py).
        conn = await aiosqlite.connect(where, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the database {where}: {e}; check the path and its permissions") from e
    conn.row_factory = aiosqlite.Row
    db = SqliteDatabase(conn, where, BUSY_TIMEOUT_MS)
    try:
        await _configure(db)
        await migrate(db, where)
    except DatabaseError as e:
        await db.close()
        reason = str(e).removeprefix(f"{where}: ")
        raise StoreError(
            f"the database {where} is unusable ({reason}); move it aside to start fresh, or restore a backup"
        ) from e
    except BaseException:
        await db.close()
        raise
    return db


async def connect(target: Path | str) -> Database:
    """Open (creating if needed) and migrate the database at `target`: a sqlite file path, or a
    `postgresql://` URL."""
    if not is_url(target):
        return await _connect_sqlite(target)
    from boocode_mcp.store.postgres import PostgresDatabase

    db = await PostgresDatabase.connect(str(target))
    try:
        await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db


@asynccontextmanager
async def open_db(target: Path | str) -> AsyncIterator[Database]:
    db = await connect(target)
    try:
        yield db
    finally:
        await db.close()
