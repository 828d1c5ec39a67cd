"""Runs on a PostgreSQL store, shared by every worker on every host (`store.work`).

`SharedQueue.serve` runs, beside the runner, for as long as the engine is open:

- the listener: `LISTEN` on the store's channels. A queued run wakes the claim loop; a run's
  status or events changing anywhere wake this process's waiters (`wait_seconds`, `watch`); a
  cancel request or a permission answer for a run this process drives is passed to it.
- the heartbeat, every third of `[worker] lease_s`: the worker's liveness and the leases of the
  runs it holds renewed, and any run whose lease lapsed (its worker died) closed `interrupted`.
- the claim loop (a worker only): while it has room, claim the oldest queued run it may take
  (`SELECT … FOR UPDATE SKIP LOCKED`); with none, wait for a notification, or `[worker] poll_s`
  at most (the fallback when a notification is lost, e.g. while the listener reconnects).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from boocode_mcp.errors import NotFoundError
from boocode_mcp.store import permissions as permission_rows
from boocode_mcp.store import subagents as run_rows
from boocode_mcp.store import work
from boocode_mcp.store.db import Database, DatabaseError, Notification
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.run import Run

log = logging.getLogger(__name__)

CHANNELS = ("boocode_runs", "boocode_events", "boocode_permissions")


@dataclass(frozen=True)
class WorkerSetup:
    """How this process takes part: as a worker (`record`), or only watching (`record` None)."""

    record: work.WorkerRecord | None
    lease_s: float
    poll_s: float
    worktrees: str  # this worker's worktree directory, with its trailing separator
    remote: str | None = "origin"  # where a worker fetches a run's base commit from


class Claimant(Protocol):
    """What the queue needs of the runner it feeds."""

    active: dict[str, Run]
    permissions: PermissionQueue

    def room(self) -> int: ...

    def start_claimed(self, row: SubagentRow) -> None: ...

    def request_cancel(self, run: Run) -> None: ...


class SharedQueue:
    def __init__(self, db: Database, setup: WorkerSetup, notify: Callable[[str], None]) -> None:
        self._db = db
        self.setup = setup
        self._notify = notify
        self._wake = anyio.Event()

    @property
    def worker_id(self) -> str | None:
        return self.setup.record.id if self.setup.record is not None else None

    def wake(self) -> None:
        """Look for a queued run now (a run was queued, or one of ours ended)."""
        wake, self._wake = self._wake, anyio.Event()
        wake.set()

    async def serve(
        self, runner: Claimant, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        record = self.setup.record
        if record is not None:
            await work.register(self._db, record)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._listen, runner, name="store listener")
                tg.start_soon(self._beat, runner, name="worker heartbeat")
                if record is not None:
                    tg.start_soon(self._claims, runner, record, name="claim loop")
                task_status.started()
        finally:
            if record is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await work.stopped(self._db, record.id)

    # -- claiming ------------------------------------------------------------------------------

    async def _claims(self, runner: Claimant, record: work.WorkerRecord) -> None:
        while True:
            woken = self._wake  # a wake during the claim below is not lost
            if runner.room() > 0:
                try:
                    row = await work.claim(
                        self._db, record, lease_s=self.setup.lease_s, worktrees=self.setup.worktrees
                    )
                except DatabaseError as e:
                    log.warning("claiming a run failed (retrying): %s", e)
                    row = None
                if row is not None:
                    runner.start_claimed(row)
                    continue
            with anyio.move_on_after(self.setup.poll_s):
                await woken.wait()

    # -- the listener ----------------------------------------------------------------------------

    async def _listen(self, runner: Claimant) -> None:
        while True:
            try:
                async with self._db.listen(CHANNELS) as notes:
                    self.wake()  # whatever was queued while nobody listened
                    async for note in notes:
                        await self._heard(runner, note)
            except DatabaseError as e:
                log.warning("listening to the store failed (polling until it is back): %s", e)
                await anyio.sleep(self.setup.poll_s)

    async def _heard(self, runner: Claimant, note: Notification) -> None:
        words = note.payload.split(" ")
        run_id = words[0]
        run = runner.active.get(run_id)
        if note.channel == "boocode_runs":
            if words[-1] == "queued":
                self.wake()
            if run is not None and not run.cancel_requested.is_set():
                row = await run_rows.get(self._db, None, run_id)
                if row is not None and row.cancel_requested:
                    runner.request_cancel(run)
            if run is None:
                self._notify(f"subagents://{run_id}")
        elif note.channel == "boocode_events":
            # A run driven here announces its own activity (throttled); others' only through this.
            if run is None:
                self._notify(f"subagents://{run_id}")
        elif note.channel == "boocode_permissions" and len(words) == 3:
            request_id, status = words[1], words[2]
            if run is not None and status == "answered":
                await self._answer(runner, run_id, request_id)
            elif run is None:
                self._notify(f"subagents://{run_id}")

    async def _answer(self, runner: Claimant, run_id: str, request_id: str) -> None:
        """A host on another process answered a permission request of a run driven here."""
        for row in await permission_rows.for_subagent(self._db, run_id):
            if row.id == request_id and row.decision is not None:
                # NotFoundError: answered here already, or timed out meanwhile.
                with contextlib.suppress(NotFoundError):
                    runner.permissions.respond(run_id, request_id, row.decision)

    # -- heartbeat and leases ---------------------------------------------------------------------

    async def _beat(self, runner: Claimant) -> None:
        record = self.setup.record
        while True:
            try:
                if record is not None:
                    for run_id in await work.heartbeat(
                        self._db, record.id, len(runner.active), self.setup.lease_s
                    ):
                        run = runner.active.get(run_id)
                        if run is not None and not run.cancel_requested.is_set():
                            runner.request_cancel(run)
                for run_id in await work.expire_leases(self._db):
                    self._notify(f"subagents://{run_id}")
            except DatabaseError as e:
                log.warning("worker heartbeat failed (retrying): %s", e)
            await anyio.sleep(self.setup.lease_s / 3)
