"""The workflow run tables: `workflow_runs`, the `workflow_steps` each run started, its
`workflow_logs`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from boocode_mcp.states import (
    LIVE_WORKFLOW_STATUSES,
    StepStatus,
    WorkflowStatus,
    subagent_status,
    workflow_status,
)
from boocode_mcp.store.db import Database, Row


@dataclass(frozen=True)
class WorkflowRunRow:
    id: str
    session_id: str
    name: str
    source: str
    path: str
    args: dict[str, Any]
    base_sha: str | None
    status: WorkflowStatus
    result: Any
    error: str | None
    usage: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    owner_pid: int | None
    sandbox_pgid: int | None
    sandbox_start: str | None


@dataclass(frozen=True)
class StepRow:
    """A step as the view shows it: a dispatched step's status, usage and patch are its subagent
    run's (live while it runs); a cached step's are the result it was given."""

    seq: int
    step_id: str
    phase: str | None
    agent: str
    cache_key: str
    cached: bool
    subagent_id: str | None
    patch_id: str | None
    status: StepStatus
    usage: dict[str, Any] | None
    error: str | None
    created_at: float


@dataclass(frozen=True)
class LogRow:
    seq: int
    message: str
    phase: str | None
    created_at: float


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def _run(r: Row) -> WorkflowRunRow:
    return WorkflowRunRow(
        id=r["id"],
        session_id=r["session_id"],
        name=r["name"],
        source=r["source"],
        path=r["path"],
        args=json.loads(r["args_json"]),
        base_sha=r["base_sha"],
        status=workflow_status(r["status"]),
        result=_loads(r["result_json"]),
        error=r["error"],
        usage=_loads(r["usage_json"]),
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        owner_pid=r["owner_pid"],
        sandbox_pgid=r["sandbox_pgid"],
        sandbox_start=r["sandbox_start"],
    )


async def insert_run(
    db: Database,
    *,
    run_id: str,
    session_id: str,
    name: str,
    source: str,
    path: str,
    args: dict[str, Any],
    owner_pid: int,
) -> WorkflowRunRow:
    cur = await db.execute(
        "INSERT INTO workflow_runs (id, session_id, name, source, path, args_json, status, created_at,"
        " owner_pid) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?) RETURNING *",
        (run_id, session_id, name, source, path, json.dumps(args), time.time(), owner_pid),
    )
    rows = [_run(r) for r in await cur.fetchall()]
    return rows[0]


async def get_run(db: Database, run_id: str) -> WorkflowRunRow | None:
    cur = await db.execute("SELECT * FROM workflow_runs WHERE id = ?", (run_id,))
    r = await cur.fetchone()
    return _run(r) if r is not None else None


async def recent_runs(db: Database, limit: int) -> list[WorkflowRunRow]:
    """The newest `limit` runs, newest first."""
    cur = await db.execute("SELECT * FROM workflow_runs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,))
    return [_run(r) for r in await cur.fetchall()]


async def count_runs(db: Database) -> int:
    cur = await db.execute("SELECT COUNT(*) AS n FROM workflow_runs")
    r = await cur.fetchone()
    return int(r["n"]) if r is not None else 0


async def live_runs(db: Database) -> list[WorkflowRunRow]:
    cur = await db.execute(f"SELECT * FROM workflow_runs WHERE status IN {LIVE_WORKFLOW_STATUSES!r}")
    return [_run(r) for r in await cur.fetchall()]


_RUN_FIELDS = {"base_sha", "started_at", "finished_at", "error", "sandbox_pgid", "sandbox_start"}
_RUN_JSON_FIELDS = {"result", "usage"}


async def set_run(db: Database, run_id: str, status: WorkflowStatus, **fields: Any) -> None:
    """Update the status and any of: base_sha, started_at, finished_at, error, sandbox_pgid,
    sandbox_start, result and usage (stored as JSON)."""
    unknown = set(fields) - _RUN_FIELDS - _RUN_JSON_FIELDS
    if unknown:
        raise ValueError(f"unknown workflow run fields: {sorted(unknown)}")
    cols = ["status = ?"]
    values: list[Any] = [status]
    for name, value in fields.items():
        if name in _RUN_JSON_FIELDS:
            cols.append(f"{name}_json = ?")
            values.append(json.dumps(value) if value is not None else None)
        else:
            cols.append(f"{name} = ?")
            values.append(value)
    values.append(run_id)
    await db.execute(f"UPDATE workflow_runs SET {', '.join(cols)} WHERE id = ?", values)


async def mark_interrupted_if_live(db: Database, run_id: str, error: str) -> bool:
    """Close a run its owner abandoned; only while it is still live."""
    cur = await db.execute(
        "UPDATE workflow_runs SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ? "
        f"AND status IN {LIVE_WORKFLOW_STATUSES!r}",
        (error, time.time(), run_id),
    )
    # Steps that never reached a subagent run are closed with it (the others read their run's).
    await db.execute(
        "UPDATE workflow_steps SET status = 'interrupted' WHERE workflow_run_id = ? AND subagent_id IS NULL"
        " AND status IN ('queued', 'running')",
        (run_id,),
    )
    return cur.rowcount == 1


# -- steps ------------------------------------------------------------------------------------


async def insert_step(
    db: Database,
    run_id: str,
    *,
    seq: int,
    step_id: str,
    phase: str | None,
    agent: str,
    cache_key: str,
    status: StepStatus,
    cached: bool = False,
    subagent_id: str | None = None,
    patch_id: str | None = None,
    usage: dict[str, Any] | None = None,
) -> None:
    await db.execute(
        "INSERT INTO workflow_steps (workflow_run_id, seq, step_id, phase, agent, cache_key, cached,"
        " subagent_id, patch_id, status, usage_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            seq,
            step_id,
            phase,
            agent,
            cache_key,
            int(cached),
            subagent_id,
            patch_id,
            status,
            json.dumps(usage) if usage is not None else None,
            time.time(),
        ),
    )


async def link_step(db: Database, run_id: str, seq: int, subagent_id: str) -> None:
    """The step's subagent run, once spawned: its row tells the step's status from now on."""
    await db.execute(
        "UPDATE workflow_steps SET subagent_id = ?, status = 'queued' WHERE workflow_run_id = ? AND seq = ?",
        (subagent_id, run_id, seq),
    )


async def fail_step(db: Database, run_id: str, seq: int, status: StepStatus, error: str) -> None:
    """A step that never got a subagent run (refused, cancelled or over budget before dispatch)."""
    await db.execute(
        "UPDATE workflow_steps SET status = ?, error = ? WHERE workflow_run_id = ? AND seq = ?",
        (status, error, run_id, seq),
    )


async def steps_for(db: Database, run_id: str) -> list[StepRow]:
    """The run's steps in the order they started, dispatched ones as their subagent runs stand."""
    return (await steps_of(db, [run_id])).get(run_id, [])


