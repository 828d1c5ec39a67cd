"""The operations behind every front end: what an MCP tool, a CLI command and the daemon's API do.

Each operation takes a `Caller` (the engine and the caller's own session) and plain arguments and
returns its result model together with the text a host's model reads. The MCP tools in `tools/`
adapt them to MCPServer (argument schemas, ToolError); the daemon's API (`daemon/api.py`) serves
them to the CLI by name. So a CLI command and its MCP tool cannot drift apart: `--json` prints the
very model the tool returns.
"""

from boocode_mcp.ops.caller import Caller, Outcome, clip

__all__ = ["Caller", "Outcome", "clip"]
