"""Benchmark: BooCode's command line and ACP front end against driving the agent directly.

1. A scripted follow-up: `boocode run --chat C` (the workspace's warm daemon) against `acpx prompt`
   (acpx's own warm queue owner) on the same fixture agent, the same prompts.
2. First-byte latency: prompt sent → first agent_message_chunk, through `boocode acp` and with the
   fixture agent driven directly over ACP; cold (new process + session), warm (same session), and
   the first prompt of a session sent a second after session/new (as typed by a person).

Run: .venv/bin/python bench/bench_cli.py [--rounds N]
acpx is looked up in ~/.cache/boocode-agents/acpx
(npm install --prefix ~/.cache/boocode-agents/acpx acpx@0.19.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from acp import PROTOCOL_VERSION, connect_to_agent, text_block
from acp.schema import AgentMessageChunk, ClientCapabilities, FileSystemCapabilities, Implementation
from benchlib import BOOCODE, FIXTURE_AGENT, make_workspace, stop_daemon

TYPING_S = 1.0
ACPX = Path.home() / ".cache" / "boocode-agents" / "acpx" / "node_modules" / ".bin" / "acpx"


def timed(argv: list[str], **kw: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return (time.perf_counter() - t0) * 1000, done


def bench_follow_ups(base: Path, rounds: int) -> dict[str, float]:
    repo = make_workspace(base / "cli")
    try:
        _, first = timed([str(BOOCODE), "run", "hello", "--json", "--workspace", str(repo)])
        chat = json.loads(first.stdout)["chat_id"]
        boo = [
            timed(
                [str(BOOCODE), "run", f"follow-up {i}", "--chat", chat, "--json", "--workspace", str(repo)]
            )[0]
            for i in range(rounds)
        ]
    finally:
        stop_daemon(repo)
    out = {"boocode run --chat (ms)": statistics.median(boo)}
    if not ACPX.exists():
        print(f"acpx not installed at {ACPX}; skipping the acpx side", file=sys.stderr)
        return out
    arepo = make_workspace(base / "acpx")
    env = {**os.environ, "HOME": str(base / "acpx-home")}
    agent = f"{sys.executable} {FIXTURE_AGENT}"
    common = [str(ACPX), "--cwd", str(arepo), "--approve-all", "--ttl", "60", "--agent", agent]
    timed([*common, "sessions", "new"], env=env)
    timed([*common, "prompt", "hello"], env=env)
    acpx = [timed([*common, "prompt", f"follow-up {i}"], env=env)[0] for i in range(rounds)]
    timed([*common, "sessions", "close"], env=env)
    out["acpx prompt (ms)"] = statistics.median(acpx)
    out["ratio boocode/acpx"] = out["boocode run --chat (ms)"] / out["acpx prompt (ms)"]
    return out


class FirstChunk:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        if isinstance(update, AgentMessageChunk):
            self.event.set()

    async def request_permission(self, *a: Any, **kw: Any) -> Any:
        raise RuntimeError("not used")


async def first_byte(
    argv: list[str], cwd: Path, warm_rounds: int, typing_s: float = 0.0
) -> tuple[float, list[float]]:
    """(cold ms: spawn → initialize → session/new → first chunk; warm ms: prompt → first chunk).

    With `typing_s`, the first prompt goes `typing_s` after session/new, as a user types it, and
    its figure is prompt → first chunk.
    """
    t0 = time.perf_counter()
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=pipe, stdout=pipe, stderr=asyncio.subprocess.DEVNULL, start_new_session=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    client = FirstChunk()
    conn = connect_to_agent(client, proc.stdin, proc.stdout)  # type: ignore[arg-type]
    await conn.initialize(
        protocol_version=PROTOCOL_VERSION,
        client_capabilities=ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=True, write_text_file=True)
        ),
        client_info=Implementation(name="bench", version="1"),
    )
    sid = (await conn.new_session(cwd=str(cwd), mcp_servers=[])).session_id

    async def one(text: str, start: float) -> float:
        client.event = asyncio.Event()
        task = asyncio.ensure_future(conn.prompt(session_id=sid, prompt=[text_block(text)]))
        await client.event.wait()
        ms = (time.perf_counter() - start) * 1000
        await task
        return ms

    if typing_s:
        await asyncio.sleep(typing_s)
        t0 = time.perf_counter()
    cold = await one("hello", t0)
    warm = [await one(f"again {i}", time.perf_counter()) for i in range(warm_rounds)]
    await conn.close()
    proc.stdin.close()
    await asyncio.wait_for(proc.wait(), 30)
    return cold, warm


async def bench_first_byte(base: Path, rounds: int, cold_rounds: int) -> dict[str, float]:
    cold: dict[str, list[float]] = {"boo": [], "direct": []}
    warm: dict[str, list[float]] = {"boo": [], "direct": []}
    typed: dict[str, list[float]] = {"boo": [], "direct": []}
    for i in range(cold_rounds):
        # Interleaved, so load on the machine hits both sides alike.
        repo = make_workspace(base / f"acp{i}")
        direct_dir = base / f"direct{i}"
        direct_dir.mkdir(parents=True)
        for side, argv, cwd in (
            ("boo", [str(BOOCODE), "acp", "--workspace", str(repo)], repo),
            ("direct", [sys.executable, str(FIXTURE_AGENT)], direct_dir),
        ):
            c, w = await first_byte(argv, cwd, rounds)
            cold[side].append(c)
            warm[side].extend(w)
            # A new session whose first prompt comes as a user would type it, a second later:
            # BooCode pre-warms the chat's worktree and agent at session/new.
            t, _ = await first_byte(argv, cwd, 0, typing_s=TYPING_S)
            typed[side].append(t)
        stop_daemon(repo)
    med = {
        f"{k}_{side}": statistics.median(v[side])
        for k, v in (("cold", cold), ("warm", warm), ("typed", typed))
        for side in v
    }
    return {
        "boocode acp cold first byte (ms)": med["cold_boo"],
        "direct agent cold first byte (ms)": med["cold_direct"],
        "ratio cold": med["cold_boo"] / med["cold_direct"],
        f"boocode acp first prompt {TYPING_S:g} s after session/new (ms)": med["typed_boo"],
        f"direct agent first prompt {TYPING_S:g} s after session/new (ms)": med["typed_direct"],
        "ratio first prompt": med["typed_boo"] / med["typed_direct"],
        "boocode acp warm first byte (ms)": med["warm_boo"],
        "direct agent warm first byte (ms)": med["warm_direct"],
        "ratio warm": med["warm_boo"] / med["warm_direct"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rounds", type=int, default=10, help="follow-ups / warm prompts per side (default 10)")
    p.add_argument("--cold-rounds", type=int, default=3, help="cold starts per side (default 3)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        base = Path(tmp)
        # The workspaces' configs are trusted here, not in the user's own config directory.
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        results = bench_follow_ups(base, args.rounds)
        results.update(asyncio.run(bench_first_byte(base, args.rounds, args.cold_rounds)))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.2f}")


if __name__ == "__main__":
    main()
