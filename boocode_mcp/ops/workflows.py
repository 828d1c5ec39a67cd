"""Workflows: list them, run one (waiting a bounded while), follow a run, cancel it."""

from __future__ import annotations

import json
from typing import Any

import anyio

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome, clip
from boocode_mcp.ops.subagents import MAX_WAIT_SECONDS
from boocode_mcp.states import LIVE_WORKFLOW_STATUSES
from boocode_mcp.workflows.views import (
    WorkflowCancelled,
    WorkflowList,
    WorkflowRunView,
    WorkflowStarted,
)


def _check_wait(wait_seconds: float) -> None:
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise InvalidRequestError(
            f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:g} (got {wait_seconds:g}); "
            "poll workflow_status again to wait longer"
        )


def run_line(view: WorkflowRunView) -> str:
    """A run as text, with the ids the next step needs: its steps' runs and patches."""
    cached = sum(1 for s in view.steps if s.cached)
    parts = [
        f"workflow run {view.workflow_run_id} ({view.name}, session {view.session_id}): {view.status}; "
        f"{len(view.steps)} steps ({cached} from the cache)"
    ]
    for s in view.steps:
        step = f"step {s.step_id}"
        if s.phase:
            step += f" [{s.phase}]"
        step += f" on {s.agent}: {s.status}{' (cached)' if s.cached else ''}"
        if s.subagent_id:
            step += f", subagent {s.subagent_id}"
        if s.patch_id:
            step += f", patch {s.patch_id}"
        if s.error:
            step += f", error: {clip(s.error, 160)}"
        parts.append(step)
    if view.logs:
        parts.append("last log: " + clip(view.logs[-1].message, 200))
    if view.error:
        parts.append(f"error: {view.error}")
    if view.result is not None:
        parts.append("result: " + clip(json.dumps(view.result), 2000))
    if view.status in LIVE_WORKFLOW_STATUSES:
        parts.append("poll with workflow_status (wait_seconds up to 30)")
    return "\n".join(parts)


async def _wait_ended(caller: Caller, view: WorkflowRunView, seconds: float) -> WorkflowRunView:
    deadline = anyio.current_time() + seconds
    while view.status in LIVE_WORKFLOW_STATUSES:
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            break
        view = await caller.engine.workflows.wait(view.workflow_run_id, remaining)
    return view


async def list_workflows(caller: Caller) -> Outcome[WorkflowList]:
    out = await caller.engine.workflows.list()
    lines = [f"{w.name} ({w.source}, {w.path}): {clip(w.description, 200)}" for w in out.workflows]
    lines += [f"skipped {w.file}: {w.reason}" for w in out.warnings]
    return Outcome(out, "\n".join(lines) or "no workflows")


async def run_workflow(
    caller: Caller, name: str, args: dict[str, Any] | None = None, *, wait_seconds: float = 0
) -> Outcome[WorkflowStarted]:
    """Start a run; with `wait_seconds` wait that long for it to end (returning as soon as it does)."""
    _check_wait(wait_seconds)
    view = await caller.engine.workflows.start(name, args or {})
    if wait_seconds > 0:
        view = await _wait_ended(caller, view, wait_seconds)
    out = WorkflowStarted(
        workflow_run_id=view.workflow_run_id,
        name=view.name,
        status=view.status,
        result=view.result,
        error=view.error,
    )
    return Outcome(out, run_line(view))


async def workflow_status(
    caller: Caller, workflow_run_id: str, *, wait_seconds: float = 0
) -> Outcome[WorkflowRunView]:
    """A run, after its next change when `wait_seconds` is given (at once when it has ended)."""
    _check_wait(wait_seconds)
    workflows = caller.engine.workflows
    view = await workflows.status(workflow_run_id)
    if wait_seconds > 0 and view.status in LIVE_WORKFLOW_STATUSES:
        view = await workflows.wait(workflow_run_id, wait_seconds)
    return Outcome(view, run_line(view))


async def cancel_workflow(caller: Caller, workflow_run_id: str) -> Outcome[WorkflowCancelled]:
    view = await caller.engine.workflows.cancel(workflow_run_id)
    return Outcome(
        WorkflowCancelled(workflow_run_id=view.workflow_run_id, status=view.status), run_line(view)
    )
