"""ACP session updates → AgentEvent: every update type, content text extraction, locations."""

from __future__ import annotations

from acp import (
    plan_entry,
    start_tool_call,
    text_block,
    update_agent_message_text,
    update_agent_thought_text,
    update_plan,
    update_tool_call,
    update_user_message_text,
)
from acp.helpers import (
    embedded_text_resource,
    image_block,
    resource_block,
    resource_link_block,
    tool_content,
    tool_diff_content,
    tool_terminal_ref,
    update_agent_message,
    update_available_commands,
    update_current_mode,
)
from acp.schema import (
    AvailableCommand,
    Cost,
    PermissionOption,
    SessionInfoUpdate,
    ToolCallLocation,
    ToolCallUpdate,
    UsageUpdate,
)

from boocode_mcp.agents.events import (
    AvailableCommandsEvent,
    ModeChangeEvent,
    OtherEvent,
    PermissionOptionInfo,
    PlanEvent,
    PlanItem,
    ReasoningEvent,
    TextEvent,
    ToolCallEvent,
    ToolUpdateEvent,
    UsageEvent,
)
from boocode_mcp.agents.mapping import content_text, map_permission_request, map_update, tool_content_text


def test_agent_message_chunk_is_text_and_keeps_raw() -> None:
    update = update_agent_message_text("hello")
    event = map_update(update)
    assert event == TextEvent(text="hello")
    assert event.raw is update


def test_agent_thought_chunk_is_reasoning() -> None:
    assert map_update(update_agent_thought_text("hmm")) == ReasoningEvent(text="hmm")


def test_non_text_message_content_maps_to_empty_or_uri_text() -> None:
    assert map_update(update_agent_message(image_block("AAAA", "image/png"))) == TextEvent(text="")
    link = resource_link_block("spec", "file:///w/spec.md")
    assert map_update(update_agent_message(link)) == TextEvent(text="file:///w/spec.md")
    embedded = resource_block(embedded_text_resource("file:///w/a.py", "print(1)"))
    assert map_update(update_agent_message(embedded)) == TextEvent(text="print(1)")


def test_tool_call_start_maps_kind_status_locations_and_input() -> None:
    update = start_tool_call(
        "tc1",
        "Edit a.py",
        kind="edit",
        status="pending",
        locations=[ToolCallLocation(path="/w/a.py", line=3), ToolCallLocation(path="/w/b.py")],
        raw_input={"path": "/w/a.py"},
    )
    assert map_update(update) == ToolCallEvent(
        tool_call_id="tc1",
        title="Edit a.py",
        tool_kind="edit",
        status="pending",
        locations=("/w/a.py", "/w/b.py"),
        raw_input={"path": "/w/a.py"},
    )


def test_tool_call_update_maps_changed_fields_and_content_text() -> None:
    update = update_tool_call(
        "tc1",
        status="completed",
        content=[
            tool_content(text_block("line one")),
            tool_diff_content("/w/a.py", "new", "old"),
            tool_terminal_ref("term-1"),
            tool_content(text_block("line two")),
        ],
        locations=[ToolCallLocation(path="/w/a.py")],
        raw_output={"ok": True},
    )
    assert map_update(update) == ToolUpdateEvent(
        tool_call_id="tc1",
        status="completed",
        title=None,
        locations=("/w/a.py",),
        content_text="line one\ndiff /w/a.py\nline two",
        raw_output={"ok": True},
    )


def test_tool_call_update_without_content_has_none_text() -> None:
    event = map_update(update_tool_call("tc2", title="Renamed"))
    assert event == ToolUpdateEvent(tool_call_id="tc2", title="Renamed")
    assert tool_content_text([]) is None


def test_plan_maps_entries() -> None:
    update = update_plan(
        [plan_entry("read", priority="high", status="completed"), plan_entry("write", status="pending")]
    )
    assert map_update(update) == PlanEvent(
        entries=(
            PlanItem(content="read", status="completed", priority="high"),
            PlanItem(content="write", status="pending", priority="medium"),
        )
    )


def test_available_commands_map_to_names() -> None:
    update = update_available_commands(
        [AvailableCommand(name="apply", description="a"), AvailableCommand(name="undo", description="u")]
    )
    assert map_update(update) == AvailableCommandsEvent(commands=("apply", "undo"))


def test_current_mode_update_maps_mode_id() -> None:
    assert map_update(update_current_mode("plan")) == ModeChangeEvent(mode_id="plan")


def test_usage_update_reports_cumulative_cost_not_context_size_as_tokens() -> None:
    update = UsageUpdate(
        session_update="usage_update", used=5000, size=200000, cost=Cost(amount=1.5, currency="USD")
    )
    # The context window is a snapshot of its own, never counted as input or total tokens.
    assert map_update(update) == UsageEvent(
        cost=1.5, currency="USD", cumulative=True, context_used=5000, context_size=200000
    )
    bare = UsageUpdate(session_update="usage_update", used=1, size=2)
    assert map_update(bare) == UsageEvent(
        cost=None, currency=None, cumulative=True, context_used=1, context_size=2
    )


def test_user_message_chunk_is_other() -> None:
    update = update_user_message_text("replayed prompt")
    event = map_update(update)
    assert event == OtherEvent(update_type="user_message_chunk")
    assert event.raw is update


def test_unknown_update_types_are_other() -> None:
    info = SessionInfoUpdate(session_update="session_info_update", title="t")
    assert map_update(info) == OtherEvent(update_type="session_info_update")

    class Strange:
        pass

    assert map_update(Strange()) == OtherEvent(update_type="Strange")


def test_content_text_of_unknown_object_is_empty() -> None:
    assert content_text(object()) == ""


def test_permission_request_keeps_options_by_kind_with_their_ids() -> None:
    tool_call = ToolCallUpdate(tool_call_id="tc9", title="Run rm -rf build")
    options = [
        PermissionOption(option_id="proceed_always", name="Always", kind="allow_always"),
        PermissionOption(option_id="x/1 é", name="Once", kind="allow_once"),
        PermissionOption(option_id="cancel", name="No", kind="reject_once"),
    ]
    event = map_permission_request("perm-1", tool_call, options)
    assert event.request_id == "perm-1"
    assert event.tool_call_id == "tc9"
    assert event.title == "Run rm -rf build"
    assert event.options == (
        PermissionOptionInfo(option_id="proceed_always", name="Always", kind="allow_always"),
        PermissionOptionInfo(option_id="x/1 é", name="Once", kind="allow_once"),
        PermissionOptionInfo(option_id="cancel", name="No", kind="reject_once"),
    )


def test_permission_request_without_title_uses_tool_call_id() -> None:
    event = map_permission_request("p", ToolCallUpdate(tool_call_id="tc-untitled"), [])
    assert event.title == "tc-untitled"
    assert event.options == ()