async def steps_of(db: Database, run_ids: Sequence[str]) -> dict[str, list[StepRow]]:
    """The steps of each of `run_ids` (runs without steps are absent), as `steps_for` reads them."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    cur = await db.execute(
        "SELECT s.*, r.status AS run_status, r.usage_json AS run_usage, r.patch_id AS run_patch,"
        " r.error AS run_error FROM workflow_steps s LEFT JOIN subagents r ON r.id = s.subagent_id"
        f" WHERE s.workflow_run_id IN ({marks}) ORDER BY s.workflow_run_id, s.seq",
        tuple(run_ids),
    )
    out: dict[str, list[StepRow]] = {}
    for r in await cur.fetchall():
        live = not r["cached"] and r["run_status"] is not None
        out.setdefault(r["workflow_run_id"], []).append(
            StepRow(
                seq=r["seq"],
                step_id=r["step_id"],
                phase=r["phase"],
                agent=r["agent"],
                cache_key=r["cache_key"],
                cached=bool(r["cached"]),
                subagent_id=r["subagent_id"],
                patch_id=r["run_patch"] if live else r["patch_id"],
                status=subagent_status(r["run_status"] if live else r["status"]),
                usage=_loads(r["run_usage"] if live else r["usage_json"]),
                error=r["run_error"] if live else r["error"],
                created_at=r["created_at"],
            )
        )
    return out


# -- logs -------------------------------------------------------------------------------------


async def add_log(db: Database, run_id: str, seq: int, message: str, phase: str | None) -> None:
    await db.execute(
        "INSERT INTO workflow_logs (workflow_run_id, seq, message, phase, created_at) VALUES (?, ?, ?, ?, ?)",
        (run_id, seq, message, phase, time.time()),
    )


async def logs_for(db: Database, run_id: str) -> list[LogRow]:
    cur = await db.execute(
        "SELECT seq, message, phase, created_at FROM workflow_logs WHERE workflow_run_id = ? ORDER BY seq",
        (run_id,),
    )
    return [LogRow(r["seq"], r["message"], r["phase"], r["created_at"]) for r in await cur.fetchall()]
