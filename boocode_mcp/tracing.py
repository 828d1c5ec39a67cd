"""One recorder for MCP tool calls and for the agents' own tool calls, kept in `traces`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from boocode_mcp.store import traces as store
from boocode_mcp.store.db import Database
from boocode_mcp.views import TraceView

log = logging.getLogger(__name__)

EXCERPT_CHARS = 2_000


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str | None:
    """A bounded text rendering of a tool's output."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


@dataclass
class McpCall:
    """The handle `Tracer.mcp_call` yields; set `output` to record an excerpt of the result."""

    trace_id: int | None
    output: Any = None


class Tracer:
    """Writes traces and tells listeners (`traces://{session_id}`) when they change."""

    def __init__(self, db: Database, notify: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._notify = notify or (lambda uri: None)
        # subagent -> tool_call_id -> (trace id, started_at) of the agent tool calls of its turn in
        # progress, so each update finds its trace without a query; end_turn drops the entry.
        self._agent_calls: dict[str, dict[str, tuple[int, float]]] = {}

    def _changed(self, session_id: str | None) -> None:
        if session_id is not None:
            self._notify(f"traces://{session_id}")

    @asynccontextmanager
    async def mcp_call(self, session_id: str | None, tool_name: str, input: Any) -> AsyncIterator[McpCall]:
        """Record one MCP tool call around the block: an exception marks it an error (and goes on),
        cancellation marks it cancelled."""
        started = time.time()
        t0 = time.perf_counter()
        trace_id = await store.start(
            self._db,
            session_id=session_id,
            subagent_id=None,
            source="mcp",
            tool_name=tool_name,
            tool_call_id=None,
            input=input,
            started_at=started,
        )
        call = McpCall(trace_id)
        self._changed(session_id)
        outcome, error = "ok", None
        try:
            yield call
        except anyio.get_cancelled_exc_class():
            outcome, error = "cancelled", "the call was cancelled"
            raise
        except BaseException as e:
            outcome, error = "error", str(e) or type(e).__name__
            raise
        finally:
            if trace_id is not None:
                with anyio.CancelScope(shield=True):
                    await store.update(
                        self._db,
                        trace_id,
                        output_excerpt=excerpt(call.output),
                        finished_at=time.time(),
                        latency_ms=(time.perf_counter() - t0) * 1000,
                        outcome=outcome,
                        error=error,
                    )
                self._changed(session_id)

    async def agent_tool_call(
        self,
        session_id: str,
        subagent_id: str,
        tool_call_id: str,
        title: str,
        raw_input: Any,
        status: str | None,
        at: float,
    ) -> None:
        """An agent started a tool call (ACP `tool_call`)."""
        trace_id = await self._open_agent_call(session_id, subagent_id, tool_call_id, title, raw_input, at)
        if trace_id is None:
            return
        if status in ("completed", "failed"):
            await self._finish(trace_id, at, at, "ok" if status == "completed" else "error", None, None)
        self._changed(session_id)

    async def _open_agent_call(
        self,
        session_id: str,
        subagent_id: str,
        tool_call_id: str,
        title: str | None,
        raw_input: Any,
        at: float,
    ) -> int | None:
        """Insert the trace row of an agent tool call and remember it; None if already recorded."""
        trace_id = await store.start(
            self._db,
            session_id=session_id,
            subagent_id=subagent_id,
            source="agent",
            tool_name=title or "tool call",
            tool_call_id=tool_call_id,
            input=raw_input,
            started_at=at,
        )
        if trace_id is not None:
            self._agent_calls.setdefault(subagent_id, {})[tool_call_id] = (trace_id, at)
        return trace_id

    async def agent_tool_update(
        self,
        session_id: str,
        subagent_id: str,
        tool_call_id: str,
        *,
        status: str | None,
        title: str | None,
        content_text: str | None,
        raw_output: Any,
        at: float,
    ) -> None:
        """A later update of an agent tool call; completed/failed finishes the trace."""
        started: float | None = None
        trace_id: int | None = None
        known = self._agent_calls.get(subagent_id, {}).get(tool_call_id)
        if known is not None:
            trace_id, started = known
        else:
            trace_id = await store.find_agent_call(self._db, subagent_id, tool_call_id)
        if trace_id is None:
            # An update for a call we never saw start (qwen announces a call first in its
            # permission request): record it from here.
            trace_id = await self._open_agent_call(session_id, subagent_id, tool_call_id, title, None, at)
            if trace_id is None:
                return
            started = at
        output = content_text if content_text else raw_output
        tokens = raw_output if isinstance(raw_output, dict) else {}
        fields: dict[str, Any] = {
            "tool_name": title,
            "output_excerpt": excerpt(output),
            "input_tokens": _int(tokens.get("input_tokens")),
            "output_tokens": _int(tokens.get("output_tokens")),
            "cost": _float(tokens.get("cost")),
        }
        if status in ("completed", "failed"):
            if started is None:
                started = await store.started_at(self._db, trace_id)
                started = at if started is None else started
            # The same columns _finish sets, in the same statement as the update's own.
            fields.update(
                finished_at=at,
                latency_ms=max(0.0, (at - started) * 1000),
                outcome="ok" if status == "completed" else "error",
            )
        await store.update(self._db, trace_id, **fields)
        self._changed(session_id)

    async def end_turn(self, session_id: str, subagent_id: str, outcome: str) -> None:
        """Close the agent tool calls a turn left open: the turn's end is theirs."""
        self._agent_calls.pop(subagent_id, None)
        now = time.time()
        open_calls = await store.running_for_subagent(self._db, subagent_id)
        for trace_id, started in open_calls:
            error = None if outcome == "ok" else "the turn ended before the tool call finished"
            await self._finish(trace_id, started, now, outcome, error, None)
        if open_calls:
            self._changed(session_id)

    async def _finish(
        self, trace_id: int, started: float, at: float, outcome: str, error: str | None, out: str | None
    ) -> None:
        await store.update(
            self._db,
            trace_id,
            finished_at=at,
            latency_ms=max(0.0, (at - started) * 1000),
            outcome=outcome,
            error=error,
            output_excerpt=out,
        )

    async def list_traces(self, session_id: str | None) -> list[TraceView]:
        return await store.list_traces(self._db, session_id)


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
