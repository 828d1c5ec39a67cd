"""Subagent tools: spawn_subagent, subagent_status, cancel_subagent, retry_subagent,
respond_permission; and the spawn_subagent an agent is offered inside its run (`delegate = true`)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import subagents as ops
from boocode_mcp.ops.subagents import MAX_WAIT_SECONDS, PermissionAnswer, SpawnResult, StatusResult
from boocode_mcp.tools.calls import SessionArg, tool_call
from boocode_mcp.views import CancelResult

__all__ = ["PermissionAnswer", "SpawnResult", "StatusResult", "register"]


PromptArg = Annotated[str, Field(min_length=1, description="the task for the agent, in plain words")]
# The description is completed with the agents installed here each time the tool list is served
# (tools.agent_names): a model learns the names it may pass from the tool itself.
AgentArg = Annotated[
    str | None,
    Field(description="agent to run (a configured or built-in name); default: the workspace's default"),
]
ModelArg = Annotated[str | None, Field(description="model name for agents that take one")]
ModeArg = Annotated[str | None, Field(description="agent mode (e.g. a permission or plan mode)")]
WaitArg = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="wait up to this many seconds (at most 30) for the run to finish or to ask "
        "for permission; 0 returns at once",
    ),
]
ImagesArg = Annotated[
    list[str] | None,
    Field(
        description="images for the prompt: paths of image files inside the workspace (absolute or "
        "relative to it) or data:image/...;base64 URIs; PNG, JPEG, GIF or WebP, for agents that take "
        "images (list_agents)"
    ),
]


async def spawn_subagent(
    prompt: PromptArg,
    ctx: Context[Any, Any],
    agent: AgentArg = None,
    chat_id: Annotated[
        str | None,
        Field(
            description="continue this chat (from any session): the same warm agent session and "
            "worktree; omit to start a new chat"
        ),
    ] = None,
    model: ModelArg = None,
    mode: ModeArg = None,
    wait_seconds: WaitArg = 0,
    session_id: Annotated[
        str | None,
        Field(description="start the new chat in this BooCode session (default: this connection's own)"),
    ] = None,
    images: ImagesArg = None,
) -> Annotated[CallToolResult, SpawnResult]:
    arguments = {"prompt": prompt, "agent": agent, "chat_id": chat_id, "model": model, "mode": mode,
                 "wait_seconds": wait_seconds, "session_id": session_id,
                 "images": _shown(images)}  # fmt: skip
    async with tool_call(ctx, "spawn_subagent", arguments) as call:
        return call.done(
            await ops.spawn(
                call.caller,
                prompt,
                agent=agent,
                chat_id=chat_id,
                model=model,
                mode=mode,
                wait_seconds=wait_seconds,
                session_id=session_id,
                images=images,
            )
        )


async def spawn_child(
    prompt: PromptArg,
    ctx: Context[Any, Any],
    agent: AgentArg = None,
    chat_id: Annotated[
        str | None,
        Field(
            description="continue the chat of one of your earlier subagents (the same warm agent and "
            "worktree); omit to start a new chat"
        ),
    ] = None,
    model: ModelArg = None,
    mode: ModeArg = None,
    wait_seconds: WaitArg = 0,
    images: ImagesArg = None,
) -> Annotated[CallToolResult, SpawnResult]:
    """spawn_subagent as an agent is offered it inside its run: the new run is the calling run's
    child, in its session."""
    arguments = {"prompt": prompt, "agent": agent, "chat_id": chat_id, "model": model, "mode": mode,
                 "wait_seconds": wait_seconds, "images": _shown(images)}  # fmt: skip
    async with tool_call(ctx, "spawn_subagent", arguments) as call:
        return call.done(
            await ops.spawn(
                call.caller,
                prompt,
                agent=agent,
                chat_id=chat_id,
                model=model,
                mode=mode,
                wait_seconds=wait_seconds,
                images=images,
            )
        )


def _shown(images: list[str] | None) -> list[str] | None:
    """Images as a trace records them: a data URI by its head only."""
    if images is None:
        return None
    return [i if not i.startswith("data:") else i.split(",", 1)[0] + ",…" for i in images]


async def retry_subagent(
    subagent_id: Annotated[str, Field(description="the failed, cancelled or interrupted run to run again")],
    ctx: Context[Any, Any],
    wait_seconds: WaitArg = 0,
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, SpawnResult]:
    arguments = {"subagent_id": subagent_id, "wait_seconds": wait_seconds, "session_id": session_id}
    async with tool_call(ctx, "retry_subagent", arguments) as call:
        return call.done(
            await ops.retry(call.caller, subagent_id, wait_seconds=wait_seconds, session_id=session_id)
        )


async def subagent_status(
    ctx: Context[Any, Any],
    subagent_id: Annotated[
        str | None,
        Field(description="the run to report on; omit to list the workspace's runs, most recent first"),
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
    async with tool_call(ctx, "subagent_status", arguments) as call:
        return call.done(
            await ops.status(call.caller, subagent_id, wait_seconds=wait_seconds, session_id=session_id)
        )


async def cancel_subagent(
    subagent_id: Annotated[str, Field(description="the run to cancel")],
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, CancelResult]:
    arguments = {"subagent_id": subagent_id, "session_id": session_id}
    async with tool_call(ctx, "cancel_subagent", arguments) as call:
        return call.done(await ops.cancel(call.caller, subagent_id, session_id=session_id))


async def respond_permission(
    subagent_id: Annotated[str, Field(description="the run whose agent asked")],
    request_id: Annotated[str, Field(description="pending_permission.request_id from subagent_status")],
    option_id: Annotated[str, Field(description="one of pending_permission.options[].option_id")],
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, PermissionAnswer]:
    arguments = {"subagent_id": subagent_id, "request_id": request_id, "option_id": option_id,
                 "session_id": session_id}  # fmt: skip
    async with tool_call(ctx, "respond_permission", arguments) as call:
        return call.done(
            await ops.respond_permission(
                call.caller, subagent_id, request_id, option_id, session_id=session_id
            )
        )


STATUS_DESCRIPTION = (
    "Report a subagent run: status (queued running awaiting_permission completed failed cancelled "
    "interrupted), an activity digest (recent text, tool calls, plan, files touched), final message, "
    "usage, patch id, any permission request waiting for an answer, and its family (parent_subagent_id, "
    "children, retry_of). Without subagent_id: every run of the workspace (from any conversation), "
    "most recent first, each naming its session."
)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        spawn_subagent,
        description="Start a coding agent on a task in the background, in its own git worktree, and "
        "return at once (or after wait_seconds). Pass chat_id to continue an earlier conversation on "
        "the same warm agent, images to show it pictures. Its changes become a patch: review with "
        "list_patches, apply with apply_pending. Runs belong to the workspace, not to this "
        "connection: they go on after it closes, and any later conversation sees them.",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        retry_subagent,
        description="Run a failed, cancelled or interrupted subagent's prompt (and images) again on "
        "the same chat; answers like spawn_subagent, plus retry_of. The inbox resource (inbox://) "
        "lists the runs that may need it.",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        subagent_status,
        description=STATUS_DESCRIPTION,
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


def register_for_agents(mcp: MCPServer[Any], *, delegate: bool) -> None:
    """The subagent tools an agent is offered inside its run: status always; with delegation, a
    spawn whose runs are its children and a cancel of those children."""
    mcp.add_tool(
        subagent_status, description=STATUS_DESCRIPTION, annotations=ToolAnnotations(read_only_hint=True)
    )
    if not delegate:
        return
    mcp.add_tool(
        spawn_child,
        name="spawn_subagent",
        description="Hand part of your task to another coding agent: it runs in the background in "
        "its own git worktree, as a subagent of your run, and returns at once (or after "
        "wait_seconds). Follow it with subagent_status; its changes become a patch for the user to "
        "review. Subagents may nest only so deep and so many ([delegation] limits).",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        cancel_subagent,
        description="Cancel one of the subagents you spawned (and the ones it spawned); work done so "
        "far is kept as a patch.",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
    )
