"""The `terminals` table: the process groups of agents' terminals while BooCode holds them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from boocode_mcp.store.db import Database


@dataclass(frozen=True)
class TerminalRow:
    id: str
    pgid: int
    leader_start: str | None
    owner_pid: int
    owner_start: str | None
    chat_id: str | None
    agent: str | None
    command: str
    created_at: float
    owner_host: str | None = None


async def insert(
    db: Database,
    *,
    terminal_id: str,
    pgid: int,
    leader_start: str | None,
    owner_pid: int,
    owner_start: str | None,
    chat_id: str | None,
    agent: str | None,
    command: str,
    owner_host: str,
) -> None:
    await db.execute(
        "INSERT INTO terminals (id, pgid, leader_start, owner_pid, owner_start, chat_id, agent, command,"
        " created_at, owner_host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            terminal_id,
            pgid,
            leader_start,
            owner_pid,
            owner_start,
            chat_id,
            agent,
            command,
            time.time(),
            owner_host,
        ),
    )


async def delete(db: Database, terminal_id: str) -> None:
    await db.execute("DELETE FROM terminals WHERE id = ?", (terminal_id,))


async def list_all(db: Database, host: str) -> list[TerminalRow]:
    """The terminals BooCode processes on `host` hold."""
    cur = await db.execute(
        "SELECT id, pgid, leader_start, owner_pid, owner_start, chat_id, agent, command, created_at,"
        " owner_host FROM terminals WHERE owner_host IS NULL OR owner_host = ? ORDER BY created_at",
        (host,),
    )
    return [
        TerminalRow(
            id=r["id"],
            pgid=int(r["pgid"]),
            leader_start=r["leader_start"],
            owner_pid=int(r["owner_pid"]),
            owner_start=r["owner_start"],
            chat_id=r["chat_id"],
            agent=r["agent"],
            command=r["command"],
            created_at=float(r["created_at"]),
            owner_host=r["owner_host"],
        )
        for r in await cur.fetchall()
    ]
