"""The `patches` table: a chat's worktree against its base at the end of a turn."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from boocode_mcp.states import PatchStatus, patch_status
from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class PatchRow:
    id: str
    session_id: str
    chat_id: str
    subagent_id: str | None
    parent_patch_id: str | None
    agent: str
    base_sha: str
    diff: str
    hunks: list[dict[str, Any]]
    files: list[dict[str, Any]]
    file_count: int
    hunk_count: int
    additions: int
    deletions: int
    failed_mid_turn: bool
    status: PatchStatus
    created_at: float
    applied_at: float | None


def _row(r: Row) -> PatchRow:
    return PatchRow(
        id=r["id"],
        session_id=r["session_id"],
        chat_id=r["chat_id"],
        subagent_id=r["subagent_id"],
        parent_patch_id=r["parent_patch_id"],
        agent=r["agent"],
        base_sha=r["base_sha"],
        diff=r["diff"],
        hunks=json.loads(r["hunks_json"]),
        files=json.loads(r["files_json"]),
        file_count=r["file_count"],
        hunk_count=r["hunk_count"],
        additions=r["additions"],
        deletions=r["deletions"],
        failed_mid_turn=bool(r["failed_mid_turn"]),
        status=patch_status(r["status"]),
        created_at=r["created_at"],
        applied_at=r["applied_at"],
    )


_INSERT = (
    "INSERT INTO patches (id, session_id, chat_id, subagent_id, parent_patch_id, agent, base_sha, diff,"
    " hunks_json, files_json, file_count, hunk_count, additions, deletions, failed_mid_turn, status,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)"
)


@dataclass(frozen=True)
class NewPatch:
    """A patch to store, as a turn's diff gives it: its files and hunks already encoded (see
    `ParsedDiff.to_json`)."""

    patch_id: str
    session_id: str
    chat_id: str
    subagent_id: str | None
    agent: str
    base_sha: str
    diff: str
    hunks_json: str
    files_json: str
    file_count: int
    hunk_count: int
    additions: int
    deletions: int
    failed_mid_turn: bool

    def values(self, parent_patch_id: str | None) -> tuple[Any, ...]:
        """The parameters of `_INSERT`."""
        return (
            self.patch_id,
            self.session_id,
            self.chat_id,
            self.subagent_id,
            parent_patch_id,
            self.agent,
            self.base_sha,
            self.diff,
            self.hunks_json,
            self.files_json,
            self.file_count,
            self.hunk_count,
            self.additions,
            self.deletions,
            int(self.failed_mid_turn),
            time.time(),
        )


async def insert_superseding(db: Database, patch: NewPatch) -> list[str]:
    """A chat's new pending patch, superseding the chat's pending ones (its parent is the newest of
    them), in one transaction; the ids it superseded."""

    async with db.transaction(quick=True) as tx:
        older = [
            str(r[0])
            for r in await tx.execute_fetchall(
                "SELECT id FROM patches WHERE chat_id = ? AND status = 'pending'"
                " ORDER BY created_at DESC, id DESC",
                (patch.chat_id,),
            )
        ]
        await tx.execute(_INSERT, patch.values(older[0] if older else None))
        if older:
            await tx.executemany(
                "UPDATE patches SET status = 'superseded' WHERE id = ?", [(i,) for i in older]
            )
    return older


async def insert(
    db: Database,
    *,
    parent_patch_id: str | None,
    hunks: list[dict[str, Any]],
    files: list[dict[str, Any]],
    **patch: Any,
) -> None:
    """A patch with the given parent, its hunks and files as records; `patch` holds the other
    fields of `NewPatch`."""
    new = NewPatch(
        hunks_json=json.dumps(hunks),
        files_json=json.dumps(files),
        file_count=len(files),
        hunk_count=len(hunks),
        **patch,
    )
    await db.execute(_INSERT, new.values(parent_patch_id))


async def get(db: Database, session_id: str | None, patch_id: str) -> PatchRow | None:
    if session_id is None:
        cur = await db.execute("SELECT * FROM patches WHERE id = ?", (patch_id,))
    else:
        cur = await db.execute(
            "SELECT * FROM patches WHERE id = ? AND session_id = ?", (patch_id, session_id)
        )
    r = await cur.fetchone()
    return _row(r) if r is not None else None


async def list_patches(
    db: Database,
    session_id: str | None,
    *,
    chat_id: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[PatchRow]:
    """Newest first."""
    where: list[str] = []
    args: list[Any] = []
    if session_id is not None:
        where.append("session_id = ?")
        args.append(session_id)
    if chat_id is not None:
        where.append("chat_id = ?")
        args.append(chat_id)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    args.append(limit)
    cur = await db.execute(f"SELECT * FROM patches {clause} ORDER BY created_at DESC, id DESC LIMIT ?", args)
    return [_row(r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class PatchHead:
    """A patch's identity and status, read without its diff (collisions start from these)."""

    id: str
    session_id: str
    chat_id: str
    status: PatchStatus


