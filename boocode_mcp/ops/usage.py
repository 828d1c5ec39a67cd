"""usage_stats: how the workspace's runs went and what they cost, grouped by agent, day, chat or
session — what `boocode ui` charts and `boocode stats` prints."""

from __future__ import annotations

import re
import time
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome
from boocode_mcp.store.usage import GroupBy, UsageGroup, usage_groups

DEFAULT_ROWS = 100
MAX_ROWS = 1000
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class UsageRow(_Out):
    """One group's runs. Figures no run in the group recorded are null (unknown), not zero."""

    key: str = Field(description="the agent, the day (YYYY-MM-DD, local time), the chat id or the session id")
    runs: int
    completed: int
    failed: int
    success_rate: float | None = Field(
        description="completed runs over runs that ended (completed, failed, cancelled, interrupted); "
        "null while none has ended"
    )
    median_turn_ms: float | None = Field(description="median time from a run's start to its end")
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost: float | None


class UsageStats(_Out):
    group_by: GroupBy
    since: float | None = Field(description="unix time the rows start from; null for all time")
    rows: list[UsageRow]


def parse_since(since: float | str | None, now: float | None = None) -> float | None:
    """`since` as unix time: a number of seconds, an ISO date or date-time (local time unless it
    names a zone), or a duration back from now such as 30m, 12h, 7d, 2w."""
    if since is None:
        return None
    if isinstance(since, int | float):
        return float(since)
    text = since.strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION.fullmatch(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day).timestamp()
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidRequestError(
            f"since {since!r} is not a time: give unix seconds, an ISO date (2026-01-31) or date-time "
            "(2026-01-31T09:00), or a duration back from now (30m, 12h, 7d, 2w)"
        ) from None


def _row(g: UsageGroup) -> UsageRow:
    return UsageRow(
        key=g.key,
        runs=g.runs,
        completed=g.completed,
        failed=g.failed,
        success_rate=g.completed / g.ended if g.ended else None,
        median_turn_ms=g.median_turn_ms,
        input_tokens=g.input_tokens,
        output_tokens=g.output_tokens,
        cache_read_tokens=g.cache_read_tokens,
        cache_write_tokens=g.cache_write_tokens,
        cost=g.cost,
    )


def _line(group_by: str, r: UsageRow) -> str:
    parts = [f"{group_by} {r.key}: {r.runs} runs, {r.completed} completed, {r.failed} failed"]
    if r.success_rate is not None:
        parts.append(f"{r.success_rate:.0%} success")
    if r.median_turn_ms is not None:
        parts.append(f"median turn {r.median_turn_ms / 1000:.1f} s")
    if r.input_tokens is not None or r.output_tokens is not None:
        parts.append(f"tokens {r.input_tokens or 0} in / {r.output_tokens or 0} out")
    if r.cache_read_tokens is not None:
        parts.append(f"cache reads {r.cache_read_tokens}")
    if r.cost is not None:
        parts.append(f"cost {r.cost:.4g}")
    return ", ".join(parts)


async def usage_stats(
    caller: Caller,
    *,
    group_by: GroupBy = "agent",
    since: float | str | None = None,
    limit: int = DEFAULT_ROWS,
) -> Outcome[UsageStats]:
    """The workspace's runs created since `since` (default: all), one row per `group_by` key, at
    most `limit` rows (the latest days, the most recently active chats, the agents and sessions
    with the most runs)."""
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_ROWS} (got {limit})")
    start = parse_since(since)
    groups = await usage_groups(caller.engine.db, group_by, start, limit)
    rows = [_row(g) for g in groups]
    text = "\n".join(_line(group_by, r) for r in rows) if rows else "no runs"
    return Outcome(UsageStats(group_by=group_by, since=start, rows=rows), text)
