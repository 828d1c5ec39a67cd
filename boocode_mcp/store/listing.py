"""Runs as a person browses them: newest first, filtered by status, agent and session, a page at a
time, with the values the filters can take. Rows carry only what a listing shows (the prompt's
beginning, not the whole of it), so a page costs the same however long the prompts are."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from boocode_mcp.store.db import Database

PROMPT_CHARS = 300
ERROR_CHARS = 300


@dataclass(frozen=True)
class RunListItem:
    id: str
    session_id: str
    chat_id: str
    agent: str
    status: str
    prompt: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    usage: dict[str, Any] | None
    patch_id: str | None


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the next page holds the runs created before this one."""

    created_at: float
    id: str


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    agent: str | None = None
    session_id: str | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("status", self.status),
            ("agent", self.agent),
            ("session_id", self.session_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return clauses, params


async def runs_page(
    db: Database, filters: RunFilter, *, before: Cursor | None, limit: int
) -> list[RunListItem]:
    """At most `limit` runs matching `filters`, newest first, created before `before`."""
    clauses, params = filters.where()
    if before is not None:
        # A row value compares (created_at, id) as one key, which the (…, created_at, id) indexes
        # serve directly (the id breaks ties between runs created at the same instant).
        clauses.append("(created_at, id) < (?, ?)")
        params += [before.created_at, before.id]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = await db.execute(
        f"SELECT id, session_id, chat_id, agent, status, substr(prompt, 1, {PROMPT_CHARS}) AS prompt,"
        f" created_at, started_at, finished_at, substr(error, 1, {ERROR_CHARS}) AS error, usage_json,"
        f" patch_id FROM subagents {where} ORDER BY created_at DESC, id DESC LIMIT ?",
        [*params, limit],
    )
    return [
        RunListItem(
            id=r["id"],
            session_id=r["session_id"],
            chat_id=r["chat_id"],
            agent=r["agent"],
            status=r["status"],
            prompt=r["prompt"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            error=r["error"],
            usage=json.loads(r["usage_json"]) if r["usage_json"] else None,
            patch_id=r["patch_id"],
        )
        for r in await cur.fetchall()
    ]


async def count_runs(db: Database, filters: RunFilter) -> int:
    clauses, params = filters.where()
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = await db.execute(f"SELECT COUNT(*) FROM subagents {where}", params)
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def count_by(db: Database, column: str) -> dict[str, int]:
    """How many runs have each value of `column` (status or agent), most common first."""
    if column not in ("status", "agent"):
        raise ValueError(f"cannot count runs by {column!r}")
    cur = await db.execute(
        f"SELECT {column} AS value, COUNT(*) AS n FROM subagents GROUP BY {column} ORDER BY n DESC, value"
    )
    return {str(r["value"]): int(r["n"]) for r in await cur.fetchall()}


async def recent_sessions(db: Database, limit: int) -> list[tuple[str, float]]:
    """(id, created_at) of the newest sessions that have at least one run."""
    cur = await db.execute(
        "SELECT s.id, s.created_at FROM sessions s"
        " WHERE EXISTS (SELECT 1 FROM subagents r WHERE r.session_id = s.id)"
        " ORDER BY s.created_at DESC LIMIT ?",
        (limit,),
    )
    return [(str(r["id"]), float(r["created_at"])) for r in await cur.fetchall()]
