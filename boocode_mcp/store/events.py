"""The `events` table: a run's activity, one row per agent update, in arrival order (seq)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite


@dataclass(frozen=True)
class EventRow:
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: float


async def insert(
    db: aiosqlite.Connection, subagent_id: str, seq: int, kind: str, payload: dict[str, Any]
) -> float:
    now = time.time()
    await db.execute(
        "INSERT INTO events (subagent_id, seq, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (subagent_id, seq, kind, json.dumps(payload, default=str), now),
    )
    return now


async def list_events(db: aiosqlite.Connection, subagent_id: str) -> list[EventRow]:
    cur = await db.execute(
        "SELECT seq, kind, payload, created_at FROM events WHERE subagent_id = ? ORDER BY seq",
        (subagent_id,),
    )
    return [
        EventRow(seq=r["seq"], kind=r["kind"], payload=json.loads(r["payload"]), created_at=r["created_at"])
        for r in await cur.fetchall()
    ]
