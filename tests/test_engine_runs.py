"""Engine end to end: real fixture agent processes, real git repositories, real sqlite."""

from __future__ import annotations

from pathlib import Path

import pytest

from boocode_mcp import procs
from boocode_mcp.engine import Engine
from tests.conftest import finished, git, run_turn, write_config

pytestmark = pytest.mark.anyio


async def test_spawn_returns_queued_then_completes_with_a_pending_patch_that_applies(
    engine: Engine, git_repo: Path
) -> None:
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "write notes.txt hello from the agent")
    assert view.status == "queued"
    assert view.worktree == str(git_repo / ".boocode" / "worktrees" / view.chat_id)

    done = await finished(engine, sid, view.subagent_id)
    assert done.status == "completed", done.error
    assert done.stop_reason == "end_turn"
    assert done.final_message is not None and "wrote notes.txt" in done.final_message
    assert done.patch_id is not None
    assert "notes.txt" in done.activity.files_touched
    assert not (git_repo / "notes.txt").exists()

    [patch] = await engine.list_patches(sid, include_hunks=True)
    assert patch.id == done.patch_id
    assert patch.status == "pending"
    assert [f.path for f in patch.files] == ["notes.txt"]
    assert patch.additions == 1 and patch.hunks is not None and patch.hunks[0].file == "notes.txt"

    result = await engine.apply_pending(sid, patch_ids=[patch.id])
    assert result.applied == [patch.id] and result.conflicts == []
    assert (git_repo / "notes.txt").read_text().strip() == "hello from the agent"
    assert (await engine.get_patch(sid, patch.id)).status == "applied"
    # .boocode stays out of the user's git status.
    assert ".boocode" not in git(git_repo, "status", "--porcelain")


async def test_follow_up_reuses_the_agent_and_its_patch_holds_only_new_work(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await engine.spawn(sid, "pid")
    first_done = await finished(engine, sid, first.subagent_id)
    pid = first_done.final_message

    second = await engine.spawn(sid, "write a.txt one", chat_id=first.chat_id)
    second_done = await finished(engine, sid, second.subagent_id)
    assert second_done.patch_id is not None
    await engine.apply_pending(sid, chat_id=first.chat_id)

    third = await engine.spawn(sid, "write b.txt two", chat_id=first.chat_id)
    third_done = await finished(engine, sid, third.subagent_id)
    assert third_done.status == "completed"
    patch = await engine.get_patch(sid, third_done.patch_id or "")
    assert [f.path for f in patch.files] == ["b.txt"]  # a.txt was applied: not in the new patch

    again = await run_turn(engine, sid, "pid", chat_id=first.chat_id)
    assert again.final_message == pid  # the same warm agent process served every turn
    history = await engine.chat_history(sid, first.chat_id)
    assert [h.subagent_id for h in history][:3] == [first.subagent_id, second.subagent_id, third.subagent_id]


async def test_newer_patch_supersedes_the_older_pending_one(engine: Engine) -> None:
    sid = await engine.ensure_session()
    one = await run_turn(engine, sid, "write a.txt one")
    two = await run_turn(engine, sid, "write b.txt two", chat_id=one.chat_id)
    old = await engine.get_patch(sid, one.patch_id or "")
    new = await engine.get_patch(sid, two.patch_id or "")
    assert old.status == "superseded"
    assert new.status == "pending" and new.parent_patch_id == old.id
    assert sorted(f.path for f in new.files) == ["a.txt", "b.txt"]
    pending = await engine.list_patches(sid, status="pending")
    assert [p.id for p in pending] == [new.id]


async def test_events_are_recorded_in_order_with_digest_and_traces(engine: Engine) -> None:
    sid = await engine.ensure_session()
    seen: list[str] = []
    view = await engine.spawn(sid, "slow 30 1", on_event=lambda ev: seen.append(ev.kind))
    done = await finished(engine, sid, view.subagent_id)
    assert done.status == "completed"
    cur = await engine.db.execute(
        "SELECT seq, kind, payload FROM events WHERE subagent_id = ? ORDER BY seq", (view.subagent_id,)
    )
    rows = list(await cur.fetchall())
    texts = [r["payload"] for r in rows if r["kind"] == "text"]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert len(texts) == 30
    assert all(f'"chunk {i} "' in t for i, t in enumerate(texts))
    assert done.final_message == "".join(f"chunk {i} " for i in range(30))
    assert seen.count("text") == 30
    assert done.activity.event_count == 30

    tools = await run_turn(engine, sid, "tools")
    assert [t.status for t in tools.activity.tool_calls] == ["completed"]
    traces = await engine.traces(sid)
    agent_traces = [t for t in traces if t.source == "agent"]
    assert len(agent_traces) == 1
    assert agent_traces[0].outcome == "ok" and agent_traces[0].finished_at is not None


async def test_unknown_ids_and_agents_are_clear_errors(engine: Engine) -> None:
    from boocode_mcp.errors import InvalidRequestError, NotFoundError, UnknownAgentError

    sid = await engine.ensure_session()
    with pytest.raises(UnknownAgentError, match="nope"):
        await engine.spawn(sid, "hi", agent="nope")
    with pytest.raises(NotFoundError, match="no chat 'missing'"):
        await engine.spawn(sid, "hi", chat_id="missing")
    with pytest.raises(NotFoundError, match="subagent_status without an id"):
        await engine.status(sid, "missing")
    with pytest.raises(NotFoundError, match="list_patches"):
        await engine.get_patch(sid, "missing")
    with pytest.raises(InvalidRequestError, match="empty"):
        await engine.spawn(sid, "   ")
    # Nothing was queued by the refused calls.
    assert await engine.list_subagents(sid) == []


async def test_ids_from_another_session_are_not_found(engine: Engine) -> None:
    from boocode_mcp.errors import NotFoundError

    mine = await engine.ensure_session()
    other = await engine.ensure_session()
    done = await run_turn(engine, mine, "write x.txt x")
    with pytest.raises(NotFoundError):
        await engine.status(other, done.subagent_id)
    with pytest.raises(NotFoundError):
        await engine.get_patch(other, done.patch_id or "")
    with pytest.raises(NotFoundError):
        await engine.spawn(other, "hi", chat_id=done.chat_id)
    with pytest.raises(NotFoundError):
        await engine.apply_pending(other, patch_ids=[done.patch_id or ""])
    assert await engine.list_patches(other) == []
    # session None (the CLI) sees every session.
    assert (await engine.status(None, done.subagent_id)).session_id == mine


async def test_exit_leaves_no_agent_process(git_repo: Path, user_config: Path) -> None:
    write_config(git_repo)
    async with Engine.open(git_repo, user_config=user_config) as eng:
        sid = await eng.ensure_session()
        done = await finished(eng, sid, (await eng.spawn(sid, "pid")).subagent_id)
        pid = int(done.final_message or "0")
        assert procs.pid_alive(pid)
    # Leaving the engine disposed of the pool, which killed and reaped the agent's group.
    assert not procs.pid_alive(pid)
