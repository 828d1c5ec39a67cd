"""The narrow interface the engine drives an agent through, and the values that cross it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from acp.schema import HttpMcpServer, McpServerStdio

from boocode_mcp.agents.events import AgentEvent, PermissionRequestEvent

BackendStatus = Literal["idle", "active", "crashed", "closed"]
StopReason = Literal["end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled"]

# Called synchronously, in arrival order, from inside the protocol callback: it must not block or
# await (enqueue and return): the SDK handles each message in its own task, so awaiting there
# lets later updates overtake earlier ones.
EventSink = Callable[[AgentEvent], None]

# Decides a permission request: returns the chosen option_id, or None to answer "cancelled".
PermissionHandler = Callable[[PermissionRequestEvent], Awaitable[str | None]]


@dataclass(frozen=True)
class SessionInfo:
    """What ensure_session established."""

    acp_session_id: str
    # None for an agent that runs no process between turns (a command-line agent).
    pid: int | None
    pgid: int | None
    # "new": a fresh session; "loaded": session/load restored the agent's context;
    # "reused": the warm session was already there; "fresh_after_restart": the agent could not
    # restore an earlier session, so its context is gone (status must say so).
    origin: Literal["new", "loaded", "reused", "fresh_after_restart"]
    load_supported: bool
    agent_name: str | None = None
    agent_version: str | None = None
    # Something the run's status must say about how this turn's agent session came about (a
    # follow-up without the chat's context, a fallback to another agent).
    note: str | None = None


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended, and its usage as the agent reported it (`PromptResponse.usage`; cost from
    its running `usage_update` total); None where the agent said nothing."""

    stop_reason: StopReason
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    total_tokens: int | None = None
    thought_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True)
class PromptImage:
    """An image a prompt carries (an ACP image content block)."""

    mime_type: str
    data: bytes


@dataclass(frozen=True)
class McpGrant:
    """BooCode's own MCP server as one agent session is given it (ACP `mcpServers` entries), and
    how to take it back when the session ends."""

    servers: tuple[HttpMcpServer | McpServerStdio, ...]
    revoke: Callable[[], None]


class McpProvider(Protocol):
    """Gives each agent session of a chat BooCode's own MCP server (the engine's `AgentGateway`)."""

    async def grant(self, chat_id: str, agent: str, *, http: bool) -> McpGrant | None:
        """The servers for a new or loaded session of `agent` in `chat_id` (HTTP where the agent
        takes HTTP MCP servers, else stdio); None when there is none to give."""
        ...


class AgentBackend(Protocol):
    """One warm agent session for one (chat, agent)."""

    @property
    def chat_id(self) -> str: ...

    @property
    def agent(self) -> str: ...

    @property
    def status(self) -> BackendStatus: ...

    @property
    def busy(self) -> bool:
        """True while a prompt is in flight (or being cancelled); the pool never evicts it."""
        ...

    @property
    def last_active(self) -> float: ...

    async def ensure_session(self) -> SessionInfo:
        """Spawn the process if needed (re-spawn after a crash), initialize, new/load session."""
        ...

    async def prompt(
        self,
        text: str,
        on_event: EventSink,
        permissions: PermissionHandler,
        images: Sequence[PromptImage] = (),
    ) -> TurnResult:
        """Run one turn. Raises AgentCrashedError if the process dies mid-turn, AgentBusyError if a
        prompt is already in flight, AgentTurnError if the agent cannot take the prompt (images)."""
        ...

    async def cancel(self) -> None:
        """session/cancel, then wait (bounded) for the in-flight prompt to answer `cancelled`."""
        ...

    async def close(self) -> None:
        """End the session and the process group; idempotent."""
        ...

    async def health(self) -> bool:
        """Whether the process is alive; a dead one flips status to crashed."""
        ...
