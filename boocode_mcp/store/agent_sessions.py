"""The `agent_sessions` table: one row per (chat, agent) warm session, kept current by the pool."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal, cast

from boocode_mcp.store.db import Database, Row
from boocode_mcp.views import AgentSessionView

AgentSessionStatus = Literal["idle", "active", "crashed", "closed"]


@dataclass(frozen=True)
class AgentSessionRow:
    chat_id: str
    agent: str
    backend: str = "acp"
    acp_session_id: str | None = None
    pid: int | None = None
    pgid: int | None = None
    owner_pid: int | None = None
    status: AgentSessionStatus = "idle"
    last_active_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    config_hash: str | None = None
    load_supported: bool | None = None
    note: str | None = None
    # The host of the owning process (recovery reaps its own host's agents only), and on a
    # PostgreSQL store the worker holding the agent warm (where the chat's follow-ups go).
    owner_host: str | None = None
    worker_id: str | None = None

    def with_(self, **changes: Any) -> AgentSessionRow:
        return replace(self, **changes)

    def to_view(self) -> AgentSessionView:
        return AgentSessionView(
            chat_id=self.chat_id,
            agent=self.agent,
            backend=self.backend,
            acp_session_id=self.acp_session_id,
            pid=self.pid,
            status=self.status,
            last_active_at=self.last_active_at,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
            note=self.note,
        )


_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AgentSessionRow))


def _row(r: Row) -> AgentSessionRow:
    load = r["load_supported"]
    return AgentSessionRow(
        chat_id=r["chat_id"],
        agent=r["agent"],
        backend=r["backend"],
        acp_session_id=r["acp_session_id"],
        pid=r["pid"],
        pgid=r["pgid"],
        owner_pid=r["owner_pid"],
        status=cast(AgentSessionStatus, r["status"]),
        last_active_at=r["last_active_at"],
        input_tokens=int(r["input_tokens"]),
        output_tokens=int(r["output_tokens"]),
        cost=float(r["cost"]),
        config_hash=r["config_hash"],
        load_supported=None if load is None else bool(load),
        note=r["note"],
        owner_host=r["owner_host"],
        worker_id=r["worker_id"],
    )


def _values(row: AgentSessionRow) -> tuple[Any, ...]:
    values = [getattr(row, c) for c in _COLUMNS]
    i = _COLUMNS.index("load_supported")
    values[i] = None if row.load_supported is None else int(row.load_supported)
    return tuple(values)


_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM agent_sessions"


async def upsert(db: Database, row: AgentSessionRow) -> None:
    """Insert the row or replace every column of the existing one (the chat row must exist)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[2:])
    await db.execute(
        f"INSERT INTO agent_sessions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
        f"ON CONFLICT (chat_id, agent) DO UPDATE SET {updates}",
        _values(row),
    )


async def get(db: Database, chat_id: str, agent: str) -> AgentSessionRow | None:
    cur = await db.execute(f"{_SELECT} WHERE chat_id = ? AND agent = ?", (chat_id, agent))
    r = await cur.fetchone()
    return _row(r) if r is not None else None


async def list_all(db: Database) -> list[AgentSessionRow]:
    cur = await db.execute(f"{_SELECT} ORDER BY last_active_at DESC NULLS LAST, chat_id, agent")
    return [_row(r) for r in await cur.fetchall()]


async def list_by_chat(db: Database, chat_id: str) -> list[AgentSessionRow]:
    cur = await db.execute(f"{_SELECT} WHERE chat_id = ? ORDER BY agent", (chat_id,))
    return [_row(r) for r in await cur.fetchall()]


async def list_by_owner(db: Database, owner_pid: int) -> list[AgentSessionRow]:
    cur = await db.execute(f"{_SELECT} WHERE owner_pid = ? ORDER BY chat_id, agent", (owner_pid,))
    return [_row(r) for r in await cur.fetchall()]


_ON_HOST = "(owner_host IS NULL OR owner_host = ?)"


async def list_unclosed(db: Database, host: str) -> list[AgentSessionRow]:
    """Rows of `host` not yet closed, whatever their status (for start-up recovery of a dead
    owner's agents)."""
    cur = await db.execute(f"{_SELECT} WHERE status != 'closed' AND {_ON_HOST}", (host,))
    return [_row(r) for r in await cur.fetchall()]


async def list_live(db: Database, host: str) -> list[AgentSessionRow]:
    """Rows of `host` that claim a running process (for start-up reaping of a dead owner's groups)."""
    cur = await db.execute(
        f"{_SELECT} WHERE status IN ('idle', 'active') AND pgid IS NOT NULL AND {_ON_HOST}", (host,)
    )
    return [_row(r) for r in await cur.fetchall()]


async def mark_closed(db: Database, chat_id: str, agent: str, note: str | None = None) -> None:
    """The process is gone: clear pid/pgid, keep the ACP session id so a later run can load it."""
    await db.execute(
        "UPDATE agent_sessions SET status = 'closed', pid = NULL, pgid = NULL, "
        "note = COALESCE(?, note) WHERE chat_id = ? AND agent = ?",
        (note, chat_id, agent),
    )


async def mark_status(
    db: Database, chat_id: str, agent: str, status: AgentSessionStatus, note: str | None = None
) -> None:
    await db.execute(
        "UPDATE agent_sessions SET status = ?, note = COALESCE(?, note) WHERE chat_id = ? AND agent = ?",
        (status, note, chat_id, agent),
    )


async def add_usage(
    db: Database,
    chat_id: str,
    agent: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost: float = 0.0,
) -> None:
    await db.execute(
        "UPDATE agent_sessions SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, "
        "cost = cost + ? WHERE chat_id = ? AND agent = ?",
        (input_tokens, output_tokens, cost, chat_id, agent),
    )
