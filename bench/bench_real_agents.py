"""Real agents through BooCode vs the same agents driven directly over ACP, in one run.

For each agent (opencode, qwen-code, against the scripted model server):
- direct: cold start (spawn → initialize → session/new), the first turn, warm turns;
- BooCode: the first turn of a new chat through MCP `spawn_subagent` (agent spawned cold,
  worktree created, patch captured) and warm follow-ups on the same chat_id, each timed from the
  call to `completed`, over the real `boocode-mcp` stdio server;
- `boocode acp`: an editor's first prompt, sent --typing seconds after session/new (pre-warm
  starts the agent meanwhile), from prompt to end of turn.

    .venv/bin/python bench/bench_real_agents.py [--agents opencode qwen] [--warm 10]

Agents are installed into the cache (scripts/install-agents.sh) when missing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acp import text_block

from tests.model_server import ModelServer
from tests.real_agents import (
    REAL_AGENT_NAMES,
    boocode_mcp,
    direct_agent,
    ensure_installed,
    setup_for,
    write_workspace_config,
)

T = TypeVar("T")


def _git_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    env_args = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("# bench\n")
    subprocess.run(["git", *env_args, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", *env_args, "-C", str(repo), "commit", "-q", "-m", "initial"], check=True)
    return repo


async def _time(step: Awaitable[T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = await step
    return out, time.perf_counter() - t0


async def bench_direct(name: str, binary: Path, server: ModelServer, root: Path, warm: int) -> dict[str, Any]:
    repo = _git_repo(root / "direct")
    setup = setup_for(name, binary, server.base_url, root / "direct-scratch")
    mark = server.mark()
    t0 = time.perf_counter()
    m0 = time.monotonic()
    async with direct_agent(setup, repo, root / "direct.log") as agent:
        sid = (await agent.conn.new_session(cwd=str(repo), mcp_servers=[])).session_id
        ready = time.perf_counter() - t0

        async def turn(i: int) -> Any:
            resp = await agent.conn.prompt(session_id=sid, prompt=[text_block(f"say direct-{i}")])
            assert resp.stop_reason == "end_turn", resp
            return resp

        _, first = await _time(turn(0))
        warms = [(await _time(turn(i)))[1] for i in range(1, warm + 1)]
    return {
        "ready": ready,
        "first": first,
        "cold_first": ready + first,
        "first_request": _first_request(server, mark) - m0,
        "warm": warms,
    }


async def bench_boocode(
    name: str, binary: Path, server: ModelServer, root: Path, warm: int
) -> dict[str, Any]:
    repo = _git_repo(root / "boocode")
    scratch = root / "boocode-scratch"
    write_workspace_config(repo, [setup_for(name, binary, server.base_url, scratch / "agent")])
    t0 = time.perf_counter()
    async with boocode_mcp(repo, scratch, root / "boocode.log") as bc:
        connected = time.perf_counter() - t0
        mark = server.mark()
        m0 = time.monotonic()
        first_status, cold_first = await _time(bc.run("say boocode-0", agent=name))
        assert first_status["status"] == "completed", first_status
        chat = first_status["chat_id"]
        warms = []
        for i in range(1, warm + 1):
            status, elapsed = await _time(bc.run(f"say boocode-{i}", chat_id=chat))
            assert status["status"] == "completed", status
            warms.append(elapsed)
    return {
        "server_connect": connected,
        "cold_first": cold_first,
        "first_request": _first_request(server, mark) - m0,
        "warm": warms,
    }


async def bench_acp_first_prompt(
    name: str, binary: Path, server: ModelServer, root: Path, typing_s: float
) -> float:
    """An editor's first prompt through `boocode acp`, sent `typing_s` after session/new (the
    time a person takes to type it): seconds from prompt to end of turn."""
    from tests.acp_support import RecordingClient, boocode_acp

    repo = _git_repo(root / "acp")
    write_workspace_config(repo, [setup_for(name, binary, server.base_url, root / "acp-scratch" / "agent")])
    async with boocode_acp(repo, RecordingClient()) as conn:
        sid = (await conn.new_session(cwd=str(repo), mcp_servers=[])).session_id
        await anyio.sleep(typing_s)
        resp, elapsed = await _time(conn.prompt(session_id=sid, prompt=[text_block("say acp-0")]))
        assert resp.stop_reason == "end_turn", resp
    return elapsed


def _first_request(server: ModelServer, mark: int) -> float:
    """When (time.monotonic) the agent sent its first model request after `mark`."""
    return min(r.started_at for r in server.since(mark) if r.path.endswith("/chat/completions"))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


async def main_async(agents: list[str], warm: int, typing_s: float) -> None:
    with ModelServer() as server, tempfile.TemporaryDirectory(prefix="boocode-bench-") as tmp:
        root = Path(tmp)
        # Workspace configs are trusted there (write_workspace_config), not in yours; `boocode acp`
        # inherits it.
        os.environ["XDG_CONFIG_HOME"] = str(root / "xdg")
        for name in agents:
            binary = ensure_installed(name)
            version = (await anyio.run_process([str(binary), "--version"])).stdout.decode().strip()
            direct = await bench_direct(name, binary, server, root / name, warm)
            booc = await bench_boocode(name, binary, server, root / name, warm)
            acp_first = await bench_acp_first_prompt(name, binary, server, root / name, typing_s)
            d_warm = statistics.median(direct["warm"])
            b_warm = statistics.median(booc["warm"])
            load = os.getloadavg()[0]
            print(f"\n{name} {version}  (warm turns: n={warm}, median; load average {load:.1f})")
            print(f"  direct  cold start (spawn→initialize→session/new) {_ms(direct['ready'])}")
            print(f"  direct  cold start + first turn                   {_ms(direct['cold_first'])}")
            print(f"  direct  spawn → agent's first model request       {_ms(direct['first_request'])}")
            print(f"  direct  warm turn                                 {_ms(d_warm)}")
            print(f"  boocode stdio server start + MCP handshake        {_ms(booc['server_connect'])}")
            print(f"  boocode first turn of a new chat (cold agent)     {_ms(booc['cold_first'])}")
            print(f"  boocode spawn_subagent → first model request      {_ms(booc['first_request'])}")
            print(f"  boocode warm turn on the same chat_id             {_ms(b_warm)}")
            print(f"  boocode acp first prompt {typing_s:g} s after session/new {_ms(acp_first)}")
            print(
                f"  ratio boocode/direct: cold first turn {booc['cold_first'] / direct['cold_first']:.2f}x, "
                f"warm turn {b_warm / d_warm:.2f}x (+{(b_warm - d_warm) * 1000:.0f} ms), "
                f"editor's first prompt vs direct cold start + first turn "
                f"{acp_first / direct['cold_first']:.2f}x, vs the direct first turn on a ready agent "
                f"{acp_first / direct['first']:.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", nargs="+", default=list(REAL_AGENT_NAMES), choices=REAL_AGENT_NAMES)
    parser.add_argument("--warm", type=int, default=10, help="warm turns per agent and path")
    parser.add_argument(
        "--typing", type=float, default=10.0, help="seconds between session/new and the first prompt (acp)"
    )
    ns = parser.parse_args()
    anyio.run(main_async, ns.agents, ns.warm, ns.typing)


if __name__ == "__main__":
    main()
