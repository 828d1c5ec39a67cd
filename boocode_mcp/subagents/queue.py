"""The queue of runs waiting for a worker: bounded, so a flood of spawns is refused, not dropped."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator

import anyio

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.subagents.run import Run


class QueueFullError(InvalidRequestError):
    """Spawning would queue more runs than `[pool] max_queued_runs` allows."""


class RunQueue:
    """Runs waiting for one of the runner's workers, first in first out, at most `limit` of them.

    A spawn reserves its place before it writes anything (`reserve`), so a refused spawn leaves no
    row behind and two concurrent spawns cannot both take the last place.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._runs: deque[Run] = deque()
        self._reserved = 0
        # The idle workers waiting in `get`, first come first woken: a run wakes one of them, not
        # all (a woken worker that finds nothing costs a trip through the loop).
        self._waiters: deque[anyio.Event] = deque()

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """A place in the queue for the block, which ends by `put`-ting its run; a QueueFullError
        when there is none."""
        if len(self._runs) + self._reserved >= self._limit:
            raise QueueFullError(
                f"{len(self._runs)} runs are already waiting for a worker (the [pool] max_queued_runs "
                f"limit is {self._limit}); wait for some to finish (subagent_status) or raise the limit"
            )
        self._reserved += 1
        try:
            yield
        finally:
            self._reserved -= 1

    def put(self, run: Run) -> None:
        self._runs.append(run)
        self._wake_one()

    def _wake_one(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()

    def remove(self, run: Run) -> None:
        """Take a run that will not start (cancelled while queued) out of the queue."""
        with contextlib.suppress(ValueError):
            self._runs.remove(run)

    def drain(self) -> list[Run]:
        """Every run still waiting, taken out of the queue."""
        runs = list(self._runs)
        self._runs.clear()
        return runs

    async def get(self) -> Run:
        """The oldest waiting run, once there is one."""
        while not self._runs:
            woken = anyio.Event()
            self._waiters.append(woken)
            try:
                await woken.wait()
            except BaseException:
                if woken.is_set():
                    # Woken for a run it will not take now: another worker takes it.
                    self._wake_one()
                else:
                    self._waiters.remove(woken)
                raise
        return self._runs.popleft()
