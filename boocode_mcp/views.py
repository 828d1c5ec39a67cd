"""The shapes the engine hands to its front ends: exactly the output contract of its tools.

MCP tools return these models as structured content, the CLI prints them with `--json`, and the
ACP front end reads them. Fields that do not apply are None, never absent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Re-exported: the front ends know these as part of the views' contract.
from boocode_mcp.states import TERMINAL_STATUSES as TERMINAL_STATUSES
from boocode_mcp.states import PatchStatus as PatchStatus
from boocode_mcp.states import SubagentStatus as SubagentStatus

MemorySource = Literal["note", "subagent"]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ToolCallDigest(_View):
    tool_call_id: str
    title: str
    status: str | None = None
    kind: str | None = None


class PlanEntryView(_View):
    content: str
    status: str
    priority: str | None = None


class Activity(_View):
    """What a parent needs to see of a running subagent, kept small enough to poll."""

    recent_text: str = Field(default="", description="the tail of the agent's latest message text")
    tool_calls: list[ToolCallDigest] = Field(default_factory=list, description="latest tool calls")
    plan: list[PlanEntryView] = Field(default_factory=list)
    files_touched: list[str] = Field(default_factory=list, description="workspace-relative paths")
    event_count: int = 0
    last_event_at: float | None = None


class PermissionOptionView(_View):
    option_id: str
    name: str
    kind: str


class PendingPermission(_View):
    request_id: str
    title: str
    options: list[PermissionOptionView]
    deadline: float = Field(description="unix time after which the request fails closed")


class Usage(_View):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None


class Collision(_View):
    """Another chat's pending patch touching the same or adjacent lines of a file."""

    file: str
    other_patch_id: str
    other_chat_id: str


class WorkerRef(_View):
    """The process that runs a subagent: its host and pid (on a shared store, any worker's)."""

    host: str
    pid: int


class SubagentView(_View):
    """subagent_status for one subagent (also what spawn_subagent extends)."""

    subagent_id: str
    session_id: str
    chat_id: str
    agent: str
    worktree: str | None = None
    status: SubagentStatus
    prompt: str | None = None
    activity: Activity = Field(default_factory=Activity)
    final_message: str | None = None
    stop_reason: str | None = None
    error: str | None = None
    usage: Usage | None = None
    patch_id: str | None = None
    pending_permission: PendingPermission | None = None
    collisions: list[Collision] = Field(default_factory=list)
    session_note: str | None = Field(
        default=None, description="e.g. that the agent could not restore its earlier context"
    )
    created_at: float | None = None
    finished_at: float | None = None
    worker: WorkerRef | None = Field(
        default=None, description="the host and pid running it; `worktree` is a path on that host"
    )


class SubagentList(_View):
    subagents: list[SubagentView]


class HunkView(_View):
    file: str
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    section: str = ""
    lines: list[str]


class PatchFileView(_View):
    path: str
    old_path: str | None = None
    status: str
    binary: bool = False
    additions: int
    deletions: int


class PatchView(_View):
    id: str
    session_id: str
    chat_id: str
    subagent_id: str | None
    agent: str
    status: PatchStatus
    parent_patch_id: str | None
    failed_mid_turn: bool
    file_count: int
    hunk_count: int
    additions: int
    deletions: int
    files: list[PatchFileView]
    created_at: float
    base_sha: str | None = None
    collisions: list[Collision] = Field(default_factory=list)
    hunks: list[HunkView] | None = None
    diff: str | None = Field(default=None, description="the unified diff, only when asked for")


class PatchList(_View):
    patches: list[PatchView]


class Conflict(_View):
    patch_id: str
    file: str
    reason: str


class ApplyResult(_View):
    applied: list[str]
    conflicts: list[Conflict]
    dry_run: bool
    commit_sha: str | None = None


class MemoryHit(_View):
    id: str
    source: MemorySource
    title: str
    snippet: str
    score: float
    path: str | None = None
    created_at: float | None = None


class MemoryHits(_View):
    hits: list[MemoryHit]


class CommandResult(_View):
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool
    duration_ms: float


class TraceView(_View):
    id: int
    session_id: str | None
    subagent_id: str | None
    source: Literal["mcp", "agent"]
    tool_name: str
    input: Any = None
    output_excerpt: str | None = None
    started_at: float
    finished_at: float | None = None
    latency_ms: float | None = None
    outcome: str | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float | None = None


class TraceList(_View):
    session_id: str
    traces: list[TraceView]


class AgentSessionView(_View):
    chat_id: str
    agent: str
    backend: str
    acp_session_id: str | None
    pid: int | None
    status: Literal["idle", "active", "crashed", "closed"]
    last_active_at: float | None
    input_tokens: int
    output_tokens: int
    cost: float
    note: str | None = None


class AgentSessionList(_View):
    agent_sessions: list[AgentSessionView]


class CancelResult(_View):
    subagent_id: str
    status: SubagentStatus


WorkspaceTrustStatus = Literal["absent", "trusted", "untrusted", "changed"]


class WorkspaceConfigView(_View):
    """Whether a workspace's own `.boocode/config.toml` counts, for `boocode agents` and `boocode trust`.

    `status`: absent (no such file), trusted (its SHA-256 is the one the user trusted), untrusted
    (never trusted) or changed (trusted once, different now). Unless it is trusted, the agent
    entries it defines or overrides are ignored (`ignored_agents`) and some of its other settings
    are held back (`held_back` says which and why); `trust_command` is the command that trusts it.
    """

    path: str
    status: WorkspaceTrustStatus
    trusted: bool
    sha256: str | None
    ignored_agents: list[str]
    held_back: list[str]
    trust_command: str | None


class AgentInfo(_View):
    """One row of `boocode agents`."""

    name: str
    command: str
    args: list[str]
    installed: bool
    path: str | None
    version: str | None
    install: str | None
    builtin: bool
    configured: bool
    default: bool
