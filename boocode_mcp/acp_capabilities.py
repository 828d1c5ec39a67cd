"""What `boocode acp` answers to `initialize`, as plain JSON.

Standard library only: the `boocode acp` front end answers `initialize` itself before it knows
which workspace's daemon to reach (the editor names its directory only in `session/new`), and the
daemon's ACP server answers with the same object, so the two cannot disagree.
"""

from __future__ import annotations

from typing import Any

from boocode_mcp import __version__

# The ACP protocol version this BooCode speaks (the agent-client-protocol SDK's PROTOCOL_VERSION;
# a test keeps them equal).
ACP_PROTOCOL_VERSION = 1


def initialize_result(client_version: int) -> dict[str, Any]:
    return {
        "protocolVersion": min(client_version, ACP_PROTOCOL_VERSION),
        "agentCapabilities": {
            "loadSession": True,
            # Images are passed on to the backend agent (refused, saying so, by one that takes none).
            "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
            "sessionCapabilities": {"list": {}, "resume": {}, "close": {}},
        },
        "authMethods": [],
        "agentInfo": {"name": "boocode", "title": "BooCode", "version": __version__},
    }
