"""The MCP front end: an `MCPServer` over one Engine, served on stdio or streamable HTTP.

The server itself holds no logic: tools/ and resources/ adapt the engine. What lives here is the
plumbing the SDK leaves to us: `resources/subscribe`, `resources/unsubscribe` and
`logging/setLevel` on the handshake era, and one notifier per lifespan that turns the engine's
change callbacks into `notifications/resources/updated` for handshake-era subscribers and into
`ResourceUpdated` events on the subscription bus for 2026-07-28 `subscriptions/listen` streams.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import EmptyResult, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams

from boocode_mcp import __version__, procs
from boocode_mcp.errors import BooCodeError, ConfigError
from boocode_mcp.http_auth import BearerTokenMiddleware, check_binding, transport_security, url_host
from boocode_mcp.resources import register_resources
from boocode_mcp.tools import ServerState, register_tools

if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    from boocode_mcp.engine import Engine

logger = logging.getLogger(__name__)

# A handshake-era client that stops reading must not stall notifications to everyone else.
_SEND_TIMEOUT_S = 5.0

INSTRUCTIONS = """\
BooCode runs coding agents (ACP agents such as opencode, qwen, gemini, claude, codex, goose, and
the one-shot command modes opencode-cli, qwen-cli, gemini-cli, codex-cli, claude-cli) as
background subagents, each in its own git worktree of this workspace.
- spawn_subagent starts one and returns at once; poll subagent_status with wait_seconds (<= 30).
- Pass chat_id to continue a conversation on the same warm agent.
- When a run waits in awaiting_permission, answer with respond_permission.
- Every turn's changes become a patch: list_patches to review, apply_pending to apply
  (all or nothing; conflicts leave the workspace untouched).
