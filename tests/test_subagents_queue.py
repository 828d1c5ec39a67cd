"""The runner's queue of runs: bounded, first in first out, one idle worker woken per run."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest
from boocode_mcp.subagents.queue import QueueFullError, RunQueue
from boocode_mcp.subagents.run import Run

pytestmark = pytest.mark.anyio


def _run(n: int) -> Run:
    row = SubagentRow(
        id=f"run-{n}", session_id="s", chat_id=f"chat-{n}", agent="fixture", prompt="p", model=None,
        mode=None, status="queued", created_at=0.0, started_at=None, finished_at=None, stop_reason=None,
        final_message=None, error=None, usage=None, patch_id=None, owner_pid=None,
    )  # fmt: skip
    return Run(row=row, worktree=Path("/nonexistent"), digest=Digest(roots=()))


async def _settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def test_a_run_wakes_one_idle_worker_and_the_oldest_run_goes_first() -> None:
    queue = RunQueue(10)
    taken: list[tuple[int, str]] = []
    woken = 0

    async def worker(i: int) -> None:
        nonlocal woken
        while True:
            run = await queue.get()
            woken += 1
            taken.append((i, run.id))

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(worker, i)
        await _settle()
        queue.put(_run(1))
        await _settle()
        # One worker woke, for the one run: the other seven never left their wait.
        assert woken == 1 and [r for _, r in taken] == ["run-1"]
        queue.put(_run(2))
        queue.put(_run(3))
        await _settle()
        assert [r for _, r in taken] == ["run-1", "run-2", "run-3"] and woken == 3
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("woken_first", [True, False])
async def test_a_waiting_worker_cancelled_never_takes_a_run_with_it(woken_first: bool) -> None:
    queue = RunQueue(10)
    got: list[str] = []
    scope = anyio.CancelScope()

    async def first() -> None:
        with scope:
            got.append((await queue.get()).id + " by first")

    async def second() -> None:
        got.append((await queue.get()).id + " by second")

    with anyio.fail_after(10):  # a lost wake-up leaves `second` waiting: a failure, not a hang
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await _settle()
            tg.start_soon(second)
            await _settle()
            scope.cancel()
            if not woken_first:
                await _settle()  # `first` has left its wait before the run comes
            # With woken_first, the run wakes `first` (the oldest waiter) as its cancellation lands:
            # it passes the wake-up on.
            queue.put(_run(1))
            await _settle()
    assert got == ["run-1 by second"]


def test_a_full_queue_refuses_a_place() -> None:
    queue = RunQueue(1)
    with queue.reserve():
        queue.put(_run(1))
    with pytest.raises(QueueFullError, match="max_queued_runs"), queue.reserve():
        pass
