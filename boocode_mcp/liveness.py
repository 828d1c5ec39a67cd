"""Whether a process is alive, with the standard library only (front ends that must start fast
import this, as does the engine)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a process (one of another user's counts; a zombie counts too)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
