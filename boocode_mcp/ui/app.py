"""The page's HTTP surface: the app shell, its assets, the operations and the live stream.

The page is a small script app (`static/`), so the server holds no page logic: it serves the
operations of `boocode_mcp.ops` by the names the daemon's API and the MCP tools use —
`GET /api/<read>?arg=value` for reads, `POST /api/<action>` with JSON arguments for actions — and
answers with the same `{result, text}` or `{error: {type, message}}` bodies. The page, the CLI
and MCP therefore cannot disagree about what a run, a patch or an apply result is. Only the
operations listed below are served: nothing here runs commands or starts agents.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from boocode_mcp.daemon.api import dispatch
from boocode_mcp.ops import Caller
from boocode_mcp.ui.stream import StreamHub

STATIC = Path(__file__).parent / "static"

# Exactly what the pages use: a read or action added to a page is added here too.
READS = frozenset(
    {
        "list_runs",
        "list_patches",
        "get_patch",
        "traces",
        "usage_stats",
        "inbox",
        "list_workflow_runs",
        "workflow_status",
    }
)
ACTIONS = frozenset(
    {
        "apply_pending",
        "discard_patch",
        "respond_permission",
        "cancel_subagent",
        "retry_subagent",
        "cancel_workflow",
    }
)
_STATUS = {"NotFoundError": 404, "InternalError": 500}


def build_app(caller: Caller, hub: StreamHub) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def operation(request: Request) -> Response:
        name = request.path_params["name"]
        allowed = READS if request.method == "GET" else ACTIONS
        if name not in allowed:
            verb = "read" if request.method == "GET" else "action"
            return _error(404, "NotFoundError", f"the page has no {verb} {name!r}")
        params: Any
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            try:
                params = await request.json()
            except ValueError:
                params = None
            if not isinstance(params, dict):
                return _error(400, "InvalidRequestError", "the body must be a JSON object")
        started = time.perf_counter()
        body = await dispatch(caller, name, params)
        took_ms = (time.perf_counter() - started) * 1000
        status = _STATUS.get(body["error"]["type"], 400) if "error" in body else 200
        # Server-Timing lets the browser's tools (and bench/bench_ui.py) see the server's share.
        return JSONResponse(body, status_code=status, headers={"server-timing": f"op;dur={took_ms:.2f}"})

    async def stream(request: Request) -> Response:
        run = request.query_params.get("run") or None
        try:
            after = int(request.headers.get("last-event-id") or request.query_params.get("after") or 0)
        except ValueError:
            return _error(400, "InvalidRequestError", "after (or Last-Event-ID) must be an event seq")
        return StreamingResponse(
            hub.stream(run, after),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/stream", stream),
            Route("/api/{name}", operation, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)
