"""A run this process drives, from queued until its final status is written: the row it was stored
as, and what only the live process knows (its digest as events arrive, its status, its events)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anyio

from boocode_mcp.agents.backend import EventSink, PermissionHandler
from boocode_mcp.states import SubagentStatus
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest
from boocode_mcp.workspace import GitRepo


@dataclasses.dataclass(eq=False)
class Run:
    """A run in this process. `row` is the stored run as it was queued (prompt, chat, agent, model,
    mode…); the live fields below are what the table learns only as the run goes."""

    row: SubagentRow
    worktree: Path
    digest: Digest
    on_event: EventSink | None = None
    permission_handler: PermissionHandler | None = None
    status: SubagentStatus = "queued"
    started: bool = False
    finished: bool = False
    # The chat's worktree as git is pinned on it, and the base its patch is measured against, once
    # the turn has made sure of them.
    tree: GitRepo | None = None
    base: str | None = None
    tool_titles: list[str] = dataclasses.field(default_factory=list)
    # Its transcript indexed in memory and its traces closed (the turn is over).
    transcript_closed: bool = False
    cancel_requested: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    # Replaced by a fresh event each time the status changes (waiters of the old one wake).
    changed: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)

    @property
    def id(self) -> str:
        return self.row.id
