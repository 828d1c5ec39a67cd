"""run_command: run one program with an argument list inside the workspace, bounded in time and output.

Never a shell: the program and its arguments reach exec as given, so shell metacharacters stay
literal. The child leads its own process group and everything left of the group is killed when
the program exits or times out, so no grandchild outlives the call. Its environment is the
allow-list (no agent credentials) plus what the caller passes.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import anyio

from boocode_mcp import procs
from boocode_mcp.errors import CommandError, InvalidRequestError, PathOutsideWorkspaceError
from boocode_mcp.views import CommandResult

DEFAULT_OUTPUT_CAP = 32_768
# SIGTERM first so a program can clean up, but not for long: the caller is waiting.
_TERM_GRACE_S = 1.0
# Pipes held open by a process that left our group (setsid) must not hold the call up.
_DRAIN_GRACE_S = 2.0
_CHUNK = 65_536


class _CappedBuffer:
    """Keeps the first `cap` bytes of a stream and counts the rest as truncated."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        # A cut may split a UTF-8 sequence; a non-final decode drops the incomplete tail.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(bytes(self.data), final=not self.truncated)


def resolve_cwd(workspace: Path, cwd: str | None) -> Path:
    """The directory `cwd` (relative to the workspace, or absolute) names, which must lie inside it."""
    root = workspace.resolve()
    if not root.is_dir():
        raise CommandError(f"the workspace {root} does not exist or is not a directory")
    if not cwd:
        return root
    if "\0" in cwd:
        raise CommandError(f"cwd {cwd!r} contains a NUL character")
    given = Path(cwd)
    target = Path(os.path.realpath(given if given.is_absolute() else root / given))
    if not target.is_relative_to(root):
        raise PathOutsideWorkspaceError(
            f"cwd {cwd!r} resolves to {target}, outside the workspace {root}; "
            "give a directory inside the workspace, relative to it"
        )
    if not target.is_dir():
        raise CommandError(f"cwd {cwd!r} is not an existing directory in the workspace {root}")
    return target


async def _drain(pipe: BinaryIO, buffer: _CappedBuffer) -> None:
    """Read `pipe` to its end into `buffer`, then close it.

    Reading past the cap (and discarding) keeps a chatty child from blocking on a full pipe.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while chunk := await reader.read(_CHUNK):
            buffer.add(chunk)
    finally:
        transport.close()


def _start_error(
    exc: OSError | ValueError, command: str, directory: Path, env: Mapping[str, str]
) -> CommandError:
    """The error a failed exec becomes: one that names the program and says what to do."""
    if isinstance(exc, FileNotFoundError):
        if os.sep in command:
            return CommandError(f"program {command!r} not found (looked relative to {directory})")
        return CommandError(
            f"program {command!r} not found on PATH ({env.get('PATH', '')}); "
            "install it, give its full path, or pass PATH in env"
        )
    if isinstance(exc, PermissionError):
        return CommandError(f"program {command!r} is not executable: {exc.strerror}")
    return CommandError(f"cannot start program {command!r}: {exc}")


async def run_command(
    workspace: Path,
    command: str,
    args: Sequence[str] = (),
    *,
    cwd: str | None = None,
    timeout_s: float = 30,
    env: Mapping[str, str] | None = None,
    output_cap: int = DEFAULT_OUTPUT_CAP,
) -> CommandResult:
    """Run `command args…` in `cwd` under the workspace; the result holds capped output and the exit.

    `exit_code` is None when the program was killed for exceeding `timeout_s` (`timed_out`).
    """
    if not command:
        raise InvalidRequestError(
            "run_command needs a program: pass it as `command`, its arguments as `args`"
        )
    if timeout_s <= 0:
        raise InvalidRequestError(f"timeout_s must be positive, got {timeout_s}")
    if output_cap < 0:
        raise InvalidRequestError(f"output_cap must not be negative, got {output_cap}")
    directory = resolve_cwd(workspace, cwd)
    child_env = procs.child_env(env, agent=False)
    started = time.monotonic()
    # Our own pipes rather than asyncio's: on Python 3.11 `Process.wait()` also waits for the
    # child's pipes to close, which a backgrounded grandchild holding them would delay forever.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = await procs.spawn_in_group(
            [command, *args], cwd=directory, env=child_env, stdout=out_w, stderr=err_w
        )
    except (OSError, ValueError) as exc:
        os.close(out_r)
        os.close(err_r)
        raise _start_error(exc, command, directory, child_env) from exc
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)

    out_pipe, err_pipe = os.fdopen(out_r, "rb", buffering=0), os.fdopen(err_r, "rb", buffering=0)
    stdout, stderr = _CappedBuffer(output_cap), _CappedBuffer(output_cap)
    drained = anyio.Event()
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                async with anyio.create_task_group() as readers:
                    readers.start_soon(_drain, out_pipe, stdout)
                    readers.start_soon(_drain, err_pipe, stderr)
                drained.set()

            tg.start_soon(pump)
            with anyio.move_on_after(timeout_s) as deadline:
                await proc.wait()
            timed_out = deadline.cancelled_caught
            if timed_out:
                await procs.terminate_group(proc, grace_s=_TERM_GRACE_S)
            else:
                # The program is done; whatever it left running in its group goes with it.
                procs.kill_group(proc.pid)
            with anyio.move_on_after(_DRAIN_GRACE_S):
                await drained.wait()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await procs.terminate_group(proc, grace_s=0)
        # Closed here too in case a reader never started (closing twice is harmless).
        out_pipe.close()
        err_pipe.close()
    return CommandResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout.text(),
        stderr=stderr.text(),
        truncated=stdout.truncated or stderr.truncated,
        timed_out=timed_out,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
