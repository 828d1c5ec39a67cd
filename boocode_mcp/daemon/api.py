"""The daemon's API: the operations of `boocode_mcp.ops` by name, one JSON line per request.

    request  {"id": 1, "method": "spawn_subagent", "params": {"prompt": "…"}}
    response {"id": 1, "result": {…the MCP tool's structured content…}, "text": "…"}
           | {"id": 1, "error": {"type": "NotFoundError", "message": "no subagent …; …"}}

The CLI speaks it over the daemon socket, or calls `dispatch` directly in its own process with
`--no-daemon`: one code path, two transports. Requests on one connection run concurrently (a
`watch` long-poll does not hold up a `cancel_subagent`), so responses may come out of order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from pydantic import ConfigDict, ValidationError, validate_call

from boocode_mcp.errors import BooCodeError, InvalidRequestError
from boocode_mcp.ops import Caller, Outcome, listing, patches, subagents, usage, workflows, workspace

logger = logging.getLogger(__name__)

Operation = Callable[..., Awaitable[Outcome[Any]]]

_VALIDATE = ConfigDict(arbitrary_types_allowed=True)
# Named as the MCP tools are where one exists, so `--json` output and tool output share names too.
_PLAIN: dict[str, Operation] = {
    "spawn_subagent": subagents.spawn,
    "subagent_status": subagents.status,
    "cancel_subagent": subagents.cancel,
    "retry_subagent": subagents.retry,
    "inbox": subagents.inbox,
    "respond_permission": subagents.respond_permission,
    "list_patches": patches.list_patches,
    "get_patch": patches.get_patch,
    "apply_pending": patches.apply_pending,
    "discard_patch": patches.discard,
    "search_memory": workspace.search_memory,
    "run_command": workspace.run_command,
    "traces": workspace.traces,
    "list_agents": workspace.agents,
    "resolve_id": workspace.resolve_id,
    "watch": workspace.watch,
    "list_runs": listing.list_runs,
    "usage_stats": usage.usage_stats,
    "list_workflows": workflows.list_workflows,
    "run_workflow": workflows.run_workflow,
    "workflow_status": workflows.workflow_status,
    "cancel_workflow": workflows.cancel_workflow,
    "list_workflow_runs": workflows.list_workflow_runs,
}
# Arguments arrive as JSON: each operation's signature validates them (and names what is wrong).
OPERATIONS: dict[str, Operation] = {name: validate_call(config=_VALIDATE)(fn) for name, fn in _PLAIN.items()}


class ApiError(Exception):
    """An operation's refusal as the API carries it: the error's type name and its message."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


async def dispatch(caller: Caller, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one operation; the response body without its id. Never raises for a bad request."""
    op = OPERATIONS.get(method)
    if op is None:
        known = ", ".join(sorted(OPERATIONS))
        return _error("InvalidRequestError", f"unknown method {method!r}; known: {known}")
    try:
        outcome = await op(caller, **params)
    except BooCodeError as e:
        return _error(type(e).__name__, str(e))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        return _error("InvalidRequestError", f"{method}: invalid arguments: {problems}")
    except TypeError as e:
        return _error("InvalidRequestError", f"{method}: {e}")
    except Exception as e:
        logger.exception("%s failed unexpectedly", method)
        return _error(
            "InternalError",
            f"{method} failed with an internal error ({type(e).__name__}: {e}); "
            "the daemon log has the details",
        )
    return {"result": outcome.result.model_dump(mode="json"), "text": outcome.text}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def connection_caller(caller_engine: Any, session: str | None) -> Caller:
    """A caller whose own session is `session` (it must exist) or, without one, a new session
    created on first use, shared by every request of the connection."""
    lock = anyio.Lock()
    own: list[str] = []

    async def own_session() -> str:
        async with lock:
            if not own:
                if session is not None:
                    own.append(await caller_engine.ensure_session(session, create=False))
                else:
                    own.append(await caller_engine.ensure_session(None))
            return own[0]

    return Caller(caller_engine, own_session)


async def serve_lines(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handle: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]],
) -> None:
    """Serve request lines until the peer closes, each request in its own task; requests already
    read are answered before the connection ends."""
    write_lock = anyio.Lock()

    async def answer(request_id: Any, body: dict[str, Any]) -> None:
        data = json.dumps({"id": request_id, **body}, ensure_ascii=False).encode() + b"\n"
        async with write_lock:
            writer.write(data)
            await writer.drain()

    async def one(raw: bytes) -> None:
        try:
            request = json.loads(raw)
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise InvalidRequestError("a request is a JSON object with a method")
            params = request.get("params") or {}
            if not isinstance(params, dict):
                raise InvalidRequestError("params must be a JSON object")
        except (ValueError, InvalidRequestError) as e:
            await answer(None, _error("InvalidRequestError", f"unreadable request: {e}"))
            return
        try:
            body = await handle(request["method"], params)
        except BooCodeError as e:
            body = _error(type(e).__name__, str(e))
        try:
            await answer(request.get("id"), body)
        except (ConnectionError, OSError):
            logger.debug("the API client left before its answer to %s", request["method"])

    async with anyio.create_task_group() as tg:
        while True:
            line = await reader.readline()
            if not line:
                break
            if line.strip():
                tg.start_soon(one, line)
