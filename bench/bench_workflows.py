"""Benchmark: what workflows add to the runs they start, the step cache, and the sandbox's start.

1. Per uncached step: a workflow of N sequential steps (fresh prompts, so nothing is cached) against
   the same N prompts as plain `spawn` + `wait_finished` on the same engine, rounds interleaved so
   machine noise hits both alike. Target: workflow time per step ≤ 1.1× a plain spawn + wait.
2. A 10-step workflow run once (every step dispatched to the fixture agent), then again with the
   same args (every step from the step cache). Target: the cached re-run ≥ 50× faster.
3. Sandbox start: a cold sandbox process (python -I -S + QuickJS, until it says ready), and what a
   run pays with the spare the daemon keeps (a started process: load a one-line workflow, get its
   result).
   Target: ≤ 20 ms for what a run pays.

Run: .venv/bin/python bench/bench_workflows.py [--rounds 3] [--steps 5] [--sandboxes 20] [--only-sandbox]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
from benchlib import ROOT, make_workspace

sys.path.insert(0, str(ROOT))

from boocode_mcp.config import WorkflowsConfig
from boocode_mcp.engine import Engine
from boocode_mcp.workflows.runtime import random_seed
from boocode_mcp.workflows.sandbox import Limits, start_sandbox

SEQUENTIAL = """
workflow = {
  name: "seq",
  description: "n steps one after the other",
  args: {type: "object", properties: {n: {type: "integer"}, nonce: {type: "string"}}},
  async run({n, nonce}) {
    const out = [];
    for (let i = 0; i < n; i++) {
      out.push((await agent("s" + i, {prompt: "write s" + i + ".txt " + nonce}).run()).patch_id);
    }
    return out;
  },
};
"""
TRIVIAL = 'workflow = {name: "t", description: "d", async run() { return 1; }};'
# No step may take long enough to count against the bench's budgets.
CONFIG = "[workflows]\ndefault_budget_tokens = 100000000\n"


def ms(values: list[float]) -> str:
    low, high = min(values) * 1000, max(values) * 1000
    return f"median {statistics.median(values) * 1000:8.2f} ms (min {low:.2f}, max {high:.2f})"


async def run_workflow(engine: Engine, args: dict[str, object]) -> float:
    started = time.perf_counter()
    view = await engine.workflows.start("seq", args)
    while view.status in ("queued", "running"):
        view = await engine.workflows.wait(view.workflow_run_id, 30)
    elapsed = time.perf_counter() - started
    assert view.status == "completed", view.error
    return elapsed


async def plain(engine: Engine, sid: str, n: int, nonce: str) -> float:
    started = time.perf_counter()
    for i in range(n):
        view = await engine.spawn(sid, f"write s{i}.txt {nonce}")
        done = await engine.wait_finished(sid, view.subagent_id)
        assert done.status == "completed", done.error
    return time.perf_counter() - started


async def steps_and_cache(repo: Path, rounds: int, steps: int) -> None:
    async with Engine.open(repo) as engine:
        sid = await engine.ensure_session()
        # Warm-up: the first agent start, the first sandbox (after which a spare is kept).
        await run_workflow(engine, {"n": 1, "nonce": "warm"})
        await plain(engine, sid, 1, "warm")

        wf: list[float] = []
        bare: list[float] = []
        for _ in range(rounds):
            wf.append(await run_workflow(engine, {"n": steps, "nonce": uuid.uuid4().hex}) / steps)
            bare.append(await plain(engine, sid, steps, uuid.uuid4().hex) / steps)
        print(f"1. per uncached step ({rounds} rounds of {steps} steps)")
        print(f"   plain spawn + wait   {ms(bare)}")
        print(f"   workflow step        {ms(wf)}")
        ratio = statistics.median(wf) / statistics.median(bare)
        print(f"   ratio {ratio:.3f}x  (target <= 1.1x)")

        first: list[float] = []
        again: list[float] = []
        for _ in range(rounds):
            args = {"n": 10, "nonce": uuid.uuid4().hex}
            first.append(await run_workflow(engine, args))
            again.append(await run_workflow(engine, args))
        print(f"2. a 10-step workflow ({rounds} rounds)")
        print(f"   first run            {ms(first)}")
        print(f"   cached re-run        {ms(again)}")
        speedup = statistics.median(first) / statistics.median(again)
        print(f"   speed-up {speedup:.1f}x  (target >= 50x)")


async def sandbox_starts(base: Path, n: int) -> None:
    cfg = WorkflowsConfig()
    limits = Limits(cfg.cpu_limit_s, cfg.memory_limit_mb)
    log_path = base / "sandbox.log"
    cold: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        sandbox = await start_sandbox(limits, log_path)
        cold.append(time.perf_counter() - started)
        await sandbox.close()

    # What a run pays with the spare the daemon keeps ready: the script to its result.
    warm: list[float] = []
    run = {"op": "run", "source": TRIVIAL, "filename": "t.js", "args": {}, "seed": random_seed("t", {})}
    for _ in range(n):
        spare = await start_sandbox(limits, log_path)
        started = time.perf_counter()
        await spare.send(run)
        done = await spare.receive()
        warm.append(time.perf_counter() - started)
        await spare.close()
        assert done is not None and done.get("type") == "done" and done.get("ok"), done
    print(f"3. sandbox start ({n} each)")
    print(f"   cold process (until ready)            {ms(cold)}")
    print(f"   a run's start (spare, load, result)   {ms(warm)}  (target <= 20 ms)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--sandboxes", type=int, default=20)
    parser.add_argument("--only-sandbox", action="store_true", help="part 3 alone")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workflows-") as tmp:
        base = Path(tmp)
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        repo = make_workspace(base, extra_config=CONFIG)
        (repo / ".boocode" / "workflows").mkdir()
        (repo / ".boocode" / "workflows" / "seq.js").write_text(SEQUENTIAL)
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        if not opts.only_sandbox:
            anyio.run(steps_and_cache, repo, opts.rounds, opts.steps)
        anyio.run(sandbox_starts, base, opts.sandboxes)


if __name__ == "__main__":
    main()
