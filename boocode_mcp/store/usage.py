"""Usage of runs grouped by agent, day, chat or session: counts, outcomes, turn times, tokens, cost.

Tokens and cost come from each run's recorded usage (`usage_json`); a key no run has recorded sums
to NULL, so a figure the store does not hold reads as unknown rather than as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiosqlite

GroupBy = Literal["agent", "day", "chat", "session"]

# Fixed expressions, so the SQL below never carries caller text. Days are the daemon's local days.
_KEYS: dict[str, str] = {
    "agent": "agent",
    "day": "date(created_at, 'unixepoch', 'localtime')",
    "chat": "chat_id",
    "session": "session_id",
}
_ENDED = "('completed', 'failed', 'cancelled', 'interrupted')"


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


def _usage_sum(name: str) -> str:
    return f"SUM(json_extract(usage_json, '$.{name}'))"


async def usage_groups(db: aiosqlite.Connection, group_by: GroupBy, since: float) -> list[UsageGroup]:
    """One group per key among the runs created at or after `since`; days in order, other keys by
    number of runs (most first)."""
    key = _KEYS[group_by]
    order = "g.key" if group_by == "day" else "g.runs DESC, g.key"
    cur = await db.execute(
        f"""
        WITH g AS (
            SELECT {key} AS key, COUNT(*) AS runs,
                   SUM(status = 'completed') AS completed, SUM(status = 'failed') AS failed,
                   SUM(status IN {_ENDED}) AS ended,
                   {_usage_sum("input_tokens")} AS input_tokens,
                   {_usage_sum("output_tokens")} AS output_tokens,
                   {_usage_sum("cache_read_tokens")} AS cache_read_tokens,
                   {_usage_sum("cache_write_tokens")} AS cache_write_tokens,
                   {_usage_sum("cost")} AS cost
            FROM subagents WHERE created_at >= ? GROUP BY 1
        ),
        turns AS (
            SELECT {key} AS key, (finished_at - started_at) * 1000.0 AS ms
            FROM subagents
            WHERE created_at >= ? AND started_at IS NOT NULL AND finished_at IS NOT NULL
        ),
        ranked AS (
            SELECT key, ms, ROW_NUMBER() OVER (PARTITION BY key ORDER BY ms) AS i,
                   COUNT(*) OVER (PARTITION BY key) AS n
            FROM turns
        ),
        -- The middle turn, or the mean of the two middle ones.
        medians AS (SELECT key, AVG(ms) AS ms FROM ranked WHERE i IN ((n + 1) / 2, (n + 2) / 2) GROUP BY key)
        SELECT g.*, m.ms AS median_turn_ms FROM g LEFT JOIN medians m ON m.key = g.key
        ORDER BY {order}
        """,
        (since, since),
    )
    return [
        UsageGroup(
            key=str(r["key"]),
            runs=int(r["runs"]),
            completed=int(r["completed"]),
            failed=int(r["failed"]),
            ended=int(r["ended"]),
            median_turn_ms=r["median_turn_ms"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cache_read_tokens=r["cache_read_tokens"],
            cache_write_tokens=r["cache_write_tokens"],
            cost=r["cost"],
        )
        for r in await cur.fetchall()
    ]
