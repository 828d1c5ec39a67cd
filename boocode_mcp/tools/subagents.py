"""Subagent tools: spawn_subagent, subagent_status, cancel_subagent, respond_permission."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from boocode_mcp.tools.calls import SessionArg, clip, tool_call
from boocode_mcp.views import (
    TERMINAL_STATUSES,
    Activity,
    CancelResult,
    Collision,
    PendingPermission,
    SubagentStatus,
    SubagentView,
    Usage,
)

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine

# A host gives up on a tool call after about 60 s; waiting is capped well below that so every call
# returns in bounded time. Larger values are refused by the input schema.
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


class StatusResult(_Out):
    """subagent_status's answer, one schema for both forms.

    With a `subagent_id` the single-subagent fields are set and `subagents` is null; without one,
    `subagents` lists the session's subagents (most recent first) and every other field is null.
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
    subagents: list[SubagentView] | None = None


class PermissionAnswer(_Out):
    """respond_permission's answer: the run's status after the decision was handed over."""

    subagent_id: str
    status: SubagentStatus


def _settled(view: SubagentView) -> bool:
    # awaiting_permission counts as settled: the run cannot move until the host answers.
    return view.status in TERMINAL_STATUSES or view.status == "awaiting_permission"


async def _wait_settled(engine: Engine, session_id: str, view: SubagentView, seconds: float) -> SubagentView:
    deadline = anyio.current_time() + seconds
    while not _settled(view):
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        view = await engine.wait(session_id, view.subagent_id, remaining)
    return view


def _line(view: SubagentView) -> str:
    parts = [f"subagent {view.subagent_id} ({view.agent}, chat {view.chat_id}): {view.status}"]
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
        parts.append(f"patch {view.patch_id} (review with list_patches, apply with apply_pending)")
    if view.session_note:
        parts.append(view.session_note)
    return "; ".join(parts)


async def spawn_subagent(
    prompt: Annotated[str, Field(min_length=1, description="the task for the agent, in plain words")],
    ctx: Context[Any, Any],
    agent: Annotated[
        str | None,
        Field(description="agent to run (a configured or built-in name); default: the workspace's default"),
    ] = None,
    chat_id: Annotated[
        str | None,
        Field(
            description="continue this chat: the same warm agent session and worktree; "
            "omit to start a new chat"
        ),
    ] = None,
    model: Annotated[str | None, Field(description="model name for agents that take one")] = None,
    mode: Annotated[str | None, Field(description="agent mode (e.g. a permission or plan mode)")] = None,
    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="wait up to this many seconds (at most 30) for the run to finish or to ask "
            "for permission; 0 returns at once",
        ),
    ] = 0,
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, SpawnResult]:
    arguments = {"prompt": prompt, "agent": agent, "chat_id": chat_id, "model": model, "mode": mode,
                 "wait_seconds": wait_seconds, "session_id": session_id}  # fmt: skip
    async with tool_call(ctx, "spawn_subagent", arguments, session_id) as call:
        view = await call.engine.spawn(
            call.session_id, prompt, agent=agent, chat_id=chat_id, model=model, mode=mode
        )
        if wait_seconds > 0:
            view = await _wait_settled(call.engine, call.session_id, view, wait_seconds)
        out = SpawnResult(
            subagent_id=view.subagent_id,
            session_id=view.session_id,
            chat_id=view.chat_id,
            agent=view.agent,
            worktree=view.worktree,
            status=view.status,
            final_message=view.final_message,
            patch_id=view.patch_id,
        )
        hint = "" if _settled(view) else "; poll with subagent_status (wait_seconds up to 30)"
        return call.done(out, _line(view) + hint)


async def subagent_status(
    ctx: Context[Any, Any],
    subagent_id: Annotated[
        str | None,
        Field(description="the run to report on; omit to list this session's runs, most recent first"),
    ] = None,
    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="with subagent_id: wait up to this many seconds (at most 30) and return "
            "early on any state change (at once when the run has ended or awaits a permission "
            "answer); 0 returns at once",
        ),
    ] = 0,
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, StatusResult]:
    arguments = {"subagent_id": subagent_id, "wait_seconds": wait_seconds, "session_id": session_id}
    async with tool_call(ctx, "subagent_status", arguments, session_id) as call:
        if subagent_id is None:
            views = await call.engine.list_subagents(call.session_id, limit=STATUS_LIST_LIMIT)
            text = "\n".join(_line(v) for v in views) if views else "no subagents in this session"
            return call.done(StatusResult(subagents=views), text)
        view = await call.engine.status(call.session_id, subagent_id)
        # A run waiting for a permission answer cannot change until someone answers, so waiting
        # would only delay the host that has to answer it.
        if wait_seconds > 0 and not _settled(view):
            view = await call.engine.wait(call.session_id, subagent_id, wait_seconds)
        return call.done(StatusResult.model_validate(view.model_dump()), _line(view))


async def cancel_subagent(
    subagent_id: Annotated[str, Field(description="the run to cancel")],
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, CancelResult]:
    arguments = {"subagent_id": subagent_id, "session_id": session_id}
    async with tool_call(ctx, "cancel_subagent", arguments, session_id) as call:
        view = await call.engine.cancel(call.session_id, subagent_id)
        return call.done(CancelResult(subagent_id=view.subagent_id, status=view.status), _line(view))


async def respond_permission(
    subagent_id: Annotated[str, Field(description="the run whose agent asked")],
    request_id: Annotated[str, Field(description="pending_permission.request_id from subagent_status")],
    option_id: Annotated[str, Field(description="one of pending_permission.options[].option_id")],
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, PermissionAnswer]:
    arguments = {"subagent_id": subagent_id, "request_id": request_id, "option_id": option_id,
                 "session_id": session_id}  # fmt: skip
    async with tool_call(ctx, "respond_permission", arguments, session_id) as call:
        view = await call.engine.respond_permission(call.session_id, subagent_id, request_id, option_id)
        out = PermissionAnswer(subagent_id=view.subagent_id, status=view.status)
        return call.done(out, _line(view))


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        spawn_subagent,
        description="Start a coding agent on a task in the background, in its own git worktree, and "
        "return at once (or after wait_seconds). Pass chat_id to continue an earlier conversation on "
        "the same warm agent. Its changes become a patch: review with list_patches, apply with "
        "apply_pending.",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        subagent_status,
        description="Report a subagent run: status (queued running awaiting_permission completed "
        "failed cancelled interrupted), an activity digest (recent text, tool calls, plan, files "
        "touched), final message, usage, patch id and any permission request waiting for an "
        "answer. Without subagent_id: every run of the session, most recent first.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    mcp.add_tool(
        cancel_subagent,
        description="Cancel a queued or running subagent; work done so far is kept as a patch "
        "flagged failed_mid_turn. The chat stays usable for the next prompt.",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
    )
    mcp.add_tool(
        respond_permission,
        description="Answer a subagent's pending permission request (from subagent_status."
        "pending_permission) with one of its option ids. Unanswered requests fail closed at "
        "their deadline.",
    )
