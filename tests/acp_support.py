"""Driving `boocode acp` as an editor would, for the ACP front-end tests: the SDK's client side over
real pipes to a `boocode acp` child process, with the fixture agent as the backend."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from acp import PROTOCOL_VERSION, connect_to_agent, text_block
from acp.schema import (
    AgentMessageChunk,
    AllowedOutcome,
    AvailableCommandsUpdate,
    ClientCapabilities,
    DeniedOutcome,
    FileSystemCapabilities,
    Implementation,
    RequestPermissionResponse,
)

from tests.conftest import write_config

BOOCODE = Path(sys.executable).parent / "boocode"
ACPX = Path.home() / ".cache" / "boocode-agents" / "acpx" / "node_modules" / ".bin" / "acpx"
TURN_TIMEOUT = 60


def configure(repo: Path, *, env: str = "{}") -> Path:
    # policy "deny": a permission that reaches the editor proves the ACP front end asked it.
    write_config(repo, policy="deny", agent_extra=f"env = {env}")
    return repo


def text_of(update: Any) -> str:
    content = getattr(update, "content", None)
    return getattr(content, "text", "") or ""


class RecordingClient:
    """An editor: records every update in arrival order and answers permission requests."""

    def __init__(self, allow: bool = True) -> None:
        self.updates: list[Any] = []
        self.permission_requests: list[Any] = []
        self.allow = allow
        self.first_chunk = anyio.Event()
        # What `boocode acp` answered to initialize.
        self.agent_capabilities: Any = None

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates.append(update)
        if isinstance(update, AgentMessageChunk) and text_of(update).startswith("chunk"):
            self.first_chunk.set()

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[Any], **kw: Any
    ) -> RequestPermissionResponse:
        self.permission_requests.append((tool_call, options))
        wanted = ("allow_once", "allow_always") if self.allow else ("reject_once", "reject_always")
        for option in options:
            if option.kind in wanted:
                return RequestPermissionResponse(
                    outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
                )
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))

    def messages(self) -> str:
        return "".join(text_of(u) for u in self.updates if isinstance(u, AgentMessageChunk))

    def commands(self) -> list[str]:
        last = [u for u in self.updates if isinstance(u, AvailableCommandsUpdate)][-1]
        return [c.name for c in last.available_commands]


@contextlib.asynccontextmanager
async def boocode_acp(
    workspace: Path, client: RecordingClient, *extra: str, workspace_arg: bool = True
) -> AsyncIterator[Any]:
    """`boocode acp --workspace WS` as a child process, connected through the SDK's client side."""
    log = (workspace.parent / "acp-stderr.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        str(BOOCODE),
        "acp",
        *(["--workspace", str(workspace)] if workspace_arg else []),
        *extra,
        cwd=workspace.parent,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    conn = connect_to_agent(client, proc.stdin, proc.stdout)  # type: ignore[arg-type]
    try:
        init = await conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True
            ),
            client_info=Implementation(name="test-editor", version="1"),
        )
        assert init.agent_capabilities is not None and init.agent_capabilities.load_session
        client.agent_capabilities = init.agent_capabilities
        yield conn
    finally:
        # Closing stdin is how an editor ends the agent: BooCode must shut down on EOF. The
        # connection closes first, so its tasks do not outlive it.
        await conn.close()
        proc.stdin.close()
        with anyio.fail_after(30):
            code = await proc.wait()
        log.close()
        assert code == 0, (workspace.parent / "acp-stderr.log").read_text()[-3000:]


async def prompt(conn: Any, session_id: str, text: str) -> Any:
    with anyio.fail_after(TURN_TIMEOUT):
        return await conn.prompt(session_id=session_id, prompt=[text_block(text)])


async def interrupt_slow_turn(
    conn: Any, client: RecordingClient, sid: str, interrupt: Callable[[], Awaitable[object]]
) -> Any:
    """A slow turn, `interrupt` called once its first chunk reached the editor: the turn's response."""
    result: dict[str, Any] = {}

    async def run() -> None:
        result["resp"] = await prompt(conn, sid, "slow 500 20")

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(TURN_TIMEOUT):
            await client.first_chunk.wait()
        await interrupt()
    return result["resp"]


async def new_session(conn: Any, workspace: Path) -> str:
    sid: str = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
    return sid


def warm_agents(workspace: Path, session_id: str) -> dict[str, int]:
    """{agent: pid} of the session's running backend agents, as BooCode recorded them."""
    db = sqlite3.connect(workspace / ".boocode" / "boocode.db")
    try:
        rows = db.execute(
            "SELECT a.agent, a.pid FROM agent_sessions a JOIN chats c ON c.id = a.chat_id"
            " WHERE c.session_id = ? AND a.pid IS NOT NULL AND a.status != 'closed'",
            (session_id,),
        ).fetchall()
    finally:
        db.close()
    return {str(agent): int(pid) for agent, pid in rows}


async def warmed(workspace: Path, session_id: str, agent: str = "fixture") -> int:
    """The pid of the session's warm `agent`, once it has started (no prompt needed)."""
    with anyio.fail_after(TURN_TIMEOUT):
        while agent not in (pids := warm_agents(workspace, session_id)):  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return pids[agent]
