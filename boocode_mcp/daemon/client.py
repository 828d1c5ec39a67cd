"""The CLI's way to the engine: one blocking client, two transports.

`SocketApi` sends the daemon API's request lines over the workspace's daemon socket (standard
library only, so a scripted `boocode run` costs little more than a Python start and the turn).
`InProcessApi` (`--no-daemon`) opens the engine in this process, on an event loop in a helper
thread, and calls the very same `dispatch`. Commands are written once, against `Api`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from boocode_mcp.daemon.wire import Connection, DaemonError, connect


class ApiFailure(Exception):
    """An operation the engine refused; `kind` is the error type's name, the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Api(Protocol):
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The operation's result object (the MCP tool's structured content); raises ApiFailure."""
        ...

    def call_text(self, method: str, **params: Any) -> tuple[dict[str, Any], str]:
        """The result and the text a host's model would read for it."""
        ...

    def close(self) -> None: ...


def _unwrap(method: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if "error" in body:
        error = body["error"] or {}
        raise ApiFailure(str(error.get("type") or "Error"), str(error.get("message") or f"{method} failed"))
    result: dict[str, Any] = body.get("result") or {}
    return result, str(body.get("text") or "")


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    # None means "not given": the operation's own default applies.
    return {k: v for k, v in params.items() if v is not None}


class SocketApi:
    """The API over the workspace daemon's socket (started when none runs)."""

    def __init__(self, workspace: Path, *, session: str | None = None) -> None:
        options = {"session": session} if session else None
        self._conn: Connection = connect(workspace, "api", options)
        self._next_id = 0

    @property
    def daemon_pid(self) -> int:
        return self._conn.daemon_pid

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call_text(method, **params)[0]

    def call_text(self, method: str, **params: Any) -> tuple[dict[str, Any], str]:
        self._next_id += 1
        request_id = self._next_id
        try:
            self._conn.send_line({"id": request_id, "method": method, "params": _clean(params)})
            while True:
                line = self._conn.read_line()
                if line is None:
                    raise DaemonError(
                        f"the BooCode daemon closed the connection during {method}; "
                        f"see {self._conn.paths.log}"
                    )
                body = json.loads(line)
                if body.get("id") == request_id:
                    return _unwrap(method, body)
        except OSError as e:
            raise DaemonError(f"lost the BooCode daemon during {method}: {e}") from e

    def close(self) -> None:
        self._conn.close()


class InProcessApi:
    """The API with the engine in this process (`--no-daemon`): for sandboxes and tests."""

    def __init__(self, workspace: Path, *, session: str | None = None) -> None:
        from anyio.from_thread import start_blocking_portal

        from boocode_mcp.agent_mcp import open_engine
        from boocode_mcp.daemon.api import connection_caller

        self._portal_cm = start_blocking_portal(backend="asyncio")
        self._portal = self._portal_cm.__enter__()
        try:
            self._engine_cm = self._portal.wrap_async_context_manager(open_engine(workspace))
            engine = self._engine_cm.__enter__()
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        self._caller = connection_caller(engine, session)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call_text(method, **params)[0]

    def call_text(self, method: str, **params: Any) -> tuple[dict[str, Any], str]:
        from boocode_mcp.daemon.api import dispatch

        body = self._portal.call(dispatch, self._caller, method, _clean(params))
        return _unwrap(method, body)

    def close(self) -> None:
        try:
            self._engine_cm.__exit__(None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)


def open_api(workspace: Path, *, no_daemon: bool, session: str | None = None) -> Api:
    if no_daemon:
        return InProcessApi(workspace, session=session)
    return SocketApi(workspace, session=session)
