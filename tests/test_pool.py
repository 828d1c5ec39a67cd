"""AgentPool with real fixture-agent processes and a real sqlite store."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.agents.acp_backend import WarmAcpBackend
from boocode_mcp.agents.backend import AgentBackend
from boocode_mcp.agents.permissions import policy_handler
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.config import AgentSpec, Config, PoolConfig
from boocode_mcp.errors import AgentNotInstalledError, InvalidRequestError, UnknownAgentError
from boocode_mcp.store import agent_sessions, open_db
from tests.conftest import FIXTURE_AGENT, Recorder

pytestmark = pytest.mark.anyio

ALLOW = policy_handler("auto")


def registry(**env: str) -> AgentRegistry:
    spec = AgentSpec(command=sys.executable, args=(str(FIXTURE_AGENT),), env=env)
    nl = AgentSpec(command=sys.executable, args=(str(FIXTURE_AGENT),), env={**env, "FIXTURE_NO_LOAD": "1"})
    ghost = AgentSpec(command="boocode-no-such-agent-x", install="pip install ghost")
    return AgentRegistry(Config(agents={"fx": spec, "fx-noload": nl, "ghost": ghost}))


async def say(backend: AgentBackend, text: str) -> str:
    rec = Recorder()
    with anyio.fail_after(20):
        await backend.prompt(text, rec, ALLOW)
    return rec.text


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with open_db(tmp_path / "boocode.db") as conn:
        await conn.execute("INSERT INTO sessions (id, created_at) VALUES ('s1', 0)")
        yield conn


async def make_chat(db: aiosqlite.Connection, chat_id: str, worktree: Path) -> Path:
    await anyio.Path(worktree).mkdir(parents=True, exist_ok=True)
    await db.execute(
        "INSERT INTO chats (id, session_id, agent, worktree, created_at, updated_at) "
        "VALUES (?, 's1', 'fx', ?, 0, 0)",
        (chat_id, str(worktree)),
    )
    return worktree


def make_pool(tmp_path: Path, db: aiosqlite.Connection | None = None, **cfg: Any) -> AgentPool:
    owner = cfg.pop("owner_pid", None)
    # The tests drive pool.tick() themselves; the background tick would race them.
    tick_s = cfg.pop("tick_s", 3600.0)
    return AgentPool(
        registry(), PoolConfig(**cfg), log_dir=tmp_path / "logs", db=db, owner_pid=owner, tick_s=tick_s
    )


def pids_of(backends: list[AgentBackend]) -> list[int]:
    out = []
    for b in backends:
        assert isinstance(b, WarmAcpBackend)
        if b.pid is not None:
            out.append(b.pid)
        out.extend(b.terminal_pgids())
    return out


async def test_get_reuses_per_chat_and_agent(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        a = await pool.get("c1", "fx", tmp_path)
        assert await pool.get("c1", "fx", tmp_path) is a
        b = await pool.get("c2", "fx", tmp_path)
        assert b is not a and pool.peek("c2", "fx") is b and pool.peek("c3", "fx") is None
        assert await say(a, "pid") == await say(a, "pid")
        assert await say(a, "pid") != await say(b, "pid")
        assert set(pool.backends()) == {a, b}


async def test_unknown_and_missing_agents_raise_at_once(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        with pytest.raises(UnknownAgentError, match="fx"):
            await pool.get("c1", "nope", tmp_path)
        with pytest.raises(AgentNotInstalledError, match="pip install ghost"):
            await pool.get("c1", "ghost", tmp_path)
        assert pool.backends() == []


async def test_lru_cap_evicts_idle_but_never_busy(tmp_path: Path) -> None:
    async with make_pool(tmp_path, max_warm=1) as pool:
        a = await pool.get("a", "fx", tmp_path)
        await say(a, "hello")
        a_pid = pids_of([a])[0]
        rec = Recorder()
        results: list[Any] = []

        async def run_a() -> None:
            results.append(await a.prompt("slow 1000 20", rec, ALLOW))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_a)
                await rec.first_text.wait()
                # Over the cap, but `a` is busy: it stays, and `b` is added anyway.
                b = await pool.get("b", "fx", tmp_path)
                await say(b, "hello")
                assert pool.peek("a", "fx") is a and a.busy and procs.group_alive(a_pid)
                await a.cancel()
        assert results[0].stop_reason == "cancelled"
        # Now both are idle: making room for `c` evicts both (LRU, cap 1).
        b_pid = pids_of([b])[0]
        c = await pool.get("c", "fx", tmp_path)
        assert pool.backends() == [c]
        assert a.status == "closed" and b.status == "closed"
        assert not procs.group_alive(a_pid) and not procs.group_alive(b_pid)


async def test_evicted_chat_comes_back_with_its_context(tmp_path: Path) -> None:
    async with make_pool(tmp_path, max_warm=1) as pool:
        a = await pool.get("a", "fx", tmp_path / "wa")
        (tmp_path / "wa").mkdir()
        await say(a, "remember kiwi")
        await pool.get("b", "fx", tmp_path)
        assert a.status == "closed"
        a2 = await pool.get("a", "fx", tmp_path / "wa")
        assert a2 is not a
        assert await say(a2, "history") == "history: 1 prompts: remember kiwi"


async def test_idle_ttl_tick_evicts_idle_not_busy(tmp_path: Path) -> None:
    async with make_pool(tmp_path, idle_ttl_s=0.05) as pool:
        idle = await pool.get("idle", "fx", tmp_path)
        busy = await pool.get("busy", "fx", tmp_path)
        await say(idle, "hello")
        rec = Recorder()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(busy.prompt, "slow 1000 20", rec, ALLOW)
                await rec.first_text.wait()
                # Let the TTL pass for both; only the idle one may go.
                await anyio.sleep(0.1)
                await pool.tick()
                assert pool.peek("idle", "fx") is None and idle.status == "closed"
                assert pool.peek("busy", "fx") is busy and busy.busy
                await busy.cancel()


async def test_health_tick_marks_dead_process_crashed(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        b = await pool.get("c", "fx", tmp_path)
        await say(b, "hello")
        pid = pids_of([b])[0]
        os.kill(pid, 9)
        with anyio.fail_after(10):
            while b.status != "crashed":
                await pool.tick()
                await anyio.sleep(0.01)
        assert await say(b, "pid") != str(pid)


async def test_dispose_leaves_no_process(tmp_path: Path) -> None:
    pool = make_pool(tmp_path)
    async with pool:
        backends = [await pool.get(f"c{i}", "fx", tmp_path) for i in range(3)]
        for b in backends:
            await say(b, "hello")
        reply = await say(backends[0], "terminal-bg sleep 60")
        assert reply.startswith("terminal term-")
        groups = pids_of(backends)
        assert len(groups) == 4 and all(procs.group_alive(g) for g in groups)
    # Leaving the context disposed of everything: agents and their terminals.
    assert not any(procs.group_alive(g) for g in groups)
    assert pool.backends() == []
    with pytest.raises(InvalidRequestError, match="shut down"):
        await pool.get("c9", "fx", tmp_path)


async def test_close_chat_closes_only_that_chat(tmp_path: Path) -> None:
    async with make_pool(tmp_path) as pool:
        a = await pool.get("a", "fx", tmp_path)
        b = await pool.get("b", "fx", tmp_path)
        await say(a, "hello")
        await say(b, "hello")
        await pool.close_chat("a")
        assert a.status == "closed" and b.status == "idle"
        assert pool.backends() == [b]


async def test_rows_stay_current(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    async with make_pool(tmp_path, db) as pool:
        b = await pool.get("c1", "fx", wt)
        row = await agent_sessions.get(db, "c1", "fx")
        assert row is not None and row.status == "idle" and row.pid is None and row.owner_pid == os.getpid()
        before = time.time()
        await say(b, "usage")
        await say(b, "usage")
        await pool.sync()
        row = await agent_sessions.get(db, "c1", "fx")
        assert isinstance(b, WarmAcpBackend)
        assert row is not None
        assert row.status == "idle" and row.pid == b.pid and row.pgid == b.pid
        assert row.acp_session_id == b.acp_session_id and row.load_supported is True
        assert row.last_active_at is not None and row.last_active_at >= before
        assert (row.input_tokens, row.output_tokens, row.cost) == (22, 14, 0.25)

        rec = Recorder()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(b.prompt, "slow 1000 20", rec, ALLOW)
                await rec.first_text.wait()
                await pool.sync()
                active = await agent_sessions.get(db, "c1", "fx")
                assert active is not None and active.status == "active"
                await b.cancel()

        with pytest.raises(Exception, match="during the turn"):
            await say(b, "crash")
        await pool.sync()
        crashed = await agent_sessions.get(db, "c1", "fx")
        assert crashed is not None and crashed.status == "crashed"
        views = [r.to_view() for r in await agent_sessions.list_all(db)]
        assert views[0].chat_id == "c1" and views[0].status == "crashed"
    closed = await agent_sessions.get(db, "c1", "fx")
    assert closed is not None and closed.status == "closed" and closed.pid is None
    assert closed.acp_session_id is not None


async def test_restart_loads_session_from_db(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    async with make_pool(tmp_path, db) as first:
        b1 = await first.get("c1", "fx", wt)
        await say(b1, "remember apple")
        await say(b1, "usage")
        assert isinstance(b1, WarmAcpBackend)
        sid, old_pid = b1.acp_session_id, b1.pid
    # A new pool over the same database: as after a BooCode restart.
    async with make_pool(tmp_path, db) as second:
        b2 = await second.get("c1", "fx", wt)
        with anyio.fail_after(20):
            info = await b2.ensure_session()
        assert info.origin == "loaded" and info.acp_session_id == sid and info.pid != old_pid
        rec = Recorder()
        with anyio.fail_after(20):
            await b2.prompt("history", rec, ALLOW)
        assert [e.kind for e in rec.events] == ["text"]
        assert rec.text == "history: 2 prompts: remember apple | usage"
        await say(b2, "usage")
        await second.sync()
        row = await agent_sessions.get(db, "c1", "fx")
        # Usage keeps accumulating across processes; the loaded session's running cost total
        # (already counted) is not counted twice.
        assert row is not None and (row.input_tokens, row.output_tokens, row.cost) == (22, 14, 0.25)


async def test_dead_owner_row_is_resumed(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    async with make_pool(tmp_path, db) as first:
        b1 = await first.get("c1", "fx", wt)
        await say(b1, "remember plum")
        assert isinstance(b1, WarmAcpBackend)
        sid = b1.acp_session_id
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    row = await agent_sessions.get(db, "c1", "fx")
    assert row is not None
    # As a killed BooCode would have left it: still "active", owned by a process that is gone.
    await agent_sessions.upsert(
        db, row.with_(status="active", owner_pid=dead.pid, pid=dead.pid, pgid=dead.pid)
    )
    async with make_pool(tmp_path, db) as second:
        b2 = await second.get("c1", "fx", wt)
        assert await say(b2, "history") == "history: 1 prompts: remember plum"
        assert isinstance(b2, WarmAcpBackend) and b2.acp_session_id == sid


async def test_live_other_owner_is_refused(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    other = os.getppid()
    await agent_sessions.upsert(
        db, agent_sessions.AgentSessionRow(chat_id="c1", agent="fx", status="idle", owner_pid=other)
    )
    async with make_pool(tmp_path, db) as pool:
        with pytest.raises(InvalidRequestError, match=f"pid {other}"):
            await pool.get("c1", "fx", wt)


async def test_agent_without_load_is_fresh_after_restart(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    async with make_pool(tmp_path, db) as first:
        b1 = await first.get("c1", "fx-noload", wt)
        await say(b1, "remember apple")
    async with make_pool(tmp_path, db) as second:
        b2 = await second.get("c1", "fx-noload", wt)
        with anyio.fail_after(20):
            info = await b2.ensure_session()
        assert info.origin == "fresh_after_restart"
        assert await say(b2, "history") == "history: 0 prompts: "
        await second.sync()
        row = await agent_sessions.get(db, "c1", "fx-noload")
        assert row is not None and row.note is not None and "cannot session/load" in row.note
        assert row.load_supported is False


async def test_pool_with_db_requires_context(tmp_path: Path, db: aiosqlite.Connection) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    pool = make_pool(tmp_path, db)
    with pytest.raises(InvalidRequestError, match="async with"):
        await pool.get("c1", "fx", wt)


async def test_missing_chat_row_does_not_break_the_pool(tmp_path: Path, db: aiosqlite.Connection) -> None:
    async with make_pool(tmp_path, db) as pool:
        b = await pool.get("no-such-chat", "fx", tmp_path)
        assert await say(b, "hello") == "echo: hello"
        await pool.sync()
        assert await agent_sessions.get(db, "no-such-chat", "fx") is None


async def test_background_tick_evicts_idle_backends(tmp_path: Path) -> None:
    async with make_pool(tmp_path, idle_ttl_s=0.05, tick_s=0.02) as pool:
        b = await pool.get("c1", "fx", tmp_path)
        await say(b, "hello")
        pid = pids_of([b])[0]
        with anyio.fail_after(10):
            # Polling: the point is that nothing but the pool's own tick task closes it.
            while b.status != "closed":  # noqa: ASYNC110
                await anyio.sleep(0.02)
        assert pool.peek("c1", "fx") is None and not procs.group_alive(pid)


async def test_different_env_replaces_an_idle_backend_keeping_context(
    tmp_path: Path, db: aiosqlite.Connection
) -> None:
    wt = await make_chat(db, "c1", tmp_path / "wt")
    async with make_pool(tmp_path, db) as pool:
        a = await pool.get("c1", "fx", wt, env={"MODEL": "m1"})
        await say(a, "remember fig")
        await pool.sync()
        row1 = await agent_sessions.get(db, "c1", "fx")
        assert await pool.get("c1", "fx", wt, env={"MODEL": "m1"}) is a
        assert await pool.get("c1", "fx", wt) is a
        b = await pool.get("c1", "fx", wt, env={"MODEL": "m2"})
        assert b is not a and a.status == "closed"
        assert await say(b, "history") == "history: 1 prompts: remember fig"
        await pool.sync()
        row2 = await agent_sessions.get(db, "c1", "fx")
        assert row1 is not None and row2 is not None
        assert row1.config_hash and row2.config_hash and row1.config_hash != row2.config_hash
