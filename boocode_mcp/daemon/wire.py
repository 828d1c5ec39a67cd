"""How a front end finds, starts and greets its workspace's BooCode daemon.

Standard library only, and nothing heavier than `socket` and `json` at import: `boocode-mcp`,
`boocode acp` and the CLI import this module to reach the daemon, and a front end that only passes
bytes along must start in tens of milliseconds, not in the second it takes to import the engine.

The daemon listens on a unix socket inside `<workspace>/.boocode/run/`, a directory only its owner
may enter. A connection opens with one JSON line each way, the hello:

    front end → {"boocode": PROTOCOL, "version": "0.1.0", "kind": "mcp"|"acp"|"api"|"control",
                 "pid": 123, "options": {...}}
    daemon    → {"ok": true, "pid": 456, "version": "0.1.0"}
              | {"ok": false, "reason": "version"|"stopping"|"refused", "error": "…", ...}

and then carries that kind's protocol as newline-delimited JSON: MCP JSON-RPC, ACP JSON-RPC, or
BooCode's own request/response lines (`api`, `control`; see `boocode_mcp.daemon.api`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boocode_mcp import __version__
from boocode_mcp.liveness import pid_alive

PROTOCOL = 1
BOOCODE_DIR = ".boocode"
KINDS = frozenset({"mcp", "acp", "api", "control"})

# sun_path holds 108 bytes on Linux and 104 on macOS; a deeper workspace gets its socket in a private
# directory under the temporary directory instead, named by a hash of the workspace path.
_MAX_SOCKET_PATH = 100
# Starting a daemon imports the engine and opens the store; on a loaded two-core machine that has
# been seen to take several seconds.
START_TIMEOUT_S = 60.0
# How long `stop` waits for the daemon to finish shutting down (its agents stop, runs are closed).
STOP_TIMEOUT_S = 60.0
HELLO_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 20


class DaemonError(Exception):
    """A daemon problem a front end reports to its user as one line: what went wrong, what to do."""


class NotRunning(DaemonError):
    """No daemon serves the workspace (and the caller asked not to start one)."""


def find_workspace(start: Path) -> Path:
    """The top level of the git work tree holding `start`: the nearest directory with a `.git`.

    This is git's own rule for a work tree's top level; walking up costs a few stats, where
    `git rev-parse` would cost a process. The daemon checks the answer with git itself.
    """
    start = start.absolute()
    if not start.is_dir():
        raise DaemonError(f"{start} does not exist or is not a directory; give an existing git repository")
    here = start
    while True:
        if (here / ".git").exists():
            return Path(os.path.realpath(here))
        if here.parent == here:
            raise DaemonError(
                f"{start} is not a git repository; run `git init` there and make a first commit, "
                "or give a directory inside a git work tree"
            )
        here = here.parent


@dataclass(frozen=True)
class DaemonPaths:
    """Where a workspace's daemon keeps its socket, locks, state and log."""

    workspace: Path
    boocode: Path = field(init=False)
    run_dir: Path = field(init=False)
    socket: Path = field(init=False)
    start_lock: Path = field(init=False)
    pid_lock: Path = field(init=False)
    info: Path = field(init=False)
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        boocode = self.workspace / BOOCODE_DIR
        run_dir = boocode / "run"
        sock = run_dir / "daemon.sock"
        if len(os.fsencode(sock)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha256(os.fsencode(self.workspace)).hexdigest()[:24]
            sock = _short_socket_dir() / f"{digest}.sock"
        object.__setattr__(self, "boocode", boocode)
        object.__setattr__(self, "run_dir", run_dir)
        object.__setattr__(self, "socket", sock)
        object.__setattr__(self, "start_lock", run_dir / "start.lock")
        object.__setattr__(self, "pid_lock", run_dir / "daemon.lock")
        object.__setattr__(self, "info", run_dir / "daemon.json")
        object.__setattr__(self, "log", boocode / "logs" / "daemon.log")

    def make_private_dirs(self) -> None:
        """Create the run directory (and the short socket directory when used) owner-only, and
        refuse ones that someone else owns or can enter: a socket there would hand this user's
        agents to whoever can connect."""
        check_state_dir(self.workspace)
        self.boocode.mkdir(parents=True, exist_ok=True)
        for d in dict.fromkeys((self.run_dir, self.socket.parent)):
            with contextlib.suppress(FileExistsError):
                d.mkdir(mode=0o700)
            check_private_dir(d)

    def read_info(self) -> dict[str, Any] | None:
        """What the running daemon wrote about itself (pid, version, start time), if anything."""
        try:
            data = json.loads(self.info.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _short_socket_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"boocode-{os.getuid()}"


# What BooCode keeps under `.boocode/` and writes to (the memory notes are the user's, read only).
STATE_ENTRIES = (
    "run",
    "logs",
    "worktrees",
    "indexes",
    "runs",
    "boocode.db",
    "boocode.db-wal",
    "boocode.db-shm",
)


def check_state_dir(workspace: Path) -> None:
    """Refuse a `.boocode` (or an entry BooCode writes in it) that is a symlink: a repository can
    commit one, and BooCode would then keep its database, socket, logs and worktrees wherever the
    repository's author chose."""
    boocode = workspace / BOOCODE_DIR
    for path in (boocode, *(boocode / name for name in STATE_ENTRIES)):
        if path.is_symlink():
            raise DaemonError(
                f"{path} is a symbolic link (to {os.readlink(path)}); BooCode keeps its state there "
                "and follows no link a repository may have committed: replace it with a directory "
                "(a bind mount, if it must live on another disk)"
            )


def check_private_dir(path: Path) -> None:
    """Refuse a directory that is not ours alone (a symlink, another owner, group/other bits)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise DaemonError(
            f"{path} is not a directory (a symlink or a file?); remove it so BooCode can make it"
        )
    if st.st_uid != os.getuid():
        raise DaemonError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); BooCode will not use "
            "another user's daemon directory: remove it, or run BooCode as its owner"
        )
    if st.st_mode & 0o077:
        raise DaemonError(
            f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):03o}); "
            f"make it private with `chmod 700 {path}`"
        )


def check_socket(path: Path) -> None:
    """Refuse a socket file someone else owns: connecting would talk to their process."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise DaemonError(f"{path} is not a socket; remove it so BooCode can start its daemon")
    if st.st_uid != os.getuid():
        raise DaemonError(
            f"the daemon socket {path} belongs to uid {st.st_uid}, not to you; BooCode will not connect "
            "to another user's daemon"
        )


def hello_line(kind: str, options: dict[str, Any] | None = None) -> bytes:
    hello = {"boocode": PROTOCOL, "version": __version__, "kind": kind, "pid": os.getpid()}
    if options:
        hello["options"] = options
    return json.dumps(hello).encode() + b"\n"


class Connection:
    """A connected, greeted socket to a daemon, with whatever bytes arrived after the hello."""

    def __init__(self, sock: socket.socket, reply: dict[str, Any], paths: DaemonPaths, rest: bytes) -> None:
        self.sock = sock
        self.reply = reply
        self.paths = paths
        self.buffer = rest

    @property
    def daemon_pid(self) -> int:
        return int(self.reply.get("pid") or 0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send_line(self, data: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(data).encode() + b"\n")

    def read_line(self) -> bytes | None:
        """The next line (without its newline), blocking; None at end of stream."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _try_connect(paths: DaemonPaths) -> socket.socket | None:
    """A socket connected to the daemon, or None when nothing listens there."""
    check_socket(paths.socket)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(paths.socket))
    except OSError as e:
        sock.close()
        if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise DaemonError(f"cannot connect to the BooCode daemon at {paths.socket}: {e.strerror}") from e
    return sock


def _greet(sock: socket.socket, kind: str, options: dict[str, Any] | None) -> tuple[dict[str, Any], bytes]:
    sock.settimeout(HELLO_TIMEOUT_S)
    try:
        sock.sendall(hello_line(kind, options))
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return {"ok": False, "reason": "closed", "error": "the daemon closed the connection"}, b""
            data += chunk
    except TimeoutError:
        return {"ok": False, "reason": "closed", "error": "the daemon did not answer its hello"}, b""
    except OSError as e:
        return {"ok": False, "reason": "closed", "error": f"the daemon connection failed ({e.strerror})"}, b""
    finally:
        sock.settimeout(None)
    line, _, rest = data.partition(b"\n")
    try:
        reply = json.loads(line)
    except ValueError:
        return {
            "ok": False,
            "reason": "refused",
            "error": "the daemon answered something that is not JSON",
        }, b""
    return (reply if isinstance(reply, dict) else {"ok": False, "reason": "refused"}), rest


def connect(
    workspace: Path,
    kind: str,
    options: dict[str, Any] | None = None,
    *,
    start: bool = True,
) -> Connection:
    """Greet the workspace's daemon as `kind`, starting one when none runs (unless `start` is False).

    A daemon of another BooCode version is stopped and replaced when it is idle; a busy one is
    refused with what to do. `workspace` may be any directory inside the repository.
    """
    root = find_workspace(workspace)
    paths = DaemonPaths(root)
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error = "the daemon kept closing the connection"
    while time.monotonic() < deadline:
        sock = _try_connect(paths)
        if sock is None:
            if not start:
                raise NotRunning(f"no BooCode daemon runs for {root}")
            start_daemon(paths)
            continue
        reply, rest = _greet(sock, kind, options)
        if reply.get("ok"):
            return Connection(sock, reply, paths, rest)
        sock.close()
        reason = reply.get("reason")
        last_error = str(reply.get("error") or last_error)
        if reason == "version" and kind != "control":
            if reply.get("busy"):
                raise DaemonError(
                    f"the BooCode daemon for {root} (pid {reply.get('pid')}) is version "
                    f"{reply.get('version')} and is busy (front ends connected or runs live); this is "
                    f"{__version__}. Let its work finish and its front ends close (or "
                    f"`boocode daemon stop --workspace {root}`), then try again"
                )
            stop_daemon(root)
            continue
        if reason in ("stopping", "closed"):
            # It is on its way out: wait for it to go, then start a new one.
            _wait_gone(paths, reply.get("pid"))
            continue
        raise DaemonError(last_error)
    raise DaemonError(f"could not reach a BooCode daemon for {root}: {last_error}; see {paths.log}")


def _wait_gone(paths: DaemonPaths, pid: object, timeout_s: float = STOP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if isinstance(pid, int) and not pid_alive(pid):
            return
        if not isinstance(pid, int) and not _listening(paths):
            return
        time.sleep(0.02)


def _listening(paths: DaemonPaths) -> bool:
    """Whether anything still listens on the daemon's socket. A killed daemon leaves its socket
    file behind, and one still dying resets the connections it had queued: both are gone once a
    connection is refused (any other failure is left to the caller's next connect to report)."""
    try:
        sock = _try_connect(paths)
    except DaemonError:
        return True
    if sock is None:
        return False
    sock.close()
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def start_daemon(paths: DaemonPaths) -> None:
    """Start the workspace's daemon detached (its own session, logging to `.boocode/logs/`) and
    return once it accepts connections. Two front ends starting at once start one daemon: the
    second waits on the start lock and then finds the first one's daemon listening."""
    paths.make_private_dirs()
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    with _locked(paths.start_lock):
        sock = _try_connect(paths)
        if sock is not None:
            sock.close()
            return
        read_fd, write_fd = os.pipe()
        try:
            with paths.log.open("ab") as log:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "boocode_mcp.daemon",
                        "--workspace",
                        os.fspath(paths.workspace),
                        "--detach",
                        "--ready-fd",
                        str(write_fd),
                    ],
                    cwd=paths.workspace,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    pass_fds=(write_fd,),
                )
        finally:
            os.close(write_fd)
        try:
            # --detach forks at once and the first process exits: the daemon is nobody's child,
            # so no front end leaves a zombie behind when the daemon exits before it.
            proc.wait(timeout=START_TIMEOUT_S)
            message = _read_ready(read_fd, START_TIMEOUT_S)
        finally:
            os.close(read_fd)
        if message != "ready":
            why = message or "it exited during start-up"
            raise DaemonError(
                f"the BooCode daemon for {paths.workspace} did not start: {why}{_log_tail(paths)}"
            )


def _read_ready(fd: int, timeout_s: float) -> str:
    """The daemon's one-line start-up verdict on the ready pipe: "ready" or the error it met."""
    import select

    data = b""
    deadline = time.monotonic() + timeout_s
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return f"no answer within {timeout_s:.0f}s"
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _log_tail(paths: DaemonPaths) -> str:
    try:
        lines = paths.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    shown = " | ".join(line.strip() for line in lines if line.strip())
    return f" (log {paths.log}: {shown})" if shown else f" (log {paths.log})"


def control(
    workspace: Path, method: str, params: dict[str, Any] | None = None, *, start: bool = False
) -> dict[str, Any]:
    """One request on a control connection; raises NotRunning when no daemon runs, unless `start`
    starts one. Control connections are served across versions, so `status` and `stop` always work."""
    conn = connect(workspace, "control", start=start)
    try:
        conn.send_line({"id": 1, "method": method, "params": params or {}})
        line = conn.read_line()
    finally:
        conn.close()
    if line is None:
        raise DaemonError("the daemon closed the connection without answering")
    answer = json.loads(line)
    if "error" in answer:
        raise DaemonError(str(answer["error"].get("message")))
    result: dict[str, Any] = answer.get("result") or {}
    return result


def stop_daemon(workspace: Path, timeout_s: float = STOP_TIMEOUT_S) -> dict[str, Any] | None:
    """Stop the workspace's daemon and wait until its process is gone; None when none ran."""
    try:
        answer = control(workspace, "stop")
    except NotRunning:
        return None
    pid = int(answer.get("pid") or 0)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"the BooCode daemon (pid {pid}) did not stop within {timeout_s:.0f}s")
        time.sleep(0.02)
    return answer
