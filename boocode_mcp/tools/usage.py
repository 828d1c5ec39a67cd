"""usage_stats: how the workspace's runs went and what they cost, grouped by agent, day, chat or
session."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import usage as ops
from boocode_mcp.ops.usage import UsageStats
from boocode_mcp.store.usage import GroupBy
from boocode_mcp.tools.calls import tool_call


async def usage_stats(
    ctx: Context[Any, Any],
    group_by: Annotated[
        GroupBy, Field(description="one row per agent (default), day (local), chat or session")
    ] = "agent",
    since: Annotated[
        str | None,
        Field(
            description="only runs created since: a duration back from now (30m, 12h, 7d, 2w), an ISO "
            "date (2026-01-31) or date-time, or unix seconds; omit for all runs"
        ),
    ] = None,
    limit: Annotated[
        int,
        Field(
            ge=1,
            le=ops.MAX_ROWS,
            description="at most this many rows: the latest days, the most recently active chats, "
            "the agents and sessions with the most runs",
        ),
    ] = ops.DEFAULT_ROWS,
) -> Annotated[CallToolResult, UsageStats]:
    async with tool_call(ctx, "usage_stats", {"group_by": group_by, "since": since, "limit": limit}) as call:
        return call.done(await ops.usage_stats(call.caller, group_by=group_by, since=since, limit=limit))


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        usage_stats,
        description="How the workspace's subagent runs went and what they cost, grouped by agent, day, "
        "chat or session: runs, completed, failed, success rate, median turn time, input and output "
        "tokens, cache-read and cache-write tokens, cost. Token and cost figures are what the agents "
        "reported; null means no run in the group reported it.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
