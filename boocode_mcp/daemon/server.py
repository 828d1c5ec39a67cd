"""The per-workspace daemon: the one process that owns a workspace's engine.

It opens the engine (agent pool, runner, store), listens on the workspace's private unix socket
and serves every front end that connects — MCP relays (`boocode-mcp`), ACP relays (`boocode acp`),
the CLI's API and control requests — until it is stopped, is idle for `[daemon] idle_exit_s`
with no front end connected and nothing queued or running, or its workspace or database
disappears. Stopping closes the engine: live runs read `interrupted`, every agent's process
group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import math
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from boocode_mcp import __version__, procs
from boocode_mcp.daemon import api
from boocode_mcp.daemon.wire import KINDS, PROTOCOL, DaemonError, DaemonPaths
from boocode_mcp.errors import BooCodeError, InvalidRequestError

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine
    from boocode_mcp.ui import UiServer

logger = logging.getLogger(__name__)

# MCP and ACP lines can be large (whole files in a tool call's diff).
LINE_LIMIT = 64 * 1024 * 1024
HELLO_TIMEOUT_S = 10.0
# How often the daemon checks that its workspace, database and socket are still there.
WATCH_INTERVAL_S = 1.0


class Daemon:
    """Serves one engine to every front end on the workspace's socket."""

    def __init__(self, engine: Engine, paths: DaemonPaths, *, idle_exit_s: float) -> None:
        self.engine = engine
        self.paths = paths
        self.idle_exit_s = idle_exit_s
        self.started_at = time.time()
        self.front_ends = 0
        self.http_listeners = 0
        self._last_active = time.monotonic()
        self._stop = anyio.Event()
        self.stop_reason: str | None = None
        self._mcp: Any = None
        self._tg: TaskGroup | None = None
        self._socket_inode: int | None = None
        # The web page (`boocode ui`): started on first request, then lives as long as we do.
        self._ui: UiServer | None = None
        self._ui_lock = anyio.Lock()

    # -- lifetime ----------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        if not self._stop.is_set():
            logger.warning("stopping: %s", reason)
            self.stop_reason = reason
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def serve(self, ready: Callable[[], None]) -> None:
        """Listen and serve until stopped; the socket is gone before this returns."""
        from boocode_mcp.mcp_server import build_server

        self._mcp = build_server(self.engine)
        accepted_send, accepted_recv = anyio.create_memory_object_stream[
            tuple[asyncio.StreamReader, asyncio.StreamWriter]
        ](math.inf)

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # asyncio calls this in a task of its own; the connection is served by a task of
            # ours, in our task group, so that stopping the daemon ends it.
            accepted_send.send_nowait((reader, writer))

        path = os.fspath(self.paths.socket)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a killed daemon's socket; we hold the pid lock, so it is not live
        listener = await asyncio.start_unix_server(on_connect, path=path, limit=LINE_LIMIT)
        os.chmod(path, 0o600)
        self._socket_inode = os.stat(path).st_ino
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._accept, accepted_recv)
                tg.start_soon(self._watch_idle)
                tg.start_soon(self._watch_workspace)
                tg.start_soon(self._watch_signals)
                self._write_info()
                ready()
                logger.warning("BooCode daemon %s serving %s on %s", __version__, self.paths.workspace, path)
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            listener.close()
            self._release_socket()
            with contextlib.suppress(FileNotFoundError):
                self.paths.info.unlink()

    def _release_socket(self) -> None:
        # Only our own socket file: a daemon started after we stopped listening may own the path.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.paths.socket).st_ino == self._socket_inode:
                os.unlink(self.paths.socket)

    def _write_info(self) -> None:
        info = {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "socket": os.fspath(self.paths.socket),
            "workspace": os.fspath(self.paths.workspace),
        }
        tmp = self.paths.info.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.paths.info)

    # -- watchers ----------------------------------------------------------------------------

    def _connected(self) -> int:
        """Front ends connected: socket connections, and open web pages (each holds a stream)."""
        return self.front_ends + (self._ui.open_streams if self._ui is not None else 0)

    def _busy(self) -> bool:
        return self._connected() > 0 or self.http_listeners > 0 or self.engine.live_run_count() > 0

    async def _watch_idle(self) -> None:
        step = max(0.05, min(self.idle_exit_s / 4, 5.0))
        while True:
            await anyio.sleep(step)
            if self._busy():
                self._last_active = time.monotonic()
            elif time.monotonic() - self._last_active >= self.idle_exit_s:
                self.stop(f"idle for {self.idle_exit_s:g}s with no front end and nothing running")
                return

    async def _watch_workspace(self) -> None:
        """Stop when the workspace, its database or our socket is gone: nobody can reach us, and
        the agents we hold would otherwise outlive their workspace indefinitely."""
        db = self.paths.boocode / "boocode.db"
        while True:
            await anyio.sleep(WATCH_INTERVAL_S)
            if not self.paths.workspace.is_dir():
                self.stop(f"the workspace {self.paths.workspace} is gone")
            elif self.engine.db.dialect == "sqlite" and not db.exists():
                self.stop(f"the database {db} is gone")
            else:
                try:
                    inode = os.stat(self.paths.socket).st_ino
                except FileNotFoundError:
                    inode = None
                if inode != self._socket_inode:
                    self.stop(f"the socket {self.paths.socket} was removed or replaced")
            if self.stopping:
                return

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(*procs.STOP_SIGNALS) as signals:
            async for signum in signals:
                self.stop(f"signal {signum}")
                return

    # -- connections -------------------------------------------------------------------------

    async def _accept(
        self, accepted: anyio.abc.ObjectReceiveStream[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    ) -> None:
        assert self._tg is not None
        async with accepted:
            async for reader, writer in accepted:
                self._tg.start_soon(self._connection, reader, writer)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counted = False
        try:
            refusal = _peer_refusal(writer)
            if refusal is not None:
                logger.warning("refused a connection: %s", refusal)
                return
            with anyio.fail_after(HELLO_TIMEOUT_S):
                line = await reader.readline()
            hello = _parse_hello(line)
            if isinstance(hello, str):
                await _reply(writer, {"ok": False, "reason": "refused", "error": hello})
                return
            kind = hello["kind"]
            if self.stopping:
                await _reply(
                    writer,
                    {
                        "ok": False,
                        "reason": "stopping",
                        "pid": os.getpid(),
                        "error": "the daemon is stopping",
                    },
                )
                return
            if hello.get("version") != __version__ and kind != "control":
                await _reply(
                    writer,
                    {
                        "ok": False,
                        "reason": "version",
                        "version": __version__,
                        "pid": os.getpid(),
                        "busy": self._busy(),
                        "error": f"this daemon is BooCode {__version__}, "
                        f"the front end {hello.get('version')}",
                    },
                )
                return
            await _reply(writer, {"ok": True, "pid": os.getpid(), "version": __version__})
            if kind != "control":
                counted = True
                self.front_ends += 1
            options = hello.get("options") or {}
            await self._serve_kind(kind, options, reader, writer)
        except TimeoutError:
            logger.info("a connection sent no hello within %ss", HELLO_TIMEOUT_S)
        except (ConnectionError, asyncio.IncompleteReadError, BrokenPipeError):
            logger.debug("a front end went away")
        except Exception:
            logger.exception("a front-end connection failed")
        finally:
            if counted:
                self.front_ends -= 1
            self._last_active = time.monotonic()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_kind(
        self, kind: str, options: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if kind == "mcp":
            from boocode_mcp.mcp_server import serve_connection

            await serve_connection(self._mcp, reader, writer)
        elif kind == "acp":
            from boocode_mcp.acp_server import serve_acp_connection

            agent = options.get("agent")
            await serve_acp_connection(
                self.engine, reader, writer, agent=agent if isinstance(agent, str) else None
            )
        elif kind == "api":
            session = options.get("session")
            caller = api.connection_caller(self.engine, session if isinstance(session, str) else None)

            async def handle(method: str, params: dict[str, Any]) -> dict[str, Any]:
                return await api.dispatch(caller, method, params)

            await api.serve_lines(reader, writer, handle)
        else:
            await self._serve_control(reader, writer)

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """`status` and `stop` (what `boocode daemon` asks, answered across versions),
        `http_listen` (`boocode serve --http`): an HTTP listener that lives as long as the
        connection that asked for it, and `ui` (`boocode ui`): the web page's address, its server
        started on first request and kept for the daemon's life."""
        stopped = anyio.Event()

        async with anyio.create_task_group() as listeners:

            async def control(method: str, params: dict[str, Any]) -> dict[str, Any]:
                if method == "status":
                    return {"result": self.status()}
                if method == "stop":
                    self.stop("asked to stop")
                    return {"result": {"stopping": True, "pid": os.getpid()}}
                if method == "http_listen":
                    url = await listeners.start(self._http_listener, params, stopped)
                    return {"result": {"url": url}}
                if method == "ui":
                    return {"result": {"url": await self._ui_url()}}
                raise InvalidRequestError(
                    f"unknown control method {method!r}; known: status, stop, http_listen, ui"
                )

            try:
                await api.serve_lines(reader, writer, control)
            finally:
                stopped.set()

    async def _http_listener(
        self,
        params: dict[str, Any],
        stopped: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        from boocode_mcp.mcp_server import serve_http_listener

        host, port, token = params.get("host"), params.get("port"), params.get("token")
        if not isinstance(host, str) or not isinstance(port, int) or not isinstance(token, str | None):
            raise InvalidRequestError(
                "http_listen takes host (string), port (integer) and token (string or null)"
            )
        self.http_listeners += 1
        try:
            await serve_http_listener(self.engine, host, port, token, stopped, task_status=task_status)
        finally:
            self.http_listeners -= 1

    async def _ui_url(self) -> str:
        """The web page's login URL, starting its server (in our task group) on first use."""
        async with self._ui_lock:
            if self._ui is None:
                assert self._tg is not None
                return str(await self._tg.start(self._serve_ui))
            return self._ui.login_url

    async def _serve_ui(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        from boocode_mcp.ui import UiServer

        ui = UiServer(self.engine)
        self._ui = ui
        try:
            await ui.serve(task_status=task_status)
        finally:
            # Ended by a failure (logged): the next `boocode ui` starts a new one.
            self._ui = None

    def status(self) -> dict[str, Any]:
        return {
            "running": True,
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at,
            "socket": os.fspath(self.paths.socket),
            "workspace": os.fspath(self.paths.workspace),
            "front_ends": self._connected(),
            "runs_live": self.engine.live_run_count(),
            "agents_warm": self.engine.warm_agent_count(),
        }


async def _reply(writer: asyncio.StreamWriter, data: dict[str, Any]) -> None:
    writer.write(json.dumps(data).encode() + b"\n")
    await writer.drain()


def _parse_hello(line: bytes) -> dict[str, Any] | str:
    """The hello as a dict, or why it is refused."""
    try:
        hello = json.loads(line)
    except ValueError:
        return "the first line must be a BooCode hello (JSON); is this a BooCode front end?"
    if not isinstance(hello, dict) or hello.get("boocode") != PROTOCOL:
        return f"unsupported hello; this daemon speaks BooCode front-end protocol {PROTOCOL}"
    if hello.get("kind") not in KINDS:
        return f"unknown connection kind {hello.get('kind')!r}; one of {', '.join(sorted(KINDS))}"
    return hello


def _peer_refusal(writer: asyncio.StreamWriter) -> str | None:
    """Why the peer may not talk to us (another user), where the platform can tell; the socket's
    private directory already keeps other users out, this is the second lock."""
    if not sys.platform.startswith("linux"):
        return None
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        return f"peer uid {uid} is not the daemon's owner (uid {os.getuid()})"
    return None


@contextlib.contextmanager
def _pid_lock(paths: DaemonPaths, wait_s: float) -> Any:
    """Hold the workspace's daemon lock for this process's life: two daemons never serve one
    workspace. A daemon still shutting down holds it; a new one waits for it (bounded)."""
    fd = os.open(paths.pid_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    info = paths.read_info() or {}
                    raise DaemonError(
                        f"another BooCode daemon (pid {info.get('pid', '?')}) serves {paths.workspace}"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


async def run_daemon(workspace: Path, ready: Callable[[str], None]) -> str | None:
    """Open the workspace's engine and serve it until stopped; `ready("ready")` once listening,
    or `ready("error: …")` if it cannot start. Returns why it stopped."""
    from boocode_mcp.agent_mcp import open_engine
    from boocode_mcp.workspace import ensure_repo

    try:
        repo = await ensure_repo(workspace)
        paths = DaemonPaths(repo)
        paths.make_private_dirs()
        with _pid_lock(paths, wait_s=30.0):
            async with open_engine(repo) as engine:
                daemon = Daemon(engine, paths, idle_exit_s=engine.config.daemon.idle_exit_s)
                await daemon.serve(lambda: ready("ready"))
                return daemon.stop_reason
    except Exception as e:
        # Said once on the ready pipe (a no-op once the daemon has reported ready), so the front
        # end that started us shows the reason instead of waiting for a socket.
        ready(
            f"error: {e}" if isinstance(e, BooCodeError | DaemonError) else f"error: {type(e).__name__}: {e}"
        )
        raise


def _configure_logging() -> None:
    # stderr is the daemon's log file (.boocode/logs/daemon.log). BooCode's own lines at INFO;
    # libraries (the MCP SDK logs every request at INFO) only from WARNING.
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("boocode_mcp").setLevel(os.environ.get("BOOCODE_LOG_LEVEL", "INFO").upper())


def main_daemon(workspace: Path, ready_fd: int | None) -> int:
    """Run the daemon in this process; the exit status."""
    _configure_logging()
    said: list[str] = []

    def ready(message: str) -> None:
        if message == "ready":
            # What is loaded by now (modules, schemas, the engine) lives as long as the daemon:
            # kept out of the collector's generations, a full collection walks only what serving
            # made since, not every object of the process (tens of milliseconds, now and then,
            # inside someone's turn).
            gc.freeze()
        if said or ready_fd is None:
            return
        said.append(message)
        with contextlib.suppress(OSError):
            os.write(ready_fd, message.encode() + b"\n")
            os.close(ready_fd)

    try:
        reason = anyio.run(run_daemon, workspace, ready, backend="asyncio")
    except (BooCodeError, DaemonError) as e:
        logger.error("the daemon could not run: %s", e)
        return 1
    except Exception:
        logger.exception("the daemon failed")
        return 1
    logger.warning("stopped: %s", reason)
    return 0
