"""Command-line agents' stdout turned into AgentEvents: the text parser and the JSON-lines formats.

The JSON lines are what opencode 1.18 (`run --format json`) and qwen-code 0.15 (`-o stream-json`)
printed against the scripted model server, trimmed of fields the mapping does not read.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from boocode_mcp.agents.cli_streams import (
    PART_SEPARATOR,
    JsonlParser,
    Parsed,
    TextParser,
    parser_for,
    tool_kind,
)
from boocode_mcp.agents.events import ReasoningEvent, TextEvent, ToolCallEvent, ToolUpdateEvent, UsageEvent

OC_SID = "ses_dd2d43a9cffeyqv4obdPVLok3F"
OPENCODE_WRITE = [
    {
        "type": "step_start",
        "sessionID": OC_SID,
        "part": {"id": "prt_1", "sessionID": OC_SID, "type": "step-start"},
    },
    {
        "type": "tool_use",
        "sessionID": OC_SID,
        "part": {
            "type": "tool",
            "tool": "write",
            "callID": "call_6b2c2a18d287",
            "state": {
                "status": "completed",
                "input": {"filePath": "/tmp/wt/notes/x.txt", "content": "hi-content"},
                "output": "Wrote file successfully.",
                "metadata": {"filepath": "/tmp/wt/notes/x.txt", "exists": False},
                "title": "notes/x.txt",
            },
            "id": "prt_2",
        },
    },
    {
        "type": "step_finish",
        "sessionID": OC_SID,
        "part": {"id": "prt_3", "type": "step-finish", "tokens": {"input": 10, "output": 5}, "cost": 0.25},
    },
    {
        "type": "text",
        "sessionID": OC_SID,
        "part": {"id": "prt_4", "type": "text", "text": "done: Wrote file successfully."},
    },
    {
        "type": "step_finish",
        "sessionID": OC_SID,
        "part": {"id": "prt_5", "type": "step-finish", "tokens": {"input": 10, "output": 5}, "cost": 0.25},
    },
]
QW_SID = "b9e52452-5307-4ab4-ba24-80bebf6c2e22"
QWEN_WRITE = [
    {
        "type": "system",
        "subtype": "init",
        "session_id": QW_SID,
        "tools": ["write_file"],
        "model": "stub-model",
    },
    {
        "type": "assistant",
        "session_id": QW_SID,
        "message": {
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_3921e82bfb6b",
                    "name": "write_file",
                    "input": {"file_path": "/tmp/wt/notes/q.txt", "content": "q-content"},
                }
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    },
    {
        "type": "user",
        "session_id": QW_SID,
        "message": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_3921e82bfb6b",
                    "is_error": False,
                    "content": "Successfully created and wrote to new file: /tmp/wt/notes/q.txt.",
                }
            ],
        },
    },
    {
        "type": "assistant",
        "session_id": QW_SID,
        "message": {
            "content": [{"type": "text", "text": "done: Successfully created."}],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
    },
    {
        "type": "result",
        "subtype": "success",
        "session_id": QW_SID,
        "is_error": False,
        "result": "done: Successfully created.",
        "usage": {"input_tokens": 20, "output_tokens": 10},
    },
]


def feed_lines(lines: list[dict[str, Any]]) -> Parsed:
    parser = JsonlParser()
    out = Parsed()
    for line in lines:
        out.merge(parser.feed((json.dumps(line) + "\n").encode()))
    out.merge(parser.finish())
    return out


def test_opencode_write_becomes_tool_call_update_text_and_usage() -> None:
    out = feed_lines(OPENCODE_WRITE)
    assert out.session_id == OC_SID and out.error is None and out.noise == []
    call, update, usage1, text, usage2 = out.events
    assert isinstance(call, ToolCallEvent)
    assert call.tool_call_id == "call_6b2c2a18d287" and call.title == "write notes/x.txt"
    assert call.tool_kind == "edit" and call.status == "in_progress"
    assert call.locations == ("/tmp/wt/notes/x.txt",)
    assert call.raw_input == {"filePath": "/tmp/wt/notes/x.txt", "content": "hi-content"}
    assert isinstance(update, ToolUpdateEvent)
    assert update.tool_call_id == call.tool_call_id and update.status == "completed"
    assert update.content_text == "Wrote file successfully."
    # Each step's usage is that step's: the digest adds them up.
    assert usage1 == usage2 == UsageEvent(input_tokens=10, output_tokens=5, cost=0.25, cumulative=False)
    assert text == TextEvent(text="done: Wrote file successfully.")


def test_opencode_tool_seen_running_then_failed_is_one_call_and_its_updates() -> None:
    def tool(status: str, **state: Any) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "sessionID": OC_SID,
            "part": {
                "tool": "bash",
                "callID": "c1",
                "state": {"status": status, "input": {"command": "ls"}, **state},
            },
        }

    out = feed_lines([tool("running"), tool("error", error="no such file")])
    assert [e.kind for e in out.events] == ["tool_call", "tool_update"]
    call, update = out.events
    assert isinstance(call, ToolCallEvent) and call.status == "in_progress" and call.title == "bash ls"
    assert call.tool_kind == "execute"
    assert isinstance(update, ToolUpdateEvent) and update.status == "failed"
    assert update.content_text == "no such file"


def test_opencode_text_parts_are_paragraphs_and_a_grown_part_adds_only_its_growth() -> None:
    def text(part_id: str, body: str) -> dict[str, Any]:
        return {"type": "text", "sessionID": OC_SID, "part": {"id": part_id, "text": body}}

    reasoning = {"type": "reasoning", "sessionID": OC_SID, "part": {"id": "r1", "text": "thinking"}}
    out = feed_lines([text("a", "Hello"), text("a", "Hello world"), reasoning, text("b", "Second")])
    assert out.events == [
        TextEvent(text="Hello"),
        TextEvent(text=" world"),
        ReasoningEvent(text="thinking"),
        TextEvent(text=PART_SEPARATOR + "Second"),
    ]


def test_opencode_error_line_is_the_turns_error() -> None:
    # opencode 1.18's output for a model request the server refused (HTTP 400), stderr empty.
    line = {
        "type": "error",
        "sessionID": OC_SID,
        "error": {"name": "APIError", "data": {"message": "stub failure boom", "statusCode": 400}},
    }
    out = feed_lines([line])
    assert out.error == "APIError: stub failure boom" and out.events == []


def test_qwen_stream_json_write_turn() -> None:
    out = feed_lines(QWEN_WRITE)
    assert out.session_id == QW_SID and out.error is None
    call, update, text, usage = out.events
    assert isinstance(call, ToolCallEvent)
    assert call.tool_call_id == "call_3921e82bfb6b" and call.title == "write_file /tmp/wt/notes/q.txt"
    assert call.tool_kind == "edit" and call.locations == ("/tmp/wt/notes/q.txt",)
    assert isinstance(update, ToolUpdateEvent) and update.tool_call_id == call.tool_call_id
    assert update.status == "completed" and update.content_text.startswith("Successfully created")
    assert text == TextEvent(text="done: Successfully created.")
    # The result's usage is the turn's total (the assistant messages' own usage is not added).
    assert usage == UsageEvent(input_tokens=20, output_tokens=10, cumulative=True)


def test_stream_json_error_result_and_failed_tool() -> None:
    # qwen-code 0.15 with no API key: exit code 1, the reason only in the stream.
    failed = {
        "type": "result",
        "subtype": "error_during_execution",
        "session_id": QW_SID,
        "is_error": True,
        "error": {"message": "Missing API key for OpenAI-compatible auth."},
    }
    tool_error = {
        "type": "user",
        "session_id": QW_SID,
        "message": {
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "is_error": True,
                    "content": [{"type": "text", "text": "denied"}],
                }
            ]
        },
    }
    out = feed_lines([tool_error, failed])
    assert out.error == "Missing API key for OpenAI-compatible auth."
    assert out.events[0] == ToolUpdateEvent(
        tool_call_id="t1",
        status="failed",
        content_text="denied",
        raw_output=[{"type": "text", "text": "denied"}],
    )


def test_claude_cost_and_thinking() -> None:
    lines = [
        {"type": "system", "subtype": "init", "session_id": "c1"},
        {
            "type": "assistant",
            "session_id": "c1",
            "message": {
                "content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "One"}]
            },
        },
        {"type": "assistant", "session_id": "c1", "message": {"content": [{"type": "text", "text": "Two"}]}},
        {"type": "result", "session_id": "c1", "is_error": False, "total_cost_usd": 0.0123, "usage": {}},
    ]
    out = feed_lines(lines)
    assert out.events == [
        ReasoningEvent(text="hmm"),
        TextEvent(text="One"),
        TextEvent(text=PART_SEPARATOR + "Two"),
        UsageEvent(cost=0.0123, cumulative=True),
    ]


def test_lines_split_anywhere_and_noise_is_set_aside() -> None:
    blob = "warming up\n" + "\n".join(json.dumps(line) for line in OPENCODE_WRITE) + "\n[1, 2]"
    parser = JsonlParser()
    out = Parsed()
    data = blob.encode()
    for i in range(0, len(data), 7):  # chunks that cut lines (and JSON) anywhere
        out.merge(parser.feed(data[i : i + 7]))
    out.merge(parser.finish())
    assert out.noise == ["warming up", "[1, 2]"]
    assert [e.kind for e in out.events] == ["tool_call", "tool_update", "usage", "text", "usage"]


def test_long_titles_keep_a_paths_end_and_a_commands_start() -> None:
    path = "/very/long" * 20 + "/file.py"
    command = "pytest " + "-k something " * 20
    lines = [
        {
            "type": "assistant",
            "session_id": "s",
            "message": {
                "content": [
                    {"type": "tool_use", "id": "1", "name": "Write", "input": {"file_path": path}},
                    {"type": "tool_use", "id": "2", "name": "Bash", "input": {"command": command}},
                ]
            },
        },
    ]
    write, bash = feed_lines(lines).events
    assert isinstance(write, ToolCallEvent) and isinstance(bash, ToolCallEvent)
    assert write.title.startswith("Write …") and write.title.endswith("/very/long/file.py")
    assert bash.title.startswith("Bash pytest -k something") and bash.title.endswith("…")
    assert len(write.title) - len("Write ") == len(bash.title) - len("Bash ") == 80


def test_unknown_json_format_is_noise_not_output() -> None:
    out = feed_lines([{"event": "hello", "text": "not a known format"}])
    assert out.events == [] and len(out.noise) == 1


def test_text_parser_keeps_multibyte_characters_cut_between_chunks() -> None:
    parser = TextParser()
    data = "héllo → wörld\n".encode()
    pieces = [parser.feed(data[i : i + 1]) for i in range(len(data))] + [parser.finish()]
    text = "".join(e.text for p in pieces for e in p.events if isinstance(e, TextEvent))
    assert text == "héllo → wörld\n"


def test_parser_for_picks_by_spec() -> None:
    assert isinstance(parser_for("text"), TextParser)
    assert isinstance(parser_for("jsonl"), JsonlParser)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("write", "edit"),
        ("Edit", "edit"),
        ("write_file", "edit"),
        ("read_file", "read"),
        ("Bash", "execute"),
        ("run_shell_command", "execute"),
        ("grep_search", "search"),
        ("glob", "search"),
        ("webfetch", "fetch"),
        ("todo_write", "think"),
        ("frobnicate", "other"),
    ],
)
def test_tool_kind_from_name(name: str, kind: str) -> None:
    assert tool_kind(name) == kind
