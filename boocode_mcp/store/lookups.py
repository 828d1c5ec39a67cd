"""Finding a subagent, patch, chat or workflow run by its id or a prefix of it (what people type at
a prompt)."""

from __future__ import annotations

from typing import Literal

from boocode_mcp.store.db import Database

# Kind -> table: fixed names, so the SQL below never carries caller text.
_TABLES = {"subagent": "subagents", "patch": "patches", "chat": "chats", "workflow_run": "workflow_runs"}


async def find_ids(
    db: Database,
    kind: Literal["subagent", "patch", "chat", "workflow_run"],
    prefix: str,
    session_id: str | None = None,
    limit: int = 10,
) -> list[tuple[str, str]]:
    """(id, session_id) of the rows whose id is `prefix` or starts with it; LIKE's wildcards in
    `prefix` are matched literally."""
    if not prefix:
        return []
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    sql = f"SELECT id, session_id FROM {_TABLES[kind]} WHERE id LIKE ? ESCAPE '\\'"
    params: list[str | int] = [escaped + "%"]
    if session_id is not None:
        sql += " AND session_id = ?"
        params.append(session_id)
    sql += " LIMIT ?"
    params.append(limit)
    cur = await db.execute(sql, params)
    return [(str(r["id"]), str(r["session_id"])) for r in await cur.fetchall()]
