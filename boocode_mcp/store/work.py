"""Runs shared by workers on several hosts (a PostgreSQL store only): the `workers` table, claiming
a queued run (`FOR UPDATE SKIP LOCKED`), leases on the database's clock, cancel requests.

A worker claims the oldest queued run it may take, renews the lease of every run it holds while
it lives, and a run whose lease lapsed is closed as `interrupted` by whichever worker or front end
notices first. Times here are the database's (`clock_timestamp()`), so hosts need not agree on
theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from boocode_mcp.states import LIVE_STATUSES
from boocode_mcp.store.db import Database
from boocode_mcp.store.subagents import SubagentRow, row_from

NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
_LIVE = f"status IN {LIVE_STATUSES!r}"
# A worker that has not said anything for this many leases is taken for gone (affinity ignores it).
_SILENT_LEASES = 2


@dataclass(frozen=True)
class WorkerRecord:
    """A worker as others see it: where it runs, its clone, how many runs it takes at once."""

    id: str
    host: str
    pid: int
    repo: str
    capacity: int


async def register(db: Database, w: WorkerRecord) -> None:
    await db.execute(
        f"INSERT INTO workers (id, host, pid, repo, capacity, running, started_at, heartbeat_at)"
        f" VALUES (?, ?, ?, ?, ?, 0, {NOW}, {NOW})",
        (w.id, w.host, w.pid, w.repo, w.capacity),
    )


async def stopped(db: Database, worker_id: str) -> None:
    await db.execute(f"UPDATE workers SET stopped_at = {NOW}, running = 0 WHERE id = ?", (worker_id,))


async def heartbeat(db: Database, worker_id: str, running: int, lease_s: float) -> list[str]:
    """Say the worker lives and renew the lease of every run it holds; the ids of those runs
    someone asked to cancel (what a missed notification would have said)."""
    async with db.transaction() as tx:
        await tx.execute(
            f"UPDATE workers SET heartbeat_at = {NOW}, running = ? WHERE id = ?", (running, worker_id)
        )
        rows = await tx.execute_fetchall(
            f"UPDATE subagents SET lease_expires_at = {NOW} + ? WHERE worker_id = ? AND {_LIVE}"
            " RETURNING id, cancel_requested",
            (lease_s, worker_id),
        )
    return [str(r[0]) for r in rows if r[1]]


async def claim(db: Database, w: WorkerRecord, *, lease_s: float, worktrees: str) -> SubagentRow | None:
    """Take the oldest queued run this worker may run, or None. Another worker's claim in flight
    is skipped, not waited for. A run may be pinned to one worker, or prefer the worker holding its
    chat's warm agent: others leave it while that worker lives and has room. `worktrees` is the
    directory (with its trailing separator) of this worker's chat worktrees."""
    rows = await db.execute_fetchall(
        f"""
        UPDATE subagents SET worker_id = :w, worker_host = :host, worker_pid = :pid,
            worktree = :worktrees || chat_id, lease_expires_at = {NOW} + :lease
        WHERE id = (
            SELECT r.id FROM subagents r
            WHERE r.status = 'queued' AND r.worker_id IS NULL AND r.cancel_requested = 0
              AND (r.pinned_worker IS NULL OR r.pinned_worker = :w)
              AND (r.preferred_worker IS NULL OR r.preferred_worker = :w OR NOT EXISTS (
                  SELECT 1 FROM workers k WHERE k.id = r.preferred_worker AND k.stopped_at IS NULL
                  AND k.heartbeat_at > {NOW} - :silent AND k.running < k.capacity))
            ORDER BY r.created_at
            FOR UPDATE SKIP LOCKED
            LIMIT 1
        )
        RETURNING *
        """,
        {
            "w": w.id,
            "host": w.host,
            "pid": w.pid,
            "worktrees": worktrees,
            "lease": lease_s,
            "silent": lease_s * _SILENT_LEASES,
        },
    )
    return row_from(rows[0]) if rows else None


async def expire_leases(db: Database) -> list[str]:
    """Close as `interrupted` the live runs whose worker stopped renewing their lease."""
    rows = await db.execute_fetchall(
        f"""
        UPDATE subagents SET status = 'interrupted', finished_at = {NOW},
            error = 'the worker running it (' || worker_host || ', pid ' || worker_pid || ') stopped '
                || 'renewing its lease before it finished; spawn it again (same chat_id to continue)'
        WHERE {_LIVE} AND worker_id IS NOT NULL AND lease_expires_at < {NOW}
        RETURNING id
        """
    )
    return [str(r[0]) for r in rows]


async def queued(db: Database) -> int:
    """How many runs wait for a worker."""
    rows = await db.execute_fetchall("SELECT count(*) FROM subagents WHERE status = 'queued'")
    return int(rows[0][0])


async def warm_worker(db: Database, chat_id: str, agent: str, lease_s: float) -> str | None:
    """The live worker holding the chat's agent warm with room for another run, if any."""
    rows = await db.execute_fetchall(
        f"""
        SELECT k.id FROM agent_sessions a JOIN workers k ON k.id = a.worker_id
        WHERE a.chat_id = ? AND a.agent = ? AND a.status IN ('idle', 'active')
          AND k.stopped_at IS NULL AND k.heartbeat_at > {NOW} - ? AND k.running < k.capacity
        """,
        (chat_id, agent, lease_s * _SILENT_LEASES),
    )
    return str(rows[0][0]) if rows else None


async def request_cancel(db: Database, run_id: str) -> None:
    """Ask the worker running it to cancel it (its listener hears the change)."""
    await db.execute(f"UPDATE subagents SET cancel_requested = 1 WHERE id = ? AND {_LIVE}", (run_id,))


async def cancel_unclaimed(db: Database, run_id: str) -> bool:
    """Cancel a run no worker has taken yet; whether it was one."""
    result = await db.execute(
        f"UPDATE subagents SET status = 'cancelled', finished_at = {NOW}, cancel_requested = 1"
        " WHERE id = ? AND status = 'queued' AND worker_id IS NULL",
        (run_id,),
    )
    return result.rowcount == 1
