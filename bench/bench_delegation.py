"""Benchmark: an agent's call to BooCode's `search_memory` through the MCP server its session is
given, against the same call from an MCP host. Goal: at most 2x the host's.

One workspace with 300 memory notes and its daemon, started by a host (`boocode-mcp` on stdio,
the MCP SDK's client): the host's calls go host → `boocode-mcp` → the daemon. The fixture agent
(a real ACP agent process) makes the same call in a loop from inside its session (`mcp-time`),
timing each call itself: over HTTP straight to the daemon's loopback endpoint (an agent that
advertises HTTP MCP), and over stdio through its own `boocode-mcp` relaying to that endpoint
(one that does not). Host and agent batches alternate round by round, so load from other work on
the machine falls on both alike.

Run: .venv/bin/python bench/bench_delegation.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from benchlib import BOOCODE_MCP, FIXTURE_AGENT, ROOT, make_workspace, stop_daemon
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(ROOT))

GOAL = 2.0
QUERY = {"query": "okapi pipeline", "limit": 5}
AGENTS = {"http": "fixture", "stdio": "fixture-stdio"}


def write_notes(repo: Path, n: int) -> None:
    memory = repo / ".boocode" / "memory"
    memory.mkdir(parents=True, exist_ok=True)
    animals = ("okapi", "zebra", "heron", "lynx", "otter", "ibis")
    for i in range(n):
        (memory / f"note{i:04d}.md").write_text(
            f"# Note {i}\nThe {animals[i % len(animals)]} pipeline deploys service {i} on day {i % 7}.\n"
        )


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def host_times(client: Client, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        hits = await call(client, "search_memory", **QUERY)
        times.append((time.perf_counter() - t0) * 1000)
        assert hits["hits"], hits
    return times


async def agent_times(client: Client, agent: str, n: int, chat_id: str | None) -> tuple[list[float], str]:
    spawned = await call(
        client, "spawn_subagent", prompt=f"mcp-time {n} search_memory {json.dumps(QUERY)}", agent=agent,
        chat_id=chat_id, wait_seconds=30,
    )  # fmt: skip
    status = spawned
    while status["status"] not in ("completed", "failed", "cancelled", "interrupted"):
        status = await call(client, "subagent_status", subagent_id=spawned["subagent_id"], wait_seconds=10)
    message = status.get("final_message") or ""
    assert status["status"] == "completed" and message.startswith("times: "), status
    return [float(t) for t in message.removeprefix("times: ").split()], status["chat_id"]


def summary(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), statistics.quantiles(times, n=10)[-1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-delegation-"))
    os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
    stdio_agent = (
        f"[agents.fixture-stdio]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(FIXTURE_AGENT))}]\n"
    )
    repo = make_workspace(base, extra_config=f'env = {{ FIXTURE_MCP_HTTP = "1" }}\n{stdio_agent}')
    write_notes(repo, 300)
    params = StdioServerParameters(
        command=str(BOOCODE_MCP), args=["--workspace", str(repo)], env=dict(os.environ)
    )
    host: list[float] = []
    agents: dict[str, list[float]] = {t: [] for t in AGENTS}
    chats: dict[str, str | None] = {t: None for t in AGENTS}
    try:
        async with Client(params, mode="legacy") as client:
            # Warm: the index built, each agent started and connected to its MCP server.
            await host_times(client, 5)
            for transport, agent in AGENTS.items():
                _, chats[transport] = await agent_times(client, agent, 5, None)
            for _ in range(args.rounds):
                host += await host_times(client, args.calls)
                for transport, agent in AGENTS.items():
                    times, _ = await agent_times(client, agent, args.calls, chats[transport])
                    agents[transport] += times
    finally:
        stop_daemon(repo)
    h50, h90 = summary(host)
    print(f"search_memory over 300 notes, {len(host)} calls each (ms)")
    print(f"{'caller':<38} {'p50':>7} {'p90':>7} {'p50 / host':>11}")
    print(f"{'host (boocode-mcp stdio → daemon)':<38} {h50:>7.2f} {h90:>7.2f} {1.0:>10.2f}x")
    worst = 0.0
    for transport, times in agents.items():
        a50, a90 = summary(times)
        worst = max(worst, a50 / h50)
        label = f"agent over {transport}" + (" (direct)" if transport == "http" else " (boocode-mcp relay)")
        print(f"{label:<38} {a50:>7.2f} {a90:>7.2f} {a50 / h50:>10.2f}x")
    verdict = "within" if worst <= GOAL else "OVER"
    print(f"\nworst agent p50 {worst:.2f}x the host's: {verdict} the goal of {GOAL:.0f}x")


if __name__ == "__main__":
    anyio.run(main)
