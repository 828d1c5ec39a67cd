"""Workflows: list them, run one (waiting a bounded while), follow a run, cancel it, list the runs."""

from __future__ import annotations

import json
from typing import Any

import anyio

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome, clip
from boocode_mcp.ops.subagents import MAX_WAIT_SECONDS
from boocode_mcp.states import LIVE_WORKFLOW_STATUSES
from boocode_mcp.store import workflow_runs as store
from boocode_mcp.store.workflow_runs import StepRow
from boocode_mcp.views import Usage
from boocode_mcp.workflows.views import (
    WorkflowCancelled,
    WorkflowList,
    WorkflowRunItem,
    WorkflowRunPage,
    WorkflowRunView,
    WorkflowStarted,
)

MAX_RUNS_PAGE = 200


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


def _spent_so_far(steps: list[StepRow]) -> Usage | None:
    """A live run's spending: its dispatched steps' usage as their runs report it (cached steps
    cost nothing), summed as the run sums it when it ends."""
    total: dict[str, Any] = {}
    for s in steps:
        if s.cached or not s.usage:
            continue
        for key in ("input_tokens", "output_tokens", "cost"):
            if s.usage.get(key):
                total[key] = total.get(key, 0) + s.usage[key]
    return Usage(**total) if total else None


async def list_workflow_runs(caller: Caller, *, limit: int = 50) -> Outcome[WorkflowRunPage]:
    """The newest `limit` workflow runs, newest first, with their steps counted (reads only)."""
    if not 1 <= limit <= MAX_RUNS_PAGE:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_RUNS_PAGE} (got {limit})")
    db = caller.engine.db
    rows = await store.recent_runs(db, limit)
    steps = await store.steps_of(db, [r.id for r in rows])
    items: list[WorkflowRunItem] = []
    for r in rows:
        mine = steps.get(r.id, [])
        if r.status in LIVE_WORKFLOW_STATUSES:
            usage = _spent_so_far(mine)
        else:
            usage = Usage.model_validate(r.usage) if r.usage else None
        items.append(
            WorkflowRunItem(
                workflow_run_id=r.id,
                name=r.name,
                status=r.status,
                session_id=r.session_id,
                steps_total=len(mine),
                steps_done=sum(1 for s in mine if s.status == "completed"),
                steps_cached=sum(1 for s in mine if s.cached),
                usage=usage,
                error=r.error,
                created_at=r.created_at,
                started_at=r.started_at,
                finished_at=r.finished_at,
            )
        )
    page = WorkflowRunPage(runs=items, total=await store.count_runs(db))
    text = "\n".join(
        f"workflow run {i.workflow_run_id} ({i.name}): {i.status}; {i.steps_done}/{i.steps_total} steps done"
        f" ({i.steps_cached} from the cache)"
        for i in items
    )
    return Outcome(page, text or "no workflow runs; run_workflow starts one")
