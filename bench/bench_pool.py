"""Warm pool overhead: a prompt through AgentPool vs a bare SDK client, and cold vs warm start.

Run: .venv/bin/python bench/bench_pool.py [--cold N] [--warm N]

Both sides talk to the same fixture agent (tests/fixtures/fixture_agent.py) in the same run:
- direct: `connect_to_agent` on a process we spawn, a minimal client, `session/prompt` "hello";
- pool:   `AgentPool.get()` + `backend.prompt("hello")`, i.e. everything BooCode adds per turn
          (event mapping, sink, state callbacks, busy/cancel bookkeeping).
Cold = spawn → initialize → session/new ready (through the backend). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from acp import PROTOCOL_VERSION, connect_to_agent, text_block
from acp.interfaces import Client
from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

from boocode_mcp import procs
from boocode_mcp.agents.acp_backend import WarmAcpBackend
from boocode_mcp.agents.events import AgentEvent
from boocode_mcp.agents.permissions import policy_handler
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.config import AgentSpec, Config, PoolConfig

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fixture_agent.py"
PROMPTS = ("hello", "all")


class MinimalClient:
    """The least a client can do: count updates."""

    def __init__(self) -> None:
        self.updates = 0

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates += 1


def ms(values: list[float]) -> str:
    qs = statistics.quantiles(values, n=10, method="inclusive")
    return (
        f"median {statistics.median(values) * 1000:8.3f} ms  (p10 {qs[0] * 1000:.3f}, p90 {qs[8] * 1000:.3f})"
    )


async def warm_pair(pool: AgentPool, cwd: Path, text: str, n: int) -> tuple[list[float], list[float]]:
    """Time `text` on a direct SDK connection and through the pool, interleaved so that machine
    noise hits both sides alike."""
    proc = await procs.spawn_in_group(
        [sys.executable, str(FIXTURE)],
        cwd=cwd,
        env=procs.child_env(agent=True),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    conn = connect_to_agent(cast(Client, MinimalClient()), proc.stdin, proc.stdout)
    events: list[AgentEvent] = []
    allow = policy_handler("auto")
    try:
        await conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True
            ),
            client_info=Implementation(name="bench", version="0"),
        )
        sid = (await conn.new_session(cwd=str(cwd), mcp_servers=[])).session_id
        backend = await pool.get("bench-chat", "fx", cwd)
        for _ in range(5):
            await conn.prompt(session_id=sid, prompt=[text_block(text)])
            await backend.prompt(text, events.append, allow)
        direct, pooled = [], []
        for _ in range(n):
            t = time.perf_counter()
            await conn.prompt(session_id=sid, prompt=[text_block(text)])
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            b = await pool.get("bench-chat", "fx", cwd)
            await b.prompt(text, events.append, allow)
            pooled.append(time.perf_counter() - t)
            events.clear()
        return direct, pooled
    finally:
        await conn.close()
        await procs.terminate_group(proc)


async def cold(registry: AgentRegistry, cwd: Path, log_dir: Path, n: int) -> list[float]:
    out = []
    agent = registry.resolve("fx")
    for i in range(n):
        backend = WarmAcpBackend(chat_id=f"cold-{i}", agent=agent, cwd=cwd, log_dir=log_dir)
        t = time.perf_counter()
        await backend.ensure_session()
        out.append(time.perf_counter() - t)
        await backend.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cold", type=int, default=8, help="cold starts to time")
    parser.add_argument("--warm", type=int, default=300, help="warm prompts to time per side and prompt")
    args = parser.parse_args()
    registry = AgentRegistry(Config(agents={"fx": AgentSpec(command=sys.executable, args=(str(FIXTURE),))}))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) / "wt"
        cwd.mkdir()
        log_dir = Path(tmp) / "logs"
        print(f"fixture agent: {FIXTURE}")
        cold_s = await cold(registry, cwd, log_dir, args.cold)
        print(f"cold  spawn→initialize→session/new ({args.cold}x): {ms(cold_s)}")
        async with AgentPool(registry, PoolConfig(), log_dir=log_dir) as pool:
            for text in PROMPTS:
                direct, pooled = await warm_pair(pool, cwd, text, args.warm)
                if text == "hello":
                    warm_med = statistics.median(pooled)
                ratio = statistics.median(pooled) / statistics.median(direct)
                print(f"warm  {text!r:7} direct SDK client: {ms(direct)}")
                print(f"warm  {text!r:7} AgentPool        : {ms(pooled)}   pool/direct = {ratio:.2f}x")
        print(f"cold/warm (pool, 'hello'): {statistics.median(cold_s) / warm_med:.0f}x")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
