"""BooCode's MCP server for the agents it runs: a loopback HTTP endpoint that every agent session
reaches with its own credential (see `boocode_mcp.delegation`).

Agents are offered `search_memory`, `list_patches` and `subagent_status`; an agent whose config
entry says `delegate = true` also `spawn_subagent` (its runs become the calling run's children) and
`cancel_subagent` (those children only). Never `apply_pending` or `run_command`: applying work to
the workspace and running commands stay with the host and the user. A request without a valid
credential is answered 401; which tool set answers a request is decided per request, from the
credential's agent and the configuration in force, so a `delegate` switched off takes effect at
once.

`open_engine` is how the front ends that own an engine (the daemon, `--no-daemon` commands) open
it: the engine with this endpoint attached, started on first use (the first agent session).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp.server import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from boocode_mcp import __version__
from boocode_mcp.errors import BooCodeError
from boocode_mcp.http_auth import transport_security
from boocode_mcp.mcp_server import bind_listener, embedded_uvicorn, lowlevel_server
from boocode_mcp.tools import ServerState, register_agent_tools

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine

LOOPBACK = "127.0.0.1"
PATH = "/mcp"
# A shutdown waits this long for calls still being answered, then closes their connections.
GRACEFUL_SHUTDOWN_S = 2

AGENT_INSTRUCTIONS = """\
BooCode runs you as a subagent in a git worktree of its workspace. Through these tools you can
search BooCode's memory (notes and earlier subagents' transcripts), see the workspace's patches
and the status of its subagent runs (including yours and your children's). If spawn_subagent is
offered, you may hand parts of your task to other coding agents: each runs as your child in its own
worktree; follow it with subagent_status (wait_seconds up to 30).
"""


def build_agent_server(engine: Engine, *, delegate: bool) -> MCPServer[ServerState]:
    """The MCP server agents reach from inside their runs; `delegate` adds spawn and cancel."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        yield ServerState(engine, for_agents=True)

    mcp: MCPServer[ServerState] = MCPServer(
        "boocode",
        title="BooCode",
        version=__version__,
        instructions=AGENT_INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )
    register_agent_tools(mcp, delegate=delegate)
    return mcp


class _Gateway:
    """The endpoint's ASGI app: the credential checked on every request, which routes it to the
    server with the tools its agent is offered."""

    def __init__(
        self, engine: Engine, plain: StreamableHTTPSessionManager, delegating: StreamableHTTPSessionManager
    ) -> None:
        self._engine = engine
        self._plain = plain
        self._delegating = delegating

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != PATH:
            await _answer(send, 404, {"error": "not_found", "detail": f"BooCode's agent endpoint is {PATH}"})
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        grant = self._engine.agent_gateway.lookup(token.strip() if scheme.lower() == "bearer" else None)
        if grant is None:
            await _answer(
                send,
                401,
                {
                    "error": "unauthorized",
                    "detail": "send the Authorization header of the agent session BooCode gave this "
                    "server to; a session's credential ends with the session",
                },
                {"www-authenticate": 'Bearer realm="boocode"'},
            )
            return
        manager = self._delegating if self._delegates(grant.agent) else self._plain
        await manager.handle_request(scope, receive, send)

    def _delegates(self, agent: str) -> bool:
        try:
            return self._engine.registry.spec(agent).delegate
        except BooCodeError:
            return False  # the agent's entry is gone or broken: offer the least


async def _lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol, with nothing to start: the session managers run outside."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def stdio_front_end(workspace: Path) -> tuple[str, list[str]]:
    """How an agent starts the stdio front end: this installation's `boocode-mcp` (the agent
    bridge, given its environment), or the module through this interpreter."""
    script = Path(sys.executable).parent / "boocode-mcp"
    if script.is_file():
        return str(script), ["--workspace", str(workspace)]
    return sys.executable, ["-m", "boocode_mcp.agent_bridge"]


class AgentMcpEndpoint:
    """The endpoint of one engine, started in its owner's task group on first use."""

    def __init__(self, engine: Engine, tg: TaskGroup) -> None:
        self._engine = engine
        self._tg = tg
        self._url: str | None = None
        self._lock = anyio.Lock()

    async def url(self) -> str:
        async with self._lock:
            if self._url is None:
                self._url = await self._tg.start(self._serve)
            return self._url

    def stdio_command(self) -> tuple[str, list[str]]:
        return stdio_front_end(self._engine.workspace)

    async def _serve(self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        security = transport_security(LOOPBACK)
        plain, delegating = (
            StreamableHTTPSessionManager(
                app=lowlevel_server(build_agent_server(self._engine, delegate=delegate)),
                json_response=True,
                security_settings=security,
            )
            for delegate in (False, True)
        )
        sock = bind_listener(LOOPBACK, 0)
        url = f"http://{LOOPBACK}:{sock.getsockname()[1]}{PATH}"
        uv = embedded_uvicorn(
            _Gateway(self._engine, plain, delegating), graceful_shutdown_s=GRACEFUL_SHUTDOWN_S
        )
        stopped = anyio.Event()

        async def run() -> None:
            # Shielded: it ends by its own graceful shutdown (should_exit), never mid-request.
            try:
                with anyio.CancelScope(shield=True):
                    await uv.serve([sock])
            finally:
                stopped.set()

        try:
            async with plain.run(), delegating.run(), anyio.create_task_group() as tg:
                tg.start_soon(run)
                task_status.started(url)
                try:
                    await anyio.sleep_forever()
                finally:
                    uv.should_exit = True
                    with anyio.CancelScope(shield=True):
                        await stopped.wait()
        finally:
            sock.close()


@asynccontextmanager
async def open_engine(workspace: Path, **options: Any) -> AsyncIterator[Engine]:
    """`Engine.open(workspace, **options)` with BooCode's MCP endpoint for agents attached: every
    agent session the engine starts is given it. Leaving it revokes every credential and stops
    the endpoint before the engine closes."""
    from boocode_mcp.engine import Engine

    failure: Exception | None = None
    async with Engine.open(workspace, **options) as engine, anyio.create_task_group() as tg:
        engine.agent_gateway.attach(AgentMcpEndpoint(engine, tg))
        try:
            yield engine
        except Exception as e:
            # Re-raised outside the task group, so callers see their own exception.
            failure = e
        finally:
            engine.agent_gateway.detach()
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
