"""The MCP front end: an `MCPServer` over one Engine, served on stdio or streamable HTTP.

The server itself holds no logic: tools/ and resources/ adapt the engine. What lives here is the
plumbing the SDK leaves to us (MCPServer registers none of it): `resources/subscribe`,
`resources/unsubscribe` and `logging/setLevel` on the handshake era, and one notifier per lifespan
that turns the engine's change callbacks into `notifications/resources/updated` for handshake-era
subscribers and into `ResourceUpdated` events on the subscription bus for 2026-07-28
`subscriptions/listen` streams.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import EmptyResult, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams

from boocode_mcp import __version__, procs
from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import BooCodeError
from boocode_mcp.http_auth import BearerTokenMiddleware, check_binding, transport_security, url_host
from boocode_mcp.procs import pid_alive
from boocode_mcp.resources import register_resources
from boocode_mcp.tools import ServerState, register_tools

if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    from boocode_mcp.engine import Engine

logger = logging.getLogger(__name__)

SERVER_INFO_FILE = "server.json"
# A handshake-era client that stops reading must not stall notifications to everyone else.
_SEND_TIMEOUT_S = 5.0

INSTRUCTIONS = """\
BooCode runs coding agents (ACP agents such as opencode, qwen, gemini, claude, codex, goose) as
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
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, _subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, _unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)
    return mcp


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

    from boocode_mcp.engine import Engine

    received: list[int] = []
    # Claim stdio first: while it is claimed fd 1 points at stderr, so nothing the engine or a
    # library prints can corrupt the protocol stream.
    async with stdio_server() as (read_stream, write_stream):
        try:
            async with Engine.open(workspace) as engine:
                server = build_server(engine)
                lowlevel = server._lowlevel_server
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


def server_info_path(workspace: Path) -> Path:
    return workspace / BOOCODE_DIR / SERVER_INFO_FILE


def _claim_server_info(workspace: Path, url: str, token: str | None) -> Path:
    path = server_info_path(workspace)
    try:
        existing = json.loads(path.read_text())
        other = int(existing["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        other = None
    if other is not None and other != os.getpid() and pid_alive(other):
        raise BooCodeError(
            f"another BooCode server (pid {other}) already serves {workspace} at {existing.get('url')}; "
            "use it, or stop it first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # The token is a credential: owner-only permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
    tmp.replace(path)
    return path


def _release_server_info(path: Path) -> None:
    with suppress(OSError, ValueError, KeyError, TypeError):
        if int(json.loads(path.read_text())["pid"]) == os.getpid():
            path.unlink()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise BooCodeError(f"cannot listen on {host}:{port}: {e.strerror}; choose another port") from e
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class _StopSignals:
    """The signal handler main_http installs: records the signal and stops a running uvicorn.

    uvicorn handles SIGTERM/SIGINT itself while it serves, then re-raises them once it has shut
    down; with the default handler that would kill the process before the engine has stopped its
    agents. This handler only records, so serve_http finishes the shutdown (or, for a signal that
    arrives while the engine starts, never starts serving). SIGHUP, which uvicorn ignores, stops
    it the same way.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.server: Any = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if self.server is not None:
            self.server.should_exit = True


async def serve_http(
    workspace: Path, host: str, port: int, token: str | None, stop: _StopSignals | None = None
) -> None:
    """Serve streamable HTTP at /mcp until SIGTERM/SIGINT/SIGHUP; the engine is shut down after."""
    import uvicorn

    from boocode_mcp.engine import Engine
    from boocode_mcp.workspace import ensure_repo

    check_binding(host, token)  # again, for callers that skip main_http
    repo = await ensure_repo(workspace)
    sock = _bind(host, port)
    url = f"http://{url_host(host)}:{sock.getsockname()[1]}/mcp"
    try:
        # Claimed before the engine starts, so a second server refuses before touching anything.
        info = _claim_server_info(repo, url, token)
        try:
            async with Engine.open(repo) as engine:
                server = build_server(engine)
                app: Any = server.streamable_http_app(transport_security=transport_security(host), host=host)
                if token:
                    app = BearerTokenMiddleware(app, token)
                config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
                uv = uvicorn.Server(config)
                if stop is not None:
                    stop.server = uv
                if stop is None or not stop.received:
                    logger.warning("BooCode MCP serving %s at %s", repo, url)
                    await uv.serve(sockets=[sock])
        finally:
            _release_server_info(info)
    finally:
        sock.close()


def main_http(workspace: Path, host: str, port: int, token: str | None) -> None:
    """`boocode serve --http HOST:PORT [--token T]`."""
    _configure_logging()
    try:
        check_binding(host, token)
    except BooCodeError as e:
        print(f"boocode serve: {e}", file=sys.stderr)
        sys.exit(2)
    stop = _StopSignals()
    for signum in procs.STOP_SIGNALS:
        signal.signal(signum, stop)
    try:
        anyio.run(serve_http, workspace, host, port, token, stop)
    except BooCodeError as e:
        print(f"boocode serve: {e}", file=sys.stderr)
        sys.exit(1)
