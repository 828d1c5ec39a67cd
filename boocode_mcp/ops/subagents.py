"""Subagent runs: spawn, status (one or all), wait, cancel, retry, answer a permission request, and
the inbox of runs and patches that need a person."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome, clip
from boocode_mcp.states import is_settled
from boocode_mcp.views import (
    TERMINAL_STATUSES,
    Activity,
    CancelResult,
    Collision,
    Inbox,
    PendingPermission,
    SubagentStatus,
    SubagentView,
    Usage,
    WorkerRef,
)

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine

# A host gives up on a tool call after about 60 s; waiting is capped well below that so every call
# returns in bounded time. Front ends that want to wait longer (the CLI) ask again.
MAX_WAIT_SECONDS = 30.0
STATUS_LIST_LIMIT = 50


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class SpawnResult(_Out):
    """spawn_subagent's answer: where the run lives and, after a wait, how it ended."""

    subagent_id: str
    session_id: str
    chat_id: str
    agent: str
    worktree: str | None = Field(description="the chat's git worktree (created in the background)")
    status: SubagentStatus
    final_message: str | None = None
    patch_id: str | None = None
    parent_subagent_id: str | None = Field(
        default=None, description="set when a subagent spawned this run through BooCode's MCP server"
    )
    retry_of: str | None = Field(default=None, description="the run this one re-runs (retry_subagent)")


class StatusResult(_Out):
    """subagent_status's answer, one schema for both forms.

    With a `subagent_id` the single-subagent fields are set and `subagents` is null; without one,
    `subagents` lists the workspace's runs (most recent first, each naming its session) and every
    other field is null.
    """

    subagent_id: str | None = None
    session_id: str | None = None
    chat_id: str | None = None
    agent: str | None = None
    worktree: str | None = None
    status: SubagentStatus | None = None
    prompt: str | None = None
    activity: Activity | None = None
    final_message: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    usage: Usage | None = None
    patch_id: str | None = None
    pending_permission: PendingPermission | None = None
    collisions: list[Collision] | None = None
    session_note: str | None = None
    created_at: float | None = None
    finished_at: float | None = None
    parent_subagent_id: str | None = None
    children: list[str] | None = None
    retry_of: str | None = None
    depth: int | None = None
    images: int | None = None
    worker: WorkerRef | None = None
    subagents: list[SubagentView] | None = None


class PermissionAnswer(_Out):
    """respond_permission's answer: the run's status after the decision was handed over."""

    subagent_id: str
    status: SubagentStatus


def settled(view: SubagentView) -> bool:
    """Whether the run moves on only if someone answers it: ended, or waiting for a permission."""
    return is_settled(view.status)


def _check_wait(wait_seconds: float) -> None:
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise InvalidRequestError(
            f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:g} (got {wait_seconds:g}); "
            "poll subagent_status again to wait longer"
        )


def line(view: SubagentView) -> str:
    """One run as text, with every id the next step needs."""
    parts = [
        f"subagent {view.subagent_id} (agent {view.agent}, chat {view.chat_id}, "
        f"session {view.session_id}): {view.status}"
    ]
    if view.pending_permission is not None:
        p = view.pending_permission
        options = ", ".join(f"{o.option_id} ({o.kind})" for o in p.options)
        parts.append(
            f"permission request {p.request_id} waits for an answer: {clip(p.title, 120)}; "
            f"options: {options}; answer with respond_permission"
        )
    if view.error:
        parts.append(f"error: {clip(view.error)}")
    if view.final_message:
        parts.append(f"final message: {clip(view.final_message)}")
    elif view.activity.recent_text and view.status not in TERMINAL_STATUSES:
        parts.append(f"latest text: {clip(view.activity.recent_text, 160)}")
    if view.patch_id:
        parts.append(
            f"patch {view.patch_id} (review: list_patches with chat_id {view.chat_id} and "
            f"include_hunks; apply: apply_pending with patch_ids [{view.patch_id}])"
        )
    if view.session_note:
        parts.append(view.session_note)
    if view.parent_subagent_id:
        parts.append(f"child of {view.parent_subagent_id}")
    if view.children:
        parts.append(f"children: {', '.join(view.children)}")
    if view.retry_of:
        parts.append(f"retry of {view.retry_of}")
    return "; ".join(parts)


