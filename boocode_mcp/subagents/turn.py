"""One turn of a run: the chat's worktree → its warm agent → the prompt, its events streamed into
the `events` table by one writer → the worktree's diff (while the writer stores the last events,
indexes the transcript in memory and closes the traces) → its patch → the run's final status.

Each phase's duration is logged at DEBUG on this module's logger with the record attribute
`timings` (phase → seconds): what `bench/bench_mcp.py` prints as the breakdown of a warm turn.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Protocol

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from boocode_mcp.agents.backend import AgentBackend, EventSink, PermissionHandler, PromptImage, TurnResult
from boocode_mcp.agents.events import AgentEvent
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.attachments import Attachment, Attachments
from boocode_mcp.config import PermissionsConfig
from boocode_mcp.errors import BooCodeError
from boocode_mcp.memory import MemoryIndex
from boocode_mcp.states import SubagentStatus, TerminalStatus
from boocode_mcp.store import events
from boocode_mcp.store.db import Database
from boocode_mcp.subagents.digest import SESSION_KIND, SUMMED_USAGE, Digest, event_record
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.recording import ChatWorktrees
from boocode_mcp.subagents.run import Run
from boocode_mcp.tracing import Tracer
from boocode_mcp.workspace import WorktreeDiff

log = logging.getLogger(__name__)

# A turn still running this long after cancel was asked for is abandoned (its agent closed), so a
# run can never hang on an agent that ignores session/cancel (the backend's own bound comes first).
CANCEL_ABANDON_S = 60.0
# Bound on the end-of-turn bookkeeping (diff, patch) when it runs shielded during shutdown.
FINISH_TIMEOUT_S = 30.0
MAX_TOOL_TITLES = 200
# How long the event writer lets a run's events gather before storing them together (unless the
# prompt ends first): below what a person watching notices, and the notice of new activity is sent
# at most every 50 ms anyway. An interrupted turn still stores what it holds.
EVENT_BATCH_S = 0.05

Record = tuple[str, dict[str, Any], float]
# A turn's diff: the worktree's changes, the error diffing it raised, or None (no worktree yet).
Changes = WorktreeDiff | Exception | None


@dataclasses.dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended, before its patch is recorded."""

    status: TerminalStatus
    stop_reason: str | None = None
    error: str | None = None
    result: TurnResult | None = None


CANCELLED = TurnOutcome("cancelled")
INTERRUPTED = TurnOutcome(
    "interrupted", error="BooCode shut down during the run; spawn it again (same chat_id to continue)"
)


@dataclasses.dataclass
class _Ended:
    """The end of a turn's prompt, as its event writer waits for it."""

    event: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    outcome: TurnOutcome | None = None


def _emit(run: Run, send: MemoryObjectSendStream[Record], kind: str, payload: dict[str, Any]) -> None:
    """An event of the run: in its digest now, in the events table once the writer stores it."""
    at = time.time()
    run.digest.apply(kind, payload, at)
    try:
        send.send_nowait((kind, payload, at))
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        log.debug("event after the turn of %s ended: %s", run.id, kind)


class RunStates(Protocol):
    """What a turn tells the runner that owns its run."""

    async def set_status(self, run: Run, status: SubagentStatus, **fields: Any) -> None: ...

    def activity(self, run: Run) -> None: ...

    def release(self, run: Run) -> None: ...


