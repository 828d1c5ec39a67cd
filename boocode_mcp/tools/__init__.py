"""The MCP tools: thin adapters that validate flat arguments, run the operation (`boocode_mcp.ops`)
and return its result as structured content plus a text carrying every id the next step needs."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from boocode_mcp.tools import agents, commands, memory, patches, subagents, usage, workflows
from boocode_mcp.tools.state import ServerState, state_of

__all__ = [
    "AGENT_TOOLS",
    "DELEGATION_TOOLS",
    "ServerState",
    "register_agent_tools",
    "register_tools",
    "state_of",
]

# What an agent is offered inside its run (never apply_pending or run_command: applying work and
# running commands stay with the host and the user); with `delegate = true`, also DELEGATION_TOOLS.
AGENT_TOOLS = frozenset({"search_memory", "list_patches", "subagent_status"})
DELEGATION_TOOLS = frozenset({"spawn_subagent", "cancel_subagent"})


def register_tools(mcp: MCPServer[Any]) -> None:
    """The tools a host is offered."""
    subagents.register(mcp)
    patches.register(mcp)
    memory.register(mcp)
    commands.register(mcp)
    agents.register(mcp)
    usage.register(mcp)
    workflows.register(mcp)
    mcp.middleware.append(agents.agent_names)


def register_agent_tools(mcp: MCPServer[Any], *, delegate: bool) -> None:
    """The tools an agent is offered inside its run through BooCode's MCP server."""
    memory.register(mcp)
    patches.register_listing(mcp)
    subagents.register_for_agents(mcp, delegate=delegate)
    mcp.middleware.append(agents.agent_names)
