"""`python -m boocode_mcp.daemon --workspace DIR`: run a workspace's daemon (front ends start it).

With `--detach` the process forks first and the parent exits, so the daemon is no child of the
front end that started it; `--ready-fd N` names a pipe on which the daemon says "ready" once it
listens, or the error that stopped it from starting.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m boocode_mcp.daemon")
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--detach", action="store_true")
    p.add_argument("--ready-fd", type=int, default=None)
    args = p.parse_args(argv)
    if args.detach and os.fork() > 0:
        # Before anything heavy is imported or any thread exists: forking is safe here.
        os._exit(0)
    from boocode_mcp.daemon.server import main_daemon

    sys.exit(main_daemon(args.workspace, args.ready_fd))


if __name__ == "__main__":
    main()
