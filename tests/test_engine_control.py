"""Engine control paths: cancel, permission queue, collisions, crashes, the concurrency limit."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from boocode_mcp.agents.events import AgentEvent, PermissionRequestEvent
from boocode_mcp.engine import Engine
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.subagents import QueueFullError
from boocode_mcp.views import SubagentView
from tests.conftest import TIMEOUT_S, finished, git, run_turn

pytestmark = pytest.mark.anyio


async def wait_for_status(engine: Engine, sid: str, run_id: str, status: str) -> SubagentView:
    with anyio.fail_after(TIMEOUT_S):
        while True:
            view = await engine.wait(sid, run_id, 5)
            if view.status == status:
                return view


async def test_cancel_a_slow_run_keeps_its_partial_patch_and_the_agent(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await run_turn(engine, sid, "pid")
    wrote = await finished(
        engine,
        sid,
        (await engine.spawn(sid, "write part.txt partial", chat_id=first.chat_id)).subagent_id,
    )
    streaming = anyio.Event()

    def on_event(ev: AgentEvent) -> None:
        if ev.kind == "text":
            streaming.set()

    slow = await engine.spawn(sid, "slow 100000 20", chat_id=first.chat_id, on_event=on_event)
    with anyio.fail_after(TIMEOUT_S):
        await streaming.wait()
    with pytest.raises(InvalidRequestError, match=slow.subagent_id):
        await engine.spawn(sid, "hi", chat_id=first.chat_id)  # one turn at a time per chat
    with anyio.fail_after(TIMEOUT_S):
        view = await engine.cancel(sid, slow.subagent_id)
    assert view.status == "cancelled"
    assert view.stop_reason == "cancelled"
    assert view.patch_id is not None
    patch = await engine.get_patch(sid, view.patch_id)
    assert patch.failed_mid_turn and patch.parent_patch_id == wrote.patch_id
    # Cancelling a finished run is not an error: it is returned unchanged.
    assert (await engine.cancel(sid, slow.subagent_id)).status == "cancelled"
    after = await run_turn(engine, sid, "pid", chat_id=first.chat_id)
    assert after.status == "completed" and after.final_message == first.final_message


@pytest.mark.engine_config(extra="[pool]\nmax_concurrent_runs = 1")
async def test_cancel_a_queued_run_never_starts_it(engine: Engine, git_repo: Path) -> None:
    sid = await engine.ensure_session()
    started = anyio.Event()
    busy = await engine.spawn(sid, "slow 100000 20", on_event=lambda ev: started.set())
    with anyio.fail_after(TIMEOUT_S):
        await started.wait()
    queued = await engine.spawn(sid, "write q.txt never")
    # max_concurrent_runs = 1: the second run waits for the first.
    assert (await engine.status(sid, queued.subagent_id)).status == "queued"
    cancelled = await engine.cancel(sid, queued.subagent_id)
    assert cancelled.status == "cancelled" and cancelled.patch_id is None
    assert (await engine.status(sid, busy.subagent_id)).status == "running"
    await engine.cancel(sid, busy.subagent_id)
    assert (await engine.status(sid, queued.subagent_id)).activity.event_count == 0
    assert not (git_repo / ".boocode" / "worktrees" / queued.chat_id).exists()


@pytest.mark.engine_config(extra="[pool]\nmax_concurrent_runs = 2")
async def test_max_concurrent_runs_is_respected(engine: Engine) -> None:
    sid = await engine.ensure_session()
    views = [await engine.spawn(sid, "slow 5 30") for _ in range(5)]
    done = [await finished(engine, sid, v.subagent_id) for v in views]
    assert [d.status for d in done] == ["completed"] * 5
    cur = await engine.db.execute(
        "SELECT started_at, finished_at FROM subagents WHERE session_id = ?", (sid,)
    )
    spans = [(r["started_at"], r["finished_at"]) for r in await cur.fetchall()]
    # The most runs in flight at once: at each start, how many spans cover that instant.
    peak = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert peak == 2


@pytest.mark.engine_config(policy="ask")
async def test_permission_ask_waits_for_an_answer_then_completes(engine: Engine) -> None:
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "permission granted.txt")
    waiting = await wait_for_status(engine, sid, view.subagent_id, "awaiting_permission")
    pending = waiting.pending_permission
    assert pending is not None
    assert {o.kind for o in pending.options} == {
        "allow_once",
        "allow_always",
        "reject_once",
        "reject_always",
    }
    with pytest.raises(InvalidRequestError, match=r"valid option ids: .*yes please!"):
        await engine.respond_permission(sid, view.subagent_id, pending.request_id, "bogus")
    with pytest.raises(NotFoundError, match=pending.request_id):
        await engine.respond_permission(sid, view.subagent_id, "other-request", "0")
    allow = next(o.option_id for o in pending.options if o.kind == "allow_once")
    resumed = await engine.respond_permission(sid, view.subagent_id, pending.request_id, allow)
    assert resumed.status in ("running", "completed")
    assert resumed.pending_permission is None
    done = await finished(engine, sid, view.subagent_id)
    assert done.status == "completed"
    assert done.final_message == f"allowed {allow}"
    cur = await engine.db.execute(
        "SELECT status, decision FROM permissions WHERE id = ?", (pending.request_id,)
    )
    row = await cur.fetchone()
    assert row is not None and (row["status"], row["decision"]) == ("answered", allow)


@pytest.mark.engine_config(policy="ask", timeout_s=0.5)
async def test_unanswered_permission_fails_closed_at_the_deadline(engine: Engine) -> None:
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "permission granted.txt")
    done = await finished(engine, sid, view.subagent_id)
    assert done.status == "completed"
    assert done.final_message == "denied 0"  # the reject_once option, chosen by kind
    assert done.patch_id is None
    cur = await engine.db.execute(
        "SELECT status, decision FROM permissions WHERE subagent_id = ?", (view.subagent_id,)
    )
    row = await cur.fetchone()
    assert row is not None and (row["status"], row["decision"]) == ("timed_out", "0")


@pytest.mark.engine_config(policy="deny")
async def test_policy_deny_and_a_caller_handler_override(engine: Engine) -> None:
    sid = await engine.ensure_session()
    denied = await run_turn(engine, sid, "permission")
    assert denied.final_message == "denied 0"
    asked: list[str] = []

    async def editor(request: PermissionRequestEvent) -> str | None:
        asked.append(request.title)
        return next(o.option_id for o in request.options if o.kind == "allow_always")

    allowed = await run_turn(engine, sid, "permission", permission_handler=editor)
    assert asked and allowed.final_message == "allowed proceed_always-é"


async def test_two_chats_on_the_same_lines_collide_and_apply_refuses_both(
    engine: Engine, git_repo: Path
) -> None:
    sid = await engine.ensure_session()
    a = await run_turn(engine, sid, "edit src/app.py 1 2")
    b = await run_turn(engine, sid, "edit src/app.py 1 3")
    assert a.patch_id is not None and b.patch_id is not None
    a_patch, b_patch = a.patch_id, b.patch_id
    a = await engine.status(sid, a.subagent_id)  # re-read: b's patch did not exist before
    assert [c.other_patch_id for c in a.collisions] == [b_patch]
    assert [(c.file, c.other_chat_id) for c in b.collisions] == [("src/app.py", a.chat_id)]
    listed = {p.id: p for p in await engine.list_patches(sid)}
    assert listed[a_patch].collisions[0].other_patch_id == b_patch
    before = (git_repo / "src" / "app.py").read_bytes()
    status_before = git(git_repo, "status", "--porcelain")
    result = await engine.apply_pending(sid, patch_ids=[a_patch, b_patch])
    assert result.applied == []
    assert result.conflicts and {c.patch_id for c in result.conflicts} <= {a_patch, b_patch}
    assert (git_repo / "src" / "app.py").read_bytes() == before
    assert git(git_repo, "status", "--porcelain") == status_before
    assert {p.status for p in await engine.list_patches(sid)} == {"pending"}
    # One alone applies; the other then no longer collides with a pending patch.
    assert (await engine.apply_pending(sid, patch_ids=[a_patch])).applied == [a_patch]
    assert (await engine.status(sid, b.subagent_id)).collisions == []


async def test_crash_mid_turn_fails_clearly_and_the_next_turn_respawns(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await run_turn(engine, sid, "pid")
    crashed = await run_turn(engine, sid, "crash", chat_id=first.chat_id)
    assert crashed.status == "failed"
    assert crashed.error is not None and "fixture" in crashed.error and "restarts" in crashed.error
    again = await run_turn(engine, sid, "pid", chat_id=first.chat_id)
    assert again.status == "completed"
    assert again.final_message != first.final_message  # a new process


async def test_apply_and_discard_refuse_patches_that_are_not_pending(engine: Engine, git_repo: Path) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, "write d.txt d")
    assert run.patch_id is not None
    discarded = await engine.discard(sid, run.patch_id)
    assert discarded.status == "discarded"
    with pytest.raises(InvalidRequestError, match="is discarded, not pending"):
        await engine.apply_pending(sid, patch_ids=[run.patch_id])
    with pytest.raises(InvalidRequestError, match="no pending patch"):
        await engine.apply_pending(sid, chat_id=run.chat_id)
    with pytest.raises(InvalidRequestError, match="not both"):
        await engine.apply_pending(sid, patch_ids=[run.patch_id], chat_id=run.chat_id)
    assert not (git_repo / "d.txt").exists()


@pytest.mark.engine_config(policy="ask")
async def test_cancel_while_awaiting_permission_answers_it_cancelled(engine: Engine) -> None:
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "permission")
    waiting = await wait_for_status(engine, sid, view.subagent_id, "awaiting_permission")
    assert waiting.pending_permission is not None
    with anyio.fail_after(TIMEOUT_S):
        done = await engine.cancel(sid, view.subagent_id)
    assert done.status == "cancelled" and done.pending_permission is None
    cur = await engine.db.execute(
        "SELECT status FROM permissions WHERE id = ?", (waiting.pending_permission.request_id,)
    )
    row = await cur.fetchone()
    assert row is not None and row["status"] == "cancelled"
    with pytest.raises(InvalidRequestError, match="has finished"):
        await engine.respond_permission(sid, view.subagent_id, waiting.pending_permission.request_id, "0")


async def test_cancel_of_an_agent_that_ignores_it_still_ends_the_run(engine: Engine) -> None:
    sid = await engine.ensure_session()
    streaming = anyio.Event()
    view = await engine.spawn(sid, "hang", on_event=lambda ev: streaming.set())
    with anyio.fail_after(TIMEOUT_S):
        await streaming.wait()
        await engine.cancel(sid, view.subagent_id)
        done = await engine.wait_finished(sid, view.subagent_id)
    assert done.status == "cancelled"
    assert done.error is not None and "session/cancel" in done.error
    again = await run_turn(engine, sid, "hi", chat_id=view.chat_id)
    assert again.status == "completed"


async def test_discard_takes_the_work_out_of_the_chat_so_the_next_patch_lacks_it(engine: Engine) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, "write bad.txt nope")
    assert run.patch_id is not None
    await engine.discard(sid, run.patch_id)
    chat = next(c for c in await engine.chats(sid) if c.id == run.chat_id)
    assert not (Path(chat.worktree) / "bad.txt").exists()
    nxt = await run_turn(engine, sid, "write good.txt yes", chat_id=run.chat_id)
    assert nxt.patch_id is not None
    patch = await engine.get_patch(sid, nxt.patch_id)
    assert [f.path for f in patch.files] == ["good.txt"]
    assert patch.parent_patch_id is None  # the discarded patch is not its parent


@pytest.mark.engine_config(extra="[pool]\nmax_concurrent_runs = 1\nmax_queued_runs = 2")
async def test_spawns_past_max_queued_runs_are_refused_and_nothing_is_dropped(engine: Engine) -> None:
    sid = await engine.ensure_session()
    started = anyio.Event()
    busy = await engine.spawn(sid, "slow 100000 20", on_event=lambda ev: started.set())
    with anyio.fail_after(TIMEOUT_S):
        await started.wait()
    queued = [await engine.spawn(sid, f"write q{i}.txt queued {i}") for i in range(2)]
    with pytest.raises(QueueFullError, match=r"2 runs are already waiting.*max_queued_runs"):
        await engine.spawn(sid, "write refused.txt never")
    # The refused spawn wrote nothing: no run, no chat.
    assert {v.subagent_id for v in await engine.list_subagents(sid)} == {
        busy.subagent_id,
        *(q.subagent_id for q in queued),
    }
    assert len(await engine.chats(sid)) == 3
    # A place freed (a queued run cancelled) takes a spawn again, and every queued run completes.
    await engine.cancel(sid, queued[0].subagent_id)
    again = await engine.spawn(sid, "write again.txt again")
    await engine.cancel(sid, busy.subagent_id)
    for view in (queued[1], again):
        assert (await finished(engine, sid, view.subagent_id)).status == "completed"
