"""The workflow sandbox as the engine sees it: a child process per workflow run (sandbox_child.py)
holding a QuickJS interpreter, spoken to in JSON lines.

Why a process: the daemon must never die of a script, and no in-process binding bounds everything a
script can do to its host (an interpreter crash, a runaway native allocation, a loop that holds the
GIL). A child with its own rlimits, process group and death signal can be killed whole; its exit
status becomes the run's error. Why a spare: starting Python and QuickJS costs tens of milliseconds,
so one process is kept ready (after the first use) and a run takes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from boocode_mcp import procs
from boocode_mcp.errors import BooCodeError

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("sandbox_child.py")
# A step's prompt and a run's result cross the pipe in one line each.
LINE_LIMIT = 64 * 1024 * 1024
READY_TIMEOUT_S = 30.0


class SandboxError(BooCodeError):
    """The sandbox process could not start, or ended without saying why."""


@dataclass(frozen=True)
class Limits:
    cpu_limit_s: float
    memory_limit_mb: int


def _quickjs_dir() -> str:
    """Where the `_quickjs` extension is installed: the child runs isolated (`-I -S`, no site
    packages), with only this directory on its path."""
    spec = importlib.util.find_spec("_quickjs")
    if spec is None or spec.origin is None:
        raise SandboxError(
            "the JavaScript engine for workflows (the quickjs-ng package) is not installed; "
            "reinstall boocode-mcp"
        )
    return str(Path(spec.origin).parent)


class Sandbox:
    """One sandbox process: send it requests, read its messages, kill it."""

    def __init__(self, proc: asyncio.subprocess.Process, limits: Limits) -> None:
        self._proc = proc
        self.limits = limits
        self.token = procs.process_token(proc.pid)
        self._write_lock = anyio.Lock()

    @property
    def pgid(self) -> int:
        # start_new_session makes the child its group's leader.
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None

    async def send(self, message: dict[str, Any]) -> None:
        """Write one request; a sandbox that has gone drops it (its end is read as EOF)."""
        stdin = self._proc.stdin
        assert stdin is not None
        data = json.dumps(message).encode() + b"\n"
        async with self._write_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(data)
                await stdin.drain()

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the process has ended."""
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            line = await stdout.readline()
        except (ValueError, asyncio.LimitOverrunError):
            log.warning("workflow sandbox %d sent an over-long line; stopping it", self.pgid)
            await self.close()
            return None
        if not line:
            return None
        try:
            message = json.loads(line)
        except ValueError:
            log.warning("workflow sandbox %d sent an unreadable line; stopping it", self.pgid)
            await self.close()
            return None
        return message if isinstance(message, dict) else None

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        while (message := await self.receive()) is not None:
            yield message

    async def close(self) -> None:
        """Kill the process group (it holds nothing worth a grace period) and reap it."""
        with anyio.CancelScope(shield=True):
            procs.kill_group(self.pgid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                await self._proc.wait()

    async def exit_reason(self) -> str:
        """Why the process ended without finishing its run, in words for the run's error."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await self._proc.wait()
        code = self._proc.returncode
        if code == -signal.SIGXCPU:
            return (
                f"the workflow script used more than {self.limits.cpu_limit_s:g} s of CPU time "
                f"([workflows] cpu_limit_s = {self.limits.cpu_limit_s:g}); its sandbox was stopped"
            )
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            return f"the workflow's sandbox process ended with signal {name}; the daemon log has the details"
        return f"the workflow's sandbox process exited ({code}) before the workflow finished"


async def start_sandbox(limits: Limits, log_path: Path) -> Sandbox:
    """A new sandbox process, ready for a request."""
    argv = [
        sys.executable,
        "-I",
        "-S",
        str(CHILD),
        _quickjs_dir(),
        repr(limits.cpu_limit_s),
        str(limits.memory_limit_mb),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as err:
        # Nothing of the daemon's environment: the child needs none, and the script reaches none.
        proc = await procs.spawn_in_group(
            argv,
            cwd="/",
            env={},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            limit=LINE_LIMIT,
        )
    sandbox = Sandbox(proc, limits)
    ready: dict[str, Any] | None = None
    try:
        with anyio.move_on_after(READY_TIMEOUT_S):
            ready = await sandbox.receive()
    except BaseException:
        await sandbox.close()
        raise
    if ready is None or ready.get("type") != "ready":
        reason = await sandbox.exit_reason() if not sandbox.alive else "it did not start in time"
        await sandbox.close()
        raise SandboxError(f"the workflow sandbox could not start: {reason}; see {log_path}")
    return sandbox


class SandboxPool:
    """Hands out sandbox processes, keeping one spare ready after the first is taken."""

    def __init__(self, log_path: Path) -> None:
        self._log_path = log_path
        self._spare: Sandbox | None = None
        self._refilling = False
        self._tg: anyio.abc.TaskGroup | None = None

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the refills until cancelled; the spare is killed on the way out."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None
            spare, self._spare = self._spare, None
            if spare is not None:
                await spare.close()

    async def take(self, limits: Limits) -> Sandbox:
        """A ready sandbox with these limits: the spare when it matches, else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None and (spare.limits != limits or not spare.alive):
            await spare.close()
            spare = None
        if spare is None:
            spare = await start_sandbox(limits, self._log_path)
        self._refill(limits)
        return spare

    def _refill(self, limits: Limits) -> None:
        if self._tg is None or self._refilling:
            return
        self._refilling = True
        self._tg.start_soon(self._make_spare, limits)

    async def _make_spare(self, limits: Limits) -> None:
        try:
            sandbox = await start_sandbox(limits, self._log_path)
        except SandboxError as e:
            log.warning("could not start a spare workflow sandbox: %s", e)
            return
        finally:
            self._refilling = False
        if self._spare is None:
            self._spare = sandbox
        else:
            await sandbox.close()
