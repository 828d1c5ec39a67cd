"""Benchmark: workers sharing a PostgreSQL store (a throwaway cluster the benchmark starts).

1. Claim latency: idle workers, one run spawned at a time; from the run's row being written
   (`created_at`) to a worker marking it running (`started_at`). It is the NOTIFY that wakes a
   worker: the polling fallback alone would take `[worker] poll_s` / 2 on average, which the
   ratio is printed against. Target: p50 ≤ 50 ms.
2. Throughput where the agent is the bottleneck: 30 runs of the fixture agent taking a fixed
   time per turn (`slow-write`), by one worker, then by three (each its own clone, as on three
   hosts; two runs at once each). Target: three workers ≥ 2× faster than one.

Run: .venv/bin/python bench/bench_workers.py [--runs 30] [--turn-ms 1000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from benchlib import ROOT, make_workspace

sys.path.insert(0, str(ROOT))

from boocode_mcp.engine import Engine
from boocode_mcp.store import subagents
from boocode_mcp.trust import trust_workspace
from tests.pg_support import Worker, running_cluster

POLL_S = 5.0
POOL = "[pool]\nmax_concurrent_runs = 2\n"


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def stop(workers: list[Worker]) -> None:
    for w in workers:
        w.kill(signal.SIGTERM)


async def claim_latencies(requester: Path, url: str, n: int) -> list[float]:
    out = []
    async with Engine.open(requester, db_url=url) as engine:
        sid = await engine.ensure_session()
        for i in range(n):
            view = await engine.spawn(sid, f"write lat{i}.txt x")
            await engine.wait_finished(sid, view.subagent_id)
            row = await subagents.get(engine.db, None, view.subagent_id)
            assert row is not None and row.started_at is not None
            out.append(row.started_at - row.created_at)
            # The next one from an idle worker again.
            await anyio.sleep(0.05)
    return out


async def wall_time(requester: Path, url: str, runs: int, turn_ms: int) -> float:
    async with Engine.open(requester, db_url=url) as engine:
        sid = await engine.ensure_session()
        started = time.perf_counter()
        views = [await engine.spawn(sid, f"slow-write {turn_ms} t{i}.txt x") for i in range(runs)]
        for v in views:
            done = await engine.wait_finished(sid, v.subagent_id)
            assert done.status == "completed", done.error
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--turn-ms", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp, running_cluster() as cluster:
        base = Path(tmp)
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        origin = base / "origin.git"
        git(base, "init", "-q", "--bare", str(origin))
        # The requester runs nothing itself: every run goes to the workers.
        requester = make_workspace(base, extra_config=f"{POOL}[worker]\npoll_s = {POLL_S}\nlocal = false\n")
        git(requester, "remote", "add", "origin", str(origin))
        git(requester, "push", "-q", "origin", "main")
        clones = []
        for i in range(3):
            clone = base / f"host{i}"
            git(base, "clone", "-q", str(origin), str(clone))
            (clone / ".boocode").mkdir()
            (clone / ".boocode" / "config.toml").write_text(
                (requester / ".boocode" / "config.toml").read_text().replace("local = false\n", "")
            )
            trust_workspace(clone)
            clones.append(clone)

        url = cluster.create_database()
        workers = [Worker(c, url) for c in clones]
        for w in workers:
            w.wait_ready()
        try:
            lat = anyio.run(claim_latencies, requester, url, args.samples)
        finally:
            stop(workers)
        p50 = statistics.median(lat) * 1000
        p90 = statistics.quantiles(lat, n=10)[-1] * 1000
        print(f"claim latency, spawn → running, idle workers ({len(lat)} runs): p50 {p50:.1f} ms")
        print(f"  p90 {p90:.1f} ms; polling alone would average {POLL_S / 2 * 1000:.0f} ms")
        print(f"  NOTIFY p50 / polling average: {p50 / (POLL_S / 2 * 1000):.3f}x")
        print(f"  target p50 <= 50 ms: {'met' if p50 <= 50 else 'NOT met'}")

        times = {}
        for count in (1, 3):
            url = cluster.create_database()
            workers = [Worker(c, url) for c in clones[:count]]
            for w in workers:
                w.wait_ready()
            try:
                times[count] = anyio.run(wall_time, requester, url, args.runs, args.turn_ms)
            finally:
                stop(workers)
            print(f"{args.runs} runs of {args.turn_ms} ms each, {count} worker(s): {times[count]:.2f} s")
        speedup = times[1] / times[3]
        print(f"3 workers vs 1: {speedup:.2f}x faster (target >= 2x: {'met' if speedup >= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
