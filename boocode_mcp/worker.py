"""`boocode worker`: one host's share of a PostgreSQL store's runs.

It opens an engine on the store for a clone of the repository (`--repo`), registers as a worker
and runs queued runs, each in a worktree of its clone at the run's base commit (fetched from
`--remote`), until SIGTERM or Ctrl-C. Its agents are its own: the agent table of the clone's
config and its user config. Stopping it marks its live runs `interrupted`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import anyio

from boocode_mcp import procs
from boocode_mcp.errors import BooCodeError

log = logging.getLogger(__name__)


async def serve_worker(repo: Path, url: str, remote: str | None) -> None:
    from boocode_mcp.engine import Engine, WorkerOptions
    from boocode_mcp.store import is_url

    if not is_url(url):
        raise BooCodeError(
            f"--db must be a postgresql:// URL (got {url!r}): workers share a PostgreSQL store"
        )
    async with Engine.open(repo, db_url=url, worker=WorkerOptions(remote=remote)) as engine:
        assert engine.shared is not None and engine.shared.worker_id is not None
        # One line on stderr once claiming: what scripts (and the tests) wait for.
        sys.stderr.write(
            f"boocode worker {engine.shared.worker_id} ready: host {procs.host_name()}, pid {os.getpid()}, "
            f"repo {engine.workspace}, store {engine.db.where}\n"
        )
        sys.stderr.flush()
        with anyio.open_signal_receiver(*procs.STOP_SIGNALS) as signals:
            async for signum in signals:
                log.warning("stopping on signal %s", signum)
                return


def main_worker(repo: Path, url: str, remote: str | None) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("boocode_mcp").setLevel(os.environ.get("BOOCODE_LOG_LEVEL", "WARNING").upper())
    anyio.run(serve_worker, repo, url, remote, backend="asyncio")
    return 0
