"""The `traces` table: every MCP tool call and every agent tool call, with timing and outcome."""

from __future__ import annotations

import json
from typing import Any

from boocode_mcp.store.db import Database
from boocode_mcp.views import TraceView


async def start(
    db: Database,
    *,
    session_id: str | None,
    subagent_id: str | None,
    source: str,
    tool_name: str,
    tool_call_id: str | None,
    input: Any,
    started_at: float,
) -> int | None:
    """Insert a running trace; None when this (subagent, tool call) is already recorded."""
    cur = await db.execute(
        "INSERT INTO traces (session_id, subagent_id, source, tool_name, tool_call_id, input,"
        " started_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'running') ON CONFLICT DO NOTHING RETURNING id",
        (
            session_id,
            subagent_id,
            source,
            tool_name,
            tool_call_id,
            json.dumps(input, default=str) if input is not None else None,
            started_at,
        ),
    )
    row = await cur.fetchone()
    return int(row[0]) if row is not None else None


async def find_agent_call(db: Database, subagent_id: str, tool_call_id: str) -> int | None:
    cur = await db.execute(
        "SELECT id FROM traces WHERE subagent_id = ? AND tool_call_id = ?", (subagent_id, tool_call_id)
    )
    r = await cur.fetchone()
    return int(r["id"]) if r is not None else None


async def started_at(db: Database, trace_id: int) -> float | None:
    """When the trace started; None when there is no such trace."""
    cur = await db.execute("SELECT started_at FROM traces WHERE id = ?", (trace_id,))
    row = await cur.fetchone()
    return float(row["started_at"]) if row is not None else None


async def update(db: Database, trace_id: int, **fields: Any) -> None:
    """Set any of: tool_name, output_excerpt, finished_at, latency_ms, outcome, error, input_tokens,
    output_tokens, cost (None values leave the column unchanged)."""
    allowed = {
        "tool_name",
        "output_excerpt",
        "finished_at",
        "latency_ms",
        "outcome",
        "error",
        "input_tokens",
        "output_tokens",
        "cost",
    }
    items = [(k, v) for k, v in fields.items() if v is not None]
    bad = {k for k, _ in items} - allowed
    if bad:
        raise ValueError(f"unknown trace fields: {sorted(bad)}")
    if not items:
        return
    sets = ", ".join(f"{k} = ?" for k, _ in items)
    await db.execute(f"UPDATE traces SET {sets} WHERE id = ?", [*(v for _, v in items), trace_id])


async def running_for_subagent(db: Database, subagent_id: str) -> list[tuple[int, float]]:
    cur = await db.execute(
        "SELECT id, started_at FROM traces WHERE subagent_id = ? AND outcome = 'running'", (subagent_id,)
    )
    return [(int(r["id"]), float(r["started_at"])) for r in await cur.fetchall()]


async def list_traces(db: Database, session_id: str | None, limit: int = 500) -> list[TraceView]:
    """Oldest first (a trace reads as a timeline)."""
    if session_id is None:
        cur = await db.execute("SELECT * FROM traces ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
    else:
        cur = await db.execute(
            "SELECT * FROM traces WHERE session_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
            (session_id, limit),
        )
    rows = list(await cur.fetchall())
    rows.reverse()
    return [
        TraceView(
            id=r["id"],
            session_id=r["session_id"],
            subagent_id=r["subagent_id"],
            source=r["source"],
            tool_name=r["tool_name"],
            input=json.loads(r["input"]) if r["input"] is not None else None,
            output_excerpt=r["output_excerpt"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            latency_ms=r["latency_ms"],
            outcome=r["outcome"],
            error=r["error"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cost=r["cost"],
        )
        for r in rows
    ]
