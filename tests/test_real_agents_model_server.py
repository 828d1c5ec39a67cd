"""The scripted model server the real-agent tests stand on (no agents needed, runs everywhere)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.model_server import DEFAULT_TEXT, TITLE_TEXT, ModelServer

WRITE_TOOL = {
    "type": "function",
    "function": {
        "name": "write",
        "parameters": {
            "type": "object",
            "properties": {"filePath": {"type": "string"}, "content": {"type": "string"}},
            "required": ["filePath", "content"],
        },
    },
}
OTHER_TOOL = {"type": "function", "function": {"name": "todowrite", "parameters": {"type": "object"}}}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer(slow_delay_s=0.01) as s:
        yield s


def _post(server: ModelServer, body: dict[str, Any]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    return conn.getresponse()


def _sse(resp: http.client.HTTPResponse) -> list[Any]:
    events: list[Any] = []
    for line in resp.read().decode().splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _streamed_text(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if e != "[DONE]" and e["choices"]
    )


def test_streamed_text_reply_ends_with_done(server: ModelServer) -> None:
    body = {"stream": True, "tools": [WRITE_TOOL], "messages": [{"role": "user", "content": "say banana"}]}
    events = _sse(_post(server, body))
    assert events[-1] == "[DONE]"
    assert _streamed_text(events) == "banana"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    [record] = server.completions()
    assert record.kind == "text" and record.stream and record.finished


def test_write_prompt_calls_the_agents_own_write_tool_with_absolute_path(server: ModelServer) -> None:
    messages = [
        {"role": "system", "content": "Env.\nWorking directory: /w/.boocode/worktrees/c1\nPlatform: linux"},
        {"role": "user", "content": [{"type": "text", "text": "write file notes/a.txt with hello there"}]},
    ]
    events = _sse(_post(server, {"stream": True, "tools": [OTHER_TOOL, WRITE_TOOL], "messages": messages}))
    deltas = [e["choices"][0]["delta"] for e in events if e != "[DONE]"]
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "write" and calls[0]["id"].startswith("call_")
    arguments = json.loads("".join(c["function"].get("arguments") or "" for c in calls))
    assert arguments == {"filePath": "/w/.boocode/worktrees/c1/notes/a.txt", "content": "hello there"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert server.completions()[0].tool_name == "write"


def test_tool_result_gets_final_text_and_no_tools_gets_title(server: ModelServer) -> None:
    after_tool = [
        {"role": "user", "content": "write file a with b"},
        {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."},
    ]
    resp = json.loads(_post(server, {"tools": [WRITE_TOOL], "messages": after_tool}).read())
    assert resp["choices"][0]["message"]["content"] == "done: Wrote file successfully."
    title = json.loads(_post(server, {"messages": [{"role": "user", "content": "slow"}]}).read())
    assert title["choices"][0]["message"]["content"] == TITLE_TEXT
    plain = json.loads(
        _post(server, {"tools": [WRITE_TOOL], "messages": [{"role": "user", "content": "hi"}]}).read()
    )
    assert plain["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert [r.kind for r in server.completions()] == ["final", "title", "text"]


def test_models_endpoint(server: ModelServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/v1/models")
    assert [m["id"] for m in json.loads(conn.getresponse().read())["data"]] == ["stub-model"]


def test_slow_stream_stops_when_the_client_disconnects(server: ModelServer) -> None:
    body = {"stream": True, "tools": [WRITE_TOOL], "messages": [{"role": "user", "content": "slow 500"}]}
    resp = _post(server, body)
    assert resp.readline().startswith(b"data: ")
    resp.close()  # the client goes away mid-stream, as an agent does on cancel
    record = server.wait_for(lambda r: r.kind == "slow" and (r.disconnected or r.finished), 10)
    assert record.disconnected and not record.finished
    assert record.chunks_sent < 500