_HEAD = "SELECT id, session_id, chat_id, status FROM patches"


def _head(r: Row) -> PatchHead:
    return PatchHead(id=r[0], session_id=r[1], chat_id=r[2], status=patch_status(r[3]))


async def head(db: Database, session_id: str, patch_id: str) -> PatchHead | None:
    cur = await db.execute(f"{_HEAD} WHERE id = ? AND session_id = ?", (patch_id, session_id))
    r = await cur.fetchone()
    return _head(r) if r is not None else None


async def pending_heads(
    db: Database, session_id: str, *, other_than_chat: str | None = None
) -> list[PatchHead]:
    """The session's pending patches (of every chat but `other_than_chat`), newest first, read from
    the index `patches_pending` alone: a row's status lies after its diff, which a scan of the
    rows would read through."""
    sql = f"{_HEAD} WHERE session_id = ? AND status = 'pending'"
    args: list[Any] = [session_id]
    if other_than_chat is not None:
        sql += " AND chat_id != ?"
        args.append(other_than_chat)
    cur = await db.execute(f"{sql} ORDER BY created_at DESC, id DESC", args)
    return [_head(r) for r in await cur.fetchall()]


async def contents(db: Database, patch_ids: Sequence[str]) -> dict[str, tuple[list[Any], list[Any]]]:
    """The stored files and hunks of each patch (id → (files, hunks)); a patch not found is left out."""
    if not patch_ids:
        return {}
    marks = ", ".join("?" * len(patch_ids))
    cur = await db.execute(
        f"SELECT id, files_json, hunks_json FROM patches WHERE id IN ({marks})", list(patch_ids)
    )
    return {r[0]: (json.loads(r[1]), json.loads(r[2])) for r in await cur.fetchall()}


async def set_status(
    db: Database, patch_id: str, status: PatchStatus, *, applied_at: float | None = None
) -> None:
    await db.execute(
        "UPDATE patches SET status = ?, applied_at = COALESCE(?, applied_at) WHERE id = ?",
        (status, applied_at, patch_id),
    )


async def unapplied_chat_ids(db: Database) -> set[str]:
    cur = await db.execute("SELECT DISTINCT chat_id FROM patches WHERE status = 'pending'")
    return {str(r["chat_id"]) for r in await cur.fetchall()}


@dataclass(frozen=True)
class PatchConflict:
    """The last apply of a pending patch that conflicted: what the inbox lists."""

    patch_id: str
    session_id: str
    chat_id: str
    subagent_id: str | None
    status: PatchStatus
    conflicts: list[dict[str, str]]
    conflicted_at: float


async def record_conflicts(db: Database, conflicts: dict[str, list[dict[str, str]]]) -> None:
    """Remember, per patch, the conflicts its last apply met (`{file, reason}` each)."""
    now = time.time()
    await db.executemany(
        "UPDATE patches SET conflict_json = ?, conflicted_at = ? WHERE id = ?",
        [(json.dumps(found), now, patch_id) for patch_id, found in conflicts.items()],
    )


async def pending_conflicts(db: Database, limit: int) -> list[PatchConflict]:
    """Pending patches whose last apply conflicted, most recent conflict first."""
    cur = await db.execute(
        "SELECT id, session_id, chat_id, subagent_id, status, conflict_json, conflicted_at FROM patches"
        " WHERE conflicted_at IS NOT NULL AND status = 'pending' ORDER BY conflicted_at DESC LIMIT ?",
        (limit,),
    )
    return [
        PatchConflict(
            patch_id=r["id"],
            session_id=r["session_id"],
            chat_id=r["chat_id"],
            subagent_id=r["subagent_id"],
            status=patch_status(r["status"]),
            conflicts=json.loads(r["conflict_json"] or "[]"),
            conflicted_at=r["conflicted_at"],
        )
        for r in await cur.fetchall()
    ]
