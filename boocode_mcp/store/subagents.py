"""The `subagents` table: one prompt run on a chat, from queued to its final status."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from boocode_mcp.states import LIVE_STATUSES, SubagentStatus, subagent_status
from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class SubagentRow:
    id: str
    session_id: str
    chat_id: str
    agent: str
    prompt: str
    model: str | None
    mode: str | None
    status: SubagentStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    stop_reason: str | None
    final_message: str | None
    error: str | None
    usage: dict[str, Any] | None
    patch_id: str | None
    owner_pid: int | None
    # Where it runs on a PostgreSQL store (store.work): its worker, that worker's worktree, its lease.
    worker_id: str | None = None
    worker_host: str | None = None
    worker_pid: int | None = None
    worktree: str | None = None
    lease_expires_at: float | None = None
    pinned_worker: str | None = None
    preferred_worker: str | None = None
    cancel_requested: bool = False
    base_sha: str | None = None
    permissions: dict[str, Any] | None = None  # the requester's [permissions], travelling with it


def row_from(r: Row) -> SubagentRow:
    """A stored run as its row (any `SELECT *` or `RETURNING *` of the table)."""
    usage = json.loads(r["usage_json"]) if r["usage_json"] else None
    perms = json.loads(r["permissions_json"]) if r["permissions_json"] else None
    return SubagentRow(
        id=r["id"],
        session_id=r["session_id"],
        chat_id=r["chat_id"],
        agent=r["agent"],
        prompt=r["prompt"],
        model=r["model"],
        mode=r["mode"],
        status=subagent_status(r["status"]),
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        stop_reason=r["stop_reason"],
        final_message=r["final_message"],
        error=r["error"],
        usage=usage,
        patch_id=r["patch_id"],
        owner_pid=r["owner_pid"],
        worker_id=r["worker_id"],
        worker_host=r["worker_host"],
        worker_pid=r["worker_pid"],
        worktree=r["worktree"],
        lease_expires_at=r["lease_expires_at"],
        pinned_worker=r["pinned_worker"],
        preferred_worker=r["preferred_worker"],
        cancel_requested=bool(r["cancel_requested"]),
        base_sha=r["base_sha"],
        permissions=perms,
    )


async def insert_if_chat_idle(
    db: Database,
    *,
    subagent_id: str,
    session_id: str,
    chat_id: str,
    agent: str,
    prompt: str,
    model: str | None,
    mode: str | None,
    owner_pid: int,
    base_sha: str | None = None,
    permissions: dict[str, Any] | None = None,
    pinned_worker: str | None = None,
    preferred_worker: str | None = None,
) -> SubagentRow | None:
    """Insert a queued run unless the chat already has a live one; one statement, and the unique
    index on a chat's live run settles a race between hosts, so two callers racing for the same
    chat cannot both win. Returns the row inserted, or None."""
    cur = await db.execute(
        "INSERT INTO subagents (id, session_id, chat_id, agent, prompt, model, mode, status, created_at,"
        " owner_pid, base_sha, permissions_json, pinned_worker, preferred_worker)"
        " SELECT ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM subagents"
        f" WHERE chat_id = ? AND status IN {LIVE_STATUSES!r}) ON CONFLICT DO NOTHING RETURNING *",
        (
            subagent_id,
            session_id,
            chat_id,
            agent,
            prompt,
            model,
            mode,
            time.time(),
            owner_pid,
            base_sha,
            json.dumps(permissions) if permissions is not None else None,
            pinned_worker,
            preferred_worker,
            chat_id,
        ),
    )
    # Every row read, so the statement is done (and its write lock released) before returning.
    rows = [row_from(r) for r in await cur.fetchall()]
    return rows[0] if rows else None


async def get(db: Database, session_id: str | None, subagent_id: str) -> SubagentRow | None:
    if session_id is None:
        cur = await db.execute("SELECT * FROM subagents WHERE id = ?", (subagent_id,))
    else:
        cur = await db.execute(
            "SELECT * FROM subagents WHERE id = ? AND session_id = ?", (subagent_id, session_id)
        )
    r = await cur.fetchone()
    return row_from(r) if r is not None else None


async def list_runs(db: Database, session_id: str | None, limit: int) -> list[SubagentRow]:
    """Most recent first."""
    if session_id is None:
        cur = await db.execute("SELECT * FROM subagents ORDER BY created_at DESC, id DESC LIMIT ?", (limit,))
    else:
        cur = await db.execute(
            "SELECT * FROM subagents WHERE session_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (session_id, limit),
        )
    return [row_from(r) for r in await cur.fetchall()]


async def for_chat(db: Database, chat_id: str) -> list[SubagentRow]:
    """Oldest first: the chat's history."""
    cur = await db.execute("SELECT * FROM subagents WHERE chat_id = ? ORDER BY created_at, id", (chat_id,))
    return [row_from(r) for r in await cur.fetchall()]


async def live_for_chat(db: Database, chat_id: str) -> list[SubagentRow]:
    cur = await db.execute(
        f"SELECT * FROM subagents WHERE chat_id = ? AND status IN {LIVE_STATUSES!r}", (chat_id,)
    )
    return [row_from(r) for r in await cur.fetchall()]


async def live(db: Database) -> list[SubagentRow]:
    cur = await db.execute(f"SELECT * FROM subagents WHERE status IN {LIVE_STATUSES!r}")
    return [row_from(r) for r in await cur.fetchall()]


async def set_status(db: Database, subagent_id: str, status: SubagentStatus, **fields: Any) -> None:
    """Update the status and any of: started_at, finished_at, stop_reason, final_message, error,
    usage (a dict, stored as JSON), patch_id."""
    allowed = {"started_at", "finished_at", "stop_reason", "final_message", "error", "usage", "patch_id"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown subagent fields: {sorted(unknown)}")
    cols = ["status = ?"]
    values: list[Any] = [status]
    for name, value in fields.items():
        if name == "usage":
            cols.append("usage_json = ?")
            values.append(json.dumps(value) if value is not None else None)
        else:
            cols.append(f"{name} = ?")
            values.append(value)
    values.append(subagent_id)
    await db.execute(f"UPDATE subagents SET {', '.join(cols)} WHERE id = ?", values)


async def mark_interrupted_if_live(db: Database, subagent_id: str, error: str) -> bool:
    """Close a run its owner abandoned; only touches it while it is still live."""
    cur = await db.execute(
        f"UPDATE subagents SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ? "
        f"AND status IN {LIVE_STATUSES!r}",
        (error, time.time(), subagent_id),
    )
    return cur.rowcount == 1
