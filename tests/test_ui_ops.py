"""The operations the web page reads: usage_stats (grouped counts, outcomes, turn times, tokens,
cost; unknown figures null) and list_runs (newest first, filters, pages, the filters' values),
called by name through the daemon's API dispatch on a real engine and sqlite file."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import anyio
import pytest

from boocode_mcp.daemon.api import connection_caller, dispatch
from boocode_mcp.engine import Engine
from boocode_mcp.ops import Caller
from boocode_mcp.ops.usage import parse_since
from boocode_mcp.store import chats, sessions
from boocode_mcp.store import subagents as runs
from tests.conftest import finished

pytestmark = pytest.mark.anyio

DAY = 86400.0


@pytest.fixture
def caller(engine: Engine) -> Caller:
    return connection_caller(engine, None)


async def ask(caller: Caller, method: str, **params: Any) -> dict[str, Any]:
    body = await dispatch(caller, method, params)
    assert "result" in body, body
    result: dict[str, Any] = body["result"]
    return result


async def refused(caller: Caller, method: str, **params: Any) -> str:
    body = await dispatch(caller, method, params)
    assert "error" in body, body
    return str(body["error"]["message"])


async def add_run(
    engine: Engine,
    *,
    agent: str = "fixture",
    status: str = "completed",
    created_at: float,
    turn_s: float | None = 1.0,
    usage: dict[str, Any] | None = None,
    session_id: str | None = None,
    chat_id: str | None = None,
) -> str:
    """A run row as the runner leaves it, created at `created_at`."""
    db = engine.db
    session_id = session_id or str(uuid.uuid4())
    await sessions.create(db, session_id)
    if chat_id is None:
        chat_id = str(uuid.uuid4())
        await chats.insert(db, chat_id=chat_id, session_id=session_id, agent=agent, worktree="/nowhere")
    run_id = str(uuid.uuid4())
    assert await runs.insert_if_chat_idle(
        db,
        subagent_id=run_id,
        session_id=session_id,
        chat_id=chat_id,
        agent=agent,
        prompt=f"prompt of {run_id}",
        model=None,
        mode=None,
        owner_pid=0,
    )
    fields: dict[str, Any] = {"usage": usage}
    if turn_s is not None:
        fields.update(started_at=created_at + 0.5, finished_at=created_at + 0.5 + turn_s)
    await runs.set_status(db, run_id, status, **fields)
    await db.execute("UPDATE subagents SET created_at = ? WHERE id = ?", (created_at, run_id))
    return run_id


async def test_usage_by_agent_counts_outcomes_median_turns_tokens_and_leaves_unknowns_null(
    engine: Engine, caller: Caller
) -> None:
    now = time.time()
    usage = {"input_tokens": 100, "output_tokens": 10, "cost": 0.5}
    for turn_s in (1.0, 3.0, 2.0):
        await add_run(engine, agent="alpha", created_at=now - 60, turn_s=turn_s, usage=usage)
    await add_run(engine, agent="alpha", status="failed", created_at=now - 60, turn_s=10.0)
    await add_run(engine, agent="alpha", status="running", created_at=now - 30, turn_s=None)
    await add_run(engine, agent="beta", status="cancelled", created_at=now - 60, turn_s=4.0)
    await add_run(engine, agent="beta", status="completed", created_at=now - 60, turn_s=2.0)

    rows = {r["key"]: r for r in (await ask(caller, "usage_stats", group_by="agent"))["rows"]}
    alpha, beta = rows["alpha"], rows["beta"]
    assert (alpha["runs"], alpha["completed"], alpha["failed"]) == (5, 3, 1)
    assert alpha["success_rate"] == pytest.approx(3 / 4)  # the running one has not ended
    assert alpha["median_turn_ms"] == pytest.approx(2500)  # of 1, 2, 3, 10 s: the mean of the middle two
    assert (alpha["input_tokens"], alpha["output_tokens"], alpha["cost"]) == (300, 30, pytest.approx(1.5))
    assert alpha["cache_read_tokens"] is None and alpha["cache_write_tokens"] is None
    assert beta["success_rate"] == pytest.approx(0.5) and beta["median_turn_ms"] == pytest.approx(3000)
    assert beta["input_tokens"] is None and beta["cost"] is None, "no run recorded usage: unknown, not 0"
    assert list(rows) == ["alpha", "beta"], "most runs first"


async def test_usage_by_day_session_and_chat_and_since(engine: Engine, caller: Caller) -> None:
    today = datetime.now().replace(hour=12, minute=0, second=0, microsecond=0).timestamp()
    session = str(uuid.uuid4())
    first = await add_run(engine, created_at=today - 2 * DAY, session_id=session)
    await add_run(engine, created_at=today - 2 * DAY)
    await add_run(engine, created_at=today, session_id=session)

    days = (await ask(caller, "usage_stats", group_by="day"))["rows"]
    assert [(d["key"], d["runs"]) for d in days] == [
        (datetime.fromtimestamp(today - 2 * DAY).date().isoformat(), 2),
        (datetime.fromtimestamp(today).date().isoformat(), 1),
    ]
    by_session = {r["key"]: r["runs"] for r in (await ask(caller, "usage_stats", group_by="session"))["rows"]}
    assert by_session[session] == 2 and len(by_session) == 2
    row = await runs.get(engine.db, None, first)
    assert row is not None
    by_chat = {r["key"] for r in (await ask(caller, "usage_stats", group_by="chat"))["rows"]}
    assert row.chat_id in by_chat and len(by_chat) == 3

    recent = await ask(caller, "usage_stats", group_by="day", since="1d")
    assert [d["runs"] for d in recent["rows"]] == [1]
    assert recent["since"] == pytest.approx(time.time() - DAY, abs=60)
    iso = datetime.fromtimestamp(today - DAY).date().isoformat()
    assert [d["runs"] for d in (await ask(caller, "usage_stats", group_by="day", since=iso))["rows"]] == [1]


async def test_usage_sums_cache_tokens_once_runs_record_them(engine: Engine, caller: Caller) -> None:
    now = time.time()
    await add_run(engine, created_at=now, usage={"input_tokens": 30, "cache_read_tokens": 70})
    await add_run(engine, created_at=now, usage={"input_tokens": 10})
    (row,) = (await ask(caller, "usage_stats"))["rows"]
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (40, 70, None)


async def test_usage_of_a_real_run_comes_from_what_the_agent_reported(engine: Engine, caller: Caller) -> None:
    sid = await engine.ensure_session()
    await finished(engine, sid, (await engine.spawn(sid, "usage")).subagent_id)
    body = await dispatch(caller, "usage_stats", {"group_by": "agent", "since": "1h"})
    (row,) = body["result"]["rows"]
    assert (row["key"], row["runs"], row["completed"], row["success_rate"]) == ("fixture", 1, 1, 1.0)
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (11, 7, pytest.approx(0.25))
    assert row["median_turn_ms"] > 0
    assert "fixture: 1 runs, 1 completed, 0 failed" in body["text"]


async def test_usage_refuses_what_it_cannot_read(caller: Caller) -> None:
    assert "since 'yesterday' is not a time" in await refused(caller, "usage_stats", since="yesterday")
    assert "group_by" in await refused(caller, "usage_stats", group_by="week")
    assert parse_since("2w", now=1_000_000.0) == 1_000_000.0 - 14 * DAY
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since(None) is None


async def test_list_runs_pages_newest_first_and_filters(engine: Engine, caller: Caller) -> None:
    now = time.time()
    session = str(uuid.uuid4())
    ids = []
    for i in range(25):
        ids.append(
            await add_run(
                engine,
                agent="alpha" if i % 2 else "beta",
                status="failed" if i % 5 == 0 else "completed",
                created_at=now - 1000 + i,
                session_id=session if i < 10 else None,
            )
        )
    newest_first = ids[::-1]

    seen: list[str] = []
    before = None
    while True:
        page = await ask(caller, "list_runs", limit=10, before=before)
        assert page["total"] == 25
        seen += [r["subagent_id"] for r in page["runs"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == newest_first

    failed = await ask(caller, "list_runs", status="failed")
    assert [r["subagent_id"] for r in failed["runs"]] == [ids[i] for i in (20, 15, 10, 5, 0)]
    assert failed["total"] == 5 and failed["next_before"] is None
    mine = await ask(caller, "list_runs", session_id=session, agent="alpha", limit=2)
    assert [r["subagent_id"] for r in mine["runs"]] == [ids[9], ids[7]] and mine["total"] == 5
    facets = mine["facets"]
    assert facets["statuses"] == {"completed": 20, "failed": 5}
    assert facets["agents"] == {"beta": 13, "alpha": 12}
    assert session in [s["session_id"] for s in facets["sessions"]]
    assert all(r["activity"] is None for r in page["runs"]), "finished runs carry no digest"


async def test_list_runs_shows_what_a_live_run_is_doing(engine: Engine, caller: Caller) -> None:
    sid = await engine.ensure_session()
    spawned = await engine.spawn(sid, "slow 200 20")
    try:
        with anyio.fail_after(30):
            while True:
                (row,) = (await ask(caller, "list_runs"))["runs"]
                assert row["status"] in ("queued", "running"), row
                if row["activity"] and row["activity"]["recent_text"]:
                    break
                await engine.wait(None, spawned.subagent_id, 5)
        assert row["status"] == "running" and "chunk" in row["activity"]["recent_text"]
    finally:
        await engine.cancel(None, spawned.subagent_id)


async def test_list_runs_refuses_a_bad_cursor_or_limit(caller: Caller) -> None:
    assert "not a page cursor" in await refused(caller, "list_runs", before="yesterday")
    assert "limit must be between 1 and 200" in await refused(caller, "list_runs", limit=0)
    assert "status" in await refused(caller, "list_runs", status="sleeping")
