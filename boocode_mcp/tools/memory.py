"""search_memory: full-text search over notes and finished subagent transcripts."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import workspace as ops
from boocode_mcp.tools.calls import tool_call
from boocode_mcp.views import MemoryHits, MemorySource


async def search_memory(
    query: Annotated[str, Field(min_length=1, description="words to look for (full-text, bm25 ranked)")],
    ctx: Context[Any, Any],
    limit: Annotated[int, Field(ge=1, le=100, description="at most this many hits")] = 10,
    source: Annotated[
        MemorySource | None,
        Field(description="only notes (.boocode/memory/*.md) or only subagent transcripts"),
    ] = None,
) -> Annotated[CallToolResult, MemoryHits]:
    arguments = {"query": query, "limit": limit, "source": source}
    async with tool_call(ctx, "search_memory", arguments) as call:
        return call.done(await ops.search_memory(call.caller, query, limit=limit, source=source))


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        search_memory,
        description="Search BooCode's memory: notes under .boocode/memory/ and the transcripts of "
        "finished subagents (prompt, agent messages, tool titles), best matches first.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
