"""Workers on several hosts sharing a PostgreSQL store: three `boocode worker` processes, each with
its own clone of the repository (simulated hosts), and a requester whose daemon runs nothing
([worker] local = false). Real processes, a real PostgreSQL, real git remotes, the fixture agent."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.engine import Engine
from boocode_mcp.store import agent_sessions, open_db

from .conftest import TIMEOUT_S, git, write_config
from .pg_support import Worker

pytestmark = pytest.mark.anyio

LEASE_S = 1.5


def _clone_config(repo: Path) -> None:
    write_config(repo, extra=f"[worker]\nlease_s = {LEASE_S}\npoll_s = 2\n")


@pytest.fixture
def hosts(git_repo: Path, tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, list[Path]]]:
    """The requester's repository with an `origin` it pushed to, and three clones of origin."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(git_repo, "remote", "add", "origin", str(origin))
    git(git_repo, "push", "-q", "origin", "main")
    clones = []
    for i in range(3):
        clone = tmp_path / f"host{i}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        _clone_config(clone)
        clones.append(clone)
    write_config(git_repo, extra=f"[worker]\nlocal = false\nlease_s = {LEASE_S}\npoll_s = 2\n")
    yield git_repo, clones


@pytest.fixture
async def workers(hosts: tuple[Path, list[Path]], pg_url: str) -> AsyncIterator[list[Worker]]:
    started = [Worker(clone, pg_url) for clone in hosts[1]]
    try:
        for w in started:
            await anyio.to_thread.run_sync(w.wait_ready)
        yield started
    finally:
        for w in started:
            w.kill(signal.SIGTERM)
        await _kill_agents_of(pg_url, [w.proc.pid for w in started])


async def _kill_agents_of(url: str, pids: list[int]) -> None:
    """The agents a SIGKILLed worker left (a stopped one closed its own)."""
    async with open_db(url) as db:
        for row in await agent_sessions.list_live(db, procs.host_name()):
            if row.owner_pid in pids and row.pgid is not None:
                procs.kill_group(row.pgid)


async def test_three_workers_share_thirty_runs_each_executed_once(
    hosts: tuple[Path, list[Path]], workers: list[Worker], pg_url: str, user_config: Path
) -> None:
    requester, _ = hosts
    async with Engine.open(requester, db_url=pg_url, user_config=user_config) as engine:
        assert engine.shared is not None and engine.shared.worker_id is None  # it runs nothing itself
        sid = await engine.ensure_session()
        spawned = [await engine.spawn(sid, f"write out{i}.txt made by run {i}") for i in range(30)]
        with anyio.fail_after(TIMEOUT_S * 2):
            done = [await engine.wait_finished(sid, v.subagent_id) for v in spawned]
        assert [v.status for v in done] == ["completed"] * 30, [v.error for v in done]
        # Each on one worker, named with its host and pid, in that worker's clone.
        pids = {w.proc.pid: w.clone for w in workers}
        for v in done:
            assert v.worker is not None and v.worker.pid in pids and v.worker.host == procs.host_name()
            assert v.worktree is not None and v.worktree.startswith(str(pids[v.worker.pid]))
        assert len({v.worker.pid for v in done if v.worker is not None}) >= 2, "not spread over workers"
        # Executed exactly once: one agent session started per run, one patch per run.
        for v in done:
            kinds = [e.kind for e in await engine.events(v.subagent_id)]
            assert kinds.count("session") == 1
        patches = await engine.list_patches(None, limit=100)
        assert len(patches) == 30 and {p.subagent_id for p in patches} == {v.subagent_id for v in done}
        # The requester reviews and applies them as always: all at once, all or nothing.
        applied = await engine.apply_pending(None, patch_ids=[p.id for p in patches])
        assert not applied.conflicts and len(applied.applied) == 30
    for i in range(30):
        assert (requester / f"out{i}.txt").read_text() == f"made by run {i}"


