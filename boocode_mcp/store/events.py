"""The `events` table: a run's activity, one row per agent update, in arrival order (seq)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from boocode_mcp.store.db import Database


@dataclass(frozen=True)
class EventRow:
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: float


# Rows per INSERT statement in insert_many: 5 parameters each, far below SQLite's variable limit.
_ROWS_PER_STATEMENT = 200


async def insert(
    db: Database,
    subagent_id: str,
    seq: int,
    kind: str,
    payload: dict[str, Any],
    created_at: float | None = None,
) -> float:
    """One event; `created_at` defaults to now (the runner passes the update's arrival time)."""
    now = time.time() if created_at is None else created_at
    await db.execute(
        "INSERT INTO events (subagent_id, seq, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (subagent_id, seq, kind, json.dumps(payload, default=str), now),
    )
    return now


async def insert_many(
    db: Database, subagent_id: str, rows: Sequence[tuple[int, str, dict[str, Any], float]]
) -> None:
    """Events (seq, kind, payload, created_at) in order, up to _ROWS_PER_STATEMENT per statement:
    one statement is one transaction and one trip to the database thread, however many rows."""
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        params: list[Any] = []
        for seq, kind, payload, created_at in chunk:
            params += (subagent_id, seq, kind, json.dumps(payload, default=str), created_at)
        await db.execute(
            "INSERT INTO events (subagent_id, seq, kind, payload, created_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
            params,
        )


async def list_events(db: Database, subagent_id: str, after_seq: int = 0, limit: int = -1) -> list[EventRow]:
    """The run's events with seq above `after_seq`, oldest first (at most `limit`; -1 = all)."""
    sql = "SELECT seq, kind, payload, created_at FROM events WHERE subagent_id = ? AND seq > ? ORDER BY seq"
    params: list[Any] = [subagent_id, after_seq]
    if limit >= 0:
        sql += " LIMIT ?"
        params.append(limit)
    cur = await db.execute(sql, params)
    return [
        EventRow(seq=r["seq"], kind=r["kind"], payload=json.loads(r["payload"]), created_at=r["created_at"])
        for r in await cur.fetchall()
    ]
