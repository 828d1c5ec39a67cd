"""Benchmark: BooCode's MCP front end over stdio against baselines measured in the same run.

1. spawn_subagent return latency (p50/p99) against a trivial MCP tool call: spawn must return at
   once, not wait for the agent to start or for `git worktree add`.
2. A warm follow-up turn through MCP (spawn_subagent with chat_id and wait_seconds, the fixture
   agent writing a file) against its floor: the same prompt sent straight to a warm fixture agent
   over ACP + `git diff` of a worktree + one trivial MCP call. Goal: at most 1.5x the floor. The
   turn and its floor are measured alternately, sample by sample, so that load from other work on
   the machine falls on both alike. Then the same turns in an in-process engine say where a turn's
   time goes (the phases BooCode logs for each turn, and its git processes).
3. 32 concurrent subagents on the fixture agent: all must complete; wall time reported.
4. BooCode's own memory per warm agent: server RSS delta / number of warm agents.

Run: .venv/bin/python bench/bench_mcp.py [--spawns N] [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from acp import PROTOCOL_VERSION, connect_to_agent, text_block
from acp.schema import ClientCapabilities, Implementation
from mcp import Client, StdioServerParameters

from boocode_mcp.trust import trust_workspace

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_AGENT = ROOT / "tests" / "fixtures" / "fixture_agent.py"
BOOCODE_MCP = Path(sys.executable).parent / "boocode-mcp"
TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
CONCURRENT = 32


def make_workspace(base: Path) -> Path:
    repo = base / "repo"
    repo.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    (repo / "README.md").write_text("# bench\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    (repo / ".boocode").mkdir()
    # Room for every concurrent run and every agent to stay warm, so part 3 measures concurrency
    # and part 4 counts warm agents rather than the pool's eviction.
    (repo / ".boocode" / "config.toml").write_text(
        f'default_agent = "fixture"\n[agents.fixture]\ncommand = {json.dumps(sys.executable)}\n'
        f"args = [{json.dumps(str(FIXTURE_AGENT))}]\n"
        f"[pool]\nmax_warm = {CONCURRENT + 16}\nmax_concurrent_runs = {CONCURRENT}\n"
    )
    trust_workspace(repo, base / "xdg" / "boocode")  # the server's XDG_CONFIG_HOME is base/xdg
    return repo


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def tool(client: Client, name: str, **args: Any) -> dict[str, Any]:
    r = await client.call_tool(name, args)
    if r.is_error or r.structured_content is None:
        raise SystemExit(f"{name} failed: {r.content}")
    out: dict[str, Any] = r.structured_content
    return out


async def timed_tool(client: Client, name: str, **args: Any) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    out = await tool(client, name, **args)
    return (time.perf_counter() - t0) * 1000, out


async def finish(client: Client, subagent_id: str) -> dict[str, Any]:
    with anyio.fail_after(120):
        while True:
            s = await tool(client, "subagent_status", subagent_id=subagent_id, wait_seconds=10)
            if s["status"] in TERMINAL:
                return s


class _SilentClient:
    """The ACP client side of the floor: no fs/terminal, so the fixture writes files itself."""

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        return None


class FloorAgent:
    """A warm fixture agent spoken to straight over ACP (no BooCode in between), in its own clone."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._conn: Any = None
        self._sid = ""

    async def __aenter__(self) -> FloorAgent:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FIXTURE_AGENT), cwd=str(self.cwd),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._conn = connect_to_agent(_SilentClient(), proc.stdin, proc.stdout)  # type: ignore[arg-type]
        await self._conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(),
            client_info=Implementation(name="bench", version="0"),
        )
        self._sid = (await self._conn.new_session(cwd=str(self.cwd), mcp_servers=[])).session_id
        await self.prompt_ms("warm up")
        return self

    async def prompt_ms(self, prompt: str) -> float:
        t0 = time.perf_counter()
        await self._conn.prompt(session_id=self._sid, prompt=[text_block(prompt)])
        return (time.perf_counter() - t0) * 1000

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()
        assert self._proc is not None
        self._proc.kill()
        await self._proc.wait()


def clone_of(repo: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True)
    return dest


def git_diff_ms(cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["git", "diff", "HEAD"], cwd=cwd, capture_output=True, check=True)
    return (time.perf_counter() - t0) * 1000


