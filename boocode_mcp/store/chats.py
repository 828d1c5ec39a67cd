"""The `chats` table: one conversation with one agent, the unit of agent context and worktree."""

from __future__ import annotations

import time
from dataclasses import dataclass

from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class ChatRow:
    id: str
    session_id: str
    agent: str
    worktree: str
    branch: str | None
    base_sha: str | None
    created_at: float
    updated_at: float


def _row(r: Row) -> ChatRow:
    return ChatRow(
        id=r["id"],
        session_id=r["session_id"],
        agent=r["agent"],
        worktree=r["worktree"],
        branch=r["branch"],
        base_sha=r["base_sha"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def insert(db: Database, *, chat_id: str, session_id: str, agent: str, worktree: str) -> None:
    now = time.time()
    await db.execute(
        "INSERT INTO chats (id, session_id, agent, worktree, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (chat_id, session_id, agent, worktree, now, now),
    )


async def get(db: Database, session_id: str | None, chat_id: str) -> ChatRow | None:
    """The chat with this id in this session (any session when session_id is None)."""
    if session_id is None:
        cur = await db.execute("SELECT * FROM chats WHERE id = ?", (chat_id,))
    else:
        cur = await db.execute("SELECT * FROM chats WHERE id = ? AND session_id = ?", (chat_id, session_id))
    r = await cur.fetchone()
    return _row(r) if r is not None else None


async def list_chats(db: Database, session_id: str | None) -> list[ChatRow]:
    if session_id is None:
        cur = await db.execute("SELECT * FROM chats ORDER BY created_at DESC")
    else:
        cur = await db.execute(
            "SELECT * FROM chats WHERE session_id = ? ORDER BY created_at DESC", (session_id,)
        )
    return [_row(r) for r in await cur.fetchall()]


async def set_base(db: Database, chat_id: str, base_sha: str, branch: str | None = None) -> None:
    await db.execute(
        "UPDATE chats SET base_sha = ?, branch = COALESCE(?, branch), updated_at = ? WHERE id = ?",
        (base_sha, branch, time.time(), chat_id),
    )


async def set_agent(db: Database, chat_id: str, agent: str) -> None:
    await db.execute("UPDATE chats SET agent = ?, updated_at = ? WHERE id = ?", (agent, time.time(), chat_id))


async def all_ids(db: Database) -> set[str]:
    cur = await db.execute("SELECT id FROM chats")
    return {str(r["id"]) for r in await cur.fetchall()}


async def never_ran(db: Database, created_before: float) -> list[str]:
    """Ids of the chats created before `created_before` that have no run."""
    cur = await db.execute(
        "SELECT id FROM chats c WHERE created_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM subagents r WHERE r.chat_id = c.id)",
        (created_before,),
    )
    return [str(r["id"]) for r in await cur.fetchall()]


async def delete_if_unused(db: Database, chat_id: str) -> bool:
    """Delete the chat unless it has a run; whether it was deleted. One statement, so a spawn
    racing it either lands first (the chat stays) or finds no chat."""
    cur = await db.execute(
        "DELETE FROM chats WHERE id = ? AND NOT EXISTS (SELECT 1 FROM subagents WHERE chat_id = ?)",
        (chat_id, chat_id),
    )
    return cur.rowcount > 0
