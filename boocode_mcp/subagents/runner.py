"""The runner: the runs this process drives, from a bounded queue through a fixed set of workers
(`[pool] max_concurrent_runs`), with the pre-warming of chats beside them.

Its parts: `queue.RunQueue` (waiting runs), `turn.Turns` (one turn), `prewarm.Prewarmer`,
`recording.ChatWorktrees` (worktrees and their patches). Every task lives in the task group of
`serve`; nothing is fire-and-forget.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.attachments import Attachments
from boocode_mcp.config import BOOCODE_DIR, Config
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.states import SubagentStatus
from boocode_mcp.store import subagents, work
from boocode_mcp.store.db import Database
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest, DigestCache
from boocode_mcp.subagents.locks import RunLocks
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.prewarm import Prewarmer
from boocode_mcp.subagents.queue import QueueFullError, RunQueue
from boocode_mcp.subagents.recording import ChatWorktrees
from boocode_mcp.subagents.run import Run
from boocode_mcp.subagents.shared import SharedQueue
from boocode_mcp.subagents.turn import Turns
from boocode_mcp.tracing import Tracer
from boocode_mcp.views import PendingPermission
from boocode_mcp.workspace import GitRepo

log = logging.getLogger(__name__)

# A streaming agent changes its activity many times a second; listeners hear about it at most this
# often (status changes are announced at once): at most 20 notifications a second instead of one per
# update, yet soon enough that an open web page or `boocode run` shows an event within tens of ms.
ACTIVITY_NOTIFY_INTERVAL_S = 0.05
# How long cancel() waits for the turn to come back after session/cancel before it reports the
# status as it stands.
CANCEL_WAIT_S = 15.0
# The inbox's resource, and the run statuses that put a run in it (or take it out again).
INBOX_URI = "inbox://"
INBOX_STATUSES = frozenset({"failed", "interrupted", "awaiting_permission", "running"})


class Runner:
    """Owns the queue, the workers, the pre-warms and the runs in flight of one Engine."""

    def __init__(
        self,
        *,
        db: Database,
        git: GitRepo,
        config: Config,
        registry: AgentRegistry,
        pool: AgentPool,
        memory: MemoryIndex | None,
        tracer: Tracer,
        digests: DigestCache,
        run_locks: RunLocks,
        notify: Callable[[str], None],
        attachments: Attachments,
        shared: SharedQueue | None = None,
    ) -> None:
        self._db = db
        self._config = config
        self._pool = pool
        self._notify = notify
        self._digests = digests
        self._locks = run_locks
        self.active: dict[str, Run] = {}
        self.permissions = PermissionQueue(
            # Asked at each request: the policy in force when the question comes.
            db,
            lambda: registry.config.permissions,
            self._on_pending,
        )
        self._queue = RunQueue(config.pool.max_queued_runs)
        self._max_queued = config.pool.max_queued_runs
        self._capacity = config.pool.max_concurrent_runs
        # On a PostgreSQL store runs wait in the database, for any worker (see subagents/shared.py);
        # the ones a front end of this process follows in memory wait here until claimed.
        self.shared = shared
        self._pinned: dict[str, Run] = {}
        self._claimed_tg: TaskGroup | None = None
        self._worktrees = ChatWorktrees(
            db,
            git,
            git.work_tree / BOOCODE_DIR / "indexes",
            notify,
            shared=shared is not None,
            remote=shared.setup.remote if shared is not None else None,
        )
        # Listeners hear of a chat's agent session as soon as its row is written, whoever wrote it.
        pool.on_written = self.agent_sessions_changed
        self._prewarmer = Prewarmer(self._worktrees, pool)
        self._turns = Turns(
            db=db,
            registry=registry,
            pool=pool,
            permissions=self.permissions,
            worktrees=self._worktrees,
            memory=memory,
            tracer=tracer,
            states=self,
            attachments=attachments,
        )
        self._dirty: set[str] = set()
        self._dirty_event = anyio.Event()

    # ----------------------------------------------------------------------------------- lifetime

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the workers, the activity notifier and the pre-warms until cancelled; then close
        what is left."""
        try:
            async with anyio.create_task_group() as tg:
                if self.shared is not None:
                    self._claimed_tg = tg
                    await tg.start(self.shared.serve, self, name="shared queue")
                else:
                    for i in range(self._capacity):
                        tg.start_soon(self._worker, name=f"run worker {i}")
                tg.start_soon(self._notify_activity, name="activity notifier")
                await tg.start(self._prewarmer.serve, name="pre-warms")
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                # Queued runs that never started: this process will not run them.
                # (On a shared store only the runs pinned here: the others wait for any worker.)
                for run in [*self._queue.drain(), *self._pinned.values()]:
                    await self._finish_unstarted(
                        run, "interrupted", "BooCode shut down before the run started; spawn it again"
                    )
            self._worktrees.close()
            self._locks.close()

    @contextlib.contextmanager
    def queue_place(self) -> Iterator[Callable[[Run], None]]:
        """A place in the bounded queue (QueueFullError when there is none), held while the spawn
        writes its run; the block submits the run through the callable it is given."""
        with self._queue.reserve():
            yield self._submit

    async def check_room(self) -> None:
        """On a shared store, refuse a spawn while `[pool] max_queued_runs` runs wait for a worker
        (QueueFullError); the local queue checks its own bound in `queue_place`."""
        if self.shared is not None and await work.queued(self._db) >= self._max_queued:
            raise QueueFullError(
                f"{self._max_queued} runs are already waiting for a worker (the [pool] max_queued_runs "
                "limit); wait for some to finish (subagent_status), start more workers, or raise the limit"
            )

    def _submit(self, run: Run) -> None:
        if self.shared is not None:
            # In the database already; a worker claims it. Kept here only when a front end of this
            # process follows it in memory (it is pinned to this worker).
            if run.on_event is not None or run.permission_handler is not None:
                self._pinned[run.id] = run
            return
        self._locks.hold(run.id)
        self.active[run.id] = run
        self._queue.put(run)

    def pinned(self, run_id: str) -> Run | None:
        """A run a front end here follows, not claimed yet."""
        return self._pinned.get(run_id)

    def pinned_count(self) -> int:
        return len(self._pinned)

    def room(self) -> int:
        """How many more claimed runs this worker takes now."""
        return self._capacity - sum(1 for r in self.active.values() if r.row.worker_id is not None)

    def start_claimed(self, row: SubagentRow) -> None:
        """Drive a run this worker claimed from the shared store."""
        assert self._claimed_tg is not None
        pinned = self._pinned.pop(row.id, None)
        run = Run(
            row=row,
            worktree=Path(row.worktree or ""),
            digest=Digest(roots=(row.worktree or "", str(self._worktrees.root))),
            on_event=pinned.on_event if pinned is not None else None,
            permission_handler=pinned.permission_handler if pinned is not None else None,
        )
        if pinned is not None:
            run.digest = pinned.digest
            run.changed = pinned.changed
        self._locks.hold(run.id)
        self.active[run.id] = run
        self._claimed_tg.start_soon(self._run_claimed, run, name=f"run {run.id}")

    async def _run_claimed(self, run: Run) -> None:
        try:
            await self._turns.execute(run)
        finally:
            assert self.shared is not None
            self.shared.wake()

    def request_cancel(self, run: Run) -> None:
        """Ask a run to stop (what cancel does first), without waiting for it."""
        run.cancel_requested.set()
        self.permissions.cancel(run.id)

    async def _worker(self) -> None:
        while True:
            run = await self._queue.get()
            if not (run.started or run.finished):
                await self._turns.execute(run)

    # ----------------------------------------------------------------------------------- pre-warm

    def prewarm(self, session_id: str, chat_id: str, agent: str) -> None:
        """Make a chat's worktree and start its agent in the background (see Prewarmer)."""
        self._prewarmer.prewarm(session_id, chat_id, agent)

    async def prewarmed(self, chat_id: str) -> None:
        await self._prewarmer.prewarmed(chat_id)

    # --------------------------------------------------------- what turns tell the runner (RunStates)

    async def set_status(self, run: Run, status: SubagentStatus, **fields: Any) -> None:
        await subagents.set_status(self._db, run.id, status, **fields)
        # In memory once stored: whoever sees the status here and reads the row finds it there.
        run.status = status
        self._changed(run)

    def activity(self, run: Run) -> None:
        self._dirty.add(run.id)
        self._dirty_event.set()

    def agent_sessions_changed(self, chat_id: str) -> None:
        self._notify("agent-sessions://list")
        self._notify(f"agent-sessions://{chat_id}")

    def release(self, run: Run) -> None:
        # Only after the final status is in the database: until then the chat must read as busy.
        self.active.pop(run.id, None)
        self._locks.drop(run.id)
        # A finished run's digest is final: the first status read after the end (the one a waiting
        # caller makes at once) need not rebuild it from the events table.
        self._digests.put(run.id, run.digest)
        run.done.set()

    # ------------------------------------------------------------------------------ notifications

    def _changed(self, run: Run) -> None:
        event, run.changed = run.changed, anyio.Event()
        event.set()
        self._notify(f"subagents://{run.id}")
        if run.status in INBOX_STATUSES:
            self._notify(INBOX_URI)
        if run.row.parent_subagent_id is not None:
            # The parent's status lists its children.
            self._notify(f"subagents://{run.row.parent_subagent_id}")

    async def _notify_activity(self) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event = anyio.Event()
            dirty, self._dirty = self._dirty, set()
            for run_id in dirty:
                self._notify(f"subagents://{run_id}")
            await anyio.sleep(ACTIVITY_NOTIFY_INTERVAL_S)

    async def _on_pending(self, subagent_id: str, pending: PendingPermission | None) -> None:
        run = self.active.get(subagent_id)
        if run is None or run.status not in ("running", "awaiting_permission"):
            return
        await self.set_status(run, "awaiting_permission" if pending is not None else "running")

    # ---------------------------------------------------------------------------------- cancel

    async def cancel(self, run: Run) -> None:
        """Cancel a run: a queued one never starts; a running one gets session/cancel (through the
        turn's watcher) and this waits, bounded, for the turn to come back."""
        self.request_cancel(run)
        if not run.started:
            self._queue.remove(run)
            self._pinned.pop(run.id, None)
            await self._finish_unstarted(run, "cancelled", None)
            return
        with anyio.move_on_after(CANCEL_WAIT_S):
            await run.done.wait()

    async def _finish_unstarted(self, run: Run, status: SubagentStatus, error: str | None) -> None:
        if run.started or run.finished:
            return
        run.finished = True
        await self.set_status(run, status, finished_at=time.time(), error=error)
        self.release(run)
