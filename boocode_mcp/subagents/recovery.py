"""Start-up recovery: what a BooCode process that died (or was killed) left behind.

- runs it owned that were still queued/running/awaiting a permission become `interrupted`;
- its agents' process groups are killed and their agent_sessions rows closed (the ACP session id
  is kept, so the next turn can `session/load` it);
- the process groups of its agents' terminals, which lead groups of their own, are killed and
  their records dropped;
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

from boocode_mcp import procs, workspace
from boocode_mcp.errors import WorkspaceError
from boocode_mcp.store import agent_sessions, chats, permissions, subagents, terminals
from boocode_mcp.store.db import Database

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


def _pid_is_owner(pid: int, since: float | None) -> bool:
    """Whether `pid` is alive and is the process that wrote a row at time `since`: a process that
    started after the row was written only inherited a reused pid."""
    if not procs.pid_alive(pid):
        return False
    started = procs.process_started_at(pid)
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
    fields = procs.proc_stat(pid)
    return int(fields[1]) if fields is not None and len(fields) > 1 else None


def _agent_owner_alive(owner_pid: int | None, pid: int | None, since: float | None) -> bool:
    if owner_pid is None:
        return False
    if owner_pid == os.getpid():
        # Our own pid: alive only if the agent is a child of this very process (an earlier process
        # with our pid left orphans, which were re-parented away from us).
        return pid is not None and _parent_pid(pid) == os.getpid()
    return _pid_is_owner(owner_pid, since)


async def interrupt_dead_runs(db: Database, driven_here: Container[str] = ()) -> list[str]:
    done: list[str] = []
    for row in await subagents.live(db):
        if run_owner_alive(row.owner_pid, row.id, row.created_at, driven_here):
            continue
        if await subagents.mark_interrupted_if_live(db, row.id, INTERRUPTED_ERROR.format(pid=row.owner_pid)):
            await permissions.cancel_pending_for(db, row.id)
            done.append(row.id)
    return done


async def reap_agent_sessions(db: Database) -> tuple[list[int], list[tuple[str, str]]]:
    killed: list[int] = []
    closed: list[tuple[str, str]] = []
    for r in await agent_sessions.list_unclosed(db, procs.host_name()):
        if _agent_owner_alive(r.owner_pid, r.pid, r.last_active_at):
            continue
        if r.pgid is not None and procs.group_alive(r.pgid) and procs.kill_group(r.pgid):
            killed.append(r.pgid)
        await agent_sessions.mark_closed(db, r.chat_id, r.agent)
        closed.append((r.chat_id, r.agent))
    return killed, closed


def _terminal_owner_alive(row: terminals.TerminalRow) -> bool:
    """Whether the BooCode process that recorded the terminal still runs (the same process, not a
    later one with its pid)."""
    if not procs.pid_alive(row.owner_pid):
        return False
    # Without a recorded start (not Linux) there is no telling: a live pid keeps its terminals.
    return row.owner_start is None or procs.process_token(row.owner_pid) == row.owner_start


def still_its_group(pgid: int, leader_start: str | None) -> bool:
    """Whether a recorded pgid (of a terminal, a workflow sandbox) still names the group whose
    leader started at `leader_start` (a process_token), not a later one."""
    if leader_start is None:
        return True
    if not procs.same_boot(leader_start):
        return False
    # The leader may be gone while others of its group live on; but a pid in use as a group id is
    # never handed to a new process, so a leader with another start means the group is gone.
    leader = procs.process_token(pgid)
    return leader is None or leader == leader_start


async def reap_terminals(db: Database) -> list[int]:
    """Kill the terminal groups of dead BooCode processes and drop their records."""
    killed: list[int] = []
    for row in await terminals.list_all(db, procs.host_name()):
        if _terminal_owner_alive(row):
            continue
        if (
            still_its_group(row.pgid, row.leader_start)
            and procs.group_alive(row.pgid)
            and procs.kill_group(row.pgid)
        ):
            killed.append(row.pgid)
        await terminals.delete(db, row.id)
    return killed


async def drop_abandoned_chats(db: Database) -> list[str]:
    """Delete the chats that never ran and that no live process holds; their worktrees become
    orphans for `reap_worktrees`."""
    dropped: list[str] = []
    for chat_id in await chats.never_ran(db, time.time() - UNUSED_CHAT_GRACE_S):
        # A process that pre-warmed the chat (or loaded it since) is recorded as its agent's owner.
        if any(
            _agent_owner_alive(r.owner_pid, r.pid, r.last_active_at)
            for r in await agent_sessions.list_by_chat(db, chat_id)
        ):
            continue
        if await chats.delete_if_unused(db, chat_id):
            dropped.append(chat_id)
    return dropped


async def reap_worktrees(db: Database, repo: Path) -> tuple[list[Path], list[Path]]:
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


async def recover(
    db: Database, repo: Path, driven_here: Container[str] = (), *, shared: bool = False
) -> RecoveryReport:
    """What a dead process of this host left. On a shared store a run's liveness is its lease
    (store.work), not the pid of a process that may be on another host: runs are left alone."""
    interrupted = [] if shared else await interrupt_dead_runs(db, driven_here)
    killed, closed = await reap_agent_sessions(db)
    killed += await reap_terminals(db)
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
