"""Real terminals for ACP `terminal/*`: each command in its own process group, output kept to a
byte limit (the tail survives), killed on release and when the backend closes.

Each terminal's group is recorded (`TerminalRecords`, the store's `terminals` table) from before
the agent learns the terminal's id until the group is killed, so that a BooCode process which
replaces one killed with SIGKILL can reap the terminals it left (start-up recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boocode_mcp import procs
from boocode_mcp.store import terminals as terminal_rows
from boocode_mcp.store.db import Database, DatabaseError

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_LIMIT = 1 << 20


@dataclass(frozen=True)
class TerminalExit:
    exit_code: int | None
    signal: str | None


@dataclass(frozen=True)
class TerminalSnapshot:
    output: str
    truncated: bool
    exit: TerminalExit | None


class Terminal:
    """One running command with its captured (merged stdout/stderr) output."""

    def __init__(self, terminal_id: str, proc: asyncio.subprocess.Process, limit: int) -> None:
        self.id = terminal_id
        self.proc = proc
        self._limit = max(limit, 0)
        self._buf = bytearray()
        self._truncated = False
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pgid(self) -> int:
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(65536):
            self._buf += chunk
            if len(self._buf) > self._limit:
                # Keep the tail: the end of a command's output is what explains how it ended.
                del self._buf[: len(self._buf) - self._limit]
                self._truncated = True

    def _exit(self) -> TerminalExit | None:
        rc = self.proc.returncode
        if rc is None:
            return None
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            return TerminalExit(exit_code=None, signal=name)
        return TerminalExit(exit_code=rc, signal=None)

    def snapshot(self) -> TerminalSnapshot:
        data = bytes(self._buf)
        if self._truncated:
            # Cutting from the front may split a UTF-8 sequence; drop its continuation bytes.
            i = 0
            while i < len(data) and i < 4 and (data[i] & 0xC0) == 0x80:
                i += 1
            data = data[i:]
        return TerminalSnapshot(
            output=data.decode("utf-8", errors="replace"), truncated=self._truncated, exit=self._exit()
        )

    async def wait(self) -> TerminalExit:
        await self.proc.wait()
        # Output written just before exit is still in the pipe; read it before answering.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        exit_ = self._exit()
        assert exit_ is not None
        return exit_

    def kill(self) -> None:
        procs.kill_group(self.pgid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill the group, reap the child, stop the reader."""
        await procs.terminate_group(self.proc, grace_s=0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        if not self._reader.done():
            self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class TerminalError(Exception):
    """A terminal request that cannot be served; the client turns it into an ACP error."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class TerminalLedger(Protocol):
    """Where a terminal's process group is recorded while it may be alive."""

    async def opened(self, terminal_id: str, pgid: int, command: str) -> None: ...

    async def closed(self, terminal_id: str) -> None: ...


class TerminalRecords:
    """A TerminalLedger in the store: rows owned by this BooCode process (its pid and start)."""

    def __init__(self, db: Database, *, owner_pid: int, chat_id: str, agent: str) -> None:
        self._db = db
        self._owner_pid = owner_pid
        self._owner_start = procs.process_token(owner_pid)
        self._chat_id = chat_id
        self._agent = agent

    async def opened(self, terminal_id: str, pgid: int, command: str) -> None:
        await terminal_rows.insert(
            self._db,
            terminal_id=terminal_id,
            pgid=pgid,
            leader_start=procs.process_token(pgid),
            owner_pid=self._owner_pid,
            owner_start=self._owner_start,
            chat_id=self._chat_id,
            agent=self._agent,
            command=command,
            owner_host=procs.host_name(),
        )

    async def closed(self, terminal_id: str) -> None:
        await terminal_rows.delete(self._db, terminal_id)


class TerminalManager:
    """The terminals of one agent session, keyed by the ids handed to the agent."""

    def __init__(self, root: Path, ledger: TerminalLedger | None = None) -> None:
        self._root = root.resolve()
        self._ledger = ledger
        self._terminals: dict[str, Terminal] = {}

    def __len__(self) -> int:
        return len(self._terminals)

    def pgids(self) -> list[int]:
        return [t.pgid for t in self._terminals.values()]

    async def create(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
    ) -> str:
        where = self._root if cwd is None else Path(cwd)
        if not where.is_absolute():
            where = self._root / where
        where = where.resolve()
        if not where.is_relative_to(self._root):
            raise TerminalError(f"terminal cwd {cwd} is outside the worktree {self._root}")
        if not where.is_dir():
            raise TerminalError(f"terminal cwd {where} is not a directory")
        try:
            proc = await procs.spawn_in_group(
                [command, *args],
                cwd=where,
                # Terminals run whatever the agent asks for: no provider credentials.
                env=procs.child_env(env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as e:
            raise TerminalError(f"cannot run {command!r} in a terminal: {e.strerror or e}") from e
        tid = f"term-{uuid.uuid4().hex[:12]}"
        limit = DEFAULT_OUTPUT_LIMIT if output_byte_limit is None else output_byte_limit
        term = Terminal(tid, proc, limit)
        if self._ledger is not None:
            try:
                await self._ledger.opened(tid, term.pgid, command)
            except (DatabaseError, ValueError) as e:
                # A group nobody could reap after a crash is not started at all.
                await term.close()
                raise TerminalError(f"cannot record the terminal for {command!r} ({e}); not started") from e
        self._terminals[tid] = term
        return tid

    def get(self, terminal_id: str) -> Terminal:
        try:
            return self._terminals[terminal_id]
        except KeyError:
            raise TerminalError(
                f"no terminal {terminal_id!r} (released or never created)", not_found=True
            ) from None

    def output(self, terminal_id: str) -> TerminalSnapshot:
        return self.get(terminal_id).snapshot()

    async def wait_for_exit(self, terminal_id: str) -> TerminalExit:
        return await self.get(terminal_id).wait()

    async def kill(self, terminal_id: str) -> None:
        term = self.get(terminal_id)
        term.kill()
        await term.proc.wait()

    async def release(self, terminal_id: str) -> None:
        term = self._terminals.pop(terminal_id, None)
        if term is not None:
            await self._close(term)

    async def close_all(self) -> None:
        terms = list(self._terminals.values())
        self._terminals.clear()
        await asyncio.gather(*(self._close(t) for t in terms), return_exceptions=True)

    async def _close(self, term: Terminal) -> None:
        await term.close()
        if self._ledger is not None:
            # Only once the group is dead: until then the record is what a restart would reap.
            try:
                await self._ledger.closed(term.id)
            except (DatabaseError, ValueError) as e:
                log.warning(
                    "terminal %s is gone but its record stays (%s); start-up recovery drops it", term.id, e
                )
