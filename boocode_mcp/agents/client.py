"""The ACP client callbacks BooCode answers for one agent session.

A plain class on purpose: subclassing `acp.Client` would turn every method we do not implement
into a silent success (the Protocol's stubs return None); a missing method must answer -32601.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from acp import (
    CreateTerminalResponse,
    ReadTextFileResponse,
    RequestError,
    RequestPermissionResponse,
    TerminalOutputResponse,
    WaitForTerminalExitResponse,
)
from acp.schema import EnvVariable, PermissionOption, TerminalExitStatus, ToolCallUpdate

from boocode_mcp.agents.terminals import TerminalError, TerminalManager
from boocode_mcp.agents.worktree_fs import FsRefused, WorktreeFiles

UpdateCallback = Callable[[str, Any], None]
PermissionCallback = Callable[
    [str, ToolCallUpdate, list[PermissionOption]], Awaitable[RequestPermissionResponse]
]


# Files up to this size are read and written on the event loop: the walk and the I/O are a few
# system calls on page-cached data, less than a trip to a worker thread. Larger ones go to a worker
# thread, so that a big file never holds up the loop.
INLINE_BYTES = 64 * 1024


def _invalid(message: str, **data: Any) -> RequestError:
    return RequestError(-32602, message, data or None)


class WorktreeClient:
    """fs confined to one worktree, real terminals, and updates/permissions handed to the backend.

    `fs` and `terminal` are what the handshake advertised: requests for a capability that was not
    advertised answer -32601 (method not found), as if the client had no such method.
    """

    def __init__(
        self,
        root: Path,
        terminals: TerminalManager,
        on_update: UpdateCallback,
        on_permission: PermissionCallback,
        *,
        fs: bool = True,
        terminal: bool = True,
    ) -> None:
        self._files = WorktreeFiles(root)
        self._fs = fs
        self._terminal = terminal
        self._terminals = terminals
        self._on_update = on_update
        self._on_permission = on_permission

    # --- session ---------------------------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        # Synchronous hand-off before any await: every message runs in its own task, and awaiting
        # here would let later updates overtake this one.
        self._on_update(session_id, update)

    async def request_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption], **kw: Any
    ) -> RequestPermissionResponse:
        return await self._on_permission(session_id, tool_call, options)

    # --- fs --------------------------------------------------------------------------------

    def _fs_allowed(self, method: str) -> None:
        if not self._fs:
            raise RequestError.method_not_found(method)

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kw: Any
    ) -> ReadTextFileResponse:
        self._fs_allowed("fs/read_text_file")
        try:
            text = self._files.read_small_text(path, limit=INLINE_BYTES)
            if text is None:
                text = await anyio.to_thread.run_sync(self._files.read_text, path)
        except FsRefused as e:
            raise _refused(e, path) from None
        except OSError as e:
            raise RequestError(-32603, f"cannot read {path}: {e.strerror}", {"path": path}) from None
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max((line or 1) - 1, 0)
            end = len(lines) if limit is None else start + max(limit, 0)
            text = "".join(lines[start:end])
        return ReadTextFileResponse(content=text)

    async def write_text_file(self, session_id: str, path: str, content: str, **kw: Any) -> None:
        self._fs_allowed("fs/write_text_file")
        try:
            # Characters, not bytes: UTF-8 takes at most 4 bytes for one.
            if len(content) <= INLINE_BYTES // 4:
                self._files.write_text(path, content)
            else:
                await anyio.to_thread.run_sync(self._files.write_text, path, content)
        except FsRefused as e:
            raise _refused(e, path) from None
        except OSError as e:
            raise RequestError(-32603, f"cannot write {path}: {e.strerror}", {"path": path}) from None
        return None

    # --- terminals -------------------------------------------------------------------------

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kw: Any,
    ) -> CreateTerminalResponse:
        if not self._terminal:
            # The other terminal/* methods name a terminal, which only this one can make.
            raise RequestError.method_not_found("terminal/create")
        try:
            tid = await self._terminals.create(
                command,
                args or [],
                env={e.name: e.value for e in env or []},
                cwd=cwd,
                output_byte_limit=output_byte_limit,
            )
        except TerminalError as e:
            raise _invalid(str(e), command=command) from None
        return CreateTerminalResponse(terminal_id=tid)

    async def terminal_output(self, session_id: str, terminal_id: str, **kw: Any) -> TerminalOutputResponse:
        try:
            snap = self._terminals.output(terminal_id)
        except TerminalError as e:
            raise _terminal_error(e, terminal_id) from None
        status = (
            TerminalExitStatus(exit_code=snap.exit.exit_code, signal=snap.exit.signal) if snap.exit else None
        )
        return TerminalOutputResponse(output=snap.output, truncated=snap.truncated, exit_status=status)

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kw: Any
    ) -> WaitForTerminalExitResponse:
        try:
            exit_ = await self._terminals.wait_for_exit(terminal_id)
        except TerminalError as e:
            raise _terminal_error(e, terminal_id) from None
        return WaitForTerminalExitResponse(exit_code=exit_.exit_code, signal=exit_.signal)

    async def kill_terminal(self, session_id: str, terminal_id: str, **kw: Any) -> None:
        try:
            await self._terminals.kill(terminal_id)
        except TerminalError as e:
            raise _terminal_error(e, terminal_id) from None

    async def release_terminal(self, session_id: str, terminal_id: str, **kw: Any) -> None:
        await self._terminals.release(terminal_id)


def _refused(e: FsRefused, path: str) -> RequestError:
    if e.not_found:
        return RequestError(-32002, f"resource not found: {e}", {"uri": path})
    return _invalid(str(e), path=path)


def _terminal_error(e: TerminalError, terminal_id: str) -> RequestError:
    if e.not_found:
        return RequestError.resource_not_found(terminal_id)
    return _invalid(str(e), terminalId=terminal_id)
