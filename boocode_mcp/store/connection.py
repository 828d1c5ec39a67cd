"""The workspace database: one aiosqlite connection in WAL mode, migrated on open."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from boocode_mcp.errors import StoreError
from boocode_mcp.store.migrations import migrate

BUSY_TIMEOUT_MS = 10_000


async def _configure(db: aiosqlite.Connection) -> None:
    # WAL lets the CLI read while a server writes; busy_timeout makes two writers wait, not fail.
    await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur = await db.execute("PRAGMA journal_mode = WAL")
    row = await cur.fetchone()
    # In-memory databases report "memory"; everything on disk must be WAL.
    if row is None or str(row[0]).lower() not in ("wal", "memory"):
        raise StoreError(f"could not switch the database to WAL mode (got {row!r})")
    await db.execute("PRAGMA foreign_keys = ON")
    await db.execute("PRAGMA synchronous = NORMAL")
    # The default 2 MB page cache makes memory search at 100k entries read from disk every query.
    await db.execute("PRAGMA cache_size = -32768")


async def connect(path: Path | str) -> aiosqlite.Connection:
    """Open (creating if needed) and migrate the database at `path`."""
    where = str(path)
    if where != ":memory:":
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the database directory {p.parent}: {e.strerror}") from e
    try:
        db = await aiosqlite.connect(where, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the database {where}: {e}; check the path and its permissions") from e
    db.row_factory = aiosqlite.Row
    try:
        await _configure(db)
        await migrate(db, where)
    except sqlite3.DatabaseError as e:
        await db.close()
        raise StoreError(
            f"the database {where} is unusable ({e}); move it aside to start fresh, or restore a backup"
        ) from e
    except BaseException:
        await db.close()
        raise
    return db


@asynccontextmanager
async def open_db(path: Path | str) -> AsyncIterator[aiosqlite.Connection]:
    db = await connect(path)
    try:
        yield db
    finally:
        await db.close()
