"""The workflow tables on each database (sqlite, then PostgreSQL through tests/pg_support.py): the
step cache's hits, upsert and LRU bound; a run's steps (a dispatched one read through its subagent
run) and logs; closing an abandoned run."""

from __future__ import annotations

import pytest

from boocode_mcp.store import Database, chats, sessions, step_cache
from boocode_mcp.store import subagents as runs
from boocode_mcp.store import workflow_runs as wf

pytestmark = pytest.mark.anyio


async def test_the_step_cache_hits_upserts_and_drops_the_least_recently_used(db: Database) -> None:
    async def put(key: str, text: str) -> None:
        await step_cache.put(
            db, key=key, step_id=f"s-{key}", subagent_id=f"r-{key}", patch_id=None,
            result={"text": text}, size=2,
        )  # fmt: skip

    assert await step_cache.take(db, "a") is None
    await put("a", "one")
    await put("b", "two")
    hit = await step_cache.take(db, "a")  # a is now the most recently used
    assert hit is not None and (hit.step_id, hit.subagent_id, hit.result) == ("s-a", "r-a", {"text": "one"})
    await put("b", "two again")  # the same key again replaces its entry
    assert await step_cache.count(db) == 2
    hit = await step_cache.take(db, "b")
    assert hit is not None and hit.result == {"text": "two again"}
    await step_cache.take(db, "a")
    await put("c", "three")  # over the bound of 2: b, the least recently used, goes
    assert await step_cache.count(db) == 2
    assert await step_cache.take(db, "b") is None
    assert await step_cache.take(db, "a") is not None and await step_cache.take(db, "c") is not None


async def test_a_run_its_steps_and_logs_round_trip_and_an_abandoned_run_reads_interrupted(
    db: Database,
) -> None:
    await sessions.create(db, "s")
    await chats.insert(db, chat_id="c", session_id="s", agent="fixture", worktree="/w/c")
    assert await runs.insert_if_chat_idle(
        db, subagent_id="r1", prompt="p", session_id="s", chat_id="c", agent="fixture", model=None,
        mode=None, owner_pid=1,
    )  # fmt: skip
    run = await wf.insert_run(
        db,
        run_id="w",
        session_id="s",
        name="two",
        source="workspace",
        path="/w.js",
        args={"x": 1},
        owner_pid=1,
    )
    assert (run.status, run.args) == ("queued", {"x": 1})
    await wf.set_run(db, "w", "running", started_at=1.0, base_sha="abc", usage={"input_tokens": 0})
    await wf.insert_step(
        db, "w", seq=1, step_id="a", phase="p", agent="fixture", cache_key="k1", status="queued"
    )
    await wf.link_step(db, "w", 1, "r1")
    await wf.insert_step(
        db, "w", seq=2, step_id="b", phase=None, agent="fixture", cache_key="k2", status="completed",
        cached=True, subagent_id="r1", patch_id="p0", usage={"input_tokens": 5},
    )  # fmt: skip
    await wf.insert_step(
        db, "w", seq=3, step_id="c", phase=None, agent="fixture", cache_key="k3", status="queued"
    )
    await wf.add_log(db, "w", 1, "hello", "p")
    await runs.set_status(db, "r1", "completed", usage={"input_tokens": 3})

    first, second, third = await wf.steps_for(db, "w")
    # A dispatched step reads as its subagent run stands; a cached one as it was given.
    assert (first.status, first.usage, first.cached) == ("completed", {"input_tokens": 3}, False)
    assert (second.status, second.patch_id, second.usage, second.cached) == (
        "completed", "p0", {"input_tokens": 5}, True,
    )  # fmt: skip
    assert [(x.seq, x.message, x.phase) for x in await wf.logs_for(db, "w")] == [(1, "hello", "p")]
    assert [r.id for r in await wf.live_runs(db)] == ["w"]

    assert await wf.mark_interrupted_if_live(db, "w", "its daemon died")
    assert not await wf.mark_interrupted_if_live(db, "w", "again")
    got = await wf.get_run(db, "w")
    assert got is not None and (got.status, got.error, got.base_sha) == (
        "interrupted",
        "its daemon died",
        "abc",
    )
    assert (await wf.steps_for(db, "w"))[2].status == "interrupted" and third.status == "queued"
    assert await wf.live_runs(db) == []
