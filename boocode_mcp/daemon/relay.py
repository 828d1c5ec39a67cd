"""A stdio front end: the host's (or editor's) JSON-RPC lines to the workspace's daemon and back.

Standard library only, so `boocode-mcp` answers `initialize` about as fast as a Python process
starts. One thread, one `selectors` loop over stdin and the daemon socket(s); stdout carries
nothing but the daemon's protocol lines.

The relay reads each line (both ways) only enough to keep the conversation alive across a daemon
restart: it remembers the client's `initialize` (and, for MCP, its resource subscriptions) and which
requests are unanswered. When the daemon goes away (killed, stopped, replaced by a newer version),
a new daemon is started, the remembered handshake replayed (the client never sees its answers), and
an unanswered MCP request that only reads (a status poll, a resource read) sent again; any other
unanswered request gets a JSON-RPC error saying so, as it may have had its effect.

`boocode acp` without `--workspace` learns the workspace from the editor: it answers `initialize`
itself, then routes `session/new`, `session/load` and `session/resume` by their `cwd` to the daemon
of the repository holding it, and every later message by its `sessionId`. Requests a daemon sends
the editor (permission questions) get ids tagged with their daemon, so the answers find their way.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boocode_mcp.daemon.wire import Connection, DaemonError, connect, find_workspace

INTERNAL_ERROR = -32603
INVALID_PARAMS = -32602
_READ_SIZE = 1 << 16
_REPLAY_ID = "boocode-relay-"


@dataclass
class Upstream:
    """One daemon connection (None while the daemon is away) and what its client is waiting for."""

    workspace: Path
    index: int
    conn: Connection | None = None
    # Client request ids sent to this daemon and not yet answered -> the line, kept only while
    # the request may be sent once more to a new daemon (it reads and changes nothing).
    unanswered: dict[str, bytes | None] = field(default_factory=dict)
    # Ids of requests the relay itself sent (replayed handshake): their answers are swallowed.
    own_ids: set[str] = field(default_factory=set)
    # Daemon request ids as tagged for the client -> the daemon's own id (router mode).
    out_ids: dict[str, Any] = field(default_factory=dict)
    half_closed: bool = False


class Relay:
    """The selectors loop and the bookkeeping shared by the MCP and ACP front ends."""

    def __init__(self, kind: str, options: dict[str, Any] | None, workspace: Path | None) -> None:
        self.kind = kind
        self.options = options
        self.pinned = workspace
        self.selector = selectors.DefaultSelector()
        self.upstreams: dict[Path, Upstream] = {}
        self.sessions: dict[str, Path] = {}  # ACP router: session id -> its workspace
        # Lines the daemon must see again after a restart: the handshake (and MCP subscriptions).
        self.handshake: list[dict[str, Any]] = []
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.stdin_open = True
        self._stdin_buffer = b""
        self._replays = 0

    # -- plumbing ----------------------------------------------------------------------------

    def write_client(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        data += b"\n"
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]

    def error_to_client(self, request_id: Any, code: int, message: str) -> None:
        self.write_client({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def _attach(self, up: Upstream) -> None:
        """(Re)connect `up` to its daemon, starting one if needed, and replay the handshake."""
        options = dict(self.options or {})
        conn = connect(up.workspace, self.kind, options or None)
        conn.sock.setblocking(False)
        up.conn = conn
        up.half_closed = False
        self.selector.register(conn.sock, selectors.EVENT_READ, up)
        for message in [*self.handshake, *self.subscriptions.values()]:
            replay = dict(message)
            if "id" in replay:
                self._replays += 1
                replay["id"] = f"{_REPLAY_ID}{self._replays}"
                up.own_ids.add(replay["id"])
            self._send(up, json.dumps(replay).encode())
        if conn.buffer:
            pending, conn.buffer = conn.buffer, b""
            self._from_daemon(up, pending)

    def _send(self, up: Upstream, data: bytes) -> None:
        assert up.conn is not None
        sock = up.conn.sock
        sock.setblocking(True)
        try:
            sock.sendall(data + b"\n")
        finally:
            sock.setblocking(False)

    def upstream(self, workspace: Path) -> Upstream:
        up = self.upstreams.get(workspace)
        if up is None:
            up = Upstream(workspace, len(self.upstreams))
            self.upstreams[workspace] = up
        return up

    def forward(self, up: Upstream, message: dict[str, Any], raw: bytes, *, again: bool = False) -> None:
        """Send a client message to `up`'s daemon, reconnecting first when it is away. `again`: this
        is the one resend of a request whose daemon went away before answering it."""
        request_id = message.get("id") if "method" in message else None
        if up.conn is not None:
            # Whatever the daemon sent (and its end, if it died while we were idle) is read first:
            # a message for a dead daemon then goes to the next one instead of failing.
            self._drain(up)
        try:
            if up.conn is None:
                self._attach(up)
            self._send(up, raw)
        except (DaemonError, OSError) as e:
            self._lost(up, f"{e}")
            if request_id is not None:
                self.error_to_client(request_id, INTERNAL_ERROR, f"BooCode could not reach its daemon: {e}")
            return
        if request_id is not None:
            up.unanswered[_key(request_id)] = None if again or not self.resendable(message) else raw

    def resendable(self, message: dict[str, Any]) -> bool:
        """Whether a request may go to a new daemon when its first one died before answering:
        only what reads and changes nothing (a spawn or an apply is never sent twice)."""
        return False

    def _lost(self, up: Upstream, why: str) -> None:
        """The daemon connection is gone: resend what only reads, fail the rest, forget the socket."""
        if up.conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(up.conn.sock)
            up.conn.close()
            up.conn = None
        owed, up.unanswered = up.unanswered, {}
        up.own_ids.clear()
        up.out_ids.clear()
        for key, raw in owed.items():
            if raw is not None:
                # The client never learns the daemon was replaced: its read is answered by the next.
                self.forward(up, json.loads(raw), raw, again=True)
                continue
            self.error_to_client(
                json.loads(key),
                INTERNAL_ERROR,
                f"the BooCode daemon for {up.workspace} went away before answering ({why}); "
                "it starts again with the next request: send this one again",
            )

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Relay until the client and the daemon(s) are done; the exit status. A stop signal ends
        only this front end (exit 0): the daemon's runs and agents go on."""

        def stop(signum: int, _frame: object) -> None:
            raise _Stopped(signum)

        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, stop)
        try:
            return self._run()
        except (_Stopped, BrokenPipeError):
            # A stop signal, or a host that closed our stdout: either way, nobody is listening.
            return 0
        finally:
            # The descriptor may be shared (a terminal): leave it as we found it.
            with contextlib.suppress(OSError):
                os.set_blocking(0, True)

    def _run(self) -> int:
        if self.pinned is not None:
            # Connect now: the daemon (and its engine) may need a moment to start, and the host's
            # first request should not pay for that on top of its own round trip.
            try:
                self._attach(self.upstream(self.pinned))
            except DaemonError as e:
                sys.stderr.write(f"boocode: {e}\n")
                return 1
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, None)
        while self.stdin_open or any(u.conn is not None for u in self.upstreams.values()):
            for key, _ in self.selector.select():
                if key.data is None:
                    self._read_stdin()
                else:
                    self._read_daemon(key.data)
        return 0

    def _read_stdin(self) -> None:
        try:
            chunk = os.read(0, _READ_SIZE)
        except BlockingIOError:
            return
        if not chunk:
            self._stdin_closed()
            return
        self._stdin_buffer += chunk
        *lines, self._stdin_buffer = self._stdin_buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._from_client(line)

    def _stdin_closed(self) -> None:
        self.stdin_open = False
        if self._stdin_buffer.strip():
            self._from_client(self._stdin_buffer)
        self.selector.unregister(0)
        # The daemon answers what it has read, then closes its side; we leave when it has.
        for up in self.upstreams.values():
            if up.conn is not None and not up.half_closed:
                up.half_closed = True
                with contextlib.suppress(OSError):
                    up.conn.sock.shutdown(socket.SHUT_WR)

    def _drain(self, up: Upstream) -> None:
        """Read what the daemon has sent so far without waiting (until nothing is left, or its end)."""
        while up.conn is not None and self._read_daemon(up):
            pass

    def _read_daemon(self, up: Upstream) -> bool:
        """Read once from the daemon; whether there may be more to read now."""
        assert up.conn is not None
        try:
            chunk = up.conn.sock.recv(_READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as e:
            self._lost(up, e.strerror or str(e))
            return False
        if not chunk:
            self._lost(up, "it closed the connection")
            return False
        self._from_daemon(up, chunk)
        return True

    def _from_daemon(self, up: Upstream, chunk: bytes) -> None:
        assert up.conn is not None
        up.conn.buffer += chunk
        *lines, up.conn.buffer = up.conn.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._daemon_line(up, line)

    # -- messages ----------------------------------------------------------------------------

    def _from_client(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            # Not ours to judge: the daemon's server answers a parse error as the protocol says.
            up = self._default_upstream()
            if up is not None:
                self.forward(up, {}, raw)
            return
        self._remember(message)
        up = self.route(message)
        if up is not None:
            self.forward(up, message, raw)

    def _remember(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method in ("initialize", "notifications/initialized", "initialized"):
            self.handshake.append(message)
        elif method == "resources/subscribe":
            self.subscriptions[str((message.get("params") or {}).get("uri"))] = message
        elif method == "resources/unsubscribe":
            self.subscriptions.pop(str((message.get("params") or {}).get("uri")), None)

    def _default_upstream(self) -> Upstream | None:
        if self.pinned is not None:
            return self.upstream(self.pinned)
        return next(iter(self.upstreams.values()), None)

    def route(self, message: dict[str, Any]) -> Upstream | None:
        """The daemon a client message goes to; None when the relay has answered it itself."""
        return self._default_upstream()

    def _daemon_line(self, up: Upstream, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.write_client(raw)
            return
        if not isinstance(message, dict):
            self.write_client(raw)
            return
        if "method" not in message and "id" in message:
            request_id = message["id"]
            if isinstance(request_id, str) and request_id in up.own_ids:
                up.own_ids.discard(request_id)
                return
            up.unanswered.pop(_key(request_id), None)
            self.answered(up, message)
        self.write_client(raw)

    def answered(self, up: Upstream, message: dict[str, Any]) -> None:
        """A daemon answered a client request (the ACP router learns new sessions here)."""


class _Stopped(Exception):
    """A stop signal arrived."""


def _key(request_id: Any) -> str:
    # JSON-RPC ids are strings or numbers; 1 and "1" are different ids.
    return json.dumps(request_id)


class McpRelay(Relay):
    """`boocode-mcp`: one workspace's daemon; reads survive a daemon restart unnoticed."""

    def resendable(self, message: dict[str, Any]) -> bool:
        method = message.get("method")
        if method == "tools/call":
            return (message.get("params") or {}).get("name") in READ_ONLY_TOOLS
        return method in _READ_ONLY_METHODS


# MCP requests that read and change nothing; the tools are those annotated read-only.
_READ_ONLY_METHODS = frozenset(
    {
        "ping",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
    }
)
READ_ONLY_TOOLS = frozenset(
    {
        "subagent_status",
        "list_patches",
        "search_memory",
        "list_agents",
        "usage_stats",
        "list_workflows",
        "workflow_status",
    }
)


class AcpRouter(Relay):
    """`boocode acp` without `--workspace`: one daemon per workspace the editor's sessions name."""

    def __init__(self, options: dict[str, Any] | None) -> None:
        super().__init__("acp", options, None)
        self._new_sessions: dict[str, Path] = {}  # pending session/new id -> its workspace

    def route(self, message: dict[str, Any]) -> Upstream | None:
        method = message.get("method")
        params = message.get("params") or {}
        request_id = message.get("id")
        if method is None:
            return self._answer_from_editor(message)
        if method == "initialize":
            from boocode_mcp.acp_capabilities import initialize_result

            version = params.get("protocolVersion")
            result = initialize_result(version if isinstance(version, int) else 1)
            self.write_client({"jsonrpc": "2.0", "id": request_id, "result": result})
            return None
        if method in ("session/new", "session/load", "session/resume", "session/list"):
            cwd = params.get("cwd")
            if isinstance(cwd, str):
                try:
                    workspace = find_workspace(Path(cwd))
                except DaemonError as e:
                    self.error_to_client(request_id, INVALID_PARAMS, str(e))
                    return None
                if method == "session/new":
                    self._new_sessions[_key(request_id)] = workspace
                elif isinstance(params.get("sessionId"), str):
                    self.sessions[params["sessionId"]] = workspace
                return self.upstream(workspace)
            if method == "session/list":
                up = self._default_upstream()
                if up is None:
                    self.write_client({"jsonrpc": "2.0", "id": request_id, "result": {"sessions": []}})
                return up
        session_id = params.get("sessionId")
        if isinstance(session_id, str) and session_id in self.sessions:
            return self.upstream(self.sessions[session_id])
        if request_id is not None:
            self.error_to_client(
                request_id,
                INVALID_PARAMS,
                f"unknown session {session_id}: create it with session/new or open it with session/load",
            )
        return None

    def answered(self, up: Upstream, message: dict[str, Any]) -> None:
        workspace = self._new_sessions.pop(_key(message.get("id")), None)
        result = message.get("result")
        if workspace is not None and isinstance(result, dict) and isinstance(result.get("sessionId"), str):
            self.sessions[result["sessionId"]] = workspace

    def _daemon_line(self, up: Upstream, raw: bytes) -> None:
        # A request from a daemon to the editor: tag its id with the daemon, so the editor's
        # answer goes back to the daemon that asked (two daemons may use the same ids).
        if b'"method"' in raw:
            try:
                message = json.loads(raw)
            except ValueError:
                message = None
            if isinstance(message, dict) and "method" in message and "id" in message:
                tagged = f"{up.index}:{_key(message['id'])}"
                up.out_ids[tagged] = message["id"]
                message["id"] = tagged
                self.write_client(message)
                return
        super()._daemon_line(up, raw)

    def _answer_from_editor(self, message: dict[str, Any]) -> Upstream | None:
        tagged = message.get("id")
        for up in self.upstreams.values():
            if isinstance(tagged, str) and tagged in up.out_ids:
                answer = dict(message)
                answer["id"] = up.out_ids.pop(tagged)
                if up.conn is not None:
                    self._send(up, json.dumps(answer).encode())
                return None
        return None


def relay_mcp(workspace: Path) -> int:
    """`boocode-mcp`: the host's MCP lines to the workspace's daemon and back."""
    return McpRelay("mcp", None, find_workspace(workspace)).run()


def relay_acp(workspace: Path | None, agent: str | None) -> int:
    """`boocode acp`: the editor's ACP lines to the daemon of the workspace (pinned with
    `--workspace`, else each session's own)."""
    options = {"agent": agent} if agent else None
    if workspace is not None:
        return Relay("acp", options, find_workspace(workspace)).run()
    return AcpRouter(options).run()
