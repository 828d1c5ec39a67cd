"""The stdio front end of BooCode's MCP server for agents that take only stdio MCP servers.

An agent session is given `boocode-mcp --workspace W` with two variables in its environment: the
URL of the loopback endpoint BooCode serves for agents, and the session's credential. This relays
the agent's newline-delimited JSON-RPC from stdin to that endpoint (one HTTP POST per message,
the credential as a bearer token) and the answers to stdout, so both transports reach the same
server, checks and attribution.

Standard library only: it starts in the time a Python process takes to start. Requests are relayed
concurrently (a tool call that waits does not hold up the next one); `initialize` and
notifications in order, since what follows depends on them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

# The environment a stdio server entry sets for this front end (boocode_mcp.delegation).
ENV_URL = "BOOCODE_AGENT_URL"
ENV_TOKEN = "BOOCODE_AGENT_TOKEN"
# Long enough for the slowest call an agent may make (subagent_status waits up to 30 s).
REQUEST_TIMEOUT_S = 120.0
SERVER_ERROR = -32000


class Bridge:
    """Relays one agent's MCP session to the endpoint."""

    def __init__(self, url: str, token: str, out: BinaryIO) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"{ENV_URL} must be an http:// URL, got {url!r}")
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._path = parsed.path or "/"
        self._token = token
        self._out = out
        self._out_lock = threading.Lock()
        self._session_id: str | None = None
        self._protocol_version: str | None = None

    def write(self, message: Any) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._out_lock:
            self._out.write(data)
            self._out.flush()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {self._token}",
        }
        if self._session_id:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version:
            headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    def relay(self, message: dict[str, Any]) -> None:
        """POST one message; write every message the answer carries (none for a notification)."""
        request_id = message.get("id") if "method" in message else None
        conn = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("POST", self._path, body=json.dumps(message).encode(), headers=self._headers())
            response = conn.getresponse()
            body = response.read()
            if response.status >= 400:
                self._fail(request_id, f"HTTP {response.status}: {body.decode(errors='replace')[:300]}")
                return
            session = response.getheader("mcp-session-id")
            if session:
                self._session_id = session
            for answer in _messages(response.getheader("content-type") or "", body):
                if message.get("method") == "initialize" and isinstance(answer.get("result"), dict):
                    self._protocol_version = answer["result"].get("protocolVersion") or None
                self.write(answer)
        except (OSError, http.client.HTTPException) as e:
            self._fail(request_id, f"cannot reach BooCode at {self._host}:{self._port} ({e})")
        finally:
            conn.close()

    def _fail(self, request_id: Any, why: str) -> None:
        if request_id is None:
            sys.stderr.write(f"boocode-mcp: {why}\n")
            sys.stderr.flush()
            return
        self.write({"jsonrpc": "2.0", "id": request_id, "error": {"code": SERVER_ERROR, "message": why}})

    def serve(self, stdin: BinaryIO) -> None:
        """Relay until stdin closes, then wait for the answers still owed."""
        threads: list[threading.Thread] = []
        for line in iter(stdin.readline, b""):
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.write(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
                )
                continue
            if not isinstance(message, dict):
                self.write(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
                )
                continue
            if "id" in message and "method" in message and message["method"] != "initialize":
                thread = threading.Thread(target=self.relay, args=(message,), daemon=True)
                thread.start()
                threads = [t for t in threads if t.is_alive()] + [thread]
            else:
                self.relay(message)
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S)


def _messages(content_type: str, body: bytes) -> Iterator[dict[str, Any]]:
    """The JSON-RPC messages of a response: a JSON body, or the `data:` of each SSE event."""
    if not body.strip():
        return
    if content_type.startswith("text/event-stream"):
        for event in body.decode().replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].lstrip() for line in event.split("\n") if line.startswith("data:"))
            if data.strip():
                with contextlib.suppress(ValueError):
                    yield json.loads(data)
        return
    parsed = json.loads(body)
    yield from (parsed if isinstance(parsed, list) else [parsed])


def main() -> int:
    url, token = os.environ.get(ENV_URL), os.environ.get(ENV_TOKEN)
    if not url or not token:
        sys.stderr.write(f"boocode-mcp: the agent bridge needs {ENV_URL} and {ENV_TOKEN}\n")
        return 2
    try:
        bridge = Bridge(url, token, sys.stdout.buffer)
    except ValueError as e:
        sys.stderr.write(f"boocode-mcp: {e}\n")
        return 2
    bridge.serve(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
