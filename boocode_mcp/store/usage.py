"""Usage of runs grouped by agent, day, chat or session: counts, outcomes, turn times, tokens, cost.

Read from what migration 008 keeps: per-day rollups by agent and by session (`usage_rollup`) (so a workspace's
whole history is a few thousand rows, not every run), and `run_stats`, one narrow row per run
with indexes holding each group's turn times in order (a median is a walk to the middle of one
group). A `since` in the middle of a day takes that day's rows from `run_stats`, the later days
from the rollups. A figure no run of a group reported is NULL (unknown), not 0.

Tokens and cost come from each run's recorded usage (`usage_json`); days are local days when the
run was created (on sqlite the daemon's time zone, on PostgreSQL the database session's).

The same SQL serves both dialects but for two things: sqlite is told which index a walk takes
(`INDEXED BY`; PostgreSQL's planner needs no telling), and the most recently active chats are
found differently (sqlite walks the newest runs in order and keeps the first distinct chats;
PostgreSQL's DISTINCT does not keep an order, so it groups them).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from boocode_mcp.store.db import Database, Dialect, Row

GroupBy = Literal["agent", "day", "chat", "session"]

# Fixed names, so the SQL below never carries caller text.
# Each grouping read from the rollup: which of its dimensions, and which column is the group's key
# (days are counted from the agent rows, which cover every run once, as the session rows do).
_ROLLUP = {"agent": ("agent", "key"), "day": ("agent", "day"), "session": ("session", "key")}
_TURN_KEY = {"agent": "agent", "day": "day", "session": "session_id", "chat": "chat_id"}
_ENDED = "('completed', 'failed', 'cancelled', 'interrupted')"
_FIGURES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost")
# A run's day as the migration's triggers compute it, of a `?` parameter.
_DAY: dict[Dialect, str] = {"sqlite": "date(?, 'unixepoch', 'localtime')", "postgres": "boocode_day(?)"}
# Median walks per statement (sqlite allows 500 terms in a compound SELECT).
_WALKS_PER_STATEMENT = 200


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


_COMPLETED = _flag("status = 'completed'")
_FAILED = _flag("status = 'failed'")
_ENDED_FLAG = _flag(f"status IN {_ENDED}")
# One run_stats row as a rollup row (the partial day of a `since`, and chats).
_RAW = (
    f"1 AS runs, {_COMPLETED} AS completed, {_FAILED} AS failed, {_ENDED_FLAG} AS ended, "
    f"{_flag('turn_ms IS NOT NULL')} AS turns, "
    + ", ".join(
        f"coalesce({f}, 0) AS {f}, {_flag(f'{f} IS NOT NULL')} AS {f.split('_tokens')[0]}_n" for f in _FIGURES
    )
)
_SUMS = "SUM(runs) AS runs, SUM(completed) AS completed, SUM(failed) AS failed, SUM(ended) AS ended, " + (
    "SUM(turns) AS turns, "
    + ", ".join(f"SUM({f}) AS {f}, SUM({f.split('_tokens')[0]}_n) AS {f}_n" for f in _FIGURES)
)
_COLUMNS = "runs, completed, failed, ended, turns, " + ", ".join(
    f"{f}, {f.split('_tokens')[0]}_n" for f in _FIGURES
)


@dataclass(frozen=True)
class UsageGroup:
    key: str
    runs: int
    completed: int
    failed: int
    ended: int
    median_turn_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost: float | None


def day_of(dialect: Dialect, column: str) -> str:
    """SQL for the day of the unix time in `column`, as the rollups count it."""
    return _DAY[dialect].replace("?", column)


async def usage_groups(db: Database, group_by: GroupBy, since: float | None, limit: int) -> list[UsageGroup]:
    """One group per key among the runs created at or after `since` (None: all), at most `limit`:
    days in order (the latest `limit`), chats the most recently active first, other keys by number
    of runs (most first)."""
    if group_by == "chat":
        rows = await _chats(db, since, limit)
    else:
        rows = await _rolled_up(db, group_by, since, limit)
    medians = await _medians(db, group_by, {str(r["key"]): int(r["turns"]) for r in rows}, since)
    return [_group(r, medians.get(str(r["key"]))) for r in rows]


def _group(r: Row, median: float | None) -> UsageGroup:
    return UsageGroup(
        key=str(r["key"]),
        runs=int(r["runs"]),
        completed=int(r["completed"]),
        failed=int(r["failed"]),
        ended=int(r["ended"]),
        median_turn_ms=median,
        input_tokens=int(r["input_tokens"]) if r["input_tokens_n"] else None,
        output_tokens=int(r["output_tokens"]) if r["output_tokens_n"] else None,
        cache_read_tokens=int(r["cache_read_tokens"]) if r["cache_read_tokens_n"] else None,
        cache_write_tokens=int(r["cache_write_tokens"]) if r["cache_write_tokens_n"] else None,
        cost=float(r["cost"]) if r["cost_n"] else None,
    )


async def _rolled_up(db: Database, group_by: GroupBy, since: float | None, limit: int) -> list[Row]:
    dim, key = _ROLLUP[group_by]
    # The latest days (put back in order below); other keys by runs.
    order = "key DESC" if group_by == "day" else "runs DESC, key"
    rolled = f"SELECT {key} AS key, {_COLUMNS} FROM usage_rollup WHERE dim = '{dim}'"
    args: list[object]
    if since is None:
        source, args = rolled, []
    else:
        # The days after since's from the rollups; since's own day from its runs created since.
        day = _DAY[db.dialect]
        source = (
            f"{rolled} AND day > {day} UNION ALL SELECT {_TURN_KEY[group_by]} AS key, {_RAW} FROM run_stats "
            f"WHERE created_at >= ? AND day <= {day}"
        )
        args = [since, since, since]
    rows = await db.execute_fetchall(
        f"SELECT key, {_SUMS} FROM ({source}) AS g GROUP BY key HAVING SUM(runs) > 0"
        f" ORDER BY {order} LIMIT ?",
        [*args, limit],
    )
    return rows[::-1] if group_by == "day" else rows


async def _chats(db: Database, since: float | None, limit: int) -> list[Row]:
    window, args = ("WHERE created_at >= ?", [since]) if since is not None else ("", [])
    if db.dialect == "sqlite":
        # The newest runs walked (in created_at order, by its index) until `limit` distinct chats,
        # not every run of a long history; sqlite's DISTINCT keeps that order.
        found = await db.execute_fetchall(
            f"SELECT DISTINCT chat_id FROM (SELECT chat_id FROM run_stats {window}"
            " ORDER BY created_at DESC) AS r LIMIT ?",
            [*args, limit],
        )
    else:
        found = await db.execute_fetchall(
            f"SELECT chat_id FROM run_stats {window} GROUP BY chat_id ORDER BY MAX(created_at) DESC LIMIT ?",
            [*args, limit],
        )
    chats = [str(r["chat_id"]) for r in found]
    if not chats:
        return []
    marks = ", ".join("?" for _ in chats)
    also = " AND created_at >= ?" if since is not None else ""
    return await db.execute_fetchall(
        f"SELECT chat_id AS key, {_SUMS}, MAX(created_at) AS last FROM (SELECT chat_id, created_at, {_RAW} "
        f"FROM run_stats WHERE chat_id IN ({marks}){also}) AS r GROUP BY chat_id ORDER BY last DESC",
        [*chats, *args],
    )


async def _medians(
    db: Database, group_by: GroupBy, turns: dict[str, int], since: float | None
) -> dict[str, float]:
    """Each group's middle turn time (the mean of the two middle ones for an even count), over its
    runs with one created since `since`; `turns` says how many each group has."""
    counted = sum(turns.values())
    if since is not None and counted:
        rows = await db.execute_fetchall("SELECT SUM(turns) FROM usage_rollup WHERE dim = 'agent'")
        total = int(rows[0][0] or 0) if rows else 0
        if counted * 4 < total:
            # A recent window: sorting its few runs beats walking every run of each group.
            return await _medians_sorted(db, group_by, list(turns), since)
    walks = [(key, n) for key, n in turns.items() if n]
    found: dict[str, float] = {}
    for start in range(0, len(walks), _WALKS_PER_STATEMENT):
        found.update(await _median_walks(db, group_by, walks[start : start + _WALKS_PER_STATEMENT], since))
    return found


def _indexed_by(db: Database, index: str) -> str:
    return f" INDEXED BY {index}" if db.dialect == "sqlite" else ""


async def _medians_sorted(db: Database, group_by: GroupBy, keys: list[str], since: float) -> dict[str, float]:
    """The medians of a recent window: its runs read from run_stats_created alone (it covers them),
    sorted per group here; sqlite's window functions take several times longer for the same."""
    column = _TURN_KEY[group_by]
    wanted = set(keys)
    by_key: dict[str, list[float]] = {}
    for r in await db.execute_fetchall(
        f"SELECT {column} AS key, turn_ms FROM run_stats{_indexed_by(db, 'run_stats_created')}"
        " WHERE created_at >= ? AND turn_ms IS NOT NULL",
        (since,),
    ):
        if r["key"] in wanted:
            by_key.setdefault(str(r["key"]), []).append(float(r["turn_ms"]))
    return {key: statistics.median(values) for key, values in by_key.items()}


async def _median_walks(
    db: Database, group_by: GroupBy, walks: Sequence[tuple[str, int]], since: float | None
) -> dict[str, float]:
    """Each group's median by walking its turn-time index (in turn order) to the middle of its
    runs created since `since` (`walks` holds each key and how many it has): one walk per group,
    all of them in one statement."""
    column = _TURN_KEY[group_by]
    window = " AND created_at >= ?" if since is not None else ""
    walk = (
        f"SELECT ? AS key, (SELECT AVG(turn_ms) FROM (SELECT turn_ms FROM run_stats"
        f"{_indexed_by(db, f'run_stats_{group_by}_turn')} WHERE {column} = ? AND turn_ms IS NOT NULL"
        f"{window} ORDER BY turn_ms LIMIT ? OFFSET ?) AS t) AS median"
    )
    args: list[Any] = []
    for key, n in walks:
        args += [key, key, *([since] if since is not None else []), 2 - n % 2, (n - 1) // 2]
    rows = await db.execute_fetchall(" UNION ALL ".join(walk for _ in walks), args)
    return {str(r["key"]): float(r["median"]) for r in rows if r["median"] is not None}
