"""ACP `session/update` payloads → BooCode's AgentEvent union; pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from acp import schema

from boocode_mcp.agents.events import (
    AgentEvent,
    AvailableCommandsEvent,
    ModeChangeEvent,
    OtherEvent,
    PermissionKind,
    PermissionOptionInfo,
    PermissionRequestEvent,
    PlanEvent,
    PlanItem,
    ReasoningEvent,
    TextEvent,
    ToolCallEvent,
    ToolUpdateEvent,
    UsageEvent,
)

_PERMISSION_KINDS: frozenset[str] = frozenset({"allow_once", "allow_always", "reject_once", "reject_always"})


def content_text(block: Any) -> str:
    """The text a content block carries: text blocks verbatim, embedded text resources by their
    text, links by their URI; images/audio/blobs carry none."""
    if isinstance(block, schema.TextContentBlock):
        return block.text
    if isinstance(block, schema.EmbeddedResourceContentBlock):
        res = block.resource
        return res.text if isinstance(res, schema.TextResourceContents) else ""
    if isinstance(block, schema.ResourceContentBlock):
        return block.uri
    return ""


def tool_content_text(content: Iterable[Any] | None) -> str | None:
    """The text of a tool call's content list (content blocks and diffs), None when it has none."""
    if not content:
        return None
    parts: list[str] = []
    for item in content:
        if isinstance(item, schema.ContentToolCallContent):
            text = content_text(item.content)
            if text:
                parts.append(text)
        elif isinstance(item, schema.FileEditToolCallContent):
            parts.append(f"diff {item.path}")
    return "\n".join(parts) if parts else None


def _locations(locations: Iterable[schema.ToolCallLocation] | None) -> tuple[str, ...]:
    return tuple(loc.path for loc in locations or ())


def _update_type(update: Any) -> str:
    return str(getattr(update, "session_update", None) or type(update).__name__)


def map_update(update: Any) -> AgentEvent:
    """Translate one session update; anything BooCode does not interpret becomes OtherEvent."""
    if isinstance(update, schema.AgentMessageChunk):
        return TextEvent(text=content_text(update.content), raw=update)
    if isinstance(update, schema.AgentThoughtChunk):
        return ReasoningEvent(text=content_text(update.content), raw=update)
    if isinstance(update, schema.ToolCallStart):
        return ToolCallEvent(
            tool_call_id=update.tool_call_id,
            title=update.title,
            tool_kind=update.kind,
            status=update.status,
            locations=_locations(update.locations),
            raw_input=update.raw_input,
            raw=update,
        )
    if isinstance(update, schema.ToolCallProgress):
        return ToolUpdateEvent(
            tool_call_id=update.tool_call_id,
            status=update.status,
            title=update.title,
            locations=_locations(update.locations),
            content_text=tool_content_text(update.content),
            raw_output=update.raw_output,
            raw=update,
        )
    if isinstance(update, schema.AgentPlanUpdate):
        return PlanEvent(
            entries=tuple(
                PlanItem(content=e.content, status=e.status, priority=e.priority) for e in update.entries
            ),
            raw=update,
        )
    if isinstance(update, schema.AvailableCommandsUpdate):
        return AvailableCommandsEvent(commands=tuple(c.name for c in update.available_commands), raw=update)
    if isinstance(update, schema.CurrentModeUpdate):
        return ModeChangeEvent(mode_id=update.current_mode_id, raw=update)
    if isinstance(update, schema.UsageUpdate):
        # `used` is the context occupancy, not tokens spent; only the cost is a running total.
        cost = update.cost
        return UsageEvent(
            cost=cost.amount if cost else None,
            currency=cost.currency if cost else None,
            cumulative=True,
            context_used=update.used,
            context_size=update.size,
            raw=update,
        )
    return OtherEvent(update_type=_update_type(update), raw=update)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def meta_usage(update: Any) -> UsageEvent | None:
    """The token usage an agent reports in an update's `_meta` rather than in ACP's own fields:
    qwen-code (0.15) puts `{inputTokens, outputTokens, totalTokens, thoughtTokens,
    cachedReadTokens}` of each model response on an agent message chunk. Increments, one per model
    response; None when the update carries none."""
    meta = getattr(update, "field_meta", None)
    usage = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(usage, dict):
        return None
    event = UsageEvent(
        input_tokens=_count(usage.get("inputTokens")),
        output_tokens=_count(usage.get("outputTokens")),
        total_tokens=_count(usage.get("totalTokens")),
        thought_tokens=_count(usage.get("thoughtTokens")),
        cache_read_tokens=_count(usage.get("cachedReadTokens")),
        cache_write_tokens=_count(usage.get("cachedWriteTokens")),
        raw=update,
    )
    if all(v is None for v in (event.input_tokens, event.output_tokens, event.total_tokens)):
        return None
    return event


def map_permission_request(
    request_id: str, tool_call: schema.ToolCallUpdate, options: Iterable[schema.PermissionOption]
) -> PermissionRequestEvent:
    """The event for a `session/request_permission`; options of unknown kind are left out, since
    BooCode decides by kind only."""
    infos = tuple(
        PermissionOptionInfo(option_id=o.option_id, name=o.name, kind=_kind(o.kind))
        for o in options
        if o.kind in _PERMISSION_KINDS
    )
    return PermissionRequestEvent(
        request_id=request_id,
        tool_call_id=tool_call.tool_call_id,
        title=tool_call.title or tool_call.tool_call_id,
        options=infos,
        raw=tool_call,
    )


def _kind(kind: str) -> PermissionKind:
    if kind == "allow_once":
        return "allow_once"
    if kind == "allow_always":
        return "allow_always"
    if kind == "reject_once":
        return "reject_once"
    return "reject_always"
