"""The closed sets of states BooCode keeps, as types every part shares (the store, the runner, the
views), and the one checked conversion from a stored string to each.

The database's CHECK constraints hold the same sets; reading a row converts its text through these,
so a status is typed from the table to the front end without a cast.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

SubagentStatus = Literal[
    "queued", "running", "awaiting_permission", "completed", "failed", "cancelled", "interrupted"
]
LiveStatus = Literal["queued", "running", "awaiting_permission"]
TerminalStatus = Literal["completed", "failed", "cancelled", "interrupted"]
PatchStatus = Literal["pending", "applied", "superseded", "discarded", "conflicted"]
WorkflowStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
# A workflow step is a subagent run (its status), or a result taken from the step cache (completed).
StepStatus = SubagentStatus

LIVE_STATUSES: tuple[LiveStatus, ...] = get_args(LiveStatus)
TERMINAL_STATUSES: frozenset[str] = frozenset(get_args(TerminalStatus))
_SUBAGENT_STATUSES: frozenset[str] = frozenset(get_args(SubagentStatus))
_PATCH_STATUSES: frozenset[str] = frozenset(get_args(PatchStatus))
_WORKFLOW_STATUSES: frozenset[str] = frozenset(get_args(WorkflowStatus))
LIVE_WORKFLOW_STATUSES: tuple[str, ...] = ("queued", "running")


def is_settled(status: str) -> bool:
    """Whether a run in this status moves on only if someone answers it: ended, or waiting for a
    permission answer (what a caller waiting for a run waits for)."""
    return status in TERMINAL_STATUSES or status == "awaiting_permission"


def _is_subagent_status(value: str) -> TypeGuard[SubagentStatus]:
    return value in _SUBAGENT_STATUSES


def _is_patch_status(value: str) -> TypeGuard[PatchStatus]:
    return value in _PATCH_STATUSES


def _is_workflow_status(value: str) -> TypeGuard[WorkflowStatus]:
    return value in _WORKFLOW_STATUSES


def subagent_status(value: str) -> SubagentStatus:
    """A stored run status as its type; anything else is a ValueError naming it."""
    if _is_subagent_status(value):
        return value
    raise ValueError(f"{value!r} is not a subagent status")


def patch_status(value: str) -> PatchStatus:
    """A stored patch status as its type; anything else is a ValueError naming it."""
    if _is_patch_status(value):
        return value
    raise ValueError(f"{value!r} is not a patch status")


def workflow_status(value: str) -> WorkflowStatus:
    """A stored workflow run status as its type; anything else is a ValueError naming it."""
    if _is_workflow_status(value):
        return value
    raise ValueError(f"{value!r} is not a workflow run status")
