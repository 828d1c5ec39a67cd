"""Start-up recovery and sharing the database with other processes: what a dead owner left behind."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boocode_mcp import procs, workspace
from boocode_mcp.engine import Engine
from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.store import agent_sessions, chats, open_db, sessions, subagents
from boocode_mcp.subagents.locks import RunLocks
from tests.conftest import TIMEOUT_S, finished, run_turn, seed_run, write_config

pytestmark = pytest.mark.anyio


async def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    return proc.pid


@pytest.fixture
async def sleeper() -> AsyncIterator[asyncio.subprocess.Process]:
    """A live process in its own group, standing in for an agent or another BooCode process."""
    proc = await procs.spawn_in_group(
        ["sleep", "600"], cwd="/", env=procs.child_env(), stdout=None, stderr=None
    )
    try:
        yield proc
    finally:
        await procs.terminate_group(proc, grace_s=0.5)


async def test_restart_recovers_runs_agent_groups_and_orphan_worktrees(
    git_repo: Path, user_config: Path, sleeper: asyncio.subprocess.Process
) -> None:
    write_config(git_repo)
    db_path = git_repo / ".boocode" / "boocode.db"
    gone = await dead_pid()
    await seed_run(
        db_path, git_repo, session_id="s", chat_id="c1", run_id="r1", owner_pid=gone, status="running"
    )
    # Our own pid, but no Engine in this process drives r2: an earlier process that had our pid.
    await seed_run(
        db_path, git_repo, session_id="s", chat_id="c2", run_id="r2", owner_pid=os.getpid(), status="queued"
    )
    async with open_db(db_path) as db:
        await db.execute(
            "INSERT INTO agent_sessions (chat_id, agent, acp_session_id, pid, pgid, owner_pid, status)"
            " VALUES ('c1', 'fixture', 'acp-1', ?, ?, ?, 'active')",
            (sleeper.pid, sleeper.pid, gone),
        )
    await workspace.create_worktree(git_repo, "orphanclean")
    dirty = await workspace.create_worktree(git_repo, "orphandirty")
    (dirty.path / "work.txt").write_text("unapplied\n")
    await workspace.create_worktree(git_repo, "c1")  # its chat exists: not an orphan

    async with Engine.open(git_repo, user_config=user_config) as engine:
        r1 = await engine.status("s", "r1")
        assert r1.status == "interrupted"
        assert r1.error is not None and f"pid {gone}" in r1.error
        assert (await engine.status("s", "r2")).status == "interrupted"
        with anyio.fail_after(10):
            await sleeper.wait()  # its group was killed
        assert sleeper.returncode is not None and sleeper.returncode < 0
        [row] = await engine.agent_sessions("c1")
        assert row.status == "closed" and row.acp_session_id == "acp-1" and row.pid is None
        assert engine.kept_worktrees == [dirty.path]
        assert (dirty.path / "work.txt").read_text() == "unapplied\n"
        assert not workspace.worktree_path(git_repo, "orphanclean").exists()
        assert workspace.worktree_path(git_repo, "c1").exists()
        # The recovered chat takes a new turn.
        again = await finished(
            engine, "s", (await engine.spawn("s", "write r.txt r", chat_id="c1")).subagent_id
        )
        assert again.status == "completed"


async def test_a_chat_live_in_another_process_is_refused_naming_it(
    git_repo: Path, user_config: Path, sleeper: asyncio.subprocess.Process
) -> None:
    write_config(git_repo)
    db_path = git_repo / ".boocode" / "boocode.db"
    await seed_run(
        db_path, git_repo, session_id="s", chat_id="c", run_id="r", owner_pid=sleeper.pid, status="running"
    )
    async with Engine.open(git_repo, user_config=user_config) as engine:
        assert (await engine.status("s", "r")).status == "running"  # its owner is alive: left alone
        with pytest.raises(InvalidRequestError, match=f"another BooCode process \\(pid {sleeper.pid}\\)"):
            await engine.spawn("s", "hi", chat_id="c")
        with pytest.raises(InvalidRequestError, match=f"pid {sleeper.pid}"):
            await engine.cancel("s", "r")
        with anyio.fail_after(1):
            # wait() on a run another process drives returns at its timeout, not before.
            assert (await engine.wait("s", "r", 0.3)).status == "running"
        await procs.terminate_group(sleeper, grace_s=0.5)
        # Its owner is gone: the chat is free again, and the abandoned run is closed.
        view = await engine.spawn("s", "hi", chat_id="c")
        assert (await engine.status("s", "r")).status == "interrupted"
        assert (await finished(engine, "s", view.subagent_id)).status == "completed"


async def test_two_engines_in_one_process_do_not_interrupt_each_other(
    git_repo: Path, user_config: Path
) -> None:
    write_config(git_repo)
    async with Engine.open(git_repo, user_config=user_config) as first:
        sid = await first.ensure_session()
        started = anyio.Event()
        slow = await first.spawn(sid, "slow 100000 20", on_event=lambda ev: started.set())
        with anyio.fail_after(10):
            await started.wait()
        async with Engine.open(git_repo, user_config=user_config) as second:
            assert (await second.status(sid, slow.subagent_id)).status == "running"
        assert (await first.status(sid, slow.subagent_id)).status == "running"
        assert (await first.cancel(sid, slow.subagent_id)).status == "cancelled"


async def test_shutdown_mid_run_marks_it_interrupted(git_repo: Path, user_config: Path) -> None:
    write_config(git_repo, extra="[pool]\nmax_concurrent_runs = 1")
    async with Engine.open(git_repo, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        started = anyio.Event()
        slow = await engine.spawn(sid, "slow 100000 20", on_event=lambda ev: started.set())
        queued = await engine.spawn(sid, "hi")
        with anyio.fail_after(10):
            await started.wait()
    async with open_db(git_repo / ".boocode" / "boocode.db") as db:
        a = await subagents.get(db, sid, slow.subagent_id)
        b = await subagents.get(db, sid, queued.subagent_id)
        assert a is not None and a.status == "interrupted" and a.error and "shut down" in a.error
        assert b is not None and b.status == "interrupted"


OWNER_SCRIPT = """
import sqlite3, sys, anyio
from pathlib import Path
from boocode_mcp.engine import Engine

