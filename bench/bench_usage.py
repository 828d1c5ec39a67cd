"""Benchmark: `usage_stats` over 100,000 runs, against its budget of 50 ms.

A store is filled with 100k finished runs spread over 90 days: 6 agents, 3,000 sessions each
active for a day or two, a few runs per chat, 80 % completed, most with reported tokens (cache
reads and writes included) and cost. Every grouping (agent, day, session, chat), over all time and
over the last 7 days, is timed through the operation itself (the daemon API's `dispatch` on a real
engine and sqlite file, as `boocode stats` and the MCP tool call it), and against the baseline: the
same figures computed by scanning every run (what usage_stats read before the rollups), measured
in the same run on the same file. With --postgres the store is a throwaway PostgreSQL cluster
(tests/pg_support.py; the server binaries must be installed) instead of the sqlite file.

Run: .venv/bin/python bench/bench_usage.py [--runs N] [--rounds N] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import ROOT, make_workspace

sys.path.insert(0, str(ROOT))

from boocode_mcp.daemon.api import connection_caller, dispatch
from boocode_mcp.engine import Engine
from boocode_mcp.store import connect
from boocode_mcp.store.db import Dialect
from boocode_mcp.store.usage import day_of
from tests.pg_support import running_cluster

BUDGET_MS = 50.0
DAY = 86400.0
AGENTS = ("opencode", "qwen", "claude", "codex", "gemini", "goose")
STATUSES = ("completed",) * 8 + ("failed", "cancelled")

# What usage_stats computed before migration 008: every run read, its JSON usage parsed.
BASELINE = """
WITH g AS (
    SELECT {key} AS key, COUNT(*) AS runs, SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS completed,
           SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
           SUM(CASE WHEN status IN ('completed', 'failed', 'cancelled', 'interrupted') THEN 1 ELSE 0 END)
               AS ended,
           SUM({input_tokens}) AS input_tokens, SUM({output_tokens}) AS output_tokens,
           SUM({cache_read_tokens}) AS cache_read_tokens, SUM({cache_write_tokens}) AS cache_write_tokens,
           SUM({cost}) AS cost
    FROM subagents WHERE created_at >= ? GROUP BY 1
),
turns AS (
    SELECT {key} AS key, (finished_at - started_at) * 1000.0 AS ms FROM subagents
    WHERE created_at >= ? AND started_at IS NOT NULL AND finished_at IS NOT NULL
),
ranked AS (
    SELECT key, ms, ROW_NUMBER() OVER (PARTITION BY key ORDER BY ms) AS i,
           COUNT(*) OVER (PARTITION BY key) AS n FROM turns
),
medians AS (SELECT key, AVG(ms) AS ms FROM ranked WHERE i IN ((n + 1) / 2, (n + 2) / 2) GROUP BY key)
SELECT g.*, m.ms FROM g LEFT JOIN medians m ON m.key = g.key ORDER BY g.runs DESC LIMIT 100
"""
FIGURES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost")
FIGURE = {"sqlite": "json_extract(usage_json, '$.{}')", "postgres": "boocode_usage_figure(usage_json, '{}')"}


def baseline_sql(dialect: Dialect, group_by: str) -> str:
    keys = {
        "agent": "agent",
        "day": day_of(dialect, "created_at"),
        "session": "session_id",
        "chat": "chat_id",
    }
    return BASELINE.format(key=keys[group_by], **{f: FIGURE[dialect].format(f) for f in FIGURES})


async def fill(target: Path | str, runs: int) -> None:
    db = await connect(target)
    # One transaction: the runs' triggers (run_stats, the rollups) run as they would, without a
    # commit per row.
    async with db.transaction() as tx:
        await _fill(tx, runs)
    await db.execute("ANALYZE")
    await db.close()


async def _fill(db: Any, runs: int) -> None:
    rng = random.Random(11)
    now = time.time()
    start = now - 90 * DAY
    n_sessions = 3000
    session_ids = [str(uuid.uuid4()) for _ in range(n_sessions)]
    await db.executemany(
        "INSERT INTO sessions (id, created_at) VALUES (?, ?)",
        [(s, start + i * 90 * DAY / n_sessions) for i, s in enumerate(session_ids)],
    )
    chats: list[tuple[str, str, str, float]] = []
    run_rows: list[tuple[Any, ...]] = []
    chat: tuple[str, str, str, float] | None = None
    for i in range(runs):
        # Sessions come one after another over the 90 days, each lasting a day or two.
        s = min(n_sessions - 1, int(i / runs * n_sessions))
        created = start + s * 90 * DAY / n_sessions + rng.uniform(0, 1.5 * DAY)
        if chat is None or chat[1] != session_ids[s] or rng.random() < 0.4:
            chat = (str(uuid.uuid4()), session_ids[s], rng.choice(AGENTS), created)
            chats.append(chat)
        turn = rng.lognormvariate(3, 1)
        usage: dict[str, Any] = {}
        if rng.random() < 0.9:
            usage = {"input_tokens": rng.randint(500, 50_000), "output_tokens": rng.randint(50, 5_000),
                     "cost": round(rng.uniform(0.001, 0.5), 4)}  # fmt: skip
            if rng.random() < 0.6:
                usage["cache_read_tokens"] = rng.randint(0, 40_000)
                usage["cache_write_tokens"] = rng.randint(0, 5_000)
        run_rows.append(
            (str(uuid.uuid4()), chat[1], chat[0], chat[2], f"task {i}", rng.choice(STATUSES), created,
             created + 0.5, created + 0.5 + turn, json.dumps(usage) if usage else None)
        )  # fmt: skip
    await db.executemany(
        "INSERT INTO chats (id, session_id, agent, worktree, created_at, updated_at) VALUES (?,?,?,?,?,?)",
        [(c, s, a, f"/tmp/wt/{c}", t, t) for c, s, a, t in chats],
    )
    await db.executemany(
        "INSERT INTO subagents (id, session_id, chat_id, agent, prompt, status, created_at, started_at,"
        " finished_at, usage_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
        run_rows,
    )


async def timed(fn: Any, rounds: int) -> list[float]:
    await fn()  # warm the page cache
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster as the store")
    args = parser.parse_args()
    if args.postgres:
        with running_cluster() as cluster:
            await bench(args, cluster.create_database())
    else:
        await bench(args, None)


async def bench(args: argparse.Namespace, url: str | None) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
    repo = make_workspace(base)
    target: Path | str = url or repo / ".boocode" / "boocode.db"
    async with Engine.open(repo, db_url=url):
        pass  # migrations
    t0 = time.perf_counter()
    await fill(target, args.runs)
    print(
        f"filled {args.runs:,} runs in {time.perf_counter() - t0:.1f} s ({'PostgreSQL' if url else target})"
    )
    async with Engine.open(repo, db_url=url) as engine:
        caller = connection_caller(engine, None)
        print(
            f"\nusage_stats over {args.runs:,} runs (ms; budget {BUDGET_MS:.0f}); baseline: every run scanned"
        )
        header = ("group_by", "since", "rows", "p50", "p90", "base p50", "speed-up", "vs budget")
        print("{:<9} {:<6} {:>5} {:>7} {:>7} {:>9} {:>9} {:>10}".format(*header))
        worst = 0.0
        for group_by in ("agent", "day", "session", "chat"):
            for since in (None, "7d"):
                params: dict[str, Any] = {"group_by": group_by}
                if since:
                    params["since"] = since
                body = await dispatch(caller, "usage_stats", params)
                assert "result" in body, body
                rows = len(body["result"]["rows"])

                async def op(params: dict[str, Any] = params) -> None:
                    await dispatch(caller, "usage_stats", params)

                ours = await timed(op, args.rounds)
                start = time.time() - 7 * DAY if since else float("-inf")
                sql = baseline_sql(engine.db.dialect, group_by)

                async def baseline(sql: str = sql, start: float = start) -> None:
                    cur = await engine.db.execute(sql, (start, start))
                    await cur.fetchall()

                theirs = await timed(baseline, max(3, args.rounds // 5))
                p50, p90 = statistics.median(ours), statistics.quantiles(ours, n=10)[-1]
                b50 = statistics.median(theirs)
                worst = max(worst, p50)
                print(f"{group_by:<9} {since or 'all':<6} {rows:>5} {p50:>7.1f} {p90:>7.1f} {b50:>9.1f} "
                      f"{b50 / p50:>8.1f}x {p50 / BUDGET_MS:>9.2f}x")  # fmt: skip
        verdict = "within" if worst <= BUDGET_MS else "OVER"
        print(f"\nworst p50 {worst:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    asyncio.run(main())
