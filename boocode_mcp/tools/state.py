"""What one MCP server lifespan shares with its tool and resource handlers.

A lifespan is one stdio connection, one in-process `Client`, or the whole process on streamable
HTTP (the SDK's session manager enters it once). Handlers find it as
`ctx.request_context.lifespan_context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context

if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    from boocode_mcp.engine import Engine

# HTTP clients on the handshake era name their connection with this header; BooCode maps each
# value to a session of its own.
MCP_SESSION_HEADER = "mcp-session-id"


@dataclass
class ServerState:
    """Per-lifespan state: the engine, the connection's BooCode session, legacy subscriptions.

    `for_agents`: the server agents reach from inside their runs (`agent_mcp`), where every call
    must carry a chat's credential and acts for that chat's run, not for a session of its own."""

    engine: Engine
    for_agents: bool = False
    default_session: str | None = None
    http_sessions: dict[str, str] = field(default_factory=dict)
    # Handshake-era `resources/subscribe`: uri -> the connections (ServerSession) that asked.
    subscriptions: dict[str, set[ServerSession]] = field(default_factory=dict)
    _session_lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def session_for(self, ctx: Context[Any, Any], session_id: str | None) -> str:
        """The BooCode session a request acts in: the explicit one, else its connection's own.

        An explicit id must name an existing session (engine raises NotFoundError otherwise); the
        connection's session is created on first use.
        """
        if session_id is not None:
            return await self.engine.ensure_session(session_id, create=False)
        key = _http_session_key(ctx)
        # One lock so two first calls racing on a fresh connection create one session, not two.
        async with self._session_lock:
            if key is not None:
                sid = self.http_sessions.get(key)
                if sid is None:
                    sid = await self.engine.ensure_session(None)
                    self.http_sessions[key] = sid
                return sid
            if self.default_session is None:
                self.default_session = await self.engine.ensure_session(None)
            return self.default_session


def bearer_token(ctx: Context[Any, Any]) -> str | None:
    """The bearer token of the HTTP request a call came in (None off HTTP or without one)."""
    headers = ctx.headers
    if headers is None:
        return None
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _http_session_key(ctx: Context[Any, Any]) -> str | None:
    headers = ctx.headers
    if headers is None:
        return None
    return headers.get(MCP_SESSION_HEADER) or None


def state_of(ctx: Context[Any, Any]) -> ServerState:
    state = ctx.request_context.lifespan_context
    if not isinstance(state, ServerState):
        raise TypeError("the BooCode MCP server was started without its lifespan (use build_server)")
    return state
