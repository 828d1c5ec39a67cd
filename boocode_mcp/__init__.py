"""BooCode MCP: hand coding work to real ACP coding agents as background subagents."""

__version__ = "0.1.0"