"""


class _BusOwner:
    """Which lifespan publishes to the shared subscription bus, so each change is published once
    even when several in-process connections share one server."""

    def __init__(self) -> None:
        self.owner: object | None = None


class _Notifier:
    """Turns engine change callbacks (synchronous, possibly bursty) into notifications.

    Changes are coalesced by URI: a resource that changed five times before the pump ran is
    announced once, which is what `resources/updated` means (read it again).
    """

    def __init__(self, state: ServerState, bus: InMemorySubscriptionBus, owner: _BusOwner) -> None:
        self._state = state
        self._bus = bus
        self._owner = owner
        self._pending: dict[str, None] = {}
        self._wake = anyio.Event()

    def changed(self, uri: str) -> None:
        self._pending[uri] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            uris = list(self._pending)
            self._pending.clear()
            for uri in uris:
                await self._deliver(uri)

    def release(self) -> None:
        if self._owner.owner is self:
            self._owner.owner = None

    async def _deliver(self, uri: str) -> None:
        if self._owner.owner is None:
            self._owner.owner = self
        if self._owner.owner is self:
            await self._bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._state.subscriptions.get(uri, ())):
            try:
                with anyio.fail_after(_SEND_TIMEOUT_S):
                    await session.send_resource_updated(uri)
            except Exception:
                # The connection is gone or stuck: forget it rather than fail every later change.
                logger.info("dropping resource subscriber of %s: it no longer accepts notifications", uri)
                _forget(self._state, session)


def _forget(state: ServerState, session: ServerSession) -> None:
    for sessions in state.subscriptions.values():
        sessions.discard(session)


async def _subscribe(
    ctx: ServerRequestContext[ServerState, Any], params: SubscribeRequestParams
) -> EmptyResult:
    # The session is captured here so background code can notify after this request has ended.
    ctx.lifespan_context.subscriptions.setdefault(str(params.uri), set()).add(ctx.session)
    return EmptyResult()


async def _unsubscribe(
    ctx: ServerRequestContext[ServerState, Any], params: UnsubscribeRequestParams
) -> EmptyResult:
    sessions = ctx.lifespan_context.subscriptions.get(str(params.uri))
    if sessions is not None:
        sessions.discard(ctx.session)
    return EmptyResult()


async def _set_level(
    ctx: ServerRequestContext[ServerState, Any], params: SetLevelRequestParams
) -> EmptyResult:
    # BooCode sends no log notifications (its log goes to stderr), so every level is already
    # honoured; answering keeps hosts that set one from seeing an error.
    return EmptyResult()


def lowlevel_server(server: MCPServer[ServerState]) -> Any:
    """The SDK's low-level server under an MCPServer. MCPServer exposes it only as a private
    attribute, yet it is the only way to register `resources/subscribe`, `resources/unsubscribe`
    and `logging/setLevel` and to serve a connection over our own streams (the daemon socket);
    every use goes through here so an SDK change breaks one place (pyproject caps mcp below 3)."""
    return server._lowlevel_server


def build_server(engine: Engine) -> MCPServer[ServerState]:
    """The BooCode MCP server over an open engine (the caller owns the engine's lifetime).

    Each lifespan (one per stdio or in-process connection; one per process on HTTP) gets its own
    ServerState: its default BooCode session, its HTTP session map, its legacy subscribers.
    """
    bus = InMemorySubscriptionBus()
    owner = _BusOwner()

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        state = ServerState(engine)
        notifier = _Notifier(state, bus, owner)
        async with anyio.create_task_group() as tg:
            unlisten = engine.add_listener(notifier.changed)
            tg.start_soon(notifier.run)
            try:
                yield state
            finally:
                unlisten()
                notifier.release()
                tg.cancel_scope.cancel()

    mcp: MCPServer[ServerState] = MCPServer(
        "boocode",
        title="BooCode",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        log_level="WARNING",
    )
    register_tools(mcp)
    register_resources(mcp, engine)
    # MCPServer registers none of these; registering them is also what makes the
    # handshake-era capabilities say resources.subscribe=true and logging={}. The modern era
    # refuses these methods at its boundary and uses subscriptions/listen instead.
    lowlevel = lowlevel_server(mcp)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
    return mcp


# A connection whose client has closed its side still gets the answers to what it asked; a
# request's own bounds (wait_seconds <= 30, run_command <= 50 s) keep this from mattering.
_EOF_DRAIN_S = 120.0


async def serve_connection(
    server: MCPServer[ServerState], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one MCP connection of newline-delimited JSON-RPC on a daemon socket (what a
    `boocode-mcp` front end relays from its host), in whichever protocol era the client opens.

    When the client closes its side, every request it has sent is still answered before the
    connection ends: a script may write its requests and close stdin at once.
    """
    import mcp_types
    from mcp.shared.message import SessionMessage

    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
    unanswered: set[str | int] = set()
    answered = anyio.Event()

    async def read_client() -> None:
        nonlocal answered
        async with read_send:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:
                    await read_send.send(exc)
                    continue
                if isinstance(message, mcp_types.JSONRPCRequest):
                    unanswered.add(message.id)
                await read_send.send(SessionMessage(message))
            with anyio.move_on_after(_EOF_DRAIN_S):
                while unanswered:
                    await answered.wait()
                    answered = anyio.Event()

    async def write_client() -> None:
        async with write_recv:
            async for session_message in write_recv:
                message = session_message.message
                if isinstance(message, mcp_types.JSONRPCResponse | mcp_types.JSONRPCError):
                    unanswered.discard(message.id)
                    answered.set()
                data = message.model_dump_json(by_alias=True, exclude_unset=True)
                writer.write(data.encode() + b"\n")
                await writer.drain()

    lowlevel = lowlevel_server(server)
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_client)
        tg.start_soon(write_client)
        await lowlevel.run(read_recv, write_send, lowlevel.create_initialization_options())
        tg.cancel_scope.cancel()


