"""Helpers shared by the MCP end-to-end tests (this module holds no tests of its own).

Every test drives the real server through the SDK's `Client` against the real Engine, the scripted
fixture agent (tests/fixtures/fixture_agent.py) and a real git repository.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters, types
from mcp.server import MCPServer

from boocode_mcp.engine import Engine
from boocode_mcp.mcp_server import build_server
from boocode_mcp.trust import trust_workspace
from tests.conftest import write_config

BIN_DIR = Path(sys.executable).parent
BOOCODE_MCP = BIN_DIR / "boocode-mcp"
BOOCODE = BIN_DIR / "boocode"
TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})
TOOL_NAMES = {
    "spawn_subagent",
    "subagent_status",
    "cancel_subagent",
    "respond_permission",
    "search_memory",
    "run_command",
    "list_patches",
    "apply_pending",
    "retry_subagent",
    "list_agents",
    "usage_stats",
    "list_workflows",
    "run_workflow",
    "workflow_status",
    "cancel_workflow",
}


def configure(repo: Path, *, policy: str = "auto", permission_timeout_s: float = 300) -> Path:
    """Point the workspace at the fixture agent (and at "ghost", an agent that is not installed)."""
    ghost = '[agents.ghost]\ncommand = "/nonexistent/ghost-acp-agent"\n'
    write_config(repo, policy=policy, timeout_s=permission_timeout_s, extra=ghost)
    # The server's user config directory is the workspace's own (see user_config): trusted there too.
    trust_workspace(repo, user_config(repo).parent)
    return repo


def user_config(repo: Path) -> Path:
    """A user config of the test's own (no such file), where the servers find configure's trust."""
    return repo.parent / "xdg-config" / "boocode" / "config.toml"


@asynccontextmanager
async def inprocess_server(repo: Path) -> AsyncIterator[MCPServer[Any]]:
    async with Engine.open(repo, user_config=user_config(repo)) as engine:
        yield build_server(engine)


def server_env(repo: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(repo.parent)),
        # The console script reads ~/.config/boocode/config.toml; keep the user's out of tests.
        "XDG_CONFIG_HOME": str(user_config(repo).parent.parent),
    }


def stdio_params(repo: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(BOOCODE_MCP), args=["--workspace", str(repo)], env=server_env(repo), cwd=str(repo)
    )


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; returns its structured content."""
    r = await client.call_tool(tool, args)
    text = r.content[0].text if r.content and hasattr(r.content[0], "text") else ""
    assert not r.is_error, f"{tool}({args}) failed: {text}"
    out: dict[str, Any] | None = r.structured_content
    assert out is not None
    return out


async def call_error(client: Client, tool: str, **args: Any) -> str:
    """Call a tool that must be refused; returns the error text the host sees."""
    r = await client.call_tool(tool, args)
    assert r.is_error, f"{tool}({args}) unexpectedly succeeded: {r.structured_content}"
    texts = [c.text for c in r.content if hasattr(c, "text")]
    return "\n".join(texts)


async def wait_for(
    client: Client,
    subagent_id: str,
    statuses: set[str] | frozenset[str],
    *,
    within: float = 60,
    **extra: Any,
) -> dict[str, Any]:
    """Poll subagent_status (its own bounded wait) until the run reaches one of `statuses`."""
    with anyio.fail_after(within):
        s = await call(client, "subagent_status", subagent_id=subagent_id, **extra)
        while s["status"] not in statuses:
            assert s["status"] not in TERMINAL, (
                f"run ended {s['status']} ({s.get('error')}), wanted {statuses}"
            )
            s = await call(client, "subagent_status", subagent_id=subagent_id, wait_seconds=5, **extra)
        return s


async def run_turn(client: Client, prompt: str, **args: Any) -> dict[str, Any]:
    """Spawn a run and wait until it finishes; returns its final status."""
    spawned = await call(client, "spawn_subagent", prompt=prompt, wait_seconds=20, **args)
    extra = {"session_id": args["session_id"]} if "session_id" in args else {}
    return await wait_for(client, spawned["subagent_id"], TERMINAL, **extra)


def process_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie awaiting its reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


async def read_json(client: Client, uri: str) -> Any:
    r = await client.read_resource(uri)
    text = r.contents[0].text  # type: ignore[union-attr]
    return json.loads(text)


class ResourceUpdates:
    """A client's `message_handler` recording the URIs of `resources/updated` notifications;
    `changed` is set at the first."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.changed = anyio.Event()

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(str(message.params.uri))
            self.changed.set()
