"""list_agents: the agents a run may name; and how spawn_subagent's `agent` argument names the
installed ones whenever the tool list is served."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations

from boocode_mcp.ops import workspace as ops
from boocode_mcp.ops.workspace import AgentList
from boocode_mcp.tools.calls import tool_call
from boocode_mcp.tools.state import ServerState

# The tools whose `agent` argument names an agent to run.
_SPAWNING = frozenset({"spawn_subagent"})


async def list_agents(ctx: Context[Any, Any]) -> Annotated[CallToolResult, AgentList]:
    async with tool_call(ctx, "list_agents", {}) as call:
        return call.done(await ops.agents(call.caller))


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        list_agents,
        description="List the agents spawn_subagent may run: for each its name, whether it is "
        "installed here and its version, its protocol, whether it takes images, and how to install "
        "it if it is not.",
        annotations=ToolAnnotations(read_only_hint=True),
    )


async def agent_names(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: in a `tools/list` answer, the `agent` argument of spawn_subagent names
    the agents installed now (computed as the list is served, so an agent installed while the
    server runs shows up at the next listing)."""
    result = await call_next(ctx)
    state = ctx.lifespan_context
    if ctx.method != "tools/list" or not isinstance(result, dict) or not isinstance(state, ServerState):
        return result
    registry = state.engine.registry
    names = registry.installed()
    default = state.engine.config.default_agent
    if names:
        listed = ", ".join(f"{n} (the default)" if n == default else n for n in names)
        text = f"agent to run; installed here: {listed}. Omit for the default; list_agents shows the rest"
    else:
        text = "agent to run; none is installed here yet: see list_agents for how to install one"
    for tool in result.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") in _SPAWNING:
            prop = (tool.get("inputSchema") or {}).get("properties", {}).get("agent")
            if isinstance(prop, dict):
                prop["description"] = text
    return result
