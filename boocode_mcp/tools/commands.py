"""run_command: one program with an argument list in the workspace, no shell, bounded in time."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import workspace as ops
from boocode_mcp.tools.calls import tool_call
from boocode_mcp.views import CommandResult


async def run_command(
    command: Annotated[str, Field(min_length=1, description="the program to run (a name on PATH or a path)")],
    ctx: Context[Any, Any],
    args: Annotated[tuple[str, ...], Field(description="its arguments, one per item (no shell)")] = (),
    cwd: Annotated[
        str | None, Field(description="working directory relative to the workspace (may not leave it)")
    ] = None,
    timeout_s: Annotated[
        float,
        Field(gt=0, le=ops.MAX_COMMAND_SECONDS, description="kill the command's process group after this"),
    ] = 30,
    env: Annotated[dict[str, str] | None, Field(description="extra environment variables")] = None,
) -> Annotated[CallToolResult, CommandResult]:
    arguments = {"command": command, "args": list(args), "cwd": cwd, "timeout_s": timeout_s,
                 "env": sorted(env) if env else None}  # fmt: skip
    async with tool_call(ctx, "run_command", arguments) as call:
        return call.done(
            await ops.run_command(call.caller, command, args, cwd=cwd, timeout_s=timeout_s, env=env)
        )


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        run_command,
        description="Run one program with an argument list (no shell) in the workspace, in its own "
        "process group, killed at timeout_s; output is capped. cwd is relative to the workspace.",
        annotations=ToolAnnotations(destructive_hint=True, open_world_hint=True),
    )
