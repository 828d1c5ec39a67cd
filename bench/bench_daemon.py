"""Benchmark: what the daemon costs and saves a front end.

1. Start-up: `boocode-mcp` (a thin relay) answering `initialize` with the workspace's daemon
   already running, against a bare MCP SDK server (one tool, nothing else) started the same way:
   process spawn → initialize request → its response. Target: ≤ 0.2×.
2. A tool call through the relay and the daemon against the same call with the engine inside the
   stdio server's own process (`boocode-mcp --no-daemon`, how BooCode ran before the daemon) and
   against an in-memory MCP client in the benchmark's own process (no transport at all).
   Target: relay + daemon ≤ `--no-daemon` + 1 ms at the median.

`boocode run --chat` against `acpx prompt` is measured by bench_cli.py, the warm turn by
bench_mcp.py.

Run: .venv/bin/python bench/bench_daemon.py [--rounds N]
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

from benchlib import BOOCODE_MCP, make_workspace, stop_daemon
from mcp import Client, StdioServerParameters

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "b", "version": "1"},
    },
}
BARE_SERVER = """
from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
def ping() -> str:
    return "pong"


server.run()
"""


def initialize_ms(argv: list[str], cwd: Path) -> float:
    """Spawn → response to `initialize`, in milliseconds; the process is then closed (stdin EOF)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    elapsed = (time.perf_counter() - t0) * 1000
    assert json.loads(line)["id"] == 1, line
    proc.stdin.close()
    proc.wait(timeout=60)
    return elapsed


def median(samples: list[float]) -> float:
    return statistics.median(samples)


async def tool_call_ms(client: Client, rounds: int, subagent_id: str) -> list[float]:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = await client.call_tool("subagent_status", {"subagent_id": subagent_id})
        samples.append((time.perf_counter() - t0) * 1000)
        assert not r.is_error
    return samples


async def bench_tool_calls(repo: Path, rounds: int) -> dict[str, float]:
    from boocode_mcp.engine import Engine
    from boocode_mcp.mcp_server import build_server

    out: dict[str, float] = {}
    for name, extra in (("relay + daemon", []), ("--no-daemon", ["--no-daemon"])):
        params = StdioServerParameters(
            command=str(BOOCODE_MCP), args=["--workspace", str(repo), *extra], cwd=str(repo)
        )
        async with Client(params, mode="legacy") as client:
            spawned = await client.call_tool("spawn_subagent", {"prompt": "hello", "wait_seconds": 20})
            run = (spawned.structured_content or {})["subagent_id"]
            await tool_call_ms(client, 20, run)  # warm-up
            out[name] = median(await tool_call_ms(client, rounds, run))
    async with Engine.open(repo) as engine, Client(build_server(engine), mode="legacy") as client:
        await tool_call_ms(client, 20, run)
        out["in-memory client"] = median(await tool_call_ms(client, rounds, run))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="process starts per server (default 20)")
    parser.add_argument("--calls", type=int, default=300, help="tool calls per transport (default 300)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="boocode-bench-daemon-") as tmp:
        base = Path(tmp)
        # The workspace's config is trusted here, not in the user's own config directory.
        os.environ["XDG_CONFIG_HOME"] = str(base / "xdg")
        repo = make_workspace(base)
        bare = base / "bare_server.py"
        bare.write_text(BARE_SERVER)
        try:
            # The daemon starts with the first front end; everything after finds it warm.
            initialize_ms([str(BOOCODE_MCP), "--workspace", str(repo)], repo)
            relay, sdk = [], []
            for _ in range(args.rounds):  # interleaved, so load on the machine hits both alike
                relay.append(initialize_ms([str(BOOCODE_MCP), "--workspace", str(repo)], repo))
                sdk.append(initialize_ms([sys.executable, str(bare)], base))
            calls = asyncio.run(bench_tool_calls(repo, args.calls))
        finally:
            stop_daemon(repo)
    r, s = median(relay), median(sdk)
    print("1. initialize answered (spawn → response), median of", args.rounds)
    print(f"   boocode-mcp, daemon warm   {r:7.1f} ms")
    print(f"   bare MCP SDK server        {s:7.1f} ms")
    print(f"   ratio                      {r / s:7.2f}x  (target <= 0.20x)")
    print(f"2. subagent_status round trip, median of {args.calls}")
    for name, ms in calls.items():
        print(f"   {name:<26} {ms:7.2f} ms")
    extra = calls["relay + daemon"] - calls["--no-daemon"]
    print(f"   relay + daemon - --no-daemon {extra:+.2f} ms  (target <= +1 ms)")


if __name__ == "__main__":
    main()
