"""The `terminals` table: the process groups of agents' terminals while BooCode holds them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite


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


async def insert(
    db: aiosqlite.Connection,
    *,
    terminal_id: str,
    pgid: int,
    leader_start: str | None,
    owner_pid: int,
    owner_start: str | None,
    chat_id: str | None,
    agent: str | None,
    command: str,
) -> None:
    await db.execute(
        "INSERT INTO terminals (id, pgid, leader_start, owner_pid, owner_start, chat_id, agent, command,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (terminal_id, pgid, leader_start, owner_pid, owner_start, chat_id, agent, command, time.time()),
    )


async def delete(db: aiosqlite.Connection, terminal_id: str) -> None:
    await db.execute("DELETE FROM terminals WHERE id = ?", (terminal_id,))


async def list_all(db: aiosqlite.Connection) -> list[TerminalRow]:
    cur = await db.execute(
        "SELECT id, pgid, leader_start, owner_pid, owner_start, chat_id, agent, command, created_at"
        " FROM terminals ORDER BY created_at"
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
        )
        for r in await cur.fetchall()
    ]
