"""The `permissions` table: permission requests a run asked, their deadline and their answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class PermissionRow:
    id: str
    session_id: str
    subagent_id: str
    title: str
    options: list[dict[str, Any]]
    deadline: float
    status: str
    decision: str | None
    created_at: float
    decided_at: float | None


def _row(r: Row) -> PermissionRow:
    return PermissionRow(
        id=r["id"],
        session_id=r["session_id"],
        subagent_id=r["subagent_id"],
        title=r["title"],
        options=json.loads(r["options_json"]),
        deadline=r["deadline"],
        status=r["status"],
        decision=r["decision"],
        created_at=r["created_at"],
        decided_at=r["decided_at"],
    )


async def insert(
    db: Database,
    *,
    request_id: str,
    session_id: str,
    subagent_id: str,
    title: str,
    options: list[dict[str, Any]],
    deadline: float,
) -> None:
    await db.execute(
        "INSERT INTO permissions (id, session_id, subagent_id, title, options_json, deadline, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        (request_id, session_id, subagent_id, title, json.dumps(options), deadline, time.time()),
    )


async def decide(db: Database, request_id: str, status: str, decision: str | None) -> None:
    await db.execute(
        "UPDATE permissions SET status = ?, decision = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
        (status, decision, time.time(), request_id),
    )


async def for_subagent(db: Database, subagent_id: str) -> list[PermissionRow]:
    cur = await db.execute(
        "SELECT * FROM permissions WHERE subagent_id = ? ORDER BY created_at", (subagent_id,)
    )
    return [_row(r) for r in await cur.fetchall()]


async def cancel_pending_for(db: Database, subagent_id: str) -> None:
    """Close requests a dead run left open."""
    await db.execute(
        "UPDATE permissions SET status = 'cancelled', decided_at = ?"
        " WHERE subagent_id = ? AND status = 'pending'",
        (time.time(), subagent_id),
    )