async def main() -> None:
    async with Engine.open(Path(sys.argv[1]), user_config=Path(sys.argv[2])) as engine:
        sid = await engine.ensure_session()
        streaming = anyio.Event()
        view = await engine.spawn(sid, "write half.txt half")
        await engine.wait_finished(sid, view.subagent_id)
        slow = await engine.spawn(
            sid, "slow 100000 20", chat_id=view.chat_id, on_event=lambda e: streaming.set()
        )
        await streaming.wait()
        # The sink sees an update before its row is written; wait for the row, so the kill below
        # lands after something the agent did is on disk.
        db = sqlite3.connect(Path(sys.argv[1]) / ".boocode" / "boocode.db")
        query = "SELECT count(*) FROM events WHERE subagent_id = ? AND kind != 'session'"
        while db.execute(query, (slow.subagent_id,)).fetchone()[0] == 0:
            await anyio.sleep(0.01)
        db.close()
        print(sid, slow.subagent_id, slow.chat_id, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def test_a_killed_owner_process_is_recovered_by_the_next_one(git_repo: Path, user_config: Path) -> None:
    write_config(git_repo)
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OWNER_SCRIPT,
        str(git_repo),
        str(user_config),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).parent.parent),
    )
    try:
        assert owner.stdout is not None
        with anyio.fail_after(TIMEOUT_S):
            line = (await owner.stdout.readline()).decode()
        sid, run_id, chat_id = line.split()
    finally:
        owner.kill()  # SIGKILL: no cleanup of any kind
        await owner.wait()
    async with open_db(git_repo / ".boocode" / "boocode.db") as db:
        cur = await db.execute("SELECT pgid FROM agent_sessions WHERE chat_id = ?", (chat_id,))
        row = await cur.fetchone()
        assert row is not None and row["pgid"] is not None
        agent_group = int(row["pgid"])
    # The agent outlived its owner, in its own group. A pidfd becomes readable when it exits (it
    # may linger as a zombie: its new parent need not reap it).
    agent_exit = os.pidfd_open(agent_group)
    try:
        async with Engine.open(git_repo, user_config=user_config) as engine:
            assert agent_group in engine.recovery.killed_groups
            with anyio.fail_after(5):
                await anyio.wait_readable(agent_exit)
            await check_recovered(engine, sid, run_id, chat_id, owner.pid)
    finally:
        os.close(agent_exit)


