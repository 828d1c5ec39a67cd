"""The `sessions` table: a host's unit of work, grouping its chats, runs and patches."""

from __future__ import annotations

import time

import aiosqlite


async def exists(db: aiosqlite.Connection, session_id: str) -> bool:
    cur = await db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,))
    return await cur.fetchone() is not None


async def create(db: aiosqlite.Connection, session_id: str, label: str | None = None) -> None:
    """Insert the session unless it is already there (two front ends may race to create it)."""
    await db.execute(
        "INSERT OR IGNORE INTO sessions (id, created_at, label) VALUES (?, ?, ?)",
        (session_id, time.time(), label),
    )


async def list_ids(db: aiosqlite.Connection) -> list[str]:
    cur = await db.execute("SELECT id FROM sessions ORDER BY created_at DESC")
    return [str(r["id"]) for r in await cur.fetchall()]
