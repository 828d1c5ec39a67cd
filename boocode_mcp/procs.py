"""Child processes in their own process groups, killed as groups, with an explicit environment.

Every child BooCode starts (agents, their terminals, run_command) goes through here so that none can
outlive the server: each leads its own process group, and a group is killed whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import anyio

# Re-exported: the engine's parts ask procs; front ends that must start fast import liveness.
from boocode_mcp.liveness import pid_alive as pid_alive
from boocode_mcp.liveness import proc_stat as proc_stat

# Variables a child may inherit from the server's environment. Everything else must come from the
# launch spec or the caller, so secrets reach only the children they are meant for.
ENV_ALLOW = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "COLORTERM",
        "NO_COLOR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "VIRTUAL_ENV",
        "PYTHONPATH",
    }
)
ENV_ALLOW_PREFIXES = ("LC_", "XDG_")

# Coding agents need their provider credentials; these are passed to agents only, never to
# run_command (which runs whatever a host asks for).
AGENT_ENV_PREFIXES = (
    "ANTHROPIC_",
    "OPENAI_",
    "GEMINI_",
    "GOOGLE_",
    "CLAUDE_",
    "CODEX_",
    "OPENCODE_",
    "QWEN_",
    "DASHSCOPE_",
    "OPENROUTER_",
    "AWS_",
    "AZURE_",
    "GOOSE_",
    "VERTEX",
)


def child_env(
    extra: Mapping[str, str] | None = None,
    *,
    agent: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allow-listed part of `base` (default: os.environ) plus `extra`, which wins."""
    source = os.environ if base is None else base
    prefixes = ENV_ALLOW_PREFIXES + (AGENT_ENV_PREFIXES if agent else ())
    env = {k: v for k, v in source.items() if k in ENV_ALLOW or k.startswith(prefixes)}
    if extra:
        env.update(extra)
    return env


async def spawn_in_group(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str],
    stdin: int | IO[Any] | None = asyncio.subprocess.DEVNULL,
    stdout: int | IO[Any] | None = asyncio.subprocess.PIPE,
    stderr: int | IO[Any] | None = asyncio.subprocess.PIPE,
    limit: int = 2**16,
) -> asyncio.subprocess.Process:
    """Start `argv` as the leader of a new session (and so a new process group).

    Raises FileNotFoundError / PermissionError from exec unchanged; callers turn them into errors
    that name the program and say how to install it.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=dict(env),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        limit=limit,
    )


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it no longer exists."""
    if pgid <= 1:
        # Never signal group 0/1: that would be our own group or init.
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies included)."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_started_at(pid: int) -> float | None:
    """When the process started (unix time), from /proc; None when unknown (or not Linux)."""
    fields = proc_stat(pid)
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        ticks = int(fields[19]) if fields is not None else None  # field 22: starttime, in clock ticks
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def process_token(pid: int) -> str | None:
    """Who `pid` is: "<boot id>:<start time in clock ticks after boot>", from /proc.

    A later process that reuses the pid, or the same pid after a reboot, has another token, and
    the token does not move when the wall clock does. None when unknown (the process is gone, or
    this is not Linux).
    """
    fields = proc_stat(pid)
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        ticks = int(fields[19]) if fields is not None else None
    except (OSError, ValueError, IndexError):
        return None
    return None if ticks is None else f"{boot_id}:{ticks}"


def same_boot(token: str) -> bool:
    """Whether a process_token was taken since the machine last booted."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return True
    return token.split(":", 1)[0] == boot_id


async def terminate_group(proc: asyncio.subprocess.Process, grace_s: float = 2.0) -> int | None:
    """SIGTERM the child's group, SIGKILL it after `grace_s`, reap the child; returns its exit code.

    The whole group is killed even when the leader has already exited, so grandchildren that the
    leader left behind go too.
    """
    pgid = proc.pid  # start_new_session makes the child its group's leader
    if proc.returncode is None:
        kill_group(pgid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace_s)
    kill_group(pgid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()
    return proc.returncode


# A server ends cleanly on any of these, so its agents' process groups are killed on the way out:
# a terminal or editor that goes away sends SIGHUP, whose default action would skip that.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@functools.cache
def host_name() -> str:
    """This machine's name, as rows that record a process say where it runs: a pid means something
    only on its own host (a PostgreSQL store is shared by several)."""
    return socket.gethostname()


async def cancel_on_signals(scope: anyio.CancelScope, received: list[int] | None = None) -> None:
    """Cancel `scope` at the first stop signal, noting which one in `received`."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for signum in signals:
            if received is not None:
                received.append(signum)
            scope.cancel()
            return
