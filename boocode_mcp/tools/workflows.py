"""Workflow tools: list_workflows, run_workflow, workflow_status, cancel_workflow."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import workflows as ops
from boocode_mcp.ops.subagents import MAX_WAIT_SECONDS
from boocode_mcp.tools.calls import tool_call
from boocode_mcp.workflows.views import WorkflowCancelled, WorkflowList, WorkflowRunView, WorkflowStarted

RunId = Annotated[str, Field(min_length=1, description="the workflow run (from run_workflow)")]


async def list_workflows(ctx: Context[Any, Any]) -> Annotated[CallToolResult, WorkflowList]:
    async with tool_call(ctx, "list_workflows", {}) as call:
        return call.done(await ops.list_workflows(call.caller))


async def run_workflow(
    name: Annotated[str, Field(min_length=1, description="the workflow's name (see list_workflows)")],
    ctx: Context[Any, Any],
    args: Annotated[
        dict[str, Any] | None,
        Field(description="the workflow's arguments, matching its args_schema; default {}"),
    ] = None,
    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="wait up to this many seconds (at most 30) for the run to end; 0 returns at once",
        ),
    ] = 0,
) -> Annotated[CallToolResult, WorkflowStarted]:
    arguments = {"name": name, "args": args, "wait_seconds": wait_seconds}
    async with tool_call(ctx, "run_workflow", arguments) as call:
        return call.done(await ops.run_workflow(call.caller, name, args, wait_seconds=wait_seconds))


async def workflow_status(
    workflow_run_id: RunId,
    ctx: Context[Any, Any],
    wait_seconds: Annotated[
        float,
        Field(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="wait up to this many seconds (at most 30) and return early on any change (a "
            "step, a log line, the status); at once when the run has ended",
        ),
    ] = 0,
) -> Annotated[CallToolResult, WorkflowRunView]:
    arguments = {"workflow_run_id": workflow_run_id, "wait_seconds": wait_seconds}
    async with tool_call(ctx, "workflow_status", arguments) as call:
        return call.done(await ops.workflow_status(call.caller, workflow_run_id, wait_seconds=wait_seconds))


async def cancel_workflow(
    workflow_run_id: RunId, ctx: Context[Any, Any]
) -> Annotated[CallToolResult, WorkflowCancelled]:
    async with tool_call(ctx, "cancel_workflow", {"workflow_run_id": workflow_run_id}) as call:
        return call.done(await ops.cancel_workflow(call.caller, workflow_run_id))


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        list_workflows,
        description="List the workflows this workspace can run (its own .boocode/workflows, the "
        "user's, and BooCode's built-in best-of-n, multi-review, plan-verify, deep-research), each "
        "with its args schema; files that cannot be used are listed under warnings with the reason.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    mcp.add_tool(
        run_workflow,
        description="Run a workflow in the background: a sandboxed script that hands steps to agents "
        "(each an ordinary subagent run with its own worktree and patch), returns at once (or after "
        "wait_seconds). Steps already done with the same inputs come from the step cache, so running "
        "it again with the same args (after a failure or an interruption) redoes only what is left.",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    mcp.add_tool(
        workflow_status,
        description="Report a workflow run: status (queued running completed failed cancelled "
        "interrupted), its steps (phase, agent, status, cached, subagent and patch ids, usage), its "
        "log lines, result, error and usage.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    mcp.add_tool(
        cancel_workflow,
        description="Cancel a queued or running workflow run and its running steps; completed steps "
        "stay in the step cache.",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
    )
