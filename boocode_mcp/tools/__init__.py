"""The MCP tools: thin adapters that validate flat arguments, run the operation (`boocode_mcp.ops`)
and return its result as structured content plus a text carrying every id the next step needs."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from boocode_mcp.tools import commands, memory, patches, subagents, workflows
from boocode_mcp.tools.state import ServerState, state_of

__all__ = ["ServerState", "register_tools", "state_of"]


def register_tools(mcp: MCPServer[Any]) -> None:
    subagents.register(mcp)
    patches.register(mcp)
    memory.register(mcp)
    commands.register(mcp)
    workflows.register(mcp)
