"""BooCode's own MCP server inside every agent session: one credential per agent session of a chat.

Each agent session (ACP `session/new` or `session/load`) is given BooCode's MCP server among its
`mcpServers`, with a credential bound to the chat: over HTTP as a bearer token where the agent
takes HTTP MCP servers, else through a stdio front end (`boocode-mcp`) that carries the token in
its environment and relays to the same HTTP endpoint. A call with the token is attributed to the
chat's run (the engine resolves which); a call without a valid token is refused, and a session's
token stops working when the session ends (its agent process is closed, evicted or restarted).

The endpoint itself is a front end (it serves MCP): whoever owns the engine (the daemon, or a
`--no-daemon` front end) attaches it here. An engine without one gives agents no MCP server.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from acp.schema import EnvVariable, HttpHeader, HttpMcpServer, McpServerStdio

from boocode_mcp.agent_bridge import ENV_TOKEN, ENV_URL
from boocode_mcp.agents.backend import McpGrant

# What agents see BooCode's server as (opencode names its tools `boocode_<tool>`).
SERVER_NAME = "boocode"


@dataclass(frozen=True)
class AgentGrant:
    """What a credential stands for: an agent session of one chat."""

    chat_id: str
    agent: str


@dataclass(frozen=True)
class CallingRun:
    """The run an agent's MCP call is attributed to: its traces, its session, its children."""

    session_id: str
    chat_id: str
    agent: str
    subagent_id: str
    depth: int


class AgentEndpoint(Protocol):
    """Where agents reach BooCode's MCP server."""

    async def url(self) -> str:
        """The loopback HTTP endpoint's URL, starting it on first use."""
        ...

    def stdio_command(self) -> tuple[str, list[str]]:
        """The stdio front end's program (an absolute path, as ACP requires) and arguments."""
        ...


def _key(token: str) -> str:
    # Only digests are kept: a dump of the daemon's memory holds no usable credential.
    return hashlib.sha256(token.encode()).hexdigest()


class AgentGateway:
    """The credentials of one engine's agent sessions, and the endpoint they are valid at."""

    def __init__(self) -> None:
        self._grants: dict[str, AgentGrant] = {}
        self._endpoint: AgentEndpoint | None = None

    def attach(self, endpoint: AgentEndpoint) -> None:
        """Serve agent sessions started from now on through `endpoint`."""
        self._endpoint = endpoint

    def detach(self) -> None:
        """No more MCP servers for new agent sessions; every credential stops working."""
        self._endpoint = None
        self._grants.clear()

    @property
    def attached(self) -> bool:
        return self._endpoint is not None

    async def grant(self, chat_id: str, agent: str, *, http: bool) -> McpGrant | None:
        """BooCode's MCP server for a new agent session of `chat_id`, with a fresh credential."""
        endpoint = self._endpoint
        if endpoint is None:
            return None
        url = await endpoint.url()
        token = secrets.token_urlsafe(32)
        key = _key(token)
        self._grants[key] = AgentGrant(chat_id=chat_id, agent=agent)
        server: HttpMcpServer | McpServerStdio
        if http:
            server = HttpMcpServer(
                type="http",
                name=SERVER_NAME,
                url=url,
                headers=[HttpHeader(name="Authorization", value=f"Bearer {token}")],
            )
        else:
            program, args = endpoint.stdio_command()
            server = McpServerStdio(
                name=SERVER_NAME,
                command=program,
                args=args,
                env=[EnvVariable(name=ENV_URL, value=url), EnvVariable(name=ENV_TOKEN, value=token)],
            )

        def revoke() -> None:
            self._grants.pop(key, None)

        return McpGrant(servers=(server,), revoke=revoke)

    def lookup(self, token: str | None) -> AgentGrant | None:
        """The grant a presented token stands for; None for a missing, unknown or revoked one."""
        if not token:
            return None
        return self._grants.get(_key(token))

    def __len__(self) -> int:
        return len(self._grants)
