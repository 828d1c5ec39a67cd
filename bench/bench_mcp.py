"""Benchmark: BooCode's MCP front end over stdio against baselines measured in the same run.

The MCP server is what a host starts: `boocode-mcp`, a relay to the workspace's daemon (started on
first use), which runs the engine; `--no-daemon` measures the engine inside the stdio server's own
process instead (how BooCode ran before the daemon).

1. spawn_subagent return latency (p50/p99) against a trivial MCP tool call: spawn must return at
   once, not wait for the agent to start or for `git worktree add`.
2. A warm follow-up turn through MCP (spawn_subagent with chat_id and wait_seconds, the fixture
   agent writing a file) against its floor: the same prompt sent straight to a warm fixture agent
   over ACP + `git diff` of a worktree + one trivial MCP call. Goal: at most 1.5x the floor (aim
   1.2x). The turn, its floor and the same turn in an engine in this process (whose phases say
   where a turn's time goes: BooCode logs them for each turn and each diff) are measured
   alternately, sample by sample, so that load from other work on the machine falls on all alike.
   Then a turn's diff, after one more file changed and after nothing changed, is timed as a turn
   makes it (libgit2 staging in this process, and the sections of the text files touched written
   there too: no git process) against two ways of doing it with git processes only, alternately:
   `git add -A` into a private index kept between turns + `git diff --cached`, and (BooCode before)
   `git add -A` into a copy of a prepared index of the base + `git diff --cached`.
3. 32 concurrent subagents on the fixture agent: all must complete; wall time reported.
4. BooCode's own memory per warm agent: the engine's process's RSS delta / number of warm agents.

Run: .venv/bin/python bench/bench_mcp.py [--spawns N] [--turns N] [--no-daemon]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from acp import PROTOCOL_VERSION, connect_to_agent, text_block
from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation
from benchlib import BOOCODE_MCP, FIXTURE_AGENT, make_workspace, stop_daemon
from mcp import Client, StdioServerParameters

TERMINAL = {"completed", "failed", "cancelled", "interrupted"}
CONCURRENT = 32
# Room for every concurrent run and every agent to stay warm, so part 3 measures concurrency and
# part 4 counts warm agents rather than the pool's eviction.
POOL = f"[pool]\nmax_warm = {CONCURRENT + 16}\nmax_concurrent_runs = {CONCURRENT}\n"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


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


class _WritingClient(_SilentClient):
    """A client that takes the agent's file writes (fs/write_text_file), as BooCode does, with a
    plain write: the same exchange as a turn through BooCode, minus BooCode."""

    async def write_text_file(self, session_id: str, path: str, content: str, **kw: Any) -> None:
        # On the event loop, as BooCode writes a small file.
        _write(Path(path), content)


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


class FloorAgent:
    """A warm fixture agent spoken to straight over ACP (no BooCode in between), in its own clone."""

    def __init__(self, cwd: Path, *, fs: bool = False) -> None:
        self.cwd = cwd
        self._fs = fs
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
        client = _WritingClient() if self._fs else _SilentClient()
        self._conn = connect_to_agent(client, proc.stdin, proc.stdout)  # type: ignore[arg-type]
        await self._conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(fs=FileSystemCapabilities(write_text_file=self._fs)),
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

    LOGGERS = ("boocode_mcp.subagents.turn", "boocode_mcp.workspace.worktrees")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.phases: dict[str, list[float]] = collections.defaultdict(list)
        # Each turn's phases together: from a worker taking the run to the run released.
        self.turn_ms: list[float] = []
        self.diffs = self.diffs_reused = self.diffs_limited = self.diffs_written = 0

    def emit(self, record: logging.LogRecord) -> None:
        timings = getattr(record, "timings", None)
        if not isinstance(timings, dict):
            return
        if record.name.endswith(".turn"):
            self.turn_ms.append(sum(timings.values()) * 1000)
        else:
            self.diffs += 1
            self.diffs_reused += bool(getattr(record, "diff_reused", False))
            self.diffs_limited += getattr(record, "diffed_paths", None) is not None
            self.diffs_written += bool(getattr(record, "sections_written", False))
        for phase, seconds in timings.items():
            self.phases[phase].append(seconds * 1000)

    def __enter__(self) -> _Timings:
        for name in self.LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG)
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


class InProcess:
    """The same warm turns on an engine in this process (its own workspace and chat)."""

    def __init__(self, engine: Any, sid: str, chat_id: str) -> None:
        self.engine, self.sid, self.chat_id = engine, sid, chat_id
        self.timings = _Timings()
        # What `spawn` took (the run's row written and queued) before the turn started.
        self.spawn_ms: list[float] = []

    async def turn_ms(self, prompt: str) -> float:
        with self.timings:
            t0 = time.perf_counter()
            run = await self.engine.spawn(self.sid, prompt, chat_id=self.chat_id)
            self.spawn_ms.append((time.perf_counter() - t0) * 1000)
            await self.engine.wait_finished(self.sid, run.subagent_id)
            return (time.perf_counter() - t0) * 1000


@contextlib.asynccontextmanager
async def in_process(base: Path) -> AsyncIterator[InProcess]:
    """An engine in this process on a workspace of its own, with a warm chat."""
    from boocode_mcp.engine import Engine

    repo = make_workspace(base, extra_config=POOL)
    user_config = Path(os.environ["XDG_CONFIG_HOME"]) / "boocode" / "config.toml"
    async with Engine.open(repo, user_config=user_config) as engine:
        sid = await engine.ensure_session()
        first = await engine.wait_finished(sid, (await engine.spawn(sid, "pid")).subagent_id)
        yield InProcess(engine, sid, first.chat_id)


# --- a turn's diff, three ways -----------------------------------------------------------------

_DIFF = ("diff", "--cached", "--binary", "-M", "--no-ext-diff", "--no-textconv")


async def diff_ways(repo: Path, chat_id: str, scratch: Path, samples: int) -> dict[str, list[float]]:
    """A turn's diff on a chat's worktree, one more file changed (`changed`) and then nothing
    (`unchanged`), each timed three ways, alternately (ms):

    - `now`: as a turn makes it (a kept `DiffIndex`: libgit2 staging, `git diff` of the paths touched);
    - `kept`: `git add -A` into a private index kept between turns, then `git diff --cached` unless
      the index did not change (its checksum, the file's last 20 bytes, is the same);
    - `before`: `git add -A` into a copy of an index of the base prepared ahead (with the checkout's
      stat data), then `git diff --cached`, unless the entries are those of the last diff.
    """
    from boocode_mcp.workspace import capture_head, chat_worktree
    from boocode_mcp.workspace.worktrees import in_memory_root

    tree = await chat_worktree(repo, chat_id)
    base = await capture_head(tree)
    memory = in_memory_root(scratch)
    memory.mkdir(parents=True)
    try:
        return await _time_ways(tree, base, memory, samples)
    finally:
        shutil.rmtree(memory)


async def _time_ways(tree: Any, base: str, memory: Path, samples: int) -> dict[str, list[float]]:
    from boocode_mcp.workspace import DiffIndex
    from boocode_mcp.workspace.git import run_git

    now = DiffIndex(tree, memory / "now")
    kept_index, prepared, work = memory / "kept-index", memory / "base-index", memory / "work-index"
    for index in (kept_index, prepared):
        shutil.copy2(tree.index_file, index)
        await run_git(tree, "read-tree", "-m", base, env={"GIT_INDEX_FILE": str(index)})
    last: dict[str, bytes] = {}

    async def kept() -> None:
        env = {"GIT_INDEX_FILE": str(kept_index)}
        await run_git(tree, "add", "-A", "--", ".", env=env)
        checksum = kept_index.read_bytes()[-20:]
        if last.get("kept") != checksum:
            await run_git(tree, *_DIFF, base, "--", env=env)
            last["kept"] = checksum

    async def before() -> None:
        shutil.copy2(prepared, work)
        env = {"GIT_INDEX_FILE": str(work)}
        await run_git(tree, "add", "-A", "--", ".", env=env)
        entries = (await run_git(tree, "ls-files", "-s", env=env)).stdout
        if last.get("before") != entries:
            await run_git(tree, *_DIFF, base, "--", env=env)
            last["before"] = entries

    ways: dict[str, Callable[[], Awaitable[Any]]] = {
        "now": lambda: now.changes(base),
        "kept": kept,
        "before": before,
    }
    for way in ways.values():
        await way()
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        (tree.work_tree / "bench" / f"diff{i}.txt").write_text(f"diff {i}\n")
        for state in ("changed", "unchanged"):
            for name, way in ways.items():
                t0 = time.perf_counter()
                await way()
                times[f"{state} {name}"].append((time.perf_counter() - t0) * 1000)
    now.discard()
    return times


# --- the run -----------------------------------------------------------------------------------


async def main(spawns: int, turns: int, no_daemon: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # Trust and user config in a scratch directory, never the user's own.
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        repo = make_workspace(base / "mcp", extra_config=POOL)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", tmp),
               "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}  # fmt: skip
        args = ["--workspace", str(repo), *(["--no-daemon"] if no_daemon else [])]
        params = StdioServerParameters(command=str(BOOCODE_MCP), args=args, env=env, cwd=str(repo))
        try:
            await _measure(base, repo, params, spawns, turns, no_daemon)
        finally:
            stop_daemon(repo)


async def _measure(
    base: Path, repo: Path, params: StdioServerParameters, spawns: int, turns: int, no_daemon: bool
) -> None:
    t_start = time.perf_counter()
    async with Client(params, mode="legacy") as client:
        # A warm chat first: its agent pid leads to the engine's process (the agent's parent).
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
        # followed by its floor (the same prompt straight to a warm agent over ACP in a clone of
        # the repository, git diff there, and a trivial MCP call) and by the same turn in an
        # engine in this process.
        clone = clone_of(repo, base / "floor")
        writing_clone = clone_of(repo, base / "floor-fs")
        turn_ms, in_process_ms, paired, acp_fs = [], [], [], []
        floor: dict[str, list[float]] = collections.defaultdict(list)
        async with (
            FloorAgent(clone) as floor_agent,
            FloorAgent(writing_clone, fs=True) as writing_agent,
            in_process(base / "in-process") as local,
        ):
            for i in range(turns):
                prompt = f"write bench/f{i}.txt turn {i}"
                ms, out = await timed_tool(
                    client, "spawn_subagent", prompt=prompt, chat_id=chat, wait_seconds=30
                )
                if out["status"] != "completed":
                    raise SystemExit(f"warm turn ended {out['status']}")
                acp = await floor_agent.prompt_ms(prompt)
                acp_fs.append(await writing_agent.prompt_ms(prompt))
                diff = git_diff_ms(clone)
                mcp = (await timed_tool(client, "subagent_status", subagent_id=first["subagent_id"]))[0]
                in_process_ms.append(await local.turn_ms(prompt))
                turn_ms.append(ms)
                for part, value in (("acp", acp), ("diff", diff), ("mcp", mcp)):
                    floor[part].append(value)
                paired.append(ms / (acp + diff + mcp))
            diffs = await diff_ways(local.engine.workspace, local.chat_id, base / "diffs", turns)

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
        listing = json.loads((await client.read_resource("agent-sessions://list")).contents[0].text)  # type: ignore[union-attr]
        warm = [s for s in listing["agent_sessions"] if s["pid"] and s["status"] in ("idle", "active")]
        rss_all = rss_kib(server_pid)
    total_s = time.perf_counter() - t_start

    where = "stdio server's own process (--no-daemon)" if no_daemon else "relay (boocode-mcp) -> daemon"
    print(f"BooCode MCP over stdio, {where}, fixture agent ({total_s:.1f} s in all)")
    print(
        f"1. spawn_subagent return: p50 {p50(spawn_ms):.1f} ms, p99 {pct(spawn_ms, 0.99):.1f} ms | trivial "
        f"call p50 {p50(trivial):.1f} ms, p99 {pct(trivial, 0.99):.1f} ms | ratio p50 "
        f"{p50(spawn_ms) / p50(trivial):.2f}x ({spawns} spawns, server otherwise idle)\n"
        f"   new chat spawn -> completed (agent start + worktree add + turn): p50 "
        f"{p50(cold_ms):.0f} ms; spawn in a burst of {spawns} new chats: p50 "
        f"{p50(burst_ms):.1f} ms, p99 {pct(burst_ms, 0.99):.1f} ms"
    )
    floor_ms = sum(p50(v) for v in floor.values())
    print(
        f"2. warm follow-up turn via MCP: p50 {p50(turn_ms):.1f} ms, p90 {pct(turn_ms, 0.9):.1f} ms, "
        f"p99 {pct(turn_ms, 0.99):.1f} ms | floor {floor_ms:.1f} ms (ACP prompt {p50(floor['acp']):.1f} + "
        f"git diff {p50(floor['diff']):.1f} + MCP call {p50(floor['mcp']):.1f}) | ratio "
        f"{p50(turn_ms) / floor_ms:.2f}x, paired p50 {p50(paired):.2f}x (goal <= 1.5x, aim 1.2x; {turns} "
        "turns, alternating with the floor)"
    )
    fs_floor = floor_ms - p50(floor["acp"]) + p50(acp_fs)
    print(
        f"   the floor's ACP prompt with the agent's file write sent to the client, as an agent writes "
        f"through BooCode: {p50(acp_fs):.1f} ms; that floor {fs_floor:.1f} ms, ratio "
        f"{p50(turn_ms) / fs_floor:.2f}x"
    )
    around = "the MCP server" if no_daemon else "MCP, relay and daemon"
    print_breakdown(
        around, p50(turn_ms), p50(in_process_ms), p50(local.spawn_ms), floor, local.timings, diffs
    )
    print(f"3. {CONCURRENT} concurrent subagents: {completed}/{CONCURRENT} completed in {concurrent_s:.2f} s")
    print(
        f"4. engine process RSS {rss_one_agent / 1024:.1f} MiB with 1 warm agent, {rss_all / 1024:.1f} MiB "
        f"with {len(warm)}: {(rss_all - rss_one_agent) / max(1, len(warm) - 1):.0f} KiB per additional "
        "warm agent"
    )
    if completed != CONCURRENT:
        raise SystemExit(1)


def print_breakdown(
    around: str,
    turn: float,
    in_process: float,
    spawn: float,
    floor: dict[str, list[float]],
    timings: _Timings,
    diffs: dict[str, list[float]],
) -> None:
    print(
        f"   where a warm turn's time goes (p50 ms): {around} around the engine "
        f"{turn - in_process:.1f} (a trivial MCP call: {p50(floor['mcp']):.1f}); the same turn on an "
        f"engine in this process {in_process:.1f}:"
    )
    if not timings.turn_ms:
        print("   (this BooCode logs no turn timings)")
        return
    worked = p50(timings.turn_ms)
    print(
        f"     spawn (run row written, queued) {spawn:.2f}; a worker's turn {worked:.2f}; hand-offs "
        f"(queue to worker, final status to the waiter) {in_process - spawn - worked:.2f}"
    )
    phases = "; ".join(f"{name} {p50(v):.2f}" for name, v in timings.phases.items())
    print(f"     the turn's phases and its diff's: {phases}")
    print(
        f"     {timings.diffs} diffs for {len(timings.turn_ms)} turns: {timings.diffs_reused} the last diff "
        f"reused, {timings.diffs_written} the sections of the paths the turn touched written in-process "
        f"(neither runs a git process), {timings.diffs_limited - timings.diffs_written} one git diff of "
        "only those paths"
    )
    print("   a turn's diff (p50 ms)       now   kept index: git add + git diff   before: base index copy + "
          "git add + git diff")  # fmt: skip
    for state in ("changed", "unchanged"):
        now, kept, before = (p50(diffs[f"{state} {w}"]) for w in ("now", "kept", "before"))
        label = "one more file changed" if state == "changed" else "nothing changed"
        print(f"   {label:<26} {now:7.2f}   {kept:7.2f} ({kept / now:4.1f}x)                 "
              f"{before:7.2f} ({before / now:4.1f}x)")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spawns", type=int, default=20)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--no-daemon", action="store_true", help="the engine in the stdio server's process")
    a = ap.parse_args()
    anyio.run(main, a.spawns, a.turns, a.no_daemon)
