"""The runner: a queue of subagent runs executed by a fixed set of workers (max_concurrent_runs).

One turn = the chat's worktree → its warm agent (pool) → the prompt, its events streamed into the
`events` table by one consumer per run → the worktree diffed against the chat's base → a patch →
the run's final status. Every task lives in the runner's task group; nothing is fire-and-forget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from boocode_mcp import workspace
from boocode_mcp.agents.backend import AgentBackend, EventSink, PermissionHandler, TurnResult
from boocode_mcp.agents.events import AgentEvent
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.config import BOOCODE_DIR, Config
from boocode_mcp.errors import BooCodeError
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.store import chats, events, patches, subagents
from boocode_mcp.store.chats import ChatRow
from boocode_mcp.subagents.digest import SESSION_KIND, Digest, event_record
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.recovery import LIVE_RUNS
from boocode_mcp.tracing import Tracer
from boocode_mcp.views import PendingPermission

log = logging.getLogger(__name__)

# A streaming agent changes its activity many times a second; listeners hear about it at most this
# often (status changes are announced at once): at most 20 notifications a second instead of one per
# update, yet soon enough that an open web page or `boocode run` shows an event within tens of ms.
ACTIVITY_NOTIFY_INTERVAL_S = 0.05
# How long cancel() waits for the turn to come back after session/cancel before it reports the
# status as it stands.
CANCEL_WAIT_S = 15.0
# A turn still running this long after cancel was asked for is abandoned (its agent closed), so a
# run can never hang on an agent that ignores session/cancel (the backend's own bound comes first).
CANCEL_ABANDON_S = 60.0
# Bound on the end-of-turn bookkeeping (diff, patch) when it runs shielded during shutdown.
FINISH_TIMEOUT_S = 30.0
MAX_TOOL_TITLES = 200
ENDED_DIGESTS_MAX = 64

Record = tuple[str, dict[str, Any], float]


@dataclasses.dataclass(eq=False)
class Run:
    """A run this process owns, from queued until its final status is written."""

    id: str
    session_id: str
    chat_id: str
    agent: str
    prompt: str
    model: str | None
    mode: str | None
    worktree: Path
    digest: Digest
    on_event: EventSink | None = None
    permission_handler: PermissionHandler | None = None
    status: str = "queued"
    started: bool = False
    finished: bool = False
    backend: AgentBackend | None = None
    tool_titles: list[str] = dataclasses.field(default_factory=list)
    cancel_requested: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    changed: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)


@dataclasses.dataclass
class _Outcome:
    status: str = "failed"
    stop_reason: str | None = None
    error: str | None = None
    result: TurnResult | None = None


class Runner:
    """Owns the queue, the workers and the runs in flight of one Engine."""

    def __init__(
        self,
        *,
        db: aiosqlite.Connection,
        repo: Path,
        config: Config,
        registry: AgentRegistry,
        pool: AgentPool,
        memory: MemoryIndex | None,
        tracer: Tracer,
        notify: Callable[[str], None],
    ) -> None:
        self._db = db
        self._repo = repo
        self._config = config
        self._registry = registry
        self._pool = pool
        self._memory = memory
        self._tracer = tracer
        self._notify = notify
        self.active: dict[str, Run] = {}
        # The digests of runs that just ended, so the first status read after the end (the one a
        # waiting caller makes at once) need not rebuild them from the events table.
        self.ended_digests: dict[str, Digest] = {}
        self.permissions = PermissionQueue(db, lambda: registry.config.permissions, self._on_pending)
        send, recv = anyio.create_memory_object_stream[str](math.inf)
        self._queue_send: MemoryObjectSendStream[str] = send
        self._queue_recv: MemoryObjectReceiveStream[str] = recv
        self._dirty: set[str] = set()
        self._dirty_event = anyio.Event()
        # One private index per chat worktree, reset to the chat's base between turns so the diff
        # after a turn needs only `git add` and `git diff`.
        self._indexes = workspace.DiffIndexes(repo / BOOCODE_DIR / "indexes")
        self._tg: TaskGroup | None = None
        # create_worktree runs `git worktree prune`, which deletes the admin directory of a worktree
        # another `git worktree add` is still creating (its add then fails): one creation at a time.
        self._create_lock = anyio.Lock()
        # Chats being pre-warmed: the event is set when that ends.
        self._prewarming: dict[str, anyio.Event] = {}

    # ----------------------------------------------------------------------------------- lifetime

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the workers and the activity notifier until cancelled; then close what is left."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for _ in range(self._config.pool.max_concurrent_runs):
                    tg.start_soon(self._worker, self._queue_recv.clone())
                tg.start_soon(self._notify_activity)
                task_status.started()
        finally:
            self._tg = None
            with anyio.CancelScope(shield=True):
                # Queued runs that never started: this process will not run them.
                for run in list(self.active.values()):
                    await self._finish_unstarted(
                        run, "interrupted", "BooCode shut down before the run started; spawn it again"
                    )
            self._indexes.close()

    def submit(self, run: Run) -> None:
        self.active[run.id] = run
        LIVE_RUNS.add(run.id)
        self._queue_send.send_nowait(run.id)

    async def _worker(self, recv: MemoryObjectReceiveStream[str]) -> None:
        async with recv:
            async for run_id in recv:
                run = self.active.get(run_id)
                if run is None or run.started or run.finished:
                    continue  # cancelled while queued
                await self._execute(run)

    # ------------------------------------------------------------------------------ notifications

    def _changed(self, run: Run) -> None:
        event, run.changed = run.changed, anyio.Event()
        event.set()
        self._notify(f"subagents://{run.id}")

    def _activity(self, run: Run) -> None:
        self._dirty.add(run.id)
        self._dirty_event.set()

    async def _notify_activity(self) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event = anyio.Event()
            dirty, self._dirty = self._dirty, set()
            for run_id in dirty:
                self._notify(f"subagents://{run_id}")
            await anyio.sleep(ACTIVITY_NOTIFY_INTERVAL_S)

    def _agent_sessions_changed(self, chat_id: str) -> None:
        self._notify("agent-sessions://list")
        self._notify(f"agent-sessions://{chat_id}")

    async def _set_status(self, run: Run, status: str, **fields: Any) -> None:
        run.status = status
        await subagents.set_status(self._db, run.id, status, **fields)
        self._changed(run)

    async def _on_pending(self, subagent_id: str, pending: PendingPermission | None) -> None:
        run = self.active.get(subagent_id)
        if run is None or run.status not in ("running", "awaiting_permission"):
            return
        await self._set_status(run, "awaiting_permission" if pending is not None else "running")

    # ---------------------------------------------------------------------------------- cancel

    async def cancel(self, run: Run) -> None:
        """Cancel a run: a queued one never starts; a running one gets session/cancel (through the
        turn's watcher) and this waits, bounded, for the turn to come back."""
        run.cancel_requested.set()
        self.permissions.cancel(run.id)
        if not run.started:
            await self._finish_unstarted(run, "cancelled", None)
            return
        with anyio.move_on_after(CANCEL_WAIT_S):
            await run.done.wait()

    async def _finish_unstarted(self, run: Run, status: str, error: str | None) -> None:
        if run.started or run.finished:
            return
        run.finished = True
        await self._set_status(run, status, finished_at=time.time(), error=error)
        self._release(run)

    def _release(self, run: Run) -> None:
        # Only after the final status is in the database: until then the chat must read as busy.
        self.active.pop(run.id, None)
        LIVE_RUNS.discard(run.id)
        if len(self.ended_digests) >= ENDED_DIGESTS_MAX:
            self.ended_digests.pop(next(iter(self.ended_digests)))
        self.ended_digests[run.id] = run.digest
        run.done.set()

    # ------------------------------------------------------------------------------------ a turn

    async def _execute(self, run: Run) -> None:
        run.started = True
        outcome = _Outcome()
        base: str | None = None
        send, recv = anyio.create_memory_object_stream[Record](math.inf)
        try:
            await self._set_status(run, "running", started_at=time.time())
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._consume, run, recv)
                with send:
                    # Errors are caught here, inside the task group, so they reach the run's status
                    # rather than leaving wrapped in an exception group.
                    try:
                        base = await self._prepare_worktree(run)
                        # Off the critical path: resetting the diff index while the agent works.
                        tg.start_soon(self._prepare_index, run.worktree, base)
                        await self._turn(run, send, outcome)
                    except BooCodeError as e:
                        # An agent that had to be killed because it ignored session/cancel was
                        # still cancelled, as far as the caller is concerned.
                        cancelled = run.cancel_requested.is_set()
                        outcome.status, outcome.error = ("cancelled" if cancelled else "failed"), str(e)
                    except Exception as e:
                        log.exception("subagent %s failed", run.id)
                        outcome.status, outcome.error = "failed", f"internal error: {type(e).__name__}: {e}"
        except anyio.get_cancelled_exc_class():
            outcome.status = "interrupted"
            outcome.error = "BooCode shut down during the run; spawn it again (same chat_id to continue)"
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
                await self._finish(run, outcome, base)
            raise
        with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
            await self._finish(run, outcome, base)

    async def _prepare_worktree(self, run: Run) -> str:
        return await self._ensure_worktree(run.session_id, run.chat_id)

    async def _ensure_worktree(self, session_id: str, chat_id: str) -> str:
        """The chat's worktree (created on first use, or again if it was removed) and base."""
        chat, ready = await self._worktree_state(session_id, chat_id)
        if ready is not None:
            return ready
        async with self._create_lock:
            # Again under the lock: a pre-warm and the chat's first turn may both get here.
            chat, ready = await self._worktree_state(session_id, chat_id)
            if ready is not None:
                return ready
            wt = await workspace.create_worktree(self._repo, chat_id, base=chat.base_sha)
            self._indexes.forget(Path(chat.worktree))
            base = chat.base_sha or wt.base_sha
            await chats.set_base(self._db, chat_id, base, wt.branch)
        return base

    async def _worktree_state(self, session_id: str, chat_id: str) -> tuple[ChatRow, str | None]:
        """The chat's row, and its base when its worktree is ready (None when it must be made)."""
        chat = await chats.get(self._db, session_id, chat_id)
        if chat is None:
            raise BooCodeError(f"chat {chat_id!r} disappeared from the database")
        ready = chat.base_sha is not None and await anyio.Path(chat.worktree).is_dir()
        return chat, chat.base_sha if ready else None

    # ---------------------------------------------------------------------------------- pre-warm

    def prewarm(self, session_id: str, chat_id: str, agent: str) -> None:
        """Make a new chat's worktree and start its agent in the background, so that its first
        turn finds both ready. A failure is left for that turn to meet and report."""
        if self._tg is None or chat_id in self._prewarming:
            return
        self._prewarming[chat_id] = anyio.Event()
        self._tg.start_soon(self._prewarm, session_id, chat_id, agent)

    async def prewarmed(self, chat_id: str) -> None:
        """Return once the chat's pre-warm (if any) has ended."""
        done = self._prewarming.get(chat_id)
        if done is not None:
            await done.wait()

    async def _prewarm(self, session_id: str, chat_id: str, agent: str) -> None:
        try:
            base = await self._ensure_worktree(session_id, chat_id)
            worktree = workspace.worktree_path(self._repo, chat_id)
            await self._prepare_index(worktree, base)
            backend = await self._pool.get(chat_id, agent, worktree)
            await backend.ensure_session()
            await self._pool.sync()
            self._agent_sessions_changed(chat_id)
        except Exception as e:
            log.info("pre-warming chat %s failed; its first turn starts it instead: %s", chat_id, e)
        finally:
            self._prewarming.pop(chat_id).set()

    async def _prepare_index(self, worktree: Path, base: str) -> None:
        """Reset the worktree's diff index to `base` ahead of the diff; a failure only costs speed
        (the diff retries the reset and reports its error)."""
        try:
            await self._indexes.get(worktree).prepare(base)
        except Exception as e:
            log.debug("preparing the diff index of %s failed: %s", worktree, e)

    def _sink(self, run: Run, send: MemoryObjectSendStream[Record]) -> EventSink:
        def sink(event: AgentEvent) -> None:
            # Synchronous, in arrival order (SDK-FACTS 2.6-e); the consumer does the I/O.
            kind, payload = event_record(event)
            try:
                send.send_nowait((kind, payload, time.time()))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                log.debug("event after the turn of %s ended: %s", run.id, kind)
            if run.on_event is not None:
                try:
                    run.on_event(event)
                except Exception:
                    log.exception("on_event of subagent %s failed", run.id)

        return sink

    async def _turn(self, run: Run, send: MemoryObjectSendStream[Record], outcome: _Outcome) -> None:
        if run.cancel_requested.is_set():
            outcome.status = "cancelled"
            return
        notes: list[str] = []
        # A model/mode reaches the agent through the environment variable its spec names (the pool
        # restarts an idle agent whose environment changes, reloading its session); an agent
        # without one gets the request recorded on the run, not applied.
        spec = self._registry.spec(run.agent)
        env: dict[str, str] = {}
        for what, value, var in (("model", run.model, spec.model_env), ("mode", run.mode, spec.mode_env)):
            if value is None:
                continue
            if var is not None:
                env[var] = value
            else:
                notes.append(
                    f"{what} {value!r} recorded but not applied: agent {run.agent!r} takes no {what}"
                )
        backend = await self._pool.get(run.chat_id, run.agent, run.worktree, env=env or None)
        run.backend = backend
        info = await backend.ensure_session()
        await self._pool.sync()
        self._agent_sessions_changed(run.chat_id)
        if info.origin == "fresh_after_restart":
            notes.insert(
                0,
                "the agent could not restore this chat's earlier context (it cannot session/load it); "
                "this turn started a fresh agent session",
            )
        send.send_nowait(
            (
                SESSION_KIND,
                {"origin": info.origin, "pid": info.pid, "note": "; ".join(notes) or None},
                time.time(),
            )
        )
        if run.cancel_requested.is_set():
            outcome.status = "cancelled"
            return
        handler = self.permissions.handler_for(run.session_id, run.id, run.permission_handler)
        abandoned = False
        async with anyio.create_task_group() as tg:

            async def watch_cancel() -> None:
                nonlocal abandoned
                await run.cancel_requested.wait()
                with anyio.move_on_after(CANCEL_ABANDON_S):
                    while True:
                        # Repeated because a cancel that arrives before the prompt is on the wire
                        # finds no turn to cancel; once the turn ends this task is cancelled.
                        if backend.busy:
                            await backend.cancel()
                        await anyio.sleep(0.02)
                abandoned = True
                prompt_scope.cancel()

            failure: Exception | None = None
            with anyio.CancelScope() as prompt_scope:
                tg.start_soon(watch_cancel)
                try:
                    outcome.result = await backend.prompt(run.prompt, self._sink(run, send), handler)
                except Exception as e:
                    failure = e
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if abandoned:
            outcome.status, outcome.stop_reason = "cancelled", "cancelled"
            outcome.error = "the agent did not answer session/cancel in time; its process was closed"
            await self._pool.close_chat(run.chat_id)
            return
        assert outcome.result is not None
        outcome.stop_reason = outcome.result.stop_reason
        cancelled = outcome.stop_reason == "cancelled" or run.cancel_requested.is_set()
        outcome.status = "cancelled" if cancelled else "completed"

    async def _consume(self, run: Run, recv: MemoryObjectReceiveStream[Record]) -> None:
        """The one writer of a run's events: rows in order, digest, traces.

        Whatever has queued up while the last write was in flight is written in one statement:
        a streaming agent sends updates faster than one round trip to the database each.
        """
        seq = 0
        async with recv:
            async for first in recv:
                batch: list[tuple[int, str, dict[str, Any], float]] = []
                record: Record | None = first
                while record is not None:
                    kind, payload, at = record
                    seq += 1
                    run.digest.apply(kind, payload, at)
                    batch.append((seq, kind, payload, at))
                    try:
                        record = recv.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        record = None
                self._activity(run)
                await self._record_events(run, batch)

    async def _record_events(self, run: Run, batch: list[tuple[int, str, dict[str, Any], float]]) -> None:
        try:
            await events.insert_many(self._db, run.id, batch)
        except Exception:
            # Row by row, so one bad row loses only itself; a lost row must not stop the turn or
            # reorder the rest.
            for seq, kind, payload, at in batch:
                try:
                    await events.insert(self._db, run.id, seq, kind, payload, at)
                except Exception:
                    log.exception("recording event %d of %s failed", seq, run.id)
        for seq, kind, payload, at in batch:
            try:
                await self._trace_event(run, kind, payload, at)
            except Exception:
                log.exception("tracing event %d of %s failed", seq, run.id)

    async def _trace_event(self, run: Run, kind: str, payload: dict[str, Any], at: float) -> None:
        if kind == "tool_call":
            title = str(payload.get("title") or "")
            if title and len(run.tool_titles) < MAX_TOOL_TITLES:
                run.tool_titles.append(title)
            await self._tracer.agent_tool_call(
                run.session_id,
                run.id,
                str(payload.get("tool_call_id")),
                title,
                payload.get("raw_input"),
                payload.get("status"),
                at,
            )
        elif kind == "tool_update":
            await self._tracer.agent_tool_update(
                run.session_id,
                run.id,
                str(payload.get("tool_call_id")),
                status=payload.get("status"),
                title=payload.get("title"),
                content_text=payload.get("content_text"),
                raw_output=payload.get("raw_output"),
                at=at,
            )

    # ------------------------------------------------------------------------------ end of turn

    async def _finish(self, run: Run, outcome: _Outcome, base: str | None) -> None:
        run.finished = True
        try:
            async with anyio.create_task_group() as tg:
                # The transcript is complete once the events are drained: index it while git
                # computes the patch, so it is searchable by the time the run reads as finished
                # and its writes do not queue up in front of the finished run's first status read.
                tg.start_soon(self._index_memory, run)
                await self._write_final(run, outcome, base)
        finally:
            # Even if the final write failed or timed out: the run is no longer driven, and a row
            # left live is closed as interrupted by the chat's next spawn.
            self._release(run)
        if base is not None and self._tg is not None:
            # The chat's next turn most likely starts from the same base: get its index ready now.
            self._tg.start_soon(self._prepare_index, run.worktree, base)
        await self._pool.sync()
        self._agent_sessions_changed(run.chat_id)

    async def _index_memory(self, run: Run) -> None:
        if self._memory is None:
            return
        try:
            await self._memory.index_subagent(
                subagent_id=run.id,
                agent=run.agent,
                prompt=run.prompt,
                final_message=run.digest.final_message or None,
                tool_titles=run.tool_titles,
                files=list(run.digest.files),
                created_at=time.time(),
            )
        except Exception:
            log.exception("indexing subagent %s in memory failed", run.id)

    async def _write_final(self, run: Run, outcome: _Outcome, base: str | None) -> None:
        patch_id: str | None = None
        try:
            if base is not None and await anyio.Path(run.worktree).is_dir():
                patch_id = await self._record_patch(run, base, failed=outcome.status != "completed")
        except Exception as e:
            log.exception("recording the patch of %s failed", run.id)
            note = f"its changes could not be recorded as a patch: {e}"
            outcome.error = f"{outcome.error}; {note}" if outcome.error else note
            if outcome.status == "completed":
                outcome.status = "failed"
        trace_outcome = {"completed": "ok", "cancelled": "cancelled"}.get(outcome.status, "error")
        try:
            await self._tracer.end_turn(run.session_id, run.id, trace_outcome)
        except Exception:
            log.exception("closing the traces of %s failed", run.id)
        await self._set_status(
            run,
            outcome.status,
            finished_at=time.time(),
            stop_reason=outcome.stop_reason,
            final_message=run.digest.final_message or None,
            error=outcome.error,
            usage=_usage(outcome.result, run.digest),
            patch_id=patch_id,
        )

    async def _record_patch(self, run: Run, base: str, *, failed: bool) -> str | None:
        """The chat's worktree against its base as a pending patch superseding the chat's older
        pending one; None when the worktree holds no change."""
        diff = await self._indexes.get(run.worktree).diff(base)
        if not diff.strip():
            return None
        parsed = workspace.parse_unified_diff(diff)
        files, hunks = parsed.to_records()
        older = await patches.list_patches(self._db, run.session_id, chat_id=run.chat_id, status="pending")
        patch_id = uuid.uuid4().hex
        await patches.insert(
            self._db,
            patch_id=patch_id,
            session_id=run.session_id,
            chat_id=run.chat_id,
            subagent_id=run.id,
            parent_patch_id=older[0].id if older else None,
            agent=run.agent,
            base_sha=base,
            diff=diff,
            hunks=hunks,
            files=files,
            additions=parsed.additions,
            deletions=parsed.deletions,
            failed_mid_turn=failed,
        )
        for old in older:
            await patches.set_status(self._db, old.id, "superseded")
            self._notify(f"patches://{run.session_id}/{old.id}")
        self._notify(f"patches://{run.session_id}/{patch_id}")
        return patch_id


def _usage(result: TurnResult | None, digest: Digest) -> dict[str, Any] | None:
    """The turn's usage: what the prompt response reported, else what usage updates said."""
    usage = {
        "input_tokens": digest.input_tokens,
        "output_tokens": digest.output_tokens,
        "cost": digest.cost,
    }
    if result is not None:
        for name in usage:
            value = getattr(result, name)
            if value is not None:
                usage[name] = value
    return usage if any(v is not None for v in usage.values()) else None


def new_run(
    *,
    subagent_id: str,
    session_id: str,
    chat_id: str,
    agent: str,
    prompt: str,
    model: str | None,
    mode: str | None,
    worktree: Path,
    repo: Path,
    on_event: EventSink | None,
    permission_handler: PermissionHandler | None,
) -> Run:
    return Run(
        id=subagent_id,
        session_id=session_id,
        chat_id=chat_id,
        agent=agent,
        prompt=prompt,
        model=model,
        mode=mode,
        worktree=worktree,
        digest=Digest(roots=(str(worktree), str(repo))),
        on_event=on_event,
        permission_handler=permission_handler,
    )
