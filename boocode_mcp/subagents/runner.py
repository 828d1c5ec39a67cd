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
from typing import Any

import aiosqlite
import anyio
from anyio.abc import TaskStatus

from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.attachments import Attachments
from boocode_mcp.config import BOOCODE_DIR, Config
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.states import SubagentStatus
from boocode_mcp.store import subagents
from boocode_mcp.subagents.digest import DigestCache
from boocode_mcp.subagents.locks import RunLocks
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.prewarm import Prewarmer
from boocode_mcp.subagents.queue import RunQueue
from boocode_mcp.subagents.recording import ChatWorktrees
from boocode_mcp.subagents.run import Run
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
        db: aiosqlite.Connection,
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
        self._worktrees = ChatWorktrees(db, git, git.work_tree / BOOCODE_DIR / "indexes", notify)
        self._prewarmer = Prewarmer(self._worktrees, pool, self.agent_sessions_changed)
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
                for i in range(self._config.pool.max_concurrent_runs):
                    tg.start_soon(self._worker, name=f"run worker {i}")
                tg.start_soon(self._notify_activity, name="activity notifier")
                await tg.start(self._prewarmer.serve, name="pre-warms")
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                # Queued runs that never started: this process will not run them.
                for run in self._queue.drain():
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

    def _submit(self, run: Run) -> None:
        self._locks.hold(run.id)
        self.active[run.id] = run
        self._queue.put(run)

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
        run.status = status
        await subagents.set_status(self._db, run.id, status, **fields)
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
        run.cancel_requested.set()
        self.permissions.cancel(run.id)
        if not run.started:
            self._queue.remove(run)
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
