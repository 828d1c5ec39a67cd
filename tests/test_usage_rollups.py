"""usage_stats' store (migration 008's rollups and run_stats, kept by triggers on sqlite and by
trigger functions on PostgreSQL) against a brute-force computation over the runs themselves: every
grouping, with and without `since` (a window small enough for the sorted medians, one for the
index walks), after runs are inserted, change status, report usage, move in time and are deleted.
Each test runs on both databases (the `db` fixture)."""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any

import pytest

from boocode_mcp.store import chats, sessions
from boocode_mcp.store import subagents as runs
from boocode_mcp.store.db import Database, Row
from boocode_mcp.store.usage import GroupBy, UsageGroup, day_of, usage_groups

pytestmark = pytest.mark.anyio

DAY = 86400.0
ENDED = {"completed", "failed", "cancelled", "interrupted"}
FIGURES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost")


async def fill(db: Database, rng: random.Random, n: int) -> None:
    now = time.time()
    session_ids = [f"s{i}" for i in range(12)]
    for s in session_ids:
        await sessions.create(db, s)
    chat_ids = []
    for i in range(40):
        chat_id, session_id = f"c{i}", rng.choice(session_ids)
        await chats.insert(db, chat_id=chat_id, session_id=session_id, agent="a", worktree="/nowhere")
        chat_ids.append((chat_id, session_id))
    for i in range(n):
        chat_id, session_id = rng.choice(chat_ids)
        run_id = f"r{i}"
        await runs.insert_if_chat_idle(
            db, subagent_id=run_id, session_id=session_id, chat_id=chat_id, agent=rng.choice("abcd"),
            prompt="p", model=None, mode=None, owner_pid=0,
        )  # fmt: skip
        created = now - rng.uniform(0, 30) * DAY
        status = rng.choice(["completed", "completed", "failed", "cancelled", "interrupted", "running"])
        fields: dict[str, Any] = {"usage": _usage(rng) if rng.random() < 0.7 else None}
        if status != "running":
            fields.update(started_at=created + 1, finished_at=created + 1 + rng.uniform(0.1, 100))
        await runs.set_status(db, run_id, status, **fields)  # type: ignore[arg-type]
        # Moved back in time, as a run created then would be (a trigger moves it between days).
        await db.execute("UPDATE subagents SET created_at = ? WHERE id = ?", (created, run_id))


def _usage(rng: random.Random) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for figure in FIGURES:
        if rng.random() < 0.6:
            usage[figure] = round(rng.uniform(0, 2), 3) if figure == "cost" else rng.randint(0, 1000)
    return usage


def _key(row: Row, group_by: GroupBy) -> str:
    if group_by == "day":
        return str(row["day"])
    return str(row[{"agent": "agent", "chat": "chat_id", "session": "session_id"}[group_by]])


async def brute_force(db: Database, group_by: GroupBy, since: float | None) -> list[UsageGroup]:
    # Each run's day as the database counts it (its time zone), the rest by hand.
    cur = await db.execute(f"SELECT s.*, {day_of(db.dialect, 's.created_at')} AS day FROM subagents s")
    rows = [r for r in await cur.fetchall() if since is None or r["created_at"] >= since]
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(_key(r, group_by), []).append(r)
    out = []
    for key, members in groups.items():
        usages = [json.loads(m["usage_json"]) if m["usage_json"] else {} for m in members]
        sums = {f: [u[f] for u in usages if u.get(f) is not None] for f in FIGURES}
        turns = [
            (m["finished_at"] - m["started_at"]) * 1000.0
            for m in members
            if m["started_at"] is not None and m["finished_at"] is not None
        ]
        out.append(
            UsageGroup(
                key=key,
                runs=len(members),
                completed=sum(m["status"] == "completed" for m in members),
                failed=sum(m["status"] == "failed" for m in members),
                ended=sum(m["status"] in ENDED for m in members),
                median_turn_ms=statistics.median(turns) if turns else None,
                input_tokens=sum(sums["input_tokens"]) if sums["input_tokens"] else None,
                output_tokens=sum(sums["output_tokens"]) if sums["output_tokens"] else None,
                cache_read_tokens=sum(sums["cache_read_tokens"]) if sums["cache_read_tokens"] else None,
                cache_write_tokens=sum(sums["cache_write_tokens"]) if sums["cache_write_tokens"] else None,
                cost=sum(sums["cost"]) if sums["cost"] else None,
            )
        )
    return out


def same(ours: list[UsageGroup], theirs: list[UsageGroup]) -> None:
    assert {g.key for g in ours} == {g.key for g in theirs}
    by_key = {g.key: g for g in theirs}
    for g in ours:
        expected = by_key[g.key]
        assert (g.runs, g.completed, g.failed, g.ended) == (
            expected.runs, expected.completed, expected.failed, expected.ended,
        ), g.key  # fmt: skip
        assert (g.input_tokens, g.output_tokens, g.cache_read_tokens, g.cache_write_tokens) == (
            expected.input_tokens, expected.output_tokens, expected.cache_read_tokens,
            expected.cache_write_tokens,
        ), g.key  # fmt: skip
        assert g.cost == pytest.approx(expected.cost), g.key
        assert g.median_turn_ms == pytest.approx(expected.median_turn_ms), g.key


async def check_all(db: Database) -> None:
    now = time.time()
    # All time (index walks), a mid-day point long ago, the last day (a small window: sorted).
    for since in (None, now - 12.5 * DAY, now - 1 * DAY):
        for group_by in ("agent", "day", "chat", "session"):
            ours = await usage_groups(db, group_by, since, 1000)  # type: ignore[arg-type]
            same(ours, await brute_force(db, group_by, since))  # type: ignore[arg-type]
            if group_by == "day":
                assert [g.key for g in ours] == sorted(g.key for g in ours)
            elif group_by != "chat":
                assert [g.runs for g in ours] == sorted((g.runs for g in ours), reverse=True)


async def test_the_rollups_agree_with_the_runs_as_runs_come_change_and_go(db: Database) -> None:
    rng = random.Random(3)
    await fill(db, rng, 300)
    await check_all(db)
    cur = await db.execute("SELECT id FROM subagents")
    ids = [r["id"] for r in await cur.fetchall()]
    for run_id in rng.sample(ids, 60):
        await runs.set_status(db, run_id, rng.choice(["completed", "failed"]), usage=_usage(rng))
    await db.execute("DELETE FROM sessions WHERE id = 's3'")  # its runs go with it (cascade)
    await check_all(db)


async def test_a_limit_keeps_the_latest_days_and_the_most_recent_chats(db: Database) -> None:
    await fill(db, random.Random(5), 120)
    days = await usage_groups(db, "day", None, 3)
    everything = await usage_groups(db, "day", None, 1000)
    assert [g.key for g in days] == [g.key for g in everything][-3:]
    chats_seen = await usage_groups(db, "chat", None, 5)
    cur = await db.execute("SELECT chat_id, MAX(created_at) AS last FROM subagents GROUP BY chat_id")
    newest = sorted(await cur.fetchall(), key=lambda r: r["last"], reverse=True)
    assert [g.key for g in chats_seen] == [r["chat_id"] for r in newest[:5]]