async def spawn(
    caller: Caller,
    prompt: str,
    *,
    agent: str | None = None,
    chat_id: str | None = None,
    model: str | None = None,
    mode: str | None = None,
    wait_seconds: float = 0,
    session_id: str | None = None,
    images: list[str] | None = None,
) -> Outcome[SpawnResult]:
    """Start a run; with `chat_id` it continues that chat (in the chat's own session). Called by
    an agent from inside a run (`caller.delegator`), the new run is that run's child."""
    _check_wait(wait_seconds)
    engine = caller.engine
    if session_id is not None:
        sid: str | None = await caller.session_filter(session_id)
    elif chat_id is not None:
        sid = None  # the chat's own session, wherever it is
    else:
        sid = await caller.own_session()
    view = await engine.spawn(
        sid,
        prompt,
        agent=agent,
        chat_id=chat_id,
        model=model,
        mode=mode,
        images=images or (),
        parent=caller.delegator,
    )
    return await _spawned(engine, view, wait_seconds)


async def _spawned(engine: Engine, view: SubagentView, wait_seconds: float) -> Outcome[SpawnResult]:
    """spawn_subagent's (and retry_subagent's) answer, after waiting up to `wait_seconds`."""
    if wait_seconds > 0:
        view = await engine.wait_settled(None, view.subagent_id, wait_seconds)
    out = SpawnResult(
        subagent_id=view.subagent_id,
        session_id=view.session_id,
        chat_id=view.chat_id,
        agent=view.agent,
        worktree=view.worktree,
        status=view.status,
        final_message=view.final_message,
        patch_id=view.patch_id,
        parent_subagent_id=view.parent_subagent_id,
        retry_of=view.retry_of,
    )
    hint = "" if settled(view) else "; poll with subagent_status (wait_seconds up to 30)"
    return Outcome(out, line(view) + hint)


async def retry(
    caller: Caller, subagent_id: str, *, wait_seconds: float = 0, session_id: str | None = None
) -> Outcome[SpawnResult]:
    """Run a failed, cancelled or interrupted run's prompt again on its chat."""
    _check_wait(wait_seconds)
    view = await caller.engine.retry(await caller.session_filter(session_id), subagent_id)
    return await _spawned(caller.engine, view, wait_seconds)


async def status(
    caller: Caller,
    subagent_id: str | None = None,
    *,
    wait_seconds: float = 0,
    session_id: str | None = None,
    limit: int = STATUS_LIST_LIMIT,
) -> Outcome[StatusResult]:
    """One run (waiting up to `wait_seconds` for a change), or the workspace's runs newest first."""
    _check_wait(wait_seconds)
    engine = caller.engine
    sid = await caller.session_filter(session_id)
    if subagent_id is None:
        views = await engine.list_subagents(sid, limit=limit)
        where = f"session {sid}" if sid is not None else "this workspace"
        text = "\n".join(line(v) for v in views) if views else f"no subagents in {where}"
        return Outcome(StatusResult(subagents=views), text)
    view = await engine.status(sid, subagent_id)
    # A run waiting for a permission answer cannot change until someone answers, so waiting
    # would only delay the one who has to answer it.
    if wait_seconds > 0 and not settled(view):
        view = await engine.wait(sid, subagent_id, wait_seconds)
    return Outcome(StatusResult.model_validate(view.model_dump()), line(view))


async def cancel(caller: Caller, subagent_id: str, *, session_id: str | None = None) -> Outcome[CancelResult]:
    """Cancel a run and the runs below it; an agent may cancel only its own run's children."""
    engine = caller.engine
    sid = await caller.session_filter(session_id)
    if caller.delegator is not None:
        await engine.check_child_of_chat(subagent_id, caller.delegator.chat_id)
    view = await engine.cancel(sid, subagent_id)
    return Outcome(CancelResult(subagent_id=view.subagent_id, status=view.status), line(view))


async def inbox(caller: Caller, *, limit: int = 100) -> Outcome[Inbox]:
    """What needs a person: failed or interrupted runs not retried, runs waiting for a permission
    answer, pending patches whose apply conflicted; newest first."""
    if not 1 <= limit <= 1000:
        raise InvalidRequestError(f"limit must be between 1 and 1000 (got {limit})")
    items = await caller.engine.inbox(limit)
    lines = []
    for item in items:
        what = f"subagent {item.subagent_id}" if item.kind != "conflict" else f"patch {item.patch_id}"
        hint = {
            "failed": "retry_subagent to run it again",
            "interrupted": "retry_subagent to run it again",
            "permission": "respond_permission to answer",
            "conflict": "apply_pending again once the workspace allows it, or discard it",
        }[item.kind]
        lines.append(f"{item.kind}: {what} ({item.status}): {clip(item.reason, 200)}; {hint}")
    return Outcome(Inbox(items=items), "\n".join(lines) if lines else "the inbox is empty")


async def respond_permission(
    caller: Caller, subagent_id: str, request_id: str, option_id: str, *, session_id: str | None = None
) -> Outcome[PermissionAnswer]:
    sid = await caller.session_filter(session_id)
    view = await caller.engine.respond_permission(sid, subagent_id, request_id, option_id)
    return Outcome(PermissionAnswer(subagent_id=view.subagent_id, status=view.status), line(view))
