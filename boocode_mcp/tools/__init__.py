"""The MCP tools: thin adapters that validate flat arguments, call the engine and
return its view models as structured content plus a short text."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from boocode_mcp.tools import commands, memory, patches, subagents
from boocode_mcp.tools.state import ServerState, state_of

__all__ = ["ServerState", "register_tools", "state_of"]


def register_tools(mcp: MCPServer[Any]) -> None:
    subagents.register(mcp)
    patches.register(mcp)
    memory.register(mcp)
    commands.register(mcp)
