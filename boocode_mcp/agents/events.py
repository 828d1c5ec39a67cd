"""The normalized events an agent turn produces, independent of the wire protocol.

Every event keeps the ACP update it came from in `raw` (excluded from equality) so that a front end
that speaks ACP itself (`boocode acp`) can pass updates through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ToolStatus = Literal["pending", "in_progress", "completed", "failed"]
PermissionKind = Literal["allow_once", "allow_always", "reject_once", "reject_always"]


@dataclass(frozen=True)
class TextEvent:
    text: str
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class ReasoningEvent:
    text: str
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True)
class ToolCallEvent:
    """A tool call the agent started (ACP `tool_call`)."""

    tool_call_id: str
    title: str
    tool_kind: str | None = None
    status: ToolStatus | None = None
    locations: tuple[str, ...] = ()
    raw_input: Any = None
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolUpdateEvent:
    """A change to an earlier tool call (ACP `tool_call_update`); None fields did not change."""

    tool_call_id: str
    status: ToolStatus | None = None
    title: str | None = None
    locations: tuple[str, ...] = ()
    content_text: str | None = None
    raw_output: Any = None
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["tool_update"] = "tool_update"


@dataclass(frozen=True)
class PlanItem:
    content: str
    status: str
    priority: str | None = None


@dataclass(frozen=True)
class PlanEvent:
    entries: tuple[PlanItem, ...]
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["plan"] = "plan"


@dataclass(frozen=True)
class AvailableCommandsEvent:
    commands: tuple[str, ...]
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["available_commands"] = "available_commands"


@dataclass(frozen=True)
class UsageEvent:
    """Token/cost usage; `cumulative` says whether the numbers are totals or increments.

    `context_used`/`context_size` (ACP `usage_update`: tokens in the context window, and its size)
    are a snapshot either way."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None
    currency: str | None = None
    cumulative: bool = False
    total_tokens: int | None = None
    thought_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    context_used: int | None = None
    context_size: int | None = None
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["usage"] = "usage"


@dataclass(frozen=True)
class PermissionOptionInfo:
    option_id: str
    name: str
    kind: PermissionKind


@dataclass(frozen=True)
class PermissionRequestEvent:
    """The agent asked for permission; emitted before the decision is made."""

    request_id: str
    tool_call_id: str | None
    title: str
    options: tuple[PermissionOptionInfo, ...]
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["permission_request"] = "permission_request"


@dataclass(frozen=True)
class ModeChangeEvent:
    mode_id: str
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["mode_change"] = "mode_change"


@dataclass(frozen=True)
class OtherEvent:
    """An update BooCode does not interpret (e.g. a replayed user message); kept for pass-through."""

    update_type: str
    raw: Any = field(default=None, compare=False, repr=False)
    kind: Literal["other"] = "other"


AgentEvent = (
    TextEvent
    | ReasoningEvent
    | ToolCallEvent
    | ToolUpdateEvent
    | PlanEvent
    | AvailableCommandsEvent
    | UsageEvent
    | PermissionRequestEvent
    | ModeChangeEvent
    | OtherEvent
)
