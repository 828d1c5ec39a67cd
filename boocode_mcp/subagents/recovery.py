"""Start-up recovery: what a BooCode process that died (or was killed) left behind.

- runs it owned that were still queued/running/awaiting a permission become `interrupted`;
- its agents' process groups are killed and their agent_sessions rows closed (the ACP session id
  is kept, so the next turn can `session/load` it);
- chats that never ran and that no live process holds (made ahead of a first prompt, as
  `boocode acp` pre-warms a session, by a process that was killed before it) are deleted;
- worktrees under .boocode/worktrees whose chat is gone are removed when clean, kept and reported
  when they hold unapplied work.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from boocode_mcp import procs, workspace
from boocode_mcp.errors import WorkspaceError
from boocode_mcp.store import chats, permissions, subagents

log = logging.getLogger(__name__)

INTERRUPTED_ERROR = (
    "the BooCode process running this subagent (pid {pid}) exited before it finished; "
    "spawn it again (same chat_id to continue the conversation)"
)


@dataclass(frozen=True)
class RecoveryReport:
    interrupted: tuple[str, ...] = ()
    killed_groups: tuple[int, ...] = ()
    closed_agent_sessions: tuple[tuple[str, str], ...] = ()
    dropped_chats: tuple[str, ...] = ()
    removed_worktrees: tuple[Path, ...] = ()
    kept_worktrees: tuple[Path, ...] = ()


# A chat without a run younger than this may be one a live process is pre-warming right now,
# before its agent_sessions row (which names that process) is written.
UNUSED_CHAT_GRACE_S = 60.0


# Clock skew allowed between a process's start time (as /proc reports it) and the rows it wrote.
START_SLACK_S = 2.0


def process_started_at(pid: int) -> float | None:
    """When the process started (unix time), from /proc; None when unknown (or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        ticks = int(fields[19])  # field 22 of the full line: starttime, in clock ticks after boot
    except (IndexError, ValueError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _pid_is_owner(pid: int, since: float | None) -> bool:
    """Whether `pid` is alive and is the process that wrote a row at time `since`: a process that
    started after the row was written only inherited a reused pid."""
    if not procs.pid_alive(pid):
        return False
    started = process_started_at(pid)
    return since is None or started is None or started <= since + START_SLACK_S


def run_owner_alive(
    owner_pid: int | None, subagent_id: str, since: float | None = None, driven_here: Container[str] = ()
) -> bool:
    """Whether the process that owns a live run row (created at `since`) is still driving it; for our
    own pid only the runs in `driven_here` are (any other is an earlier process's with our pid)."""
    if owner_pid is None:
        return False
    if owner_pid == os.getpid():
        return subagent_id in driven_here
    return _pid_is_owner(owner_pid, since)


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after the last ")" are fixed.
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _agent_owner_alive(owner_pid: int | None, pid: int | None, since: float | None) -> bool:
    if owner_pid is None:
        return False
    if owner_pid == os.getpid():
        # Our own pid: alive only if the agent is a child of this very process (an earlier process
        # with our pid left orphans, which were re-parented away from us).
        return pid is not None and _parent_pid(pid) == os.getpid()
    return _pid_is_owner(owner_pid, since)


async def interrupt_dead_runs(db: aiosqlite.Connection, driven_here: Container[str] = ()) -> list[str]:
    done: list[str] = []
    for row in await subagents.live(db):
        if run_owner_alive(row.owner_pid, row.id, row.created_at, driven_here):
            continue
        if await subagents.mark_interrupted_if_live(db, row.id, INTERRUPTED_ERROR.format(pid=row.owner_pid)):
            await permissions.cancel_pending_for(db, row.id)
            done.append(row.id)
    return done


async def reap_agent_sessions(db: aiosqlite.Connection) -> tuple[list[int], list[tuple[str, str]]]:
    killed: list[int] = []
    closed: list[tuple[str, str]] = []
    cur = await db.execute(
        "SELECT chat_id, agent, pid, pgid, owner_pid, last_active_at FROM agent_sessions"
        " WHERE status != 'closed'"
    )
    for r in await cur.fetchall():
        if _agent_owner_alive(r["owner_pid"], r["pid"], r["last_active_at"]):
            continue
        pgid = r["pgid"]
        if pgid is not None and procs.group_alive(pgid) and procs.kill_group(pgid):
            killed.append(pgid)
        await db.execute(
            "UPDATE agent_sessions SET status = 'closed', pid = NULL, pgid = NULL"
            " WHERE chat_id = ? AND agent = ?",
            (r["chat_id"], r["agent"]),
        )
        closed.append((r["chat_id"], r["agent"]))
    return killed, closed


async def drop_abandoned_chats(db: aiosqlite.Connection) -> list[str]:
    """Delete the chats that never ran and that no live process holds; their worktrees become
    orphans for `reap_worktrees`."""
    cur = await db.execute(
        "SELECT id FROM chats c WHERE created_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM subagents r WHERE r.chat_id = c.id)",
        (time.time() - UNUSED_CHAT_GRACE_S,),
    )
    dropped: list[str] = []
    for (chat_id,) in await cur.fetchall():
        held = await db.execute(
            "SELECT owner_pid, pid, last_active_at FROM agent_sessions WHERE chat_id = ?", (chat_id,)
        )
        # A process that pre-warmed the chat (or loaded it since) is recorded as its agent's owner.
        if any(
            _agent_owner_alive(r["owner_pid"], r["pid"], r["last_active_at"]) for r in await held.fetchall()
        ):
            continue
        if await chats.delete_if_unused(db, chat_id):
            dropped.append(str(chat_id))
    return dropped


async def reap_worktrees(db: aiosqlite.Connection, repo: Path) -> tuple[list[Path], list[Path]]:
    removed: list[Path] = []
    kept: list[Path] = []
    known = await chats.all_ids(db)
    for path in await workspace.list_worktrees(repo):
        chat_id = path.name
        if chat_id in known:
            continue
        try:
            if await workspace.remove_worktree(repo, chat_id, force=False):
                removed.append(path)
        except WorkspaceError as e:
            # Dirty: unapplied work nobody else has. Keep it and say where it is.
            log.warning("kept orphan worktree %s: %s", path, e)
            kept.append(path)
    return removed, kept


async def recover(db: aiosqlite.Connection, repo: Path, driven_here: Container[str] = ()) -> RecoveryReport:
    interrupted = await interrupt_dead_runs(db, driven_here)
    killed, closed = await reap_agent_sessions(db)
    dropped = await drop_abandoned_chats(db)
    removed, kept = await reap_worktrees(db, repo)
    return RecoveryReport(
        interrupted=tuple(interrupted),
        killed_groups=tuple(killed),
        closed_agent_sessions=tuple(closed),
        dropped_chats=tuple(dropped),
        removed_worktrees=tuple(removed),
        kept_worktrees=tuple(kept),
    )
