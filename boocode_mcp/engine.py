"""The engine: everything BooCode does for one workspace, behind the one API its front ends use.

Engine.open builds the store, the agent registry and pool, the runner, the memory index and the
tracer in one task group, after start-up recovery; leaving it shuts all of them down (no agent
process survives it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio

from boocode_mcp import commands, procs, workspace
from boocode_mcp.agents.backend import EventSink, PermissionHandler
from boocode_mcp.agents.cli_backend import CLI_NO_IMAGES
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry, ResolvedAgent
from boocode_mcp.attachments import Attachment, Attachments
from boocode_mcp.config import BOOCODE_DIR, Config, user_config_dir
from boocode_mcp.daemon.wire import DaemonError, check_state_dir
from boocode_mcp.delegation import AgentGateway, AgentGrant, CallingRun
from boocode_mcp.errors import BooCodeError, InvalidRequestError, NotFoundError, WorkspaceError
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.presenter import Presenter
from boocode_mcp.review import PatchReview
from boocode_mcp.states import TERMINAL_STATUSES, is_settled
from boocode_mcp.store import agent_capabilities as capabilities_store
from boocode_mcp.store import agent_sessions as agent_sessions_store
from boocode_mcp.store import chats as chats_store
from boocode_mcp.store import events as events_store
from boocode_mcp.store import lookups, open_db, sessions, work
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store import permissions as permissions_store
from boocode_mcp.store import subagents as runs_store
from boocode_mcp.store.chats import ChatRow
from boocode_mcp.store.db import Database
from boocode_mcp.store.events import EventRow
from boocode_mcp.store.patches import PatchRow
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import DigestCache
from boocode_mcp.subagents.locks import RunLocks
from boocode_mcp.subagents.recovery import RecoveryReport, recover, run_owner_alive
from boocode_mcp.subagents.run import Run
from boocode_mcp.subagents.runner import CANCEL_WAIT_S, INBOX_URI, Runner
from boocode_mcp.subagents.shared import SharedQueue, WorkerSetup
from boocode_mcp.tracing import Tracer
from boocode_mcp.trust import ConfigSource
from boocode_mcp.views import (
    AgentInfo,
    AgentSessionView,
    ApplyResult,
    CommandResult,
    InboxItem,
    MemoryHit,
    PatchView,
    SubagentView,
    TraceView,
)
from boocode_mcp.workflows import Workflows

log = logging.getLogger(__name__)
# Names the store (a postgresql:// URL) for every BooCode process started with it, over [store] url.
DB_URL_ENV = "BOOCODE_DB_URL"
# How long dropping an unused chat waits for its pre-warm (worktree + agent start) to end.
PREWARM_WAIT_S = 10.0

# How often wait() re-reads a run that another process drives (no in-process event to wait on).
FOREIGN_POLL_S = 0.25
# respond_permission returns once the run has taken the answer, at most this long after it.
RESPOND_WAIT_S = 5.0
RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})


class Engine:
    """One workspace's BooCode: sessions, chats, subagent runs, patches, memory, traces."""

    def __init__(
        self,
        *,
        workspace_dir: Path,
        db: Database,
        registry: AgentRegistry,
        pool: AgentPool,
        memory: MemoryIndex,
        recovery: RecoveryReport,
        git: workspace.GitRepo,
        run_locks: RunLocks,
        gateway: AgentGateway,
        user_dir: Path,
        worker_setup: WorkerSetup | None = None,
    ) -> None:
        self.workspace = workspace_dir
        self.git = git
        self.db = db
        self.registry = registry
        self.pool = pool
        self.memory = memory
        self.recovery = recovery
        # BooCode's MCP server for agent sessions: credentials here, the endpoint attached by
        # whoever owns the engine (agent_mcp.open_engine).
        self.agent_gateway = gateway
        self.attachments = Attachments(workspace_dir)
        self._listeners: list[Callable[[str], None]] = []
        self.tracer = Tracer(db, self._notify)
        self._run_locks = run_locks
        # A PostgreSQL store: runs wait in the database for any worker (this process among them
        # unless it only watches), and changes anywhere reach this process's waiters.
        self.shared = SharedQueue(db, worker_setup, self._notify) if worker_setup is not None else None
        digests = DigestCache()
        self._runner = Runner(
            db=db,
            git=git,
            config=registry.config,
            registry=registry,
            pool=pool,
            memory=memory,
            tracer=self.tracer,
            digests=digests,
            run_locks=run_locks,
            notify=self._notify,
            attachments=self.attachments,
            shared=self.shared,
        )
        self._present = Presenter(db, workspace_dir, self._runner, digests)
        self._review = PatchReview(
            db=db,
            git=git,
            presenter=self._present,
            check_chat_idle=self._check_chat_idle,
            notify=self._notify,
            # On a shared store the worker that next runs the chat folds the applied patch in.
            rebaseline=self.shared is None,
        )
        self.workflows = Workflows(
            host=self, db=db, git=git, user_dir=user_dir, config=lambda: self.config, notify=self._notify
        )

    # ------------------------------------------------------------------------------- lifetime

    @classmethod
    def open(
        cls,
        workspace: Path,
        *,
        config: Config | None = None,
        db_path: Path | None = None,
        user_config: Path | None = None,
        db_url: str | None = None,
        worker: WorkerOptions | None = None,
    ) -> AbstractAsyncContextManager[Engine]:
        """Open the engine for the git repository at (or above) `workspace`.

        The store is `db_path` (a sqlite file), else `db_url`, else $BOOCODE_DB_URL, else the
        config's `[store] url`, else `.boocode/boocode.db`. On a PostgreSQL store the engine also
        runs queued runs as a worker when `worker` is given or `[worker] local` is true."""
        return cls._open(
            workspace, config=config, db_path=db_path, user_config=user_config, db_url=db_url, worker=worker
        )

    @classmethod
    @asynccontextmanager
    async def _open(
        cls,
        workspace_dir: Path,
        *,
        config: Config | None,
        db_path: Path | None,
        user_config: Path | None,
        db_url: str | None = None,
        worker: WorkerOptions | None = None,
    ) -> AsyncIterator[Engine]:
        git = await workspace.open_repo(Path(workspace_dir))
        repo = git.work_tree
        # Re-read (with the user's trust in the workspace's own file) whenever an agent is resolved.
        registry = AgentRegistry(config if config is not None else ConfigSource(repo, user_config))
        try:
            check_state_dir(repo)
        except DaemonError as e:
            raise WorkspaceError(str(e)) from None
        await workspace.exclude_boocode_dir(git)
        boocode = repo / BOOCODE_DIR
        user_dir = user_config.parent if user_config is not None else user_config_dir()
        failure: Exception | None = None
        cfg = registry.config
        target: Path | str = (
            db_path or db_url or os.environ.get(DB_URL_ENV) or cfg.store.url or boocode / "boocode.db"
        )
        async with open_db(target) as db:
            run_locks = RunLocks(boocode / "runs")
            setup = None
            if db.dialect == "postgres":
                setup = _worker_setup(repo, cfg, worker)
            report = await recover(db, repo, run_locks, shared=setup is not None)
            gateway = AgentGateway()
            pool = AgentPool(
                registry,
                registry.config.pool,
                log_dir=boocode / "logs",
                db=db,
                owner_pid=os.getpid(),
                mcp=gateway,
                worker_id=setup.record.id if setup is not None and setup.record is not None else None,
            )
            memory = MemoryIndex(db, [boocode / "memory", user_dir / "memory"])
            async with pool.running():
                engine = cls(
                    workspace_dir=repo,
                    db=db,
                    registry=registry,
                    pool=pool,
                    memory=memory,
                    recovery=report,
                    git=git,
                    run_locks=run_locks,
                    gateway=gateway,
                    user_dir=user_dir,
                    worker_setup=setup,
                )
                async with anyio.create_task_group() as tg:
                    await tg.start(engine._runner.serve)
                    await tg.start(engine.workflows.serve)
                    try:
                        yield engine
                    except Exception as e:
                        # Re-raised below, outside every task group (ours and the pool's), so
                        # callers see their own exception rather than an exception group.
                        failure = e
                    finally:
                        tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    @property
    def config(self) -> Config:
        """The configuration in force now: the config files (and the user's trust in the
        workspace's own) as they are, not as they were at start-up."""
        return self.registry.config

    @property
    def kept_worktrees(self) -> list[Path]:
        """Orphan worktrees start-up recovery kept because they hold unapplied work."""
        return list(self.recovery.kept_worktrees)

    # ------------------------------------------------------------------------------ listeners

    def add_listener(self, fn: Callable[[str], None]) -> Callable[[], None]:
        """Call `fn(uri)` synchronously whenever the resource at `uri` changes."""
        self._listeners.append(fn)

        def remove() -> None:
            if fn in self._listeners:
                self._listeners.remove(fn)

        return remove

    def _notify(self, uri: str) -> None:
        for fn in list(self._listeners):
            try:
                fn(uri)
            except Exception:
                log.exception("resource listener failed for %s", uri)

    # ------------------------------------------------------------------------------- sessions

    async def ensure_session(self, session_id: str | None = None, *, create: bool = True) -> str:
        """The session's id, creating it (or a new one when None) unless `create` is False."""
        if session_id is None:
            if not create:
                raise InvalidRequestError("a session id is required")
            session_id = str(uuid.uuid4())
        if await sessions.exists(self.db, session_id):
            return session_id
        if not create:
            raise NotFoundError(f"no session {session_id!r} in {self.workspace}; omit it to use your own")
        await sessions.create(self.db, session_id)
        return session_id

    # ------------------------------------------------------------------------------- subagents

    async def spawn(
        self,
        session_id: str | None,
        prompt: str,
        *,
        agent: str | None = None,
        chat_id: str | None = None,
        model: str | None = None,
        mode: str | None = None,
        on_event: EventSink | None = None,
        permission_handler: PermissionHandler | None = None,
        images: Sequence[str] = (),
        parent: CallingRun | None = None,
        retry_of: SubagentRow | None = None,
        base: str | None = None,
    ) -> SubagentView:
        """Queue a run and return at once (status queued); the worktree and agent start in the
        background. With `chat_id` the run continues that chat on its warm agent, in the chat's
        session (`session_id`, when given, must be that session; None finds the chat anywhere in
        the workspace); an `agent` different from the chat's switches the chat to it (as
        set_chat_agent does). A new chat's session is created when it does not exist yet; its
        worktree starts at `base` (a commit; default the workspace's HEAD when it is made).

        `images` (workspace paths or data URIs) go to the agent with the prompt. `parent` is the run
        of a subagent spawning this one through BooCode's MCP server: the new run is its child, one
        level deeper, within `[delegation]` limits. `retry_of` re-runs that run's prompt and images
        (the caller gives its chat)."""
        if not prompt.strip():
            raise InvalidRequestError("the prompt is empty; say what the subagent should do")
        depth = 0
        if parent is not None:
            depth = await self._check_delegation(parent, chat_id, counted=retry_of is None)
        chat: ChatRow | None = None
        if chat_id is not None:
            chat = await chats_store.get(self.db, session_id, chat_id)
            if chat is None:
                where = f"session {session_id!r}" if session_id is not None else "this workspace"
                raise NotFoundError(f"no chat {chat_id!r} in {where}; omit chat_id to start a new chat")
            session_id = chat.session_id
        elif session_id is None:
            raise InvalidRequestError("a new chat needs a session; give session_id or a chat_id to continue")
        else:
            session_id = await self.ensure_session(session_id)
        if base is not None and chat_id is not None:
            raise InvalidRequestError("a base commit is for a new chat; a chat keeps its own")
        name = agent or (chat.agent if chat is not None else self.config.default_agent)
        # Unknown / not installed: the error comes now, not from the background.
        resolved = self.registry.resolve(name)
        if chat is not None:
            await self._check_chat_idle(chat.id)
        await self._runner.check_room()
        stored: list[Attachment] = [Attachment.from_record(r) for r in retry_of.images] if retry_of else []
        if images:
            stored = await self.attachments.store(images, self.config.images)
        if stored:
            await self._check_takes_images(resolved)
        # Its place in the queue first: a spawn the bounded queue refuses writes nothing.
        with self._runner.queue_place() as submit:
            if chat is None:
                chat_id = await self._new_chat(session_id, name, base)
            elif chat.agent != name:
                await chats_store.set_agent(self.db, chat.id, name)
            assert chat_id is not None
            subagent_id = str(uuid.uuid4())
            placement = (
                await self._placement(
                    chat_id, name, pinned=on_event is not None or permission_handler is not None
                )
                if self.shared is not None
                else {}
            )
            row = await runs_store.insert_if_chat_idle(
                self.db,
                subagent_id=subagent_id,
                session_id=session_id,
                chat_id=chat_id,
                agent=name,
                prompt=prompt,
                model=model,
                mode=mode,
                owner_pid=os.getpid(),
                parent_subagent_id=parent.subagent_id if parent is not None else None,
                depth=depth,
                retry_of=retry_of.id if retry_of is not None else None,
                images=[a.record() for a in stored],
                **placement,
            )
            if row is None:
                # Another caller won the race for this chat between the check and the insert.
                await self._check_chat_idle(chat_id)
                raise InvalidRequestError(f"chat {chat_id!r} already has a run in progress; wait for it")
            run = Run(
                row=row,
                worktree=self._present.worktree(chat_id),
                digest=self._present.new_digest(chat_id),
                on_event=on_event,
                permission_handler=permission_handler,
            )
            # Made before submitting, so the answer is the queued run even when a worker is idle; the
            # run has no events yet, so its own (empty) digest is the one to show.
            view = await self._present.subagent(row, run.digest, children=[])
            submit(run)
        self._notify(f"subagents://{subagent_id}")
        for lineage in (parent.subagent_id if parent else None, retry_of.id if retry_of else None):
            if lineage is not None:
                self._notify(f"subagents://{lineage}")
        if retry_of is not None:
            self._notify(INBOX_URI)
        return view

    async def _check_delegation(self, parent: CallingRun, chat_id: str | None, *, counted: bool) -> int:
        """The depth of a child of `parent`, or the refusal `[delegation]` limits make."""
        limits = self.config.delegation
        depth = parent.depth + 1
        if depth > limits.max_depth:
            raise InvalidRequestError(
                f"refused: a subagent of run {parent.subagent_id} would be at depth {depth}, and "
                f"[delegation] max_depth is {limits.max_depth} (a host's run is depth 0); do the work "
                "in this run instead of delegating it"
            )
        if counted and await runs_store.count_spawned(self.db, parent.subagent_id) >= limits.max_children:
            raise InvalidRequestError(
                f"refused: run {parent.subagent_id} already has {limits.max_children} children, the "
                "[delegation] max_children limit; wait for them (subagent_status) and do the rest here"
            )
        if chat_id is not None and not await runs_store.chat_has_child_of_chat(
            self.db, chat_id, parent.chat_id
        ):
            raise InvalidRequestError(
                f"chat {chat_id!r} was not started by a subagent of this chat; a subagent may continue "
                "only the chats of its own children: omit chat_id to start a new one"
            )
        return depth

    async def _check_takes_images(self, resolved: ResolvedAgent) -> None:
        """Refuse images for an agent known not to take them: a command-line agent, or an ACP agent
        that said so when it started here."""
        agent = resolved.name
        if resolved.spec.protocol == "cli":
            raise InvalidRequestError(CLI_NO_IMAGES.format(agent=agent))
        caps = await capabilities_store.get(self.db, agent)
        if caps is not None and not caps.image:
            raise InvalidRequestError(
                f"agent {agent!r} does not take images (its ACP initialize answer did not advertise "
                "promptCapabilities.image); send the prompt without images or pick an agent whose "
                "list_agents entry says images: true"
            )

    async def _placement(self, chat_id: str, agent: str, *, pinned: bool) -> dict[str, Any]:
        """Where a run on a shared store may run: its base commit (the chat's, else this
        workspace's HEAD, which the workers fetch), the permission policy it carries, and the
        worker it must (a front end here follows it in memory) or should (warm agent) run on."""
        assert self.shared is not None
        chat = await self._chat(None, chat_id)
        base = chat.base_sha
        if base is None:
            base = await workspace.capture_head(self.git)
            await chats_store.set_base(self.db, chat_id, base)
        me = self.shared.worker_id
        if pinned and me is None:
            raise InvalidRequestError(
                "this front end follows its run in this process, which runs no work ([worker] local = "
                "false); use the MCP tools or the CLI, or set [worker] local = true"
            )
        preferred = await work.warm_worker(self.db, chat_id, agent, self.shared.setup.lease_s)
        return {
            "base_sha": base,
            "permissions": self.config.permissions.model_dump(),
            "pinned_worker": me if pinned else None,
            "preferred_worker": preferred,
        }

    async def _check_chat_idle(self, chat_id: str) -> None:
        """One turn at a time per chat, across processes sharing the database."""
        if self.shared is not None:
            # A shared store: a live run is some worker's until its lease lapses (then the
            # heartbeat of any worker or front end closes it).
            for row in await runs_store.live_for_chat(self.db, chat_id):
                raise InvalidRequestError(
                    f"chat {chat_id!r} already has run {row.id!r} ({row.status}); one turn at a time per "
                    "chat: wait for it (subagent_status with wait_seconds) or cancel it"
                )
            return
        for row in await runs_store.live_for_chat(self.db, chat_id):
            if row.id in self._runner.active or (row.owner_pid == os.getpid() and row.id in self._run_locks):
                raise InvalidRequestError(
                    f"chat {chat_id!r} already has run {row.id!r} ({row.status}); one turn at a time per "
                    "chat: wait for it (subagent_status with wait_seconds) or cancel it"
                )
            if run_owner_alive(row.owner_pid, row.id, row.created_at, self._run_locks):
                raise InvalidRequestError(
                    f"chat {chat_id!r} has run {row.id!r} ({row.status}) live in another BooCode process "
                    f"(pid {row.owner_pid}); wait for it there or cancel it there"
                )
            await runs_store.mark_interrupted_if_live(
                self.db,
                row.id,
                f"the BooCode process running this subagent (pid {row.owner_pid}) exited before it finished",
            )
            self._notify(f"subagents://{row.id}")

    async def _row(self, session_id: str | None, subagent_id: str) -> SubagentRow:
        row = await runs_store.get(self.db, session_id, subagent_id)
        if row is None:
            where = f"in session {session_id!r}" if session_id is not None else "in this workspace"
            raise NotFoundError(
                f"no subagent {subagent_id!r} {where}; list them with subagent_status without an id"
            )
        return row

    async def _view(self, row: SubagentRow) -> SubagentView:
        return await self._present.subagent(row)

    async def status(self, session_id: str | None, subagent_id: str) -> SubagentView:
        return await self._view(await self._row(session_id, subagent_id))

    async def list_subagents(self, session_id: str | None, limit: int = 50) -> list[SubagentView]:
        """Most recent first."""
        return [await self._view(r) for r in await runs_store.list_runs(self.db, session_id, limit)]

    async def wait(self, session_id: str | None, subagent_id: str, timeout_s: float) -> SubagentView:
        """The run's status after it changes or `timeout_s` passes, whichever comes first."""
        run = self._runner.active.get(subagent_id)
        if (
            run is not None
            and session_id in (None, run.row.session_id)
            and run.status not in TERMINAL_STATUSES
            and timeout_s > 0
        ):
            # Driven here and not finished: its status is in memory (written to the database
            # before `changed` fires), so there is nothing to read before waiting.
            with anyio.move_on_after(timeout_s):
                await run.changed.wait()
            return await self.status(session_id, subagent_id)
        changed = run.changed if run is not None else None
        row = await self._row(session_id, subagent_id)
        if row.status in TERMINAL_STATUSES or timeout_s <= 0:
            return await self._view(row)
        with anyio.move_on_after(timeout_s):
            if changed is not None:
                await changed.wait()
            else:
                await self._foreign_change(session_id, subagent_id, row.status)
        return await self.status(session_id, subagent_id)

    async def wait_settled(self, session_id: str | None, subagent_id: str, timeout_s: float) -> SubagentView:
        """The run's status once it has ended or waits for a permission answer (settled: it moves on
        only when someone answers), or when `timeout_s` passes. A run driven here is followed in
        memory, so the statuses it passes through on the way cost no read."""
        run = self._runner.active.get(subagent_id)
        if run is None or session_id not in (None, run.row.session_id):
            deadline = anyio.current_time() + timeout_s
            view = await self.status(session_id, subagent_id)
            while not is_settled(view.status) and (left := deadline - anyio.current_time()) > 0:
                view = await self.wait(session_id, subagent_id, left)
            return view
        with anyio.move_on_after(timeout_s):
            while not is_settled(run.status):
                await run.changed.wait()
        return await self.status(session_id, subagent_id)

    async def _foreign_change(self, session_id: str | None, subagent_id: str, status: str) -> None:
        """Until the status of a run another process drives moves. On PostgreSQL its notification
        wakes the wait (re-read every `[worker] poll_s` in case one is lost); on sqlite no event
        crosses processes, and the database is re-read every FOREIGN_POLL_S."""
        poll = self.shared.setup.poll_s if self.shared is not None else FOREIGN_POLL_S
        uri = f"subagents://{subagent_id}"
        heard = anyio.Event()

        def listener(changed: str) -> None:
            if changed == uri:
                heard.set()

        remove = self.add_listener(listener)
        try:
            while (await self._row(session_id, subagent_id)).status == status:
                with anyio.move_on_after(poll):
                    await heard.wait()
                heard = anyio.Event()
        finally:
            remove()

    async def wait_finished(self, session_id: str | None, subagent_id: str) -> SubagentView:
        """The run's status once it has finished (unbounded: for the CLI and ACP front ends)."""
        run = self._runner.active.get(subagent_id)
        if run is not None and session_id in (None, run.row.session_id):
            # Driven here: followed in memory until it ends, with no read on the way.
            while run.status not in TERMINAL_STATUSES:
                await run.changed.wait()
        while True:
            view = await self.wait(session_id, subagent_id, 3600)
            if view.status in TERMINAL_STATUSES:
                return view

    async def cancel(self, session_id: str | None, subagent_id: str) -> SubagentView:
        """Cancel a run (session/cancel to its agent, never a kill) and every live run below it
        (its children, theirs, ...), all at once; a finished run is returned unchanged, though its
        live descendants are still cancelled."""
        row = await self._row(session_id, subagent_id)
        descendants = await self._live_descendants(row.id)
        refused: list[BooCodeError] = []

        async def cancel_child(child: SubagentRow) -> None:
            try:
                await self._cancel_one(child)
            except BooCodeError as e:
                # A child driven by another process: that process must cancel it.
                log.warning("could not cancel %s, a child of %s: %s", child.id, row.id, e)

        async def cancel_own() -> None:
            try:
                await self._cancel_one(row)
            except BooCodeError as e:
                refused.append(e)

        async with anyio.create_task_group() as tg:
            for child in descendants:
                tg.start_soon(cancel_child, child)
            if row.status not in TERMINAL_STATUSES:
                tg.start_soon(cancel_own)
        if refused:
            raise refused[0]
        return await self.status(session_id, subagent_id)

    async def _live_descendants(self, subagent_id: str) -> list[SubagentRow]:
        found: list[SubagentRow] = []
        level = [subagent_id]
        seen = {subagent_id}
        while level:
            rows = [r for r in await runs_store.children(self.db, level) if r.id not in seen]
            seen.update(r.id for r in rows)
            found += [r for r in rows if r.status not in TERMINAL_STATUSES]
            level = [r.id for r in rows]
        return found

    async def _cancel_one(self, row: SubagentRow) -> None:
        subagent_id = row.id
        run = self._runner.active.get(subagent_id) or self._runner.pinned(subagent_id)
        if run is not None:
            await self._runner.cancel(run)
        elif self.shared is not None:
            # Another worker's: queued and unclaimed it is cancelled here, else its worker is asked.
            if not await work.cancel_unclaimed(self.db, row.id):
                await work.request_cancel(self.db, row.id)
                await self.wait(None, subagent_id, CANCEL_WAIT_S)
        elif run_owner_alive(row.owner_pid, row.id, row.created_at, self._run_locks):
            raise InvalidRequestError(
                f"subagent {subagent_id!r} runs in another BooCode process (pid {row.owner_pid}); "
                "cancel it through that process"
            )
        elif await runs_store.mark_interrupted_if_live(
            self.db, row.id, f"the BooCode process running this subagent (pid {row.owner_pid}) exited"
        ):
            self._notify(f"subagents://{row.id}")
            self._notify(INBOX_URI)

    async def retry(self, session_id: str | None, subagent_id: str) -> SubagentView:
        """Run a failed, cancelled or interrupted run's prompt (and images) again on its chat, as a
        new run that names it in `retry_of`; a child's retry stays its parent's child."""
        row = await self._row(session_id, subagent_id)
        if row.status not in RETRYABLE:
            raise InvalidRequestError(
                f"subagent {subagent_id!r} is {row.status}; only a failed, cancelled or interrupted run "
                "can be retried"
            )
        again = await runs_store.retried_by(self.db, row.id)
        if again is not None:
            raise InvalidRequestError(
                f"subagent {subagent_id!r} was already retried as {again!r}; retry that one if it failed too"
            )
        parent: CallingRun | None = None
        if row.parent_subagent_id is not None:
            above = await runs_store.get(self.db, None, row.parent_subagent_id)
            if above is not None:
                parent = CallingRun(above.session_id, above.chat_id, above.agent, above.id, above.depth)
        return await self.spawn(
            row.session_id,
            row.prompt,
            agent=row.agent,
            chat_id=row.chat_id,
            model=row.model,
            mode=row.mode,
            parent=parent,
            retry_of=row,
        )

    async def check_child_of_chat(self, subagent_id: str, chat_id: str) -> None:
        """Refuse unless the run is a child of one of the chat's runs (an agent cancels only the
        subagents its own chat spawned)."""
        row = await self._row(None, subagent_id)
        parent = (
            await runs_store.get(self.db, None, row.parent_subagent_id)
            if row.parent_subagent_id is not None
            else None
        )
        if parent is None or parent.chat_id != chat_id:
            raise InvalidRequestError(
                f"refused: subagent {subagent_id!r} is not one of this run's children; an agent may "
                "cancel only the subagents it spawned (their ids are in its subagent_status children)"
            )

    async def calling_run(self, grant: AgentGrant) -> CallingRun:
        """The run an agent's MCP call with `grant` is attributed to: the chat's run in flight here,
        else the chat's latest run (a call between turns)."""
        live = [r.row for r in self._runner.active.values() if r.row.chat_id == grant.chat_id]
        row = live[0] if live else await runs_store.latest_for_chat(self.db, grant.chat_id)
        if row is None:
            raise InvalidRequestError(
                f"chat {grant.chat_id} has no run yet; BooCode's tools answer an agent's calls during "
                "its runs"
            )
        return CallingRun(row.session_id, row.chat_id, row.agent, row.id, row.depth)

    async def inbox(self, limit: int = 100) -> list[InboxItem]:
        """What needs a person, newest first: runs that failed or were interrupted (not retried),
        runs waiting for a permission answer, pending patches whose apply conflicted."""
        items: list[InboxItem] = []
        for row in await runs_store.unretried_failures(self.db, limit):
            kind: Literal["failed", "interrupted"] = "failed" if row.status == "failed" else "interrupted"
            items.append(
                InboxItem(
                    kind=kind,
                    subagent_id=row.id,
                    patch_id=row.patch_id,
                    session_id=row.session_id,
                    status=row.status,
                    reason=row.error or row.stop_reason or f"the run {row.status}",
                    created_at=row.finished_at or row.created_at,
                )
            )
        for request in await permissions_store.waiting(self.db, limit):
            items.append(
                InboxItem(
                    kind="permission",
                    subagent_id=request.subagent_id,
                    session_id=request.session_id,
                    status="awaiting_permission",
                    reason=f"asks permission (request {request.id}): {request.title}",
                    created_at=request.created_at,
                )
            )
        for c in await patches_store.pending_conflicts(self.db, limit):
            files = "; ".join(f"{x.get('file')}: {x.get('reason')}" for x in c.conflicts)
            items.append(
                InboxItem(
                    kind="conflict",
                    subagent_id=c.subagent_id,
                    patch_id=c.patch_id,
                    session_id=c.session_id,
                    status=c.status,
                    reason=f"apply conflicted: {files}" if files else "apply conflicted",
                    created_at=c.conflicted_at,
                )
            )
        items.sort(key=lambda i: i.created_at, reverse=True)
        return items[:limit]

    async def respond_permission(
        self, session_id: str | None, subagent_id: str, request_id: str, option_id: str
    ) -> SubagentView:
        """Answer a run's pending permission request; the run resumes."""
        row = await self._row(session_id, subagent_id)
        run: Run | None = self._runner.active.get(subagent_id)
        if run is None:
            if row.status in TERMINAL_STATUSES:
                raise InvalidRequestError(
                    f"subagent {subagent_id!r} has finished ({row.status}); it has no pending permission"
                )
            if self.shared is not None:
                # Its worker hears the answer through the store.
                await self._present.answer_elsewhere(row, request_id, option_id)
                with anyio.move_on_after(RESPOND_WAIT_S):
                    await self._foreign_change(session_id, subagent_id, row.status)
                return await self.status(session_id, subagent_id)
            raise InvalidRequestError(
                f"subagent {subagent_id!r} runs in another BooCode process (pid {row.owner_pid}); answer "
                "its permission request through that process"
            )
        changed = run.changed
        self._runner.permissions.respond(subagent_id, request_id, option_id)
        with anyio.move_on_after(RESPOND_WAIT_S):
            await changed.wait()
        return await self.status(session_id, subagent_id)

    async def chat_history(self, session_id: str | None, chat_id: str) -> list[SubagentView]:
        """The chat's runs, oldest first (what ACP session/load replays)."""
        chat = await self._chat(session_id, chat_id)
        return [await self._view(r) for r in await runs_store.for_chat(self.db, chat.id)]

    # ----------------------------------------------------------------------------------- chats

    async def _chat(self, session_id: str | None, chat_id: str) -> ChatRow:
        chat = await chats_store.get(self.db, session_id, chat_id)
        if chat is None:
            where = f"in session {session_id!r}" if session_id is not None else "in this workspace"
            raise NotFoundError(f"no chat {chat_id!r} {where}")
        return chat

    async def chats(self, session_id: str | None) -> list[ChatRow]:
        """Newest first."""
        return await chats_store.list_chats(self.db, session_id)

    async def list_sessions(self, *, limit: int) -> list[sessions.SessionSummary]:
        """Sessions that have run something, most recently active first."""
        return await sessions.list_summaries(self.db, limit=limit)

    async def open_chat(self, session_id: str, agent: str | None = None) -> str:
        """A new chat whose worktree and agent start now, in the background, so its first turn
        (spawn with this chat_id) finds them ready. An agent that is unknown or not installed is
        an error here. `drop_chat_if_unused` undoes it while the chat has had no run."""
        name = agent or self.config.default_agent
        self.registry.resolve(name)
        session_id = await self.ensure_session(session_id)
        chat_id = await self._new_chat(session_id, name)
        self._runner.prewarm(session_id, chat_id, name)
        return chat_id

    async def _new_chat(self, session_id: str, agent: str, base: str | None = None) -> str:
        """A chat row; its worktree is made on first use, at `base` when given."""
        chat_id = str(uuid.uuid4())
        await chats_store.insert(
            self.db,
            chat_id=chat_id,
            session_id=session_id,
            agent=agent,
            worktree=str(self._present.worktree(chat_id)),
        )
        if base is not None:
            await chats_store.set_base(self.db, chat_id, base)
        return chat_id

    async def prewarm_chat(self, session_id: str | None, chat_id: str) -> None:
        """Start the chat's worktree and agent (reloading its agent session) in the background,
        as `open_chat` does; not while a run of the chat is live, here or in another process."""
        chat = await self._chat(session_id, chat_id)
        if not await runs_store.live_for_chat(self.db, chat.id):
            self._runner.prewarm(chat.session_id, chat.id, chat.agent)

    async def drop_chat_if_unused(self, session_id: str | None, chat_id: str) -> bool:
        """Remove a chat that never ran (its row, agent and clean worktree), as if `open_chat`
        had not been called; False, and nothing changed, once it has a run."""
        chat = await self._chat(session_id, chat_id)
        with anyio.move_on_after(PREWARM_WAIT_S):
            # A pre-warm still starting the agent is cut short by closing it below.
            await self._runner.prewarmed(chat.id)
        if not await chats_store.delete_if_unused(self.db, chat.id):
            return False
        await self.pool.close_chat(chat.id)
        try:
            await workspace.remove_worktree(self.git, chat.id)
        except WorkspaceError as e:
            # Only a worktree someone changed by hand: left for the orphan reaping at start-up.
            log.warning("kept the worktree of unused chat %s: %s", chat.id, e)
        self._notify("agent-sessions://list")
        return True

    async def release_chat(self, session_id: str | None, chat_id: str) -> None:
        """Cancel the chat's runs in this process and close its warm agent. The chat and its
        history stay: its next turn starts the agent again, which reloads its session."""
        chat = await self._chat(session_id, chat_id)
        for run in [r for r in self._runner.active.values() if r.row.chat_id == chat.id]:
            await self._runner.cancel(run)
        await self.pool.close_chat(chat.id)

    async def set_chat_agent(self, session_id: str | None, chat_id: str, agent: str) -> None:
        """Switch the chat's backend agent for its later turns."""
        chat = await self._chat(session_id, chat_id)
        self.registry.spec(agent)
        await chats_store.set_agent(self.db, chat.id, agent)

    # --------------------------------------------------------------------------------- patches

    async def list_patches(
        self,
        session_id: str | None,
        *,
        chat_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        include_hunks: bool = False,
        include_diff: bool = False,
    ) -> list[PatchView]:
        """Newest first."""
        return await self._review.list_patches(
            session_id,
            chat_id=chat_id,
            status=status,
            limit=limit,
            include_hunks=include_hunks,
            include_diff=include_diff,
        )

    async def get_patch(
        self, session_id: str | None, patch_id: str, *, include_hunks: bool = True, include_diff: bool = False
    ) -> PatchView:
        return await self._review.get_patch(
            session_id, patch_id, include_hunks=include_hunks, include_diff=include_diff
        )

    async def apply_pending(
        self,
        session_id: str | None,
        *,
        patch_ids: Sequence[str] | None = None,
        chat_id: str | None = None,
        dry_run: bool = False,
        commit_message: str | None = None,
    ) -> ApplyResult:
        """Apply the selected pending patches to the workspace, all or none.

        Selection: `patch_ids`, else `chat_id`'s pending patch, else every pending patch of the
        session. On success each patch is marked applied and its chat re-baselined, so the chat's
        later patches hold only newer work; on conflict nothing changes.
        """
        if patch_ids is not None and chat_id is not None:
            raise InvalidRequestError("give either patch_ids or chat_id, not both")

        async def selected() -> list[PatchRow]:
            return await self._selected(session_id, patch_ids, chat_id)

        return await self._review.apply_pending(selected, dry_run=dry_run, commit_message=commit_message)

    async def _selected(
        self, session_id: str | None, patch_ids: Sequence[str] | None, chat_id: str | None
    ) -> list[PatchRow]:
        """The pending patches to apply, oldest first (the order they were made in)."""
        if patch_ids is not None:
            if not patch_ids:
                raise InvalidRequestError("patch_ids is empty; list pending patches with list_patches")
            selected: list[PatchRow] = []
            for pid in dict.fromkeys(patch_ids):
                p = await self._review.row(session_id, pid)
                if p.status != "pending":
                    raise InvalidRequestError(
                        f"patch {pid!r} is {p.status}, not pending; only pending patches can be applied"
                    )
                selected.append(p)
            return selected
        if chat_id is not None:
            chat = await self._chat(session_id, chat_id)
            selected = await patches_store.list_patches(
                self.db, chat.session_id, chat_id=chat.id, status="pending"
            )
            if not selected:
                raise InvalidRequestError(f"chat {chat_id!r} has no pending patch")
        else:
            selected = await patches_store.list_patches(self.db, session_id, status="pending")
        selected.reverse()
        return selected

    async def discard(self, session_id: str | None, patch_id: str) -> PatchView:
        """Discard a pending patch: its changes leave the chat's worktree, so the chat's next patch
        does not carry them again. The main workspace is not touched."""
        return await self._review.discard(session_id, patch_id)

    # ------------------------------------------------------------------------- everything else

    async def search_memory(self, query: str, limit: int = 10, source: str | None = None) -> list[MemoryHit]:
        # search() refreshes the notes itself (stat only, throttled); no refresh per query here.
        return await self.memory.search(query, limit, source)

    async def run_command(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        cwd: str | None = None,
        timeout_s: float = 30,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        return await commands.run_command(
            self.workspace, command, args, cwd=cwd, timeout_s=timeout_s, env=env
        )

    async def traces(self, session_id: str | None) -> list[TraceView]:
        """A session's traced tool calls, or (None) the workspace's."""
        return await self.tracer.list_traces(session_id)

    async def events(self, subagent_id: str, after_seq: int = 0, *, limit: int = -1) -> list[EventRow]:
        """A run's recorded events after `after_seq`, oldest first."""
        return await events_store.list_events(self.db, subagent_id, after_seq, limit)

    async def find_ids(
        self,
        kind: Literal["subagent", "patch", "chat", "workflow_run"],
        prefix: str,
        session_id: str | None = None,
    ) -> list[tuple[str, str]]:
        """(id, session id) of the subagents, patches, chats or workflow runs whose id starts with
        `prefix`."""
        return await lookups.find_ids(self.db, kind, prefix, session_id)

    async def list_agents(self) -> list[AgentInfo]:
        """Every agent a run may name: installed or not, its version, and whether it takes images
        (as it said the last time it started here; None before it has)."""
        known = await capabilities_store.all_agents(self.db)
        return [
            info
            if info.protocol == "cli"
            else info.model_copy(update={"images": known[info.name].image if info.name in known else None})
            for info in await self.registry.describe()
        ]

    def live_run_count(self) -> int:
        """Runs and workflow runs this engine has queued or running: what keeps a daemon from
        idling out."""
        return len(self._runner.active) + self._runner.pinned_count() + self.workflows.live_count()

    def warm_agent_count(self) -> int:
        return len(self.pool.backends())

    async def agent_sessions(self, chat_id: str | None = None) -> list[AgentSessionView]:
        """The warm/known agent sessions, most recently active first."""
        rows = (
            await agent_sessions_store.list_all(self.db)
            if chat_id is None
            else await agent_sessions_store.list_by_chat(self.db, chat_id)
        )
        return [r.to_view() for r in rows]


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    """`boocode worker`: run queued runs of a PostgreSQL store from this clone, fetching their base
    commits from `remote`."""

    remote: str | None = "origin"


def _worker_setup(repo: Path, cfg: Config, worker: WorkerOptions | None) -> WorkerSetup:
    """How an engine on a PostgreSQL store takes part: as a worker (`boocode worker`, or a daemon
    with `[worker] local`), or only watching."""
    record = None
    if worker is not None or cfg.worker.local:
        record = work.WorkerRecord(
            id=uuid.uuid4().hex,
            host=procs.host_name(),
            pid=os.getpid(),
            repo=str(repo),
            capacity=cfg.pool.max_concurrent_runs,
        )
    return WorkerSetup(
        record=record,
        lease_s=cfg.worker.lease_s,
        poll_s=cfg.worker.poll_s,
        worktrees=str(workspace.worktree_path(repo, "_").parent) + os.sep,
        remote=worker.remote if worker is not None else "origin",
    )
