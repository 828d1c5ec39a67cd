"""Driving the `boocode` command line as a subprocess, for the CLI tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import write_config

BOOCODE = Path(sys.executable).parent / "boocode"
TIMEOUT = 90
# `boocode` as a terminal would start it, for tests that press Ctrl-C: a shell starts background
# jobs with SIGINT ignored, and a test run started that way would pass the disposition on (the exec
# keeps the pid, so the test signals `boocode` itself).
INTERACTIVE_BOOCODE = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
    str(BOOCODE),
]


def configure(repo: Path, *, policy: str = "auto", timeout_s: float = 300) -> Path:
    write_config(repo, policy=policy, timeout_s=timeout_s)
    return repo


def boo(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(BOOCODE), *args, "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if check:
        assert done.returncode == 0, f"{args}: {done.returncode}\n{done.stderr}"
    return done


def boo_json(workspace: Path, *args: str) -> Any:
    return json.loads(boo(workspace, *args, "--json").stdout)


def read_until(fd: int, done: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
    """What a child has written to `fd` so far, once `done` holds of it (bounded by `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not done(seen.decode(errors="replace")):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"timed out; child wrote: {seen!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"child closed the pipe; it wrote: {seen!r}"
        seen += chunk
    return seen.decode(errors="replace")


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def start_run(workspace: Path, prompt: str, *extra: str, **streams: Any) -> subprocess.Popen[bytes]:
    """`boocode run PROMPT` as a terminal would start it (Ctrl-C works), in a group of its own."""
    return subprocess.Popen(
        [*INTERACTIVE_BOOCODE, "run", prompt, "--workspace", str(workspace), *extra],
        stdout=subprocess.PIPE,
        start_new_session=True,
        **streams,
    )


def stop(run: subprocess.Popen[bytes]) -> None:
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
