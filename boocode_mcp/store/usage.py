"""Usage of runs grouped by agent, day, chat or session: counts, outcomes, turn times, tokens, cost.

Read from what migration 007 keeps: per-day rollups by agent and by session (so a workspace's
whole history is a few thousand rows, not every run), and `run_stats`, one narrow row per run
with indexes holding each group's turn times in order (a median is a walk to the middle of one
group). A `since` in the middle of a day takes that day's rows from `run_stats`, the later days
from the rollups. A figure no run of a group reported is NULL (unknown), not 0.

Tokens and cost come from each run's recorded usage (`usage_json`); days are the daemon's local
days when the run was created.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from boocode_mcp.store.transaction import snapshot

GroupBy = Literal["agent", "day", "chat", "session"]

# Fixed names, so the SQL below never carries caller text.
_ROLLUP = {"agent": ("usage_agent_day", "agent"), "day": ("usage_agent_day", "day"),
           "session": ("usage_session_day", "session_id")}  # fmt: skip
_TURN_KEY = {"agent": "agent", "day": "day", "session": "session_id", "chat": "chat_id"}
_ENDED = "('completed', 'failed', 'cancelled', 'interrupted')"
_FIGURES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost")
# One run_stats row as a rollup row (the partial day of a `since`, and chats).
_RAW = (
    "1 AS runs, status = 'completed' AS completed, status = 'failed' AS failed, "
    f"status IN {_ENDED} AS ended, turn_ms IS NOT NULL AS turns, "
    + ", ".join(f"coalesce({f}, 0) AS {f}, {f} IS NOT NULL AS {f.split('_tokens')[0]}_n" for f in _FIGURES)
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


def local_day(t: float) -> str:
    """The local day of unix time `t`, as sqlite's date(t, 'unixepoch', 'localtime') writes it."""
    return time.strftime("%Y-%m-%d", time.localtime(t))


async def usage_groups(
    db: aiosqlite.Connection, group_by: GroupBy, since: float | None, limit: int
) -> list[UsageGroup]:
    """One group per key among the runs created at or after `since` (None: all), at most `limit`:
    days in order (the latest `limit`), chats the most recently active first, other keys by number
    of runs (most first). All queries in one job on the worker thread, over one snapshot."""

    def read(conn: sqlite3.Connection) -> list[UsageGroup]:
        rows = _chats(conn, since, limit) if group_by == "chat" else _rolled_up(conn, group_by, since, limit)
        medians = _medians(conn, group_by, {str(r["key"]): int(r["turns"]) for r in rows}, since)
        return [_group(r, medians.get(str(r["key"]))) for r in rows]

    return await snapshot(db, read)


def _group(r: sqlite3.Row, median: float | None) -> UsageGroup:
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


def _rolled_up(
    conn: sqlite3.Connection, group_by: GroupBy, since: float | None, limit: int
) -> list[sqlite3.Row]:
    table, key = _ROLLUP[group_by]
    # The latest days (put back in order below); other keys by runs.
    order = "key DESC" if group_by == "day" else "runs DESC, key"
    args: list[object]
    if since is None:
        source, args = f"SELECT {key} AS key, {_COLUMNS} FROM {table}", []
    else:
        # The days after since's from the rollups; since's own day from its runs created since.
        day = local_day(since)
        source = (
            f"SELECT {key} AS key, {_COLUMNS} FROM {table} WHERE day > ? "
            f"UNION ALL SELECT {_TURN_KEY[group_by]} AS key, {_RAW} FROM run_stats "
            "WHERE created_at >= ? AND day <= ?"
        )
        args = [day, since, day]
    rows = conn.execute(
        f"SELECT key, {_SUMS} FROM ({source}) GROUP BY key HAVING SUM(runs) > 0 ORDER BY {order} LIMIT ?",
        [*args, limit],
    ).fetchall()
    return rows[::-1] if group_by == "day" else rows


def _chats(conn: sqlite3.Connection, since: float | None, limit: int) -> list[sqlite3.Row]:
    start = since if since is not None else float("-inf")
    # The most recently active chats: the newest runs walked (in created_at order, by its index)
    # until `limit` distinct chats, not every run of a long history.
    chats = [
        str(r["chat_id"])
        for r in conn.execute(
            "SELECT DISTINCT chat_id FROM (SELECT chat_id FROM run_stats WHERE created_at >= ?"
            " ORDER BY created_at DESC) LIMIT ?",
            (start, limit),
        )
    ]
    if not chats:
        return []
    marks = ", ".join("?" for _ in chats)
    return conn.execute(
        f"SELECT chat_id AS key, {_SUMS}, MAX(created_at) AS last FROM (SELECT chat_id, created_at, {_RAW} "
        f"FROM run_stats WHERE chat_id IN ({marks}) AND created_at >= ?) GROUP BY chat_id "
        "ORDER BY last DESC",
        [*chats, start],
    ).fetchall()


def _medians(
    conn: sqlite3.Connection, group_by: GroupBy, turns: dict[str, int], since: float | None
) -> dict[str, float]:
    """Each group's middle turn time (the mean of the two middle ones for an even count), over its
    runs with one created since `since`; `turns` says how many each group has."""
    counted = sum(turns.values())
    if since is not None and counted:
        total = conn.execute("SELECT SUM(turns) FROM usage_agent_day").fetchone()[0] or 0
        if counted * 4 < total:
            # A recent window: sorting its few runs beats walking every run of each group.
            return _medians_sorted(conn, group_by, list(turns), since)
    return {
        key: m
        for key, n in turns.items()
        if n and (m := _median_walk(conn, group_by, key, since, n)) is not None
    }


def _medians_sorted(
    conn: sqlite3.Connection, group_by: GroupBy, keys: list[str], since: float
) -> dict[str, float]:
    """The medians of a recent window: its runs read from run_stats_created alone (it covers them),
    sorted per group here; sqlite's window functions take several times longer for the same."""
    column = _TURN_KEY[group_by]
    wanted = set(keys)
    by_key: dict[str, list[float]] = {}
    for key, turn_ms in conn.execute(
        f"SELECT {column}, turn_ms FROM run_stats INDEXED BY run_stats_created"
        " WHERE created_at >= ? AND turn_ms IS NOT NULL",
        (since,),
    ):
        if key in wanted:
            by_key.setdefault(str(key), []).append(float(turn_ms))
    return {key: statistics.median(values) for key, values in by_key.items()}


def _median_walk(
    conn: sqlite3.Connection, group_by: GroupBy, key: str, since: float | None, turns: int
) -> float | None:
    """One group's median by walking its turn-time index (in turn order) to the middle of its
    `turns` runs created since `since`."""
    column = _TURN_KEY[group_by]
    row = conn.execute(
        f"SELECT AVG(turn_ms) FROM (SELECT turn_ms FROM run_stats INDEXED BY run_stats_{group_by}_turn "
        f"WHERE {column} = ? AND turn_ms IS NOT NULL AND created_at >= ? ORDER BY turn_ms LIMIT ? OFFSET ?)",
        (key, since if since is not None else float("-inf"), 2 - turns % 2, (turns - 1) // 2),
    ).fetchone()
    return float(row[0]) if row is not None and row[0] is not None else None