class _Clock:
    """Marks the end of each phase of a turn; `timings` is phase → seconds."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - self._last
        self._last = now


@dataclasses.dataclass(frozen=True, kw_only=True)
class Turns:
    """Runs turns: `execute` takes a queued run to its final status."""

    db: Database
    registry: AgentRegistry
    pool: AgentPool
    permissions: PermissionQueue
    worktrees: ChatWorktrees
    memory: MemoryIndex | None
    tracer: Tracer
    states: RunStates
    attachments: Attachments

    async def execute(self, run: Run) -> None:
        """The whole turn; its final status is written even when BooCode shuts down during it."""
        run.started = True
        clock = _Clock()
        try:
            outcome, changes = await self._attempt(run, clock)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
                await self._finish(run, INTERRUPTED, clock, await self._diff(run))
            raise
        with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
            await self._finish(run, outcome, clock, changes)

    async def _attempt(self, run: Run, clock: _Clock) -> tuple[TurnOutcome, Changes]:
        """Worktree, agent and prompt, with one writer of the run's events; then the worktree's
        diff, made while the writer stores the last events and closes the transcript, until it has
        done so. Errors become the outcome (caught inside the task group, so they are not wrapped in
        an exception group)."""
        send, recv = anyio.create_memory_object_stream[Record](math.inf)
        ended = _Ended()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._mark_running, run, time.time())
            tg.start_soon(self._write_events, run, recv, ended)
            with send:
                try:
                    run.tree, run.base = await self.worktrees.ensure_run(run)
                    if not self.worktrees.prepared(run.tree):
                        # Off the critical path: the diff index made ready while the agent works.
                        tg.start_soon(self.worktrees.prepare, run.tree, run.base)
                    clock.mark("worktree")
                    outcome = await self._agent_turn(run, send, tg, clock)
                except BooCodeError as e:
                    # An agent that had to be killed because it ignored session/cancel was still
                    # cancelled, as far as the caller is concerned.
                    status: TerminalStatus = "cancelled" if run.cancel_requested.is_set() else "failed"
                    outcome = TurnOutcome(status, error=str(e))
                except Exception as e:
                    log.exception("subagent %s failed", run.id)
                    outcome = TurnOutcome("failed", error=f"internal error: {type(e).__name__}: {e}")
                ended.outcome = outcome
                ended.event.set()
            # The stream is closed: the writer stores what is left of the events, then indexes the
            # transcript and closes the traces, around the diff's waits.
            changes = await self._diff(run)
            clock.mark("diff")
        clock.mark("events, memory, traces")
        return outcome, changes

    async def _mark_running(self, run: Run, started_at: float) -> None:
        # Behind the work the turn has ready to run when it first waits, the prompt going out to the
        # agent among it: the agent works while the status is written. (Nothing the agent sends can
        # come in before this, which runs before the loop next looks for input.)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        await self.states.set_status(run, "running", started_at=started_at)

    async def _diff(self, run: Run) -> Changes:
        """The worktree's changes against the run's base (an error is kept, to be reported with
        the final status); None when the turn never got a worktree."""
        if run.tree is None or run.base is None or not run.worktree.is_dir():
            return None
        try:
            return await self.worktrees.changes(run.tree, run.base)
        except Exception as e:
            return e

    def _sink(self, run: Run, send: MemoryObjectSendStream[Record]) -> EventSink:
        def sink(event: AgentEvent) -> None:
            # Synchronous, in arrival order: awaiting in the protocol callback reorders updates, so
            # the writer task does the I/O.
            _emit(run, send, *event_record(event))
            if run.on_event is not None:
                try:
                    run.on_event(event)
                except Exception:
                    log.exception("on_event of subagent %s failed", run.id)

        return sink

    async def _agent_turn(
        self, run: Run, send: MemoryObjectSendStream[Record], tg: TaskGroup, clock: _Clock
    ) -> TurnOutcome:
        if run.cancel_requested.is_set():
            return CANCELLED
        row = run.row
        notes: list[str] = []
        # A model/mode reaches the agent through the environment variable its spec names (the pool
        # restarts an idle agent whose environment changes, reloading its session); an agent
        # without one gets the request recorded on the run, not applied.
        spec = self.registry.spec(row.agent)
        env: dict[str, str] = {}
        for what, value, var in (("model", row.model, spec.model_env), ("mode", row.mode, spec.mode_env)):
            if value is None:
                continue
            if var is not None:
                env[var] = value
            else:
                notes.append(
                    f"{what} {value!r} recorded but not applied: agent {row.agent!r} takes no {what}"
                )
        backend = await self.pool.get(row.chat_id, row.agent, run.worktree, env=env or None)
        info = await backend.ensure_session()
        # The agent session's row (now active) is the pool's writer's to store, off the turn's path.
        if info.origin == "fresh_after_restart":
            notes.insert(
                0,
                "the agent could not restore this chat's earlier context (it cannot session/load it); "
                "this turn started a fresh agent session",
            )
        if info.note:
            notes.insert(0, info.note)
        record = {"origin": info.origin, "pid": info.pid, "note": "; ".join(notes) or None}
        _emit(run, send, SESSION_KIND, record)
        clock.mark("agent ready")
        if run.cancel_requested.is_set():
            return CANCELLED
        travelled = PermissionsConfig.model_validate(row.permissions) if row.permissions else None
        handler = self.permissions.handler_for(row.session_id, run.id, run.permission_handler, travelled)
        images = [
            PromptImage(a.mime_type, await self.attachments.load(a))
            for a in (Attachment.from_record(r) for r in row.images)
        ]
        outcome = await self._prompt(run, backend, self._sink(run, send), handler, tg, images)
        clock.mark("prompt")
        return outcome

    async def _prompt(
        self,
        run: Run,
        backend: AgentBackend,
        sink: EventSink,
        handler: PermissionHandler,
        tg: TaskGroup,
        images: list[PromptImage],
    ) -> TurnOutcome:
        """The prompt, with a watcher that turns a cancel request into session/cancel and abandons
        the turn (closing its agent) when the agent does not end it in time."""
        with anyio.CancelScope() as prompt_scope:
            watcher = anyio.CancelScope()
            tg.start_soon(self._watch_cancel, run, backend, watcher, prompt_scope)
            try:
                result = await backend.prompt(run.row.prompt, sink, handler, images)
            finally:
                watcher.cancel()
        if prompt_scope.cancelled_caught:
            await self.pool.close_chat(run.row.chat_id)
            return TurnOutcome(
                "cancelled",
                stop_reason="cancelled",
                error="the agent did not answer session/cancel in time; its process was closed",
            )
        cancelled = result.stop_reason == "cancelled" or run.cancel_requested.is_set()
        return TurnOutcome("cancelled" if cancelled else "completed", result.stop_reason, result=result)

    async def _watch_cancel(
        self, run: Run, backend: AgentBackend, scope: anyio.CancelScope, prompt_scope: anyio.CancelScope
    ) -> None:
        with scope:
            await run.cancel_requested.wait()
            # The prompt is under way (this task runs only once it has started): the backend sends
            # session/cancel, or holds the cancel until the prompt is on the wire.
            with anyio.move_on_after(CANCEL_ABANDON_S):
                await backend.cancel()
                # The turn's end cancels this task; only an agent that ignores the cancel gets here.
                await anyio.sleep_forever()
            prompt_scope.cancel()

    # ------------------------------------------------------------------------------ the events

    async def _write_events(self, run: Run, recv: MemoryObjectReceiveStream[Record], ended: _Ended) -> None:
        """The one writer of a run's events: rows in order, traces; once the turn has `ended` and
        its events are stored, its transcript indexed and its traces closed.

        Events arriving within EVENT_BATCH_S of the first one of a batch are written with it, in
        one statement: a streaming agent sends updates faster than one statement each, and a short
        turn's are written once, when it ends. (The run's digest follows each event as it comes.)
        """
        seq = 0
        async with recv:
            async for first in recv:
                cancelled: BaseException | None = None
                try:
                    with anyio.move_on_after(EVENT_BATCH_S):
                        await ended.event.wait()
                except anyio.get_cancelled_exc_class() as e:
                    # Shutting down: what came is still stored.
                    cancelled = e
                batch: list[tuple[int, str, dict[str, Any], float]] = []
                record: Record | None = first
                while record is not None:
                    seq += 1
                    batch.append((seq, *record))
                    try:
                        record = recv.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        record = None
                with anyio.CancelScope(shield=cancelled is not None):
                    await self._record_events(run, batch)
                # Watchers hear of the events once they can read them.
                self.states.activity(run)
                if cancelled is not None:
                    raise cancelled
        if ended.outcome is not None:
            await self._close_transcript(run, ended.outcome)

    async def _close_transcript(self, run: Run, outcome: TurnOutcome) -> None:
        await self._index_memory(run)
        await self._end_traces(run, outcome)
        run.transcript_closed = True

    async def _record_events(self, run: Run, batch: list[tuple[int, str, dict[str, Any], float]]) -> None:
        try:
            await events.insert_many(self.db, run.id, batch)
        except Exception:
            # Row by row, so one bad row loses only itself; a lost row must not stop the turn or
            # reorder the rest.
            for seq, kind, payload, at in batch:
                try:
                    await events.insert(self.db, run.id, seq, kind, payload, at)
                except Exception:
                    log.exception("recording event %d of %s failed", seq, run.id)
        for seq, kind, payload, at in batch:
            try:
                await self._trace_event(run, kind, payload, at)
            except Exception:
                log.exception("tracing event %d of %s failed", seq, run.id)

    async def _trace_event(self, run: Run, kind: str, payload: dict[str, Any], at: float) -> None:
        session_id = run.row.session_id
        if kind == "tool_call":
            title = str(payload.get("title") or "")
            if title and len(run.tool_titles) < MAX_TOOL_TITLES:
                run.tool_titles.append(title)
            await self.tracer.agent_tool_call(
                session_id,
                run.id,
                str(payload.get("tool_call_id")),
                title,
                payload.get("raw_input"),
                payload.get("status"),
                at,
            )
        elif kind == "tool_update":
            await self.tracer.agent_tool_update(
                session_id,
                run.id,
                str(payload.get("tool_call_id")),
                status=payload.get("status"),
                title=payload.get("title"),
                content_text=payload.get("content_text"),
                raw_output=payload.get("raw_output"),
                at=at,
            )

    # ------------------------------------------------------------------------------ end of turn

    async def _finish(self, run: Run, outcome: TurnOutcome, clock: _Clock, changes: Changes) -> None:
        run.finished = True
        try:
            await self._write_final(run, outcome, clock, changes)
        finally:
            # Even if the final write failed or timed out: the run is no longer driven, and a row
            # left live is closed as interrupted by the chat's next spawn.
            self.states.release(run)
            clock.mark("released")
            log.debug("turn %s timings", run.id, extra={"timings": clock.timings})
        # The agent session's row (now idle) stored before the turn's task ends.
        await self.pool.sync()

    async def _record_patch(
        self, run: Run, outcome: TurnOutcome, changes: Changes
    ) -> tuple[str | None, Exception | None]:
        """The worktree's diff, stored as the run's patch: (the stored patch's id, None when the
        worktree holds no change) or (None, why it could not be recorded)."""
        if changes is None or run.base is None:
            return None, None
        try:
            if isinstance(changes, Exception):
                raise changes
            failed = outcome.status != "completed"
            return await self.worktrees.record_patch(run, run.base, changes, failed=failed), None
        except Exception as e:
            log.exception("recording the patch of %s failed", run.id)
            return None, e

    async def _end_traces(self, run: Run, outcome: TurnOutcome) -> None:
        trace_outcome = {"completed": "ok", "cancelled": "cancelled"}.get(outcome.status, "error")
        try:
            await self.tracer.end_turn(run.row.session_id, run.id, trace_outcome)
        except Exception:
            log.exception("closing the traces of %s failed", run.id)

    async def _index_memory(self, run: Run) -> None:
        if self.memory is None:
            return
        try:
            await self.memory.index_subagent(
                subagent_id=run.id,
                agent=run.row.agent,
                prompt=run.row.prompt,
                final_message=run.digest.final_message or None,
                tool_titles=run.tool_titles,
                files=list(run.digest.files),
                created_at=time.time(),
            )
        except Exception:
            log.exception("indexing subagent %s in memory failed", run.id)

    async def _write_final(self, run: Run, outcome: TurnOutcome, clock: _Clock, changes: Changes) -> None:
        """The patch (with the memory entry and the closed traces, side by side, when the turn did
        not get to close its transcript), then the final status: a run reads as finished only once
        its patch is stored and its transcript searchable."""
        if run.transcript_closed:
            patch_id, error = await self._record_patch(run, outcome, changes)
            clock.mark("patch")
        else:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._close_transcript, run, outcome)
                patch_id, error = await self._record_patch(run, outcome, changes)
                clock.mark("patch")
            clock.mark("memory, traces")
        if error is not None:
            note = f"its changes could not be recorded as a patch: {error}"
            outcome = dataclasses.replace(
                outcome,
                status="failed" if outcome.status == "completed" else outcome.status,
                error=f"{outcome.error}; {note}" if outcome.error else note,
            )
        await self.states.set_status(
            run,
            outcome.status,
            finished_at=time.time(),
            stop_reason=outcome.stop_reason,
            final_message=run.digest.final_message or None,
            error=outcome.error,
            usage=_usage(outcome.result, run.digest),
            patch_id=patch_id,
        )
        clock.mark("final status")


def _usage(result: TurnResult | None, digest: Digest) -> dict[str, Any] | None:
    """The turn's usage: what the prompt response reported, else what usage updates said."""
    usage = dict(digest.usage)
    if result is not None:
        # The TurnResult fields that are usage: a prompt response's figures win over the updates'.
        for name in SUMMED_USAGE:
            value = getattr(result, name)
            if value is not None:
                usage[name] = value
    return usage if any(v is not None for v in usage.values()) else None