def _configure_logging() -> None:
    # stdout carries the protocol on stdio; every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("BOOCODE_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def serve_stdio(workspace: Path) -> None:
    """Serve MCP on stdin/stdout until EOF or a signal, then shut the engine down.

    After a signal or a failure the process exits from here: stdin's reader thread is blocked in
    read() and nothing can wake it, so leaving through the SDK would hang until the host closes
    the pipe.
    """
    from mcp.server.stdio import stdio_server

    from boocode_mcp.agent_mcp import open_engine

    received: list[int] = []
    # Claim stdio first: while it is claimed fd 1 points at stderr, so nothing the engine or a
    # library prints can corrupt the protocol stream.
    async with stdio_server() as (read_stream, write_stream):
        try:
            async with open_engine(workspace) as engine:
                server = build_server(engine)
                lowlevel = lowlevel_server(server)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(procs.cancel_on_signals, tg.cancel_scope, received)
                    await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
                    tg.cancel_scope.cancel()
        except BooCodeError as e:
            # E.g. not a git repository: say so and leave now (see the docstring for why now).
            print(f"boocode-mcp: {e}", file=sys.stderr)
            _exit_now(1)
        except Exception:
            logger.exception("the BooCode MCP server failed")
            _exit_now(1)
        if received:
            # The engine has shut down (its agent groups are killed); nothing is left to do.
            logger.info("stopped by signal %d", received[0])
            _exit_now(0)


def _exit_now(code: int) -> NoReturn:
    sys.stderr.flush()
    os._exit(code)


def main_stdio(workspace: Path) -> None:
    """`boocode-mcp`: the MCP server on stdio for `workspace`."""
    _configure_logging()
    anyio.run(serve_stdio, workspace)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on HOST:PORT (port 0: a free one), not inherited by children."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP named, not left 0: accepted sockets inherit it, and asyncio turns Nagle off
    # (TCP_NODELAY) only on sockets that say they are TCP. With Nagle on, every answer on a
    # kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise BooCodeError(f"cannot listen on {host}:{port}: {e.strerror}; choose another port") from e
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def embedded_uvicorn(app: Any, *, graceful_shutdown_s: int | None = None) -> Any:
    """A uvicorn server that leaves signals alone: the process that embeds it (the daemon, or
    `serve --http --no-daemon`) decides what a signal stops, and must stop its agents first.
    `graceful_shutdown_s` bounds how long a shutdown waits for open responses to finish."""
    import uvicorn

    class Embedded(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Embedded(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=graceful_shutdown_s,
        )
    )


async def serve_http_listener(
    engine: Engine,
    host: str,
    port: int,
    token: str | None,
    stopped: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the engine as streamable HTTP MCP at /mcp on HOST:PORT until `stopped` is set; the
    URL is handed over through `task_status` once the socket listens. Off loopback a token is
    required and every request must carry it; on loopback Host and Origin are checked."""
    check_binding(host, token)
    sock = bind_listener(host, port)
    url = f"http://{url_host(host)}:{sock.getsockname()[1]}/mcp"
    try:
        server = build_server(engine)
        app: Any = server.streamable_http_app(transport_security=transport_security(host), host=host)
        if token:
            app = BearerTokenMiddleware(app, token)
        uv = embedded_uvicorn(app)
        async with anyio.create_task_group() as tg:
            tg.start_soon(uv.serve, [sock])
            logger.warning("MCP over HTTP for %s at %s", engine.workspace, url)
            task_status.started(url)
            await stopped.wait()
            uv.should_exit = True
    finally:
        sock.close()


async def serve_http(workspace: Path, host: str, port: int, token: str | None) -> None:
    """`serve --http --no-daemon`: an engine of this process's own, served over HTTP until
    SIGTERM/SIGINT/SIGHUP; the engine (and its agents) stop after."""
    from boocode_mcp.agent_mcp import open_engine

    check_binding(host, token)
    stopped = anyio.Event()

    async def on_signals() -> None:
        with anyio.open_signal_receiver(*procs.STOP_SIGNALS) as signals:
            async for _ in signals:
                stopped.set()
                return

    async with open_engine(workspace) as engine, anyio.create_task_group() as tg:
        tg.start_soon(on_signals)
        url = await tg.start(serve_http_listener, engine, host, port, token, stopped)
        print(f"boocode: MCP serving {engine.workspace} at {url} (no daemon)", file=sys.stderr, flush=True)
        await stopped.wait()
        tg.cancel_scope.cancel()


def main_http(workspace: Path, host: str, port: int, token: str | None) -> None:
    """`boocode serve --http HOST:PORT [--token T] --no-daemon`."""
    _configure_logging()
    try:
        anyio.run(serve_http, workspace, host, port, token)
    except BooCodeError as e:
        print(f"boocode serve: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, ConfigError) else 1)
