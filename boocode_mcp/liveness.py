"""Whether a process is alive, with the standard library only (front ends that must start fast
import this, as does the engine)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a running process (another user's counts). A zombie does not: it has
    exited and holds nothing, and it may stay a zombie for a while where nobody reaps it promptly
    (a detached daemon's parent is whatever init the machine has), so a run or agent it owned must
    not be taken for alive until then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    # No /proc (or the process just went): kill() above is all we know.
    fields = proc_stat(pid)
    return fields is not None and bool(fields) and fields[0] in ("Z", "X")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on); None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after the last ")" are fixed.
    return stat.rsplit(")", 1)[-1].split()
