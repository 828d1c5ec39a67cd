"""BooCode's overhead on a one-shot command-line agent turn vs running the same command directly.

For each subject, in one run and in the same worktree:
- direct: the exact command BooCode runs for a follow-up turn of the chat (same argv, environment,
  stdin and cwd: the chat's worktree), spawned and read to its end;
- BooCode: a follow-up turn on the same chat through the engine (`spawn` → `wait_finished`): the
  queue, the process in its own group, stdout parsed into events written to the store, the
  worktree diffed, the run's final status.
The two alternate turn by turn, so machine noise and a growing tool session hit both alike; the
chat's first turn (which creates the worktree) is not timed. On a machine others load, a real tool's
turn varies by seconds from one run to the next, far more than BooCode adds; so the bench also
prints BooCode's own time per turn (spawn → finished less the `prompt` phase the turn logs, in
which the tool runs), and the ratio that time gives against the direct median.
Subjects: the scripted fast program (tests/fixtures/fixture_cli.py: BooCode's fixed cost per turn
shows in full) and the real opencode-cli and qwen-cli against the scripted model server (the ratio
that matters).

    .venv/bin/python bench/bench_cli_agent.py [--agents fixture opencode qwen] [--turns 8] [--fast-turns 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_mcp import _Timings
from bench.bench_real_agents import _git_repo
from boocode_mcp import procs
from boocode_mcp.agents.cli_backend import build_argv
from boocode_mcp.config import AgentSpec
from boocode_mcp.engine import Engine
from boocode_mcp.trust import trust_workspace
from tests.model_server import ModelServer
from tests.real_agents import agent_table, cli_spec_for, ensure_installed

FIXTURE_CLI = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fixture_cli.py"
TARGET = 1.05


async def run_direct(argv: list[str], env: dict[str, str], cwd: Path, prompt: str, stdin: bool) -> float:
    """Seconds to run the command to its end, reading all its output, as a script would."""
    t0 = time.perf_counter()
    proc = await procs.spawn_in_group(
        argv, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL
    )
    _, err = await proc.communicate(prompt.encode() if stdin else None)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"direct run failed ({proc.returncode}): {err.decode()[-500:]}")
    return elapsed


# The phase of a turn's logged timings in which the agent (here: the tool's process) runs.
AGENT_PHASE = "prompt"


async def bench_subject(
    name: str, spec: AgentSpec, root: Path, turns: int, timings: _Timings
) -> tuple[list[float], list[float]]:
    repo = _git_repo(root)
    (repo / ".boocode").mkdir()
    (repo / ".boocode" / "config.toml").write_text(agent_table(name, spec))
    # The workspace config names the agent: trusted, as `boocode trust` would.
    trust_workspace(repo, user_dir=root)
    async with Engine.open(repo, user_config=root / "config.toml") as engine:
        resolved = engine.registry.resolve(name)
        sid = await engine.ensure_session()
        first = await engine.wait_finished(
            sid, (await engine.spawn(sid, "say warm-up", agent=name)).subagent_id
        )
        assert first.status == "completed" and first.worktree, first.error
        worktree = Path(first.worktree)
        directs: list[float] = []
        boocodes: list[float] = []
        # Only the timed turns' phases (the first one's worktree creation is not a turn's cost).
        with timings:
            for i in range(turns):
                prompt = f"say turn-{i}"
                # Exactly what CliBackend runs for a follow-up turn of this chat.
                items = [*spec.args, *spec.resume]
                values = {"prompt": None if spec.stdin else prompt, "worktree": str(worktree)}
                argv = build_argv(resolved.program, items, values)
                env = procs.child_env(spec.env, agent=True)

                async def boocode_turn(prompt: str = prompt, i: int = i) -> float:
                    t0 = time.perf_counter()
                    view = await engine.spawn(sid, prompt, chat_id=first.chat_id)
                    done = await engine.wait_finished(sid, view.subagent_id)
                    elapsed = time.perf_counter() - t0
                    assert done.status == "completed", done.error
                    assert f"turn-{i}" in (done.final_message or ""), done.final_message
                    return elapsed

                # Alternate which side goes first, so neither always runs on the other's warm caches.
                if i % 2:
                    boocodes.append(await boocode_turn())
                    directs.append(await run_direct(argv, env, worktree, prompt, spec.stdin))
                else:
                    directs.append(await run_direct(argv, env, worktree, prompt, spec.stdin))
                    boocodes.append(await boocode_turn())
    return directs, boocodes


def _report(label: str, directs: list[float], boocodes: list[float], timings: _Timings) -> None:
    d, b = statistics.median(directs), statistics.median(boocodes)
    # Each pair ran back to back, under the same load: their ratio is the steadier figure.
    paired = statistics.median(x / y for x, y in zip(boocodes, directs, strict=True))
    verdict = "within" if paired <= TARGET else "over"
    print(f"\n{label}  (turns: n={len(directs)}, median; load average {os.getloadavg()[0]:.1f})")
    for what, median, samples in (
        ("direct  one-shot turn in the chat's worktree", d, directs),
        ("boocode follow-up turn (spawn → finished)   ", b, boocodes),
    ):
        print(f"  {what}  {median * 1000:9.1f} ms  (min {min(samples) * 1000:.1f})")
    # On a machine others load, a turn's time is mostly the load's; the fastest turn of each side
    # is the one least disturbed, so their ratio is BooCode's own cost where the load varies a lot.
    fastest = min(boocodes) / min(directs)
    print(
        f"  ratio boocode/direct: {paired:.3f}x median of back-to-back pairs, {b / d:.3f}x of medians "
        f"(+{(b - d) * 1000:.0f} ms per turn), {fastest:.3f}x of the fastest turns; {verdict} the "
        f"{TARGET:.2f}x target"
    )
    if len(timings.turn_ms) != len(boocodes):
        logged = len(timings.turn_ms)
        print(f"  (BooCode logged the phases of {logged} of {len(boocodes)} turns; no breakdown)")
        return
    # Per turn, spawn → finished less the phase in which the tool runs: the queue, the worktree
    # check, the patch, the store writes and the wake-up of the waiter.
    own = [total - prompt / 1000 for total, prompt in zip(boocodes, timings.phases[AGENT_PHASE], strict=True)]
    phases = "; ".join(
        f"{n} {statistics.median(v):.1f}" for n, v in timings.phases.items() if n != AGENT_PHASE
    )
    print(
        f"  BooCode's own time per turn (outside the tool's run): {statistics.median(own) * 1000:.1f} ms "
        f"median (phases, ms: {phases}); (direct + own) / direct = "
        f"{(d + statistics.median(own)) / d:.3f}x"
    )


async def main_async(agents: list[str], turns: int, fast_turns: int) -> None:
    with ModelServer() as server, tempfile.TemporaryDirectory(prefix="boocode-bench-cli-") as tmp:
        root = Path(tmp)
        for agent in agents:
            if agent == "fixture":
                spec = AgentSpec(
                    protocol="cli",
                    command=sys.executable,
                    args=(str(FIXTURE_CLI), "--format", "opencode"),
                    stdin=True,
                    parser="jsonl",
                    resume=("--continue",),
                )
                timings = _Timings()
                directs, boocodes = await bench_subject(
                    "fixture-cli", spec, root / agent, fast_turns, timings
                )
                _report("scripted fast program (fixture_cli.py, JSON lines)", directs, boocodes, timings)
                continue
            binary = ensure_installed(agent)
            version = (await anyio.run_process([str(binary), "--version"])).stdout.decode().strip()
            spec = cli_spec_for(agent, binary, server.base_url, root / agent / "scratch")
            timings = _Timings()
            directs, boocodes = await bench_subject(f"{agent}-cli", spec, root / agent, turns, timings)
            _report(f"{agent}-cli {version} against the scripted model server", directs, boocodes, timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--agents",
        nargs="+",
        default=["fixture", "opencode", "qwen"],
        choices=["fixture", "opencode", "qwen"],
    )
    parser.add_argument("--turns", type=int, default=8, help="timed turns per real agent and side")
    parser.add_argument("--fast-turns", type=int, default=30, help="timed turns of the fast program")
    ns = parser.parse_args()
    anyio.run(main_async, ns.agents, ns.turns, ns.fast_turns)


if __name__ == "__main__":
    main()
