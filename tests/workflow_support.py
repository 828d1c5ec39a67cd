"""Helpers for the workflow tests: workflow files in a real workspace, waiting for a run to end."""

from __future__ import annotations

from pathlib import Path

import anyio

from boocode_mcp.engine import Engine
from boocode_mcp.workflows.views import WorkflowRunView

LIVE = ("queued", "running")
TIMEOUT_S = 60


def write_workflow(repo: Path, file: str, script: str) -> Path:
    """`script` as `<repo>/.boocode/workflows/<file>.js`."""
    directory = repo / ".boocode" / "workflows"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{file}.js"
    path.write_text(script)
    return path


async def run_to_end(engine: Engine, name: str, args: dict[str, object] | None = None) -> WorkflowRunView:
    """Run a workflow and wait (bounded) for it to end."""
    view = await engine.workflows.start(name, args or {})
    return await ended(engine, view.workflow_run_id)


async def ended(engine: Engine, run_id: str) -> WorkflowRunView:
    with anyio.fail_after(TIMEOUT_S):
        view = await engine.workflows.status(run_id)
        while view.status in LIVE:
            view = await engine.workflows.wait(run_id, 10)
        return view


async def until(engine: Engine, run_id: str, done: object, within: float = TIMEOUT_S) -> WorkflowRunView:
    """Wait (bounded) until `done(view)` holds of the run; every change wakes the wait."""
    assert callable(done)
    with anyio.fail_after(within):
        view = await engine.workflows.status(run_id)
        while not done(view):
            assert view.status in LIVE, f"the run ended ({view.status}: {view.error}) first"
            view = await engine.workflows.wait(run_id, 10)
        return view
