"""What front ends observe: listeners, wait, traces, memory, agent sessions across a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from boocode_mcp.engine import Engine
from boocode_mcp.trust import trust_workspace
from tests.conftest import TIMEOUT_S, finished, run_turn, write_config

pytestmark = pytest.mark.anyio


async def test_listeners_hear_every_resource_and_activity_is_coalesced(engine: Engine) -> None:
    heard: list[str] = []
    unsubscribe = engine.add_listener(heard.append)
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "slow 300 1")
    done = await finished(engine, sid, view.subagent_id)
    assert done.activity.event_count == 300
    mine = heard.count(f"subagents://{view.subagent_id}")
    # queued, running and the final status at least; 300 chunks must not mean 300 notifications.
    assert 3 <= mine < 60
    assert "agent-sessions://list" in heard and f"agent-sessions://{view.chat_id}" in heard

    tools = await run_turn(engine, sid, "write t.txt t")
    assert f"traces://{sid}" in heard
    assert f"patches://{sid}/{tools.patch_id}" in heard
    unsubscribe()
    count = len(heard)
    await run_turn(engine, sid, "hi")
    assert len(heard) == count


@pytest.mark.engine_config(extra="[pool]\nmax_concurrent_runs = 1")
async def test_wait_returns_early_on_a_state_change(engine: Engine) -> None:
    sid = await engine.ensure_session()
    streaming = anyio.Event()
    busy = await engine.spawn(sid, "slow 100000 20", on_event=lambda ev: streaming.set())
    queued = await engine.spawn(sid, "hi")
    with anyio.fail_after(TIMEOUT_S):
        await streaming.wait()
    with anyio.fail_after(2):
        # No change within the timeout: it returns at the timeout with the status unchanged.
        assert (await engine.wait(sid, queued.subagent_id, 0.3)).status == "queued"
    seen: list[str] = []

    async def waiter() -> None:
        seen.append((await engine.wait(sid, queued.subagent_id, 10 * TIMEOUT_S)).status)

    with anyio.fail_after(TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            # Freeing the only worker lets the queued run start: the waiter wakes at once.
            await engine.cancel(sid, busy.subagent_id)
    assert seen and seen[0] != "queued"
    with anyio.fail_after(1):
        assert (await engine.wait(sid, busy.subagent_id, TIMEOUT_S)).status == "cancelled"


async def test_mcp_calls_and_agent_tool_calls_are_traced(engine: Engine) -> None:
    sid = await engine.ensure_session()
    async with engine.tracer.mcp_call(sid, "subagent_status", {"subagent_id": "x"}) as call:
        call.output = {"status": "ok"}
    with pytest.raises(RuntimeError, match="boom"):
        async with engine.tracer.mcp_call(sid, "run_command", {"command": "x"}):
            raise RuntimeError("boom")
    await run_turn(engine, sid, "tools")
    traces = await engine.traces(sid)
    mcp = [t for t in traces if t.source == "mcp"]
    assert [(t.tool_name, t.outcome) for t in mcp] == [
        ("subagent_status", "ok"),
        ("run_command", "error"),
    ]
    assert mcp[0].input == {"subagent_id": "x"} and mcp[0].output_excerpt == '{"status": "ok"}'
    assert mcp[0].latency_ms is not None and mcp[1].error == "boom"
    [agent] = [t for t in traces if t.source == "agent"]
    assert agent.subagent_id is not None and agent.outcome == "ok" and agent.output_excerpt
    other = await engine.ensure_session()
    assert await engine.traces(other) == []


async def test_finished_runs_are_searchable_in_memory(engine: Engine) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, "write zanzibar.txt quokka")
    hits = await engine.search_memory("zanzibar")
    assert [h.id for h in hits if h.source == "subagent"] == [f"subagent:{run.subagent_id}"]


async def test_model_and_mode_reach_the_agent_through_its_spec_or_are_recorded(
    git_repo: Path, user_config: Path
) -> None:
    write_config(git_repo)
    config = git_repo / ".boocode" / "config.toml"
    config.write_text(
        config.read_text().replace("[permissions]", 'model_env = "FIXTURE_MODEL"\n[permissions]')
    )
    trust_workspace(git_repo)
    async with Engine.open(git_repo, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        first = await run_turn(engine, sid, "pid")
        run = await finished(
            engine,
            sid,
            (
                await engine.spawn(sid, "pid", chat_id=first.chat_id, model="big-model", mode="plan")
            ).subagent_id,
        )
        assert run.status == "completed"
        # A new model means a new agent process, started with the spec's variable set.
        assert run.final_message != first.final_message
        environ = (await anyio.Path(f"/proc/{run.final_message}/environ").read_bytes()).split(b"\0")
        assert b"FIXTURE_MODEL=big-model" in environ
        assert run.session_note is not None and "mode 'plan' recorded but not applied" in run.session_note
        assert "model" not in run.session_note
        cur = await engine.db.execute("SELECT model, mode FROM subagents WHERE id = ?", (run.subagent_id,))
        row = await cur.fetchone()
        assert row is not None and (row["model"], row["mode"]) == ("big-model", "plan")


async def test_a_chat_continues_after_a_restart_and_says_when_context_was_lost(
    git_repo: Path, user_config: Path
) -> None:
    write_config(git_repo)
    async with Engine.open(git_repo, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        first = await run_turn(engine, sid, "remember the walrus")
        [live] = await engine.agent_sessions(first.chat_id)
        assert live.status == "idle" and live.pid is not None
    async with Engine.open(git_repo, user_config=user_config) as engine:
        [closed] = await engine.agent_sessions(first.chat_id)
        assert closed.status == "closed"
        again = await run_turn(engine, sid, "history", chat_id=first.chat_id)
        assert again.status == "completed"
        assert again.final_message is not None and "remember the walrus" in again.final_message
        assert again.session_note is None

    write_config(git_repo, extra="")
    (git_repo / ".boocode" / "config.toml").write_text(
        (git_repo / ".boocode" / "config.toml")
        .read_text()
        .replace("[permissions]", 'env = { FIXTURE_NO_LOAD = "1" }\n[permissions]')
    )
    trust_workspace(git_repo)
    async with Engine.open(git_repo, user_config=user_config) as engine:
        lost = await run_turn(engine, sid, "history", chat_id=first.chat_id)
        assert lost.status == "completed"
        assert lost.session_note is not None and "could not restore" in lost.session_note


async def test_usage_reported_by_the_agent_reaches_the_status(engine: Engine) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, "usage")
    assert run.usage is not None
    assert (run.usage.input_tokens, run.usage.output_tokens) == (11, 7)
    plain = await run_turn(engine, sid, "hi")
    assert plain.usage is None


async def test_each_turn_logs_where_its_time_went(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="boocode_mcp.subagents.turn")
    sid = await engine.ensure_session()
    done = await run_turn(engine, sid, "write t.txt timed")
    [record] = [r for r in caplog.records if hasattr(r, "timings")]
    assert done.subagent_id in record.getMessage()
    timings = getattr(record, "timings")  # noqa: B009
    assert list(timings) == [
        "worktree", "agent ready", "prompt", "diff", "events, memory, traces", "patch", "final status",
        "released",
    ]  # fmt: skip
    assert all(seconds >= 0 for seconds in timings.values())
