"""What the workflow tools return (their output contract; the CLI's `--json` prints the same)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from boocode_mcp.states import StepStatus, WorkflowStatus
from boocode_mcp.views import Usage

WorkflowSource = Literal["workspace", "user", "builtin"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorkflowInfo(_View):
    name: str
    description: str
    args_schema: dict[str, Any] | None = Field(description="JSON Schema of the workflow's args")
    source: WorkflowSource = Field(description="where it was found: workspace, user or builtin")
    path: str


class WorkflowWarning(_View):
    """A workflow file that was skipped."""

    file: str
    reason: str


class WorkflowList(_View):
    workflows: list[WorkflowInfo]
    warnings: list[WorkflowWarning]


class StepView(_View):
    """One agent() step: a subagent run of its own, or a result taken from the step cache."""

    step_id: str
    phase: str | None = None
    agent: str
    status: StepStatus
    cached: bool
    subagent_id: str | None = Field(description="its subagent run (for a cached step, the original run)")
    patch_id: str | None = None
    usage: Usage | None = None
    error: str | None = None


class WorkflowLog(_View):
    message: str
    phase: str | None = None
    at: float


class WorkflowRunView(_View):
    """workflow_status: a run, its steps in the order they started, its logs, how it ended."""

    workflow_run_id: str
    name: str
    status: WorkflowStatus
    session_id: str = Field(description="the BooCode session holding its steps' chats and patches")
    source: WorkflowSource
    args: dict[str, Any]
    steps: list[StepView]
    logs: list[WorkflowLog]
    result: Any = None
    error: str | None = None
    usage: Usage | None = Field(default=None, description="what this run spent (cached steps cost nothing)")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class WorkflowStarted(_View):
    """run_workflow's answer: the run, and how it ended when it ended within wait_seconds."""

    workflow_run_id: str
    name: str
    status: WorkflowStatus
    result: Any = None
    error: str | None = None


class WorkflowCancelled(_View):
    workflow_run_id: str
    status: WorkflowStatus


class WorkflowRunItem(_View):
    """A run as list_workflow_runs shows it: its steps counted, not listed."""

    workflow_run_id: str
    name: str
    status: WorkflowStatus
    session_id: str
    steps_total: int
    steps_done: int = Field(description="steps completed, those from the step cache included")
    steps_cached: int
    usage: Usage | None = Field(
        description="what the run spent: its total once ended, its dispatched steps' so far while live"
    )
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class WorkflowRunPage(_View):
    """list_workflow_runs: the newest runs first."""

    runs: list[WorkflowRunItem]
    total: int = Field(description="workflow runs in the workspace")
