"""Benchmark: what the security measures cost, against the unguarded way measured in the same run.

- fs: `WorktreeFiles.write_text` + `read_text` of a file three directories deep (a directory handle
  per component, no symlink followed) against resolve-then-check-then-write by path (what the fs
  callbacks did before, which a symlink swapped in between check and use defeats).
- config: `AgentRegistry.resolve` through `ConfigSource` (a stat of the two config files and the
  trust record per call) against a registry over a fixed `Config`.
- frames: checking each line the agent sends is a JSON-RPC message (`frame_problem`) against
  `json.loads` alone (what the SDK's transport does).

Run: .venv/bin/python bench/bench_security.py [--reps N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from boocode_mcp.agents.acp_backend import frame_problem
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.agents.worktree_fs import WorktreeFiles
from boocode_mcp.trust import ConfigSource, trust_workspace

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fixture_agent.py"


def per_call_us(fn: Callable[[int], object], reps: int) -> float:
    """Median over 5 rounds of the mean time per call, in microseconds."""
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(reps):
            fn(i)
        rounds.append((time.perf_counter() - t0) / reps * 1e6)
    return statistics.median(rounds)


def bench_fs(root: Path, reps: int) -> dict[str, float]:
    files = WorktreeFiles(root)
    real = root.resolve()

    def guarded(i: int) -> None:
        path = str(root / "a" / "b" / "c" / f"f{i % 50}.txt")
        files.write_text(path, f"content {i}\n")
        files.read_text(path)

    def by_path(i: int) -> None:
        p = (root / "a" / "b" / "c" / f"g{i % 50}.txt").resolve()
        if not p.is_relative_to(real):
            raise AssertionError(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"content {i}\n")
        p.read_text()

    g, b = per_call_us(guarded, reps), per_call_us(by_path, reps)
    return {
        "fs guarded write+read (us)": g,
        "fs by path write+read (us)": b,
        "fs ratio guarded/by-path": g / b,
    }


def bench_config(base: Path, reps: int) -> dict[str, float]:
    ws = base / "ws"
    (ws / ".boocode").mkdir(parents=True)
    (ws / ".boocode" / "config.toml").write_text(
        f"[agents.fx]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(str(FIXTURE))}]\n"
    )
    user = base / "user" / "config.toml"
    trust_workspace(ws, user_dir=user.parent)
    source = ConfigSource(ws, user_config=user)
    live, fixed = AgentRegistry(source), AgentRegistry(source.config)
    # Past the window in which a just-written file is read again on every look (trust.RACY_S).
    time.sleep(2.1)
    lv = per_call_us(lambda _: live.resolve("fx"), reps)
    fx = per_call_us(lambda _: fixed.resolve("fx"), reps)
    return {
        "resolve, re-checked (us)": lv,
        "resolve, fixed (us)": fx,
        "resolve ratio re-checked/fixed": lv / fx,
    }


def bench_frames(reps: int) -> dict[str, float]:
    update = {"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "s", "update": {
        "sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "x" * 200}}}}  # fmt: skip
    line = json.dumps(update).encode()
    checked = per_call_us(lambda _: frame_problem(line), reps)
    parsed = per_call_us(lambda _: json.loads(line), reps)
    return {"frame checked (us)": checked, "frame parsed only (us)": parsed, "frame ratio": checked / parsed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=2000, help="calls per round (default 2000)")
    args = p.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        base = Path(tmp)
        (base / "wt").mkdir()
        results.update(bench_fs(base / "wt", args.reps))
        results.update(bench_config(base, args.reps))
    results.update(bench_frames(args.reps * 10))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.2f}")


if __name__ == "__main__":
    main()
