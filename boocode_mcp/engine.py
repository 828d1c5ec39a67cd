"""The engine: everything BooCode does for one workspace, behind the one API its front ends use.

Engine.open builds the store, the agent registry and pool, the runner, the memory index and the
tracer in one task group, after start-up recovery; leaving it shuts all of them down (no agent
process survives it).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite
import anyio

from boocode_mcp import commands, workspace
from boocode_mcp.agents.backend import EventSink, PermissionHandler
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.config import BOOCODE_DIR, Config, user_config_dir
from boocode_mcp.errors import InvalidRequestError, NotFoundError, WorkspaceError
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.store import agent_sessions as agent_sessions_store
from boocode_mcp.store import chats as chats_store
from boocode_mcp.store import events as events_store
from boocode_mcp.store import lookups, open_db, sessions
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store import subagents as runs_store
from boocode_mcp.store.chats import ChatRow
from boocode_mcp.store.events import EventRow
from boocode_mcp.store.patches import PatchRow
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest
from boocode_mcp.subagents.recovery import RecoveryReport, recover, run_owner_alive
from boocode_mcp.subagents.runner import Run, Runner, new_run
from boocode_mcp.tracing import Tracer
from boocode_mcp.trust import ConfigSource
from boocode_mcp.views import (
    TERMINAL_STATUSES,
    AgentSessionView,
    ApplyResult,
    Collision,
    CommandResult,
    Conflict,
    HunkView,
    MemoryHit,
    PatchFileView,
    PatchView,
    SubagentView,
    TraceView,
    Usage,
)

log = logging.getLogger(__name__)
# How long dropping an unused chat waits for its pre-warm (worktree + agent start) to end.
PREWARM_WAIT_S = 10.0

# How often wait() re-reads a run that another process drives (no in-process event to wait on).
FOREIGN_POLL_S = 0.25
# respond_permission returns once the run has taken the answer, at most this long after it.
RESPOND_WAIT_S = 5.0
_DIGEST_CACHE_MAX = 256


class Engine:
    """One workspace's BooCode: sessions, chats, subagent runs, patches, memory, traces."""

    def __init__(
        self,
        *,
        workspace_dir: Path,
        db: aiosqlite.Connection,
        registry: AgentRegistry,
        pool: AgentPool,
        memory: MemoryIndex,
        recovery: RecoveryReport,
    ) -> None:
        self.workspace = workspace_dir
        self.db = db
        self.registry = registry
        self.pool = pool
        self.memory = memory
        self.recovery = recovery
        self._listeners: list[Callable[[str], None]] = []
        self.tracer = Tracer(db, self._notify)
        self._runner = Runner(
            db=db,
            repo=workspace_dir,
            config=registry.config,
            registry=registry,
            pool=pool,
            memory=memory,
            tracer=self.tracer,
            notify=self._notify,
        )
        self._digests: dict[str, Digest] = {}
        # Two applies at once could both see a patch pending and apply it twice.
        self._apply_lock = anyio.Lock()

    # ------------------------------------------------------------------------------- lifetime

    @classmethod
    def open(
        cls,
        workspace: Path,
        *,
        config: Config | None = None,
        db_path: Path | None = None,
        user_config: Path | None = None,
    ) -> AbstractAsyncContextManager[Engine]:
        """Open the engine for the git repository at (or above) `workspace`."""
        return cls._open(workspace, config=config, db_path=db_path, user_config=user_config)

    @classmethod
    @asynccontextmanager
    async def _open(
        cls,
        workspace_dir: Path,
        *,
        config: Config | None,
        db_path: Path | None,
        user_config: Path | None,
    ) -> AsyncIterator[Engine]:
        repo = await workspace.ensure_repo(Path(workspace_dir))
        # Re-read (with the user's trust in the workspace's own file) whenever an agent is resolved.
        registry = AgentRegistry(config if config is not None else ConfigSource(repo, user_config))
        await workspace.exclude_boocode_dir(repo)
        boocode = repo / BOOCODE_DIR
        user_dir = user_config.parent if user_config is not None else user_config_dir()
        failure: Exception | None = None
        async with open_db(db_path if db_path is not None else boocode / "boocode.db") as db:
            report = await recover(db, repo)
            pool = AgentPool(
                registry, registry.config.pool, log_dir=boocode / "logs", db=db, owner_pid=os.getpid()
            )
            memory = MemoryIndex(db, [boocode / "memory", user_dir / "memory"])
            async with pool:
                engine = cls(
                    workspace_dir=repo,
                    db=db,
                    registry=registry,
                    pool=pool,
                    memory=memory,
                    recovery=report,
                )
                async with anyio.create_task_group() as tg:
                    await tg.start(engine._runner.serve)
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
    ) -> SubagentView:
        """Queue a run and return at once (status queued); the worktree and agent start in the
        background. With `chat_id` the run continues that chat on its warm agent, in the chat's
        session (`session_id`, when given, must be that session; None finds the chat anywhere in
        the workspace); an `agent` different from the chat's switches the chat to it (as
        set_chat_agent does). A new chat's session is created when it does not exist yet."""
        if not prompt.strip():
            raise InvalidRequestError("the prompt is empty; say what the subagent should do")
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
        name = agent or (chat.agent if chat is not None else self.config.default_agent)
        self.registry.resolve(name)  # unknown / not installed -> error now, not in the background
        if chat is not None:
            await self._check_chat_idle(chat.id)
            if chat.agent != name:
                await chats_store.set_agent(self.db, chat.id, name)
        else:
            chat_id = await self._new_chat(session_id, name)
        assert chat_id is not None
        subagent_id = str(uuid.uuid4())
        inserted = await runs_store.insert_if_chat_idle(
            self.db,
            subagent_id=subagent_id,
            session_id=session_id,
            chat_id=chat_id,
            agent=name,
            prompt=prompt,
            model=model,
            mode=mode,
            owner_pid=os.getpid(),
        )
        if not inserted:
            # Another caller won the race for this chat between the check and the insert.
            await self._check_chat_idle(chat_id)
            raise InvalidRequestError(f"chat {chat_id!r} already has a run in progress; wait for it")
        run = new_run(
            subagent_id=subagent_id,
            session_id=session_id,
            chat_id=chat_id,
            agent=name,
            prompt=prompt,
            model=model,
            mode=mode,
            worktree=workspace.worktree_path(self.workspace, chat_id),
            repo=self.workspace,
            on_event=on_event,
            permission_handler=permission_handler,
        )
        # Read before submitting, so the answer is the queued run even when a worker is idle; the
        # run has no events yet, so its own (empty) digest is the one to show.
        view = await self._view(await self._row(session_id, subagent_id), run.digest)
        self._runner.submit(run)
        self._notify(f"subagents://{subagent_id}")
        return view

    async def _check_chat_idle(self, chat_id: str) -> None:
        """One turn at a time per chat, across processes sharing the database."""
        for row in await runs_store.live_for_chat(self.db, chat_id):
            if row.id in self._runner.active or (
                row.owner_pid == os.getpid() and run_owner_alive(row.owner_pid, row.id, row.created_at)
            ):
                raise InvalidRequestError(
                    f"chat {chat_id!r} already has run {row.id!r} ({row.status}); one turn at a time per "
                    "chat: wait for it (subagent_status with wait_seconds) or cancel it"
                )
            if run_owner_alive(row.owner_pid, row.id, row.created_at):
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

    async def _digest(self, row: SubagentRow) -> Digest:
        run = self._runner.active.get(row.id)
        if run is not None:
            return run.digest
        cached = self._digests.get(row.id)
        if cached is not None:
            return cached
        if row.status in TERMINAL_STATUSES:
            # The live digest of a run that ended in this process: it applied the same events the
            # table holds, in the same order, at the same times.
            ended = self._runner.ended_digests.pop(row.id, None)
            if ended is not None:
                self._cache_digest(row.id, ended)
                return ended
        digest = Digest(
            roots=(str(workspace.worktree_path(self.workspace, row.chat_id)), str(self.workspace))
        )
        for ev in await events_store.list_events(self.db, row.id):
            digest.apply(ev.kind, ev.payload, ev.created_at)
        if row.status in TERMINAL_STATUSES:
            self._cache_digest(row.id, digest)
        return digest

    def _cache_digest(self, subagent_id: str, digest: Digest) -> None:
        # A finished run's events never change again.
        if len(self._digests) >= _DIGEST_CACHE_MAX:
            self._digests.pop(next(iter(self._digests)))
        self._digests[subagent_id] = digest

    async def _view(self, row: SubagentRow, digest: Digest | None = None) -> SubagentView:
        if digest is None:
            digest = await self._digest(row)
        collisions: list[Collision] = []
        if row.patch_id is not None:
            patch = await patches_store.get(self.db, row.session_id, row.patch_id)
            if patch is not None:
                collisions = await self._collisions(patch)
        return SubagentView(
            subagent_id=row.id,
            session_id=row.session_id,
            chat_id=row.chat_id,
            agent=row.agent,
            worktree=str(workspace.worktree_path(self.workspace, row.chat_id)),
            status=row.status,  # type: ignore[arg-type]  # the table's CHECK constraint holds the set
            prompt=row.prompt,
            activity=digest.activity(),
            final_message=row.final_message,
            stop_reason=row.stop_reason,
            error=row.error,
            usage=Usage(**row.usage) if row.usage else None,
            patch_id=row.patch_id,
            pending_permission=self._runner.permissions.pending(row.id),
            collisions=collisions,
            session_note=digest.session_note,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

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
            and session_id in (None, run.session_id)
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
                # Driven by another process: re-read until its status moves.
                # No event crosses processes; polling the shared database is the only signal.
                while (await self._row(session_id, subagent_id)).status == row.status:  # noqa: ASYNC110
                    await anyio.sleep(FOREIGN_POLL_S)
        return await self.status(session_id, subagent_id)

    async def wait_finished(self, session_id: str | None, subagent_id: str) -> SubagentView:
        """The run's status once it has finished (unbounded: for the CLI and ACP front ends)."""
        while True:
            view = await self.wait(session_id, subagent_id, 3600)
            if view.status in TERMINAL_STATUSES:
                return view

    async def cancel(self, session_id: str | None, subagent_id: str) -> SubagentView:
        """Cancel a run (session/cancel to its agent, never a kill); a finished run is returned
        unchanged."""
        row = await self._row(session_id, subagent_id)
        if row.status in TERMINAL_STATUSES:
            return await self._view(row)
        run = self._runner.active.get(subagent_id)
        if run is not None:
            await self._runner.cancel(run)
        elif run_owner_alive(row.owner_pid, row.id, row.created_at):
            raise InvalidRequestError(
                f"subagent {subagent_id!r} runs in another BooCode process (pid {row.owner_pid}); "
                "cancel it through that process"
            )
        elif await runs_store.mark_interrupted_if_live(
            self.db, row.id, f"the BooCode process running this subagent (pid {row.owner_pid}) exited"
        ):
            self._notify(f"subagents://{row.id}")
        return await self.status(session_id, subagent_id)

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

    async def _new_chat(self, session_id: str, agent: str) -> str:
        """A chat row; its worktree is made on first use."""
        chat_id = str(uuid.uuid4())
        await chats_store.insert(
            self.db,
            chat_id=chat_id,
            session_id=session_id,
            agent=agent,
            worktree=str(workspace.worktree_path(self.workspace, chat_id)),
        )
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
            await workspace.remove_worktree(self.workspace, chat.id)
        except WorkspaceError as e:
            # Only a worktree someone changed by hand: left for the orphan reaping at start-up.
            log.warning("kept the worktree of unused chat %s: %s", chat.id, e)
        self._notify("agent-sessions://list")
        return True

    async def release_chat(self, session_id: str | None, chat_id: str) -> None:
        """Cancel the chat's runs in this process and close its warm agent. The chat and its
        history stay: its next turn starts the agent again, which reloads its session."""
        chat = await self._chat(session_id, chat_id)
        for run in [r for r in self._runner.active.values() if r.chat_id == chat.id]:
            await self._runner.cancel(run)
        await self.pool.close_chat(chat.id)

    async def set_chat_agent(self, session_id: str | None, chat_id: str, agent: str) -> None:
        """Switch the chat's backend agent for its later turns."""
        chat = await self._chat(session_id, chat_id)
        self.registry.spec(agent)
        await chats_store.set_agent(self.db, chat.id, agent)

    # --------------------------------------------------------------------------------- patches

    def _parsed(self, patch: PatchRow) -> workspace.ParsedDiff:
        # As stored when it was recorded: listing patches (collisions for every pending one) never
        # re-parses their diffs.
        return workspace.ParsedDiff.from_records(patch.files, patch.hunks)

    async def _collisions(
        self, patch: PatchRow, pending: Sequence[PatchRow] | None = None
    ) -> list[Collision]:
        """Other chats' pending patches (in the same session) touching the same or adjacent lines."""
        if patch.status != "pending":
            return []
        if pending is None:
            pending = await patches_store.list_patches(self.db, patch.session_id, status="pending")
        others = [(p.id, p.chat_id, self._parsed(p)) for p in pending if p.chat_id != patch.chat_id]
        if not others:
            return []
        return [
            Collision(file=o.file, other_patch_id=o.other_patch_id, other_chat_id=o.other_chat_id)
            for o in workspace.find_collisions(self._parsed(patch), others)
        ]

    def _patch_view(
        self, p: PatchRow, collisions: list[Collision], *, include_hunks: bool, include_diff: bool
    ) -> PatchView:
        return PatchView(
            id=p.id,
            session_id=p.session_id,
            chat_id=p.chat_id,
            subagent_id=p.subagent_id,
            agent=p.agent,
            status=p.status,  # type: ignore[arg-type]  # the table's CHECK constraint holds the set
            parent_patch_id=p.parent_patch_id,
            failed_mid_turn=p.failed_mid_turn,
            file_count=p.file_count,
            hunk_count=p.hunk_count,
            additions=p.additions,
            deletions=p.deletions,
            files=[PatchFileView(**f) for f in p.files],
            created_at=p.created_at,
            base_sha=p.base_sha,
            collisions=collisions,
            hunks=[HunkView(**h) for h in p.hunks] if include_hunks else None,
            diff=p.diff if include_diff else None,
        )

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
        rows = await patches_store.list_patches(
            self.db, session_id, chat_id=chat_id, status=status, limit=limit
        )
        out: list[PatchView] = []
        pending_by_session: dict[str, list[PatchRow]] = {}
        for p in rows:
            collisions: list[Collision] = []
            if p.status == "pending":
                if p.session_id not in pending_by_session:
                    pending_by_session[p.session_id] = await patches_store.list_patches(
                        self.db, p.session_id, status="pending"
                    )
                collisions = await self._collisions(p, pending_by_session[p.session_id])
            out.append(
                self._patch_view(p, collisions, include_hunks=include_hunks, include_diff=include_diff)
            )
        return out

    async def _patch(self, session_id: str | None, patch_id: str) -> PatchRow:
        p = await patches_store.get(self.db, session_id, patch_id)
        if p is None:
            where = f"in session {session_id!r}" if session_id is not None else "in this workspace"
            raise NotFoundError(f"no patch {patch_id!r} {where}; list them with list_patches")
        return p

    async def get_patch(
        self, session_id: str | None, patch_id: str, *, include_hunks: bool = True, include_diff: bool = False
    ) -> PatchView:
        p = await self._patch(session_id, patch_id)
        return self._patch_view(
            p, await self._collisions(p), include_hunks=include_hunks, include_diff=include_diff
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
        async with self._apply_lock:
            return await self._apply(session_id, patch_ids, chat_id, dry_run, commit_message)

    async def _apply(
        self,
        session_id: str | None,
        patch_ids: Sequence[str] | None,
        chat_id: str | None,
        dry_run: bool,
        commit_message: str | None,
    ) -> ApplyResult:
        selected: list[PatchRow] = []
        if patch_ids is not None:
            if not patch_ids:
                raise InvalidRequestError("patch_ids is empty; list pending patches with list_patches")
            for pid in dict.fromkeys(patch_ids):
                p = await self._patch(session_id, pid)
                if p.status != "pending":
                    raise InvalidRequestError(
                        f"patch {pid!r} is {p.status}, not pending; only pending patches can be applied"
                    )
                selected.append(p)
        elif chat_id is not None:
            chat = await self._chat(session_id, chat_id)
            selected = await patches_store.list_patches(
                self.db, chat.session_id, chat_id=chat.id, status="pending"
            )
            if not selected:
                raise InvalidRequestError(f"chat {chat_id!r} has no pending patch")
            selected.reverse()
        else:
            selected = await patches_store.list_patches(self.db, session_id, status="pending")
            selected.reverse()  # oldest first: the order they were made in
        if not selected:
            return ApplyResult(applied=[], conflicts=[], dry_run=dry_run)
        outcome = await workspace.apply_patches(
            self.workspace, [(p.id, p.diff) for p in selected], dry_run=dry_run, commit_message=commit_message
        )
        conflicts = [Conflict(patch_id=c.patch_id, file=c.file, reason=c.reason) for c in outcome.conflicts]
        if conflicts or dry_run:
            return ApplyResult(
                applied=list(outcome.applied),
                conflicts=conflicts,
                dry_run=dry_run,
                commit_sha=outcome.commit_sha,
            )
        now = time.time()
        for p in selected:
            await patches_store.set_status(self.db, p.id, "applied", applied_at=now)
            owner = await chats_store.get(self.db, p.session_id, p.chat_id)
            if owner is not None and owner.base_sha is not None:
                # The chat's later patches are diffed against what has now been applied.
                new_base = await workspace.rebaseline(Path(owner.worktree), p.base_sha, p.diff)
                await chats_store.set_base(self.db, owner.id, new_base)
            self._notify(f"patches://{p.session_id}/{p.id}")
        return ApplyResult(
            applied=[p.id for p in selected], conflicts=[], dry_run=False, commit_sha=outcome.commit_sha
        )

    async def discard(self, session_id: str | None, patch_id: str) -> PatchView:
        """Discard a pending patch: its changes leave the chat's worktree, so the chat's next patch
        does not carry them again. The main workspace is not touched."""
        p = await self._patch(session_id, patch_id)
        if p.status != "pending":
            raise InvalidRequestError(f"patch {patch_id!r} is {p.status}, not pending; nothing to discard")
        # A live turn is still writing the worktree: reverting under it would corrupt its work.
        await self._check_chat_idle(p.chat_id)
        owner = await chats_store.get(self.db, p.session_id, p.chat_id)
        if owner is not None and await anyio.Path(owner.worktree).is_dir():
            await workspace.revert_worktree(Path(owner.worktree), p.diff)
        await patches_store.set_status(self.db, p.id, "discarded")
        self._notify(f"patches://{p.session_id}/{p.id}")
        return await self.get_patch(p.session_id, p.id, include_hunks=False)

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
        self, kind: Literal["subagent", "patch", "chat"], prefix: str, session_id: str | None = None
    ) -> list[tuple[str, str]]:
        """(id, session id) of the subagents, patches or chats whose id starts with `prefix`."""
        return await lookups.find_ids(self.db, kind, prefix, session_id)

    def live_run_count(self) -> int:
        """Runs this engine has queued or running: what keeps a daemon from idling out."""
        return len(self._runner.active)

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
