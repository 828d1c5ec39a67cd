"""The ACP client side: agent registry, warm backends, client callbacks and the pool."""

from boocode_mcp.agents.acp_backend import WarmAcpBackend
from boocode_mcp.agents.backend import (
    AgentBackend,
    BackendStatus,
    EventSink,
    PermissionHandler,
    SessionInfo,
    StopReason,
    TurnResult,
)
from boocode_mcp.agents.backend_core import BackendState
from boocode_mcp.agents.lifecycle import PoolEntry, choose_evictions
from boocode_mcp.agents.mapping import map_permission_request, map_update
from boocode_mcp.agents.permissions import choose_option, policy_handler
from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.agents.registry import AgentRegistry, ResolvedAgent

__all__ = [
    "AgentBackend",
    "AgentPool",
    "AgentRegistry",
    "BackendState",
    "BackendStatus",
    "EventSink",
    "PermissionHandler",
    "PoolEntry",
    "ResolvedAgent",
    "SessionInfo",
    "StopReason",
    "TurnResult",
    "WarmAcpBackend",
    "choose_evictions",
    "choose_option",
    "map_permission_request",
    "map_update",
    "policy_handler",
]
