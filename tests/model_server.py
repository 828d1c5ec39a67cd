"""A scripted OpenAI-compatible model server for driving real coding agents offline.

Stdlib only. It serves `POST /v1/chat/completions` (streaming SSE and plain JSON) and
`GET /v1/models` on 127.0.0.1, answers by the text of the last user message, and logs every
request so a test can assert what an agent sent.

Scripts (matched case-insensitively in the last user message's text, first match wins):
- a judging request (one asking to answer ``"RECOMMEND: N"`` over ``## Candidate <n>`` sections,
  as best-of-n's judge does) → ``RECOMMEND: <the last n>`` and a ``REASON:`` line;
- ``write file <path> with <content>`` → a tool call to the agent's own write tool, found by
  name among the request's ``tools`` and filled from that tool's JSON schema (a path property
  such as ``path``/``file_path``/``filePath``/``absolute_path`` and a content property). A
  relative path is made absolute against the agent's working directory when the request states
  one (system prompt or environment context), because some agents only accept absolute paths.
- ``slow`` (optionally ``slow <n>``) → streams ``n`` (default 200) text chunks 50 ms apart;
  the stream stops as soon as the client disconnects, and the log entry records that.
- ``say <word>`` → the reply is exactly ``<word>``.
- ``fail with <word>`` → HTTP 400 with the error message ``stub failure <word>`` (a 4xx, which
  agents do not retry).
- ``use tool <name> with <json object>`` → a tool call, with those arguments, to the offered tool
  named ``<name>`` or ending in it (agents prefix an MCP server's tools: opencode
  ``boocode_search_memory``, qwen-code ``mcp__boocode__search_memory``). An agent that defers
  its MCP tools (qwen-code names them in its system prompt and offers ``tool_search`` to load
  their schemas) first gets a ``tool_search`` call selecting the tool, then, once the tool is
  offered, the call itself.
- anything else → ``stub reply``.
A request whose last message is a tool result gets a short final text (``done: <tool result
excerpt>``); a request without tools (titles, routing, summaries) gets ``Stub title``.

Run in-process (``with ModelServer() as server: server.base_url``) or by hand:
``python tests/model_server.py --port 8080``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "stub-model"
TITLE_TEXT = "Stub title"
DEFAULT_TEXT = "stub reply"
SLOW_CHUNKS = 200
SLOW_DELAY_S = 0.05

_WRITE_RE = re.compile(r"write\s+file\s+(\S+)\s+with\s+(.+)", re.IGNORECASE | re.DOTALL)
_SLOW_RE = re.compile(r"\bslow(?:\s+(\d+))?\b", re.IGNORECASE)
_SAY_RE = re.compile(r"\bsay\s+(\S+)", re.IGNORECASE)
_FAIL_RE = re.compile(r"\bfail\s+with\s+(\S+)", re.IGNORECASE)
_USE_TOOL_RE = re.compile(r"use\s+tool\s+(\w+)\s+with\s+\{", re.IGNORECASE)
# A request to compare numbered candidates and answer "RECOMMEND: N" (best-of-n's judge): the stub
# recommends the last candidate listed, whatever else the prompt (which quotes the task) asks.
_JUDGE_RE = re.compile(r'"RECOMMEND: N"')
_CANDIDATE_RE = re.compile(r"^## Candidate (\d+)", re.MULTILINE)
# How agents state their working directory in the prompt they send (opencode's system prompt,
# qwen-code's environment context, and a few generic phrasings).
_CWD_RES = (
    re.compile(r"[Ww]orking directory:\s*(/\S+)"),
    re.compile(r"working in the directory:?\s*(/\S+)", re.IGNORECASE),
    re.compile(r"current working directory(?: is)?:?\s*(/\S+)", re.IGNORECASE),
    re.compile(r"<cwd>\s*(/[^<\s]+)\s*</cwd>"),
)
_WRITE_TOOL_NAMES = ("write", "write_file", "writefile", "create_file", "file_write", "str_replace_editor")
_PATH_PROPS = ("file_path", "filePath", "absolute_path", "path", "filename", "file")
_CONTENT_PROPS = ("content", "contents", "text", "file_text", "data")


@dataclass
class RequestRecord:
    """One request the server received and how it answered it."""

    method: str
    path: str
    body: dict[str, Any]
    kind: str = ""  # text | title | tool_call | final | slow | models | error
    stream: bool = False
    tool_name: str | None = None
    arguments: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.monotonic)
    chunks_sent: int = 0
    disconnected: bool = False
    finished: bool = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages")
        return msgs if isinstance(msgs, list) else []

    @property
    def tool_names(self) -> list[str]:
        return [name for tool in self.body.get("tools") or [] if (name := _tool_name(tool))]

    def all_text(self) -> str:
        """Every message's text joined, to check what history an agent sent."""
        return "\n".join(message_text(m) for m in self.messages)


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def _tool_name(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return str(fn["name"])
    name = tool.get("name")
    return name if isinstance(name, str) else None


def _tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function")
    params = (fn if isinstance(fn, dict) else tool).get("parameters")
    return params if isinstance(params, dict) else {}


def find_write_tool(tools: list[Any]) -> dict[str, Any] | None:
    """The agent's own file-writing tool: an exact well-known name first, then any 'write' tool."""
    by_name: dict[str, dict[str, Any]] = {name.lower(): t for t in tools if (name := _tool_name(t))}
    for name in _WRITE_TOOL_NAMES:
        if name in by_name:
            return by_name[name]
    for name, tool in by_name.items():
        if "write" in name and "todo" not in name:
            return tool
    return None


def find_cwd(messages: list[dict[str, Any]]) -> str | None:
    """The working directory an agent states in its system prompt or environment context."""
    for message in messages:
        text = message_text(message)
        for pattern in _CWD_RES:
            if m := pattern.search(text):
                # Paths may hold dots (".boocode/worktrees/..."); only trailing punctuation goes.
                return m.group(1).rstrip("/.,;:'\"`)") or "/"
    return None


def build_write_arguments(tool: dict[str, Any], path: str, content: str, cwd: str | None) -> dict[str, Any]:
    """Arguments for a write tool from its JSON schema; a relative path is made absolute on cwd."""
    props = _tool_schema(tool).get("properties") or {}
    if cwd and not path.startswith("/"):
        path = f"{cwd.rstrip('/')}/{path}"
    args: dict[str, Any] = {}
    path_key = next((k for k in _PATH_PROPS if k in props), None)
    content_key = next((k for k in _CONTENT_PROPS if k in props), None)
    args[path_key or "path"] = path
    args[content_key or "content"] = content
    return args


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


class _Plan:
    """What to answer one chat-completions request with."""

    def __init__(self, kind: str, text: str = "", tool: tuple[str, dict[str, Any]] | None = None) -> None:
        self.kind = kind
        self.text = text
        self.tool = tool


def plan_response(body: dict[str, Any]) -> _Plan:
    """Decide the answer from the request alone (pure, so it is easy to test)."""
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        if (plan := _use_tool(_last_user_text(messages), tools, messages)) is not None:
            return plan
        excerpt = message_text(last).strip().splitlines()[:1]
        return _Plan("final", f"done: {excerpt[0][:120] if excerpt else 'ok'}")
    if not tools:
        return _Plan("title", TITLE_TEXT)
    prompt = _last_user_text(messages)
    if _JUDGE_RE.search(prompt) and (listed := _CANDIDATE_RE.findall(prompt)):
        return _Plan("text", f"RECOMMEND: {listed[-1]}\nREASON: the stub judge takes the last candidate")
    if m := _WRITE_RE.search(prompt):
        tool = find_write_tool(tools)
        if tool is not None:
            path = m.group(1).strip().strip("'\"`")
            content = m.group(2).strip().splitlines()[0].strip().strip("'\"`")
            args = build_write_arguments(tool, path, content, find_cwd(messages))
            return _Plan("tool_call", tool=(_tool_name(tool) or "write", args))
        return _Plan("text", "no write tool offered")
    if m := _FAIL_RE.search(prompt):
        return _Plan("error", f"stub failure {m.group(1)}")
    if _USE_TOOL_RE.search(prompt):
        offered = " ".join(n for t in tools if (n := _tool_name(t)))
        return _use_tool(prompt, tools, messages) or _Plan(
            "text", f"the tool is not offered (offered: {offered})"
        )
    if m := _SLOW_RE.search(prompt):
        return _Plan("slow", str(int(m.group(1)) if m.group(1) else SLOW_CHUNKS))
    if m := _SAY_RE.search(prompt):
        return _Plan("text", m.group(1).strip("'\"`.,"))
    return _Plan("text", DEFAULT_TEXT)


def _use_tool(prompt: str, tools: list[Any], messages: list[dict[str, Any]]) -> _Plan | None:
    """The next step of a ``use tool`` prompt: the tool's call, or the ``tool_search`` call that
    loads a deferred tool; None once the tool has been called (or cannot be)."""
    m = _USE_TOOL_RE.search(prompt)
    if m is None:
        return None
    wanted = m.group(1)
    called = {
        str(call.get("function", {}).get("name"))
        for msg in messages
        if msg.get("role") == "assistant"
        for call in msg.get("tool_calls") or []
    }
    names = [n for t in tools if (n := _tool_name(t))]
    named = next((n for n in names if n == wanted or n.endswith(f"_{wanted}")), None)
    if named is not None:
        if named in called:
            return None
        arguments, _ = json.JSONDecoder().raw_decode(prompt, m.end() - 1)
        return _Plan("tool_call", tool=(named, arguments))
    deferred = re.search(rf"\b(\w+_{wanted})\b", "\n".join(message_text(msg) for msg in messages))
    if deferred is not None and "tool_search" in names and "tool_search" not in called:
        return _Plan("tool_call", tool=("tool_search", {"query": f"select:{deferred.group(1)}"}))
    return None


class ModelServer:
    """The server plus its request log; a context manager that runs it on a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, slow_delay_s: float = SLOW_DELAY_S) -> None:
        self.slow_delay_s = slow_delay_s
        self.requests: list[RequestRecord] = []
        self._cond = threading.Condition()
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request log -----------------------------------------------------------------------

    def completions(self) -> list[RequestRecord]:
        with self._cond:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def mark(self) -> int:
        """A position in the log; `since(mark)` returns what came after it."""
        with self._cond:
            return len(self.requests)

    def since(self, mark: int) -> list[RequestRecord]:
        with self._cond:
            return list(self.requests[mark:])

    def wait_for(self, predicate: Callable[[RequestRecord], bool], timeout: float) -> RequestRecord:
        """Block (bounded) until a logged request satisfies predicate; for use off the event loop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for record in self.requests:
                    if predicate(record):
                        return record
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no model request matched within {timeout}s")
                self._cond.wait(left)

    def _log(self, record: RequestRecord) -> None:
        with self._cond:
            self.requests.append(record)
            self._cond.notify_all()

    def _changed(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _chunk(cid: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


_USAGE = {
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "total_tokens": 15,
    # What an OpenAI-compatible provider says it read from its prompt cache (a share of prompt_tokens).
    "prompt_tokens_details": {"cached_tokens": 4},
}


def _stream_events(plan: _Plan) -> Iterator[dict[str, Any]]:
    """The SSE chunks for a plan (except `slow`, which is paced by the handler)."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    if plan.tool is not None:
        name, args = plan.tool
        encoded = json.dumps(args)
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        yield _chunk(cid, {"role": "assistant", "content": None})
        yield _chunk(
            cid,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            },
        )
        # Arguments arrive in pieces, as real providers send them.
        half = len(encoded) // 2
        for piece in (encoded[:half], encoded[half:]):
            yield _chunk(cid, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield {**_chunk(cid, {}, "tool_calls"), "usage": _USAGE}
        return
    yield _chunk(cid, {"role": "assistant", "content": ""})
    words = plan.text.split(" ")
    for i, word in enumerate(words):
        yield _chunk(cid, {"content": word if i == 0 else " " + word})
    yield {**_chunk(cid, {}, "stop"), "usage": _USAGE}


def _completion(plan: _Plan) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.text or None}
    finish = "stop"
    if plan.tool is not None:
        name, args = plan.tool
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ]
        finish = "tool_calls"
    if plan.kind == "slow":
        message["content"] = " ".join(f"chunk{i}" for i in range(int(plan.text)))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _USAGE,
    }


def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            if server is _CLI_SERVER:
                sys.stderr.write("model-server: " + (format % args) + "\n")

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            record = RequestRecord("GET", self.path, {}, kind="models")
            server._log(record)
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(
                    200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "stub"}]}
                )
            else:
                record.kind = "error"
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            record.finished = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            record = RequestRecord("POST", self.path, body if isinstance(body, dict) else {})
            if not self.path.rstrip("/").endswith("/chat/completions"):
                record.kind = "error"
                server._log(record)
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            plan = plan_response(record.body)
            record.kind = plan.kind
            record.stream = bool(record.body.get("stream"))
            if plan.tool is not None:
                record.tool_name, record.arguments = plan.tool
            server._log(record)
            if plan.kind == "error":
                self._send_json(400, {"error": {"message": plan.text, "type": "invalid_request_error"}})
                record.finished = True
                server._changed()
                return
            if not record.stream:
                self._send_json(200, _completion(plan))
                record.finished = True
                server._changed()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            # No length and no chunked coding: the body ends when the connection closes.
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                if plan.kind == "slow":
                    self._stream_slow(record, int(plan.text))
                else:
                    for event in _stream_events(plan):
                        self._event(record, event)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                record.finished = True
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                record.disconnected = True
            server._changed()

        def _event(self, record: RequestRecord, event: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.flush()
            record.chunks_sent += 1

        def _stream_slow(self, record: RequestRecord, count: int) -> None:
            cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            self._event(record, _chunk(cid, {"role": "assistant", "content": ""}))
            for i in range(count):
                self._event(record, _chunk(cid, {"content": f"chunk{i} "}))
                server._changed()
                time.sleep(server.slow_delay_s)
            self._event(record, {**_chunk(cid, {}, "stop"), "usage": _USAGE})

    return Handler


_CLI_SERVER: ModelServer | None = None


def main(argv: list[str] | None = None) -> None:
    global _CLI_SERVER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--slow-delay", type=float, default=SLOW_DELAY_S, help="seconds between slow chunks")
    ns = parser.parse_args(argv)
    server = ModelServer(port=ns.port, slow_delay_s=ns.slow_delay)
    _CLI_SERVER = server
    print(f"model server at {server.base_url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
