"""The activity digest: a pure fold of a run's event records."""

from __future__ import annotations

from boocode_mcp.agents.events import (
    AgentEvent,
    PlanEvent,
    PlanItem,
    TextEvent,
    ToolCallEvent,
    ToolUpdateEvent,
    UsageEvent,
)
from boocode_mcp.subagents.digest import (
    MAX_FILES,
    MAX_TOOL_CALLS,
    RECENT_TEXT_CHARS,
    SESSION_KIND,
    Digest,
    event_record,
)


def fold(*events: AgentEvent, roots: tuple[str, ...] = ("/repo/.boocode/worktrees/c", "/repo")) -> Digest:
    d = Digest(roots=roots)
    for i, ev in enumerate(events):
        kind, payload = event_record(ev)
        d.apply(kind, payload, at=float(i))
    return d


def test_text_accumulates_and_the_recent_text_is_the_message_since_the_last_tool_call() -> None:
    d = fold(
        TextEvent("Let me look. "),
        ToolCallEvent("t1", "Read a.py", tool_kind="read", status="pending"),
        TextEvent("Found "),
        TextEvent("it."),
    )
    assert d.final_message == "Let me look. Found it."
    a = d.activity()
    assert a.recent_text == "Found it."
    assert a.event_count == 4 and a.last_event_at == 3.0


def test_recent_text_is_bounded() -> None:
    d = fold(TextEvent("x" * (RECENT_TEXT_CHARS * 3) + "END"))
    recent = d.activity().recent_text
    assert len(recent) == RECENT_TEXT_CHARS and recent.endswith("END")


def test_tool_calls_keep_their_latest_status_and_only_the_latest_n() -> None:
    events: list[AgentEvent] = [
        ToolCallEvent(f"t{i}", f"Tool {i}", status="pending") for i in range(MAX_TOOL_CALLS + 3)
    ]
    events.append(ToolUpdateEvent(f"t{MAX_TOOL_CALLS + 2}", status="completed", title="Tool renamed"))
    events.append(ToolUpdateEvent("t0", status="failed"))  # evicted long ago, and carries no title
    a = fold(*events).activity()
    assert len(a.tool_calls) == MAX_TOOL_CALLS
    assert a.tool_calls[0].tool_call_id == "t3"
    last = a.tool_calls[-1]
    assert (last.title, last.status) == ("Tool renamed", "completed")


def test_files_touched_are_workspace_relative_and_bounded() -> None:
    a = fold(
        ToolCallEvent("t1", "Edit", locations=("/repo/.boocode/worktrees/c/src/app.py",)),
        ToolUpdateEvent("t1", locations=("/repo/README.md", "relative/x.txt", "/elsewhere/y")),
        ToolCallEvent("t2", "Edit again", locations=("/repo/.boocode/worktrees/c/src/app.py",)),
    ).activity()
    assert a.files_touched == ["README.md", "relative/x.txt", "/elsewhere/y", "src/app.py"]
    many = fold(*[ToolCallEvent(f"t{i}", "E", locations=(f"/repo/f{i}",)) for i in range(MAX_FILES + 5)])
    assert len(many.activity().files_touched) == MAX_FILES


def test_plan_is_replaced_by_each_update() -> None:
    a = fold(
        PlanEvent((PlanItem("one", "pending"),)),
        PlanEvent((PlanItem("one", "completed", "high"), PlanItem("two", "in_progress"))),
    ).activity()
    assert [(p.content, p.status, p.priority) for p in a.plan] == [
        ("one", "completed", "high"),
        ("two", "in_progress", None),
    ]


def test_usage_adds_increments_and_takes_totals() -> None:
    inc = fold(UsageEvent(input_tokens=3, output_tokens=1), UsageEvent(input_tokens=2, cost=0.5))
    assert (inc.usage["input_tokens"], inc.usage["output_tokens"], inc.usage["cost"]) == (5, 1, 0.5)
    tot = fold(UsageEvent(input_tokens=3, cumulative=True), UsageEvent(input_tokens=7, cumulative=True))
    assert tot.usage["input_tokens"] == 7
    window = fold(UsageEvent(context_used=10, context_size=100), UsageEvent(context_used=30))
    assert (window.usage["context_used"], window.usage["context_size"]) == (30, 100), "a snapshot, not a sum"


def test_session_record_sets_the_note_without_counting_as_activity() -> None:
    d = Digest()
    d.apply(SESSION_KIND, {"origin": "fresh_after_restart", "note": "context lost"})
    d.apply("text", {"text": "hi"})
    assert d.session_note == "context lost"
    assert d.activity().event_count == 1


def test_event_records_are_json_ready_and_drop_raw() -> None:
    class Model:
        def model_dump(self, **kw: object) -> dict[str, object]:
            return {"k": (1, 2)}

    kind, payload = event_record(ToolCallEvent("t", "T", raw_input=Model(), raw=object()))
    assert kind == "tool_call"
    assert "raw" not in payload and "kind" not in payload
    assert payload["raw_input"] == {"k": [1, 2]}
    # Rebuilding from stored records gives the same digest as the live fold.
    live = fold(TextEvent("a"), ToolCallEvent("t", "T"))
    rebuilt = Digest(roots=live.roots)
    replay: tuple[AgentEvent, ...] = (TextEvent("a"), ToolCallEvent("t", "T"))
    for i, ev in enumerate(replay):
        rebuilt.apply(*event_record(ev), at=float(i))
    assert rebuilt.activity() == live.activity()