async def check_recovered(engine: Engine, sid: str, run_id: str, chat_id: str, owner_pid: int) -> None:
    """The dead owner's run is interrupted, its record kept, and its chat goes on."""
    view = await engine.status(sid, run_id)
    assert view.status == "interrupted" and view.error and f"pid {owner_pid}" in view.error
    assert view.activity.event_count > 0  # what it did before it died is still there
    # The chat goes on; the agent restarts and loads its session.
    again = await run_turn(engine, sid, "history", chat_id=chat_id)
    assert again.status == "completed"
    assert again.final_message is not None and "write half.txt half" in again.final_message


async def test_a_reused_pid_is_not_mistaken_for_the_owner(
    git_repo: Path, user_config: Path, sleeper: asyncio.subprocess.Process
) -> None:
    write_config(git_repo)
    db_path = git_repo / ".boocode" / "boocode.db"
    await seed_run(
        db_path, git_repo, session_id="s", chat_id="c", run_id="r", owner_pid=sleeper.pid, status="running"
    )
    async with open_db(db_path) as db:
        # The run was written long before the process now holding that pid was started.
        await db.execute("UPDATE subagents SET created_at = created_at - 3600 WHERE id = 'r'")
    async with Engine.open(git_repo, user_config=user_config) as engine:
        assert "r" in engine.recovery.interrupted
        assert (await engine.status("s", "r")).status == "interrupted"
    assert sleeper.returncode is None  # an unrelated process is never signalled


async def test_a_chat_that_never_ran_is_dropped_only_when_no_live_process_holds_it(
    git_repo: Path, user_config: Path, sleeper: asyncio.subprocess.Process
) -> None:
    """As `boocode acp` pre-warms a session: a chat and its worktree made before any prompt."""
    write_config(git_repo)
    gone = await dead_pid()
    holders = {"abandoned": gone, "held": sleeper.pid, "no-agent-yet": None}
    (git_repo / ".boocode").mkdir(exist_ok=True)
    async with open_db(git_repo / ".boocode" / "boocode.db") as db:
        await sessions.create(db, "s")
        for chat_id, owner in holders.items():
            await chats.insert(
                db,
                chat_id=chat_id,
                session_id="s",
                agent="fixture",
                worktree=str(workspace.worktree_path(git_repo, chat_id)),
            )
            await workspace.create_worktree(git_repo, chat_id)
            if owner is not None:
                row = agent_sessions.AgentSessionRow(
                    chat_id=chat_id, agent="fixture", owner_pid=owner, last_active_at=time.time()
                )
                await agent_sessions.upsert(db, row)
        # Past the grace a pre-warm in flight gets, except the one without an agent row yet.
        await db.execute("UPDATE chats SET created_at = created_at - 3600 WHERE id != 'no-agent-yet'")
    async with Engine.open(git_repo, user_config=user_config) as engine:
        assert engine.recovery.dropped_chats == ("abandoned",)
        assert sorted(c.id for c in await engine.chats("s")) == ["held", "no-agent-yet"]
    assert not workspace.worktree_path(git_repo, "abandoned").exists()
    assert workspace.worktree_path(git_repo, "held").is_dir()
    assert workspace.worktree_path(git_repo, "no-agent-yet").is_dir()
    assert sleeper.returncode is None


def test_run_locks_tell_every_engine_which_runs_are_driven(tmp_path: Path) -> None:
    ours, theirs = RunLocks(tmp_path / "runs"), RunLocks(tmp_path / "runs")
    ours.hold("r1")
    assert "r1" in ours and "r1" in theirs  # another engine, in this process or another
    assert "r2" not in theirs
    # A lock file nobody holds (left by a process killed with it open) is not a live run.
    (tmp_path / "runs" / "r3.lock").write_text("")
    assert "r3" not in theirs
    ours.drop("r1")
    assert "r1" not in theirs and not (tmp_path / "runs" / "r1.lock").exists()
    ours.hold("r4")
    ours.close()
    assert "r4" not in theirs
