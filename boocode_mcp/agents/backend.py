"""The narrow interface the engine drives an agent through, and the values that cross it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

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
    pid: int
    pgid: int
    # "new": a fresh session; "loaded": session/load restored the agent's context;
    # "reused": the warm session was already there; "fresh_after_restart": the agent could not
    # restore an earlier session, so its context is gone (status must say so).
    origin: Literal["new", "loaded", "reused", "fresh_after_restart"]
    load_supported: bool
    agent_name: str | None = None
    agent_version: str | None = None


@dataclass(frozen=True)
class TurnResult:
    stop_reason: StopReason
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None


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

    async def prompt(self, text: str, on_event: EventSink, permissions: PermissionHandler) -> TurnResult:
        """Run one turn. Raises AgentCrashedError if the process dies mid-turn, AgentBusyError if a
        prompt is already in flight."""
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
