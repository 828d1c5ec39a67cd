"""The `sessions` table: a host's unit of work, grouping its chats, runs and patches."""

from __future__ import annotations

import time
from dataclasses import dataclass

from boocode_mcp.store.db import Database


async def exists(db: Database, session_id: str) -> bool:
    cur = await db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,))
    return await cur.fetchone() is not None


async def create(db: Database, session_id: str, label: str | None = None) -> None:
    """Insert the session unless it is already there (two front ends may race to create it)."""
    await db.execute(
        "INSERT INTO sessions (id, created_at, label) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (session_id, time.time(), label),
    )


async def list_ids(db: Database) -> list[str]:
    cur = await db.execute("SELECT id FROM sessions ORDER BY created_at DESC")
    return [str(r["id"]) for r in await cur.fetchall()]


@dataclass(frozen=True)
class SessionSummary:
    """A session that has run something: what a session picker shows."""

    id: str
    created_at: float
    last_active_at: float  # the latest start or end of one of its runs
    first_prompt: str  # of its earliest run


async def list_summaries(db: Database, *, limit: int) -> list[SessionSummary]:
    """Sessions with at least one run, most recently active first (then by id, so pages are stable)."""
    # One pass over subagents grouped by session: the (session_id, created_at) index serves it.
    cur = await db.execute(
        """
        SELECT s.id, s.created_at, a.last_at,
               (SELECT r.prompt FROM subagents r WHERE r.session_id = s.id
                 ORDER BY r.created_at, r.id LIMIT 1) AS first_prompt
        FROM sessions s
        JOIN (SELECT session_id, MAX(COALESCE(finished_at, created_at)) AS last_at
                FROM subagents GROUP BY session_id) a ON a.session_id = s.id
        ORDER BY a.last_at DESC, s.id
        LIMIT ?
        """,
        (limit,),
    )
    return [
        SessionSummary(
            id=str(r["id"]),
            created_at=float(r["created_at"]),
            last_active_at=float(r["last_at"]),
            first_prompt=str(r["first_prompt"] or ""),
        )
        for r in await cur.fetchall()
    ]
