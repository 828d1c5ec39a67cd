"""Which runs some live engine is driving, told across engines and processes by file locks.

A run's row names its owner's pid, which is not enough: two engines may share a process (tests,
a daemon serving two workspaces), and a pid may belong to an earlier process. So the runner holds
an exclusive `flock` on `<dir>/<run id>.lock` while it drives a run. `flock` locks belong to an open
file, so another engine, in this process or any other, sees the lock held until the run is
released or its process dies (the kernel drops the lock with it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class RunLocks:
    """The lock files of runs, in one directory; `in` tells whether any engine drives a run."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._held: dict[str, int] = {}

    def _path(self, run_id: str) -> Path:
        return self._dir / f"{run_id}.lock"

    def hold(self, run_id: str) -> None:
        """Lock the run for as long as this engine drives it (until `drop`)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(run_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._held[run_id] = fd

    def drop(self, run_id: str) -> None:
        fd = self._held.pop(run_id, None)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            self._path(run_id).unlink()
        os.close(fd)

    def close(self) -> None:
        for run_id in list(self._held):
            self.drop(run_id)

    def __contains__(self, run_id: object) -> bool:
        if not isinstance(run_id, str):
            return False
        if run_id in self._held:
            return True
        try:
            fd = os.open(self._path(run_id), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False