class _Timings(logging.Handler):
    """Collects the `timings` BooCode logs at DEBUG for each turn and each diff."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.phases: dict[str, list[float]] = collections.defaultdict(list)
        self.turns = 0
        self.diffs_reused = 0

    def emit(self, record: logging.LogRecord) -> None:
        timings = getattr(record, "timings", None)
        if not isinstance(timings, dict):
            return
        if record.name.endswith(".turn"):
            self.turns += 1
        self.diffs_reused += bool(getattr(record, "diff_reused", False))
        for phase, seconds in timings.items():
            self.phases[phase].append(seconds * 1000)


async def breakdown(base: Path, turns: int) -> tuple[float, _Timings]:
    """The same warm turns in an in-process engine, with the phases it logs; returns the median turn
    (spawn to finished status) and the collected timings. Empty on a BooCode that logs none."""
    from boocode_mcp.engine import Engine

    repo = make_workspace(base)
    # The user config beside the trust make_workspace recorded for this workspace.
    user_config = base / "xdg" / "boocode" / "config.toml"
    handler = _Timings()
    loggers = [
        logging.getLogger(n) for n in ("boocode_mcp.subagents.turn", "boocode_mcp.workspace.worktrees")
    ]
    async with Engine.open(repo, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        first = await engine.wait_finished(sid, (await engine.spawn(sid, "pid")).subagent_id)
        for lg in loggers:
            lg.setLevel(logging.DEBUG)
            lg.addHandler(handler)
        samples = []
        try:
            for i in range(turns):
                t0 = time.perf_counter()
                run = await engine.spawn(sid, f"write bench/f{i}.txt turn {i}", chat_id=first.chat_id)
                await engine.wait_finished(sid, run.subagent_id)
                samples.append((time.perf_counter() - t0) * 1000)
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
    return statistics.median(samples), handler


async def main(spawns: int, turns: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_workspace(Path(tmp))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", tmp),
               "XDG_CONFIG_HOME": str(Path(tmp) / "xdg")}  # fmt: skip
        params = StdioServerParameters(
            command=str(BOOCODE_MCP), args=["--workspace", str(repo)], env=env, cwd=str(repo)
        )
        t_start = time.perf_counter()
        async with Client(params, mode="legacy") as client:
            # A warm chat first: its agent pid leads to the server pid (the agent's parent).
            first = await tool(client, "spawn_subagent", prompt="pid", wait_seconds=30)
            first = await finish(client, first["subagent_id"]) if first["status"] not in TERMINAL else first
            chat = first["chat_id"]
            server_pid = parent_pid(int(first["final_message"]))
            rss_one_agent = rss_kib(server_pid)

            # 1. spawn latency against a trivial call (status of a finished run: one traced read).
            trivial = [
                (await timed_tool(client, "subagent_status", subagent_id=first["subagent_id"]))[0]
                for _ in range(spawns)
            ]
            # Idle: each run finishes before the next spawn, so the figure is spawn's own cost;
            # cold_ms is what it would cost if spawn waited for the agent start and worktree add.
            spawn_ms, cold_ms = [], []
            for i in range(spawns):
                t0 = time.perf_counter()
                out = await tool(client, "spawn_subagent", prompt=f"note {i}")
                spawn_ms.append((time.perf_counter() - t0) * 1000)
                s = await finish(client, out["subagent_id"])
                cold_ms.append((time.perf_counter() - t0) * 1000)
                if s["status"] != "completed":
                    raise SystemExit(f"spawned run ended {s['status']}: {s['error']}")
            # Burst: back to back while earlier runs start their agents (2 cores shared with them).
            burst_ms, spawned = [], []
            for i in range(spawns):
                ms, out = await timed_tool(client, "spawn_subagent", prompt=f"burst {i}")
                burst_ms.append(ms)
                spawned.append(out["subagent_id"])
            for sid in spawned:
                await finish(client, sid)

            # 2. warm follow-up turns on the warm chat, the agent writing a file each time, each one
            # followed by its floor: the same prompt straight to a warm agent over ACP (in a clone of
            # the repository), git diff there, and a trivial MCP call.
            clone = clone_of(repo, Path(tmp) / "floor")
            turn_ms, floor_acp, floor_diff, floor_mcp, paired = [], [], [], [], []
            async with FloorAgent(clone) as floor_agent:
                for i in range(turns):
                    ms, out = await timed_tool(
                        client, "spawn_subagent", prompt=f"write bench/f{i}.txt turn {i}", chat_id=chat,
                        wait_seconds=30,
                    )  # fmt: skip
                    if out["status"] != "completed":
                        raise SystemExit(f"warm turn ended {out['status']}")
                    acp = await floor_agent.prompt_ms(f"write bench/f{i}.txt turn {i}")
                    diff = git_diff_ms(clone)
                    mcp = (await timed_tool(client, "subagent_status", subagent_id=first["subagent_id"]))[0]
                    turn_ms.append(ms)
                    floor_acp.append(acp)
                    floor_diff.append(diff)
                    floor_mcp.append(mcp)
                    paired.append(ms / (acp + diff + mcp))

            # 3. 32 concurrent subagents, each on its own new chat (cold agent + worktree each).
            t0 = time.perf_counter()
            batch = [
                (await tool(client, "spawn_subagent", prompt=f"write c{i}.txt concurrent {i}"))["subagent_id"]
                for i in range(CONCURRENT)
            ]
            finals = [await finish(client, sid) for sid in batch]
            concurrent_s = time.perf_counter() - t0
            completed = sum(1 for f in finals if f["status"] == "completed")

            # 4. RSS per warm agent: every chat so far keeps its agent warm (max_warm is large).
            warm = [
                s
                for s in json.loads((await client.read_resource("agent-sessions://list")).contents[0].text)[  # type: ignore[union-attr]
                    "agent_sessions"
                ]
                if s["pid"] and s["status"] in ("idle", "active")
            ]
            rss_all = rss_kib(server_pid)

        in_process_ms, timings = await breakdown(Path(tmp) / "in-process", turns)
        total_s = time.perf_counter() - t_start

    p50_trivial, p50_spawn = statistics.median(trivial), statistics.median(spawn_ms)
    p50_acp, p50_diff, p50_mcp = (statistics.median(x) for x in (floor_acp, floor_diff, floor_mcp))
    floor = p50_acp + p50_diff + p50_mcp
    p50_turn = statistics.median(turn_ms)
    extra_agents = max(1, len(warm) - 1)
    print(f"BooCode MCP over stdio, fixture agent ({total_s:.1f} s in all)")
    print(
        f"1. spawn_subagent return: p50 {p50_spawn:.1f} ms, p99 {pct(spawn_ms, 0.99):.1f} ms | trivial "
        f"call p50 {p50_trivial:.1f} ms, p99 {pct(trivial, 0.99):.1f} ms | ratio p50 "
        f"{p50_spawn / p50_trivial:.2f}x ({spawns} spawns, server otherwise idle)\n"
        f"   new chat spawn -> completed (agent start + worktree add + turn): p50 "
        f"{statistics.median(cold_ms):.0f} ms; spawn in a burst of {spawns} new chats: p50 "
        f"{statistics.median(burst_ms):.1f} ms, p99 {pct(burst_ms, 0.99):.1f} ms"
    )
    print(
        f"2. warm follow-up turn via MCP: p50 {p50_turn:.1f} ms, p90 {pct(turn_ms, 0.9):.1f} ms, "
        f"p99 {pct(turn_ms, 0.99):.1f} ms | floor {floor:.1f} ms (ACP prompt {p50_acp:.1f} + git diff "
        f"{p50_diff:.1f} + MCP call {p50_mcp:.1f}) | ratio {p50_turn / floor:.2f}x, paired p50 "
        f"{statistics.median(paired):.2f}x (goal <= 1.5x; {turns} turns, alternating with the floor)"
    )
    print_breakdown(p50_turn, in_process_ms, p50_mcp, timings)
    print(f"3. {CONCURRENT} concurrent subagents: {completed}/{CONCURRENT} completed in {concurrent_s:.2f} s")
    print(
        f"4. server RSS {rss_one_agent / 1024:.1f} MiB with 1 warm agent, {rss_all / 1024:.1f} MiB with "
        f"{len(warm)}: {(rss_all - rss_one_agent) / extra_agents:.0f} KiB per additional warm agent"
    )
    if completed != CONCURRENT:
        raise SystemExit(1)


def print_breakdown(p50_turn: float, in_process_ms: float, p50_mcp: float, timings: _Timings) -> None:
    print(
        f"   where a warm turn's time goes: in-process engine turn p50 {in_process_ms:.1f} ms; the MCP "
        f"call around it {p50_turn - in_process_ms:.1f} ms (a trivial call: {p50_mcp:.1f})"
    )
    if not timings.turns:
        print("   (this BooCode logs no turn timings)")
        return
    phases = "; ".join(f"{name} {statistics.median(v):.2f}" for name, v in timings.phases.items())
    print(f"   phases, p50 ms: {phases}")
    print(
        f"   git per turn: one `git add` into the kept index; `git diff` only when the staged entries "
        f"changed ({timings.diffs_reused} of {timings.turns} turns reused the last diff)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spawns", type=int, default=20)
    ap.add_argument("--turns", type=int, default=30)
    a = ap.parse_args()
    anyio.run(main, a.spawns, a.turns)