async def test_a_killed_workers_run_reads_interrupted_after_its_lease_and_the_others_serve_on(
    hosts: tuple[Path, list[Path]], workers: list[Worker], pg_url: str, user_config: Path
) -> None:
    requester, _ = hosts
    async with Engine.open(requester, db_url=pg_url, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        slow = await engine.spawn(sid, "slow 100000 100")
        with anyio.fail_after(TIMEOUT_S):
            view = slow
            while view.status != "running":
                view = await engine.wait(sid, slow.subagent_id, 5)
        assert view.worker is not None
        victim = next(w for w in workers if w.proc.pid == view.worker.pid)
        victim.kill()
        with anyio.fail_after(TIMEOUT_S):
            view = await engine.wait_finished(sid, slow.subagent_id)
        assert view.status == "interrupted"
        assert f"pid {victim.proc.pid}" in (view.error or "") and "lease" in (view.error or "")
        # The other workers keep serving, on the same chat too.
        after = await engine.spawn(None, "write after.txt still served", chat_id=slow.chat_id)
        with anyio.fail_after(TIMEOUT_S):
            done = await engine.wait_finished(sid, after.subagent_id)
        assert done.status == "completed" and done.worker is not None
        assert done.worker.pid != victim.proc.pid


async def test_an_unpushed_base_fails_the_run_saying_to_push(
    hosts: tuple[Path, list[Path]], workers: list[Worker], pg_url: str, user_config: Path
) -> None:
    requester, _ = hosts
    (requester / "local.txt").write_text("not pushed\n")
    git(requester, "add", "local.txt")
    git(requester, "commit", "-q", "-m", "local only")
    async with Engine.open(requester, db_url=pg_url, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        run = await engine.spawn(sid, "write x.txt y")
        with anyio.fail_after(TIMEOUT_S):
            view = await engine.wait_finished(sid, run.subagent_id)
    assert view.status == "failed"
    assert "git push origin HEAD" in (view.error or "")


async def test_follow_ups_stay_on_their_workers_warm_agent_and_cancel_and_answers_cross_hosts(
    hosts: tuple[Path, list[Path]], workers: list[Worker], pg_url: str, user_config: Path
) -> None:
    requester, _ = hosts
    # The requester's policy travels with each run: its worker asks, the requester answers.
    write_config(requester, policy="ask", extra=f"[worker]\nlocal = false\nlease_s = {LEASE_S}\npoll_s = 2\n")
    async with Engine.open(requester, db_url=pg_url, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        first = await engine.spawn(sid, "pid")
        with anyio.fail_after(TIMEOUT_S):
            first = await engine.wait_finished(sid, first.subagent_id)
        assert first.status == "completed" and first.worker is not None
        asked = await engine.spawn(sid, "permission granted.txt", chat_id=first.chat_id)
        with anyio.fail_after(TIMEOUT_S):
            view = asked
            while view.status != "awaiting_permission":
                assert view.status not in ("completed", "failed", "cancelled", "interrupted"), view.error
                view = await engine.wait(sid, asked.subagent_id, 5)
        pending = view.pending_permission
        assert pending is not None
        allow = next(o.option_id for o in pending.options if o.kind == "allow_once")
        await engine.respond_permission(sid, asked.subagent_id, pending.request_id, allow)
        with anyio.fail_after(TIMEOUT_S):
            answered = await engine.wait_finished(sid, asked.subagent_id)
        assert answered.status == "completed" and answered.final_message == f"allowed {allow}"
        # Warm affinity: the follow-up went to the worker holding the chat's agent, and so does
        # the next one, which finds the very same agent process.
        assert answered.worker is not None and answered.worker.pid == first.worker.pid
        again = await engine.spawn(sid, "pid", chat_id=first.chat_id)
        with anyio.fail_after(TIMEOUT_S):
            again = await engine.wait_finished(sid, again.subagent_id)
        assert again.worker is not None and again.worker.pid == first.worker.pid
        assert again.final_message == first.final_message
        # A cancel from the requester reaches the run on its worker.
        slow = await engine.spawn(sid, "slow 100000 100", chat_id=first.chat_id)
        with anyio.fail_after(TIMEOUT_S):
            view = slow
            while view.status != "running":
                view = await engine.wait(sid, slow.subagent_id, 5)
            await engine.cancel(sid, slow.subagent_id)
            cancelled = await engine.wait_finished(sid, slow.subagent_id)
        assert cancelled.status == "cancelled", cancelled.error
