"""Stored rows as the views the front ends get (the row→view mapping, in one place).

A run's view adds what the row does not hold: its activity digest (live for a run in flight, else
rebuilt from its events once and kept in the one `DigestCache`), its pending permission and the
collisions of its patch; a patch's view adds its collisions with other chats' pending patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from boocode_mcp import procs, workspace
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.states import TERMINAL_STATUSES
from boocode_mcp.store import events as events_store
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store import permissions as permissions_store
from boocode_mcp.store import subagents as runs_store
from boocode_mcp.store.db import Database
from boocode_mcp.store.patches import PatchRow
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest, DigestCache
from boocode_mcp.subagents.runner import Runner
from boocode_mcp.views import (
    Collision,
    HunkView,
    PatchFileView,
    PatchView,
    PendingPermission,
    PermissionOptionView,
    SubagentView,
    Usage,
    WorkerRef,
)


class Presenter:
    """Maps runs and patches of one workspace to their views."""

    def __init__(self, db: Database, workspace_dir: Path, runner: Runner, digests: DigestCache) -> None:
        self._db = db
        self._workspace = workspace_dir
        self._runner = runner
        self._digests = digests

    def worktree(self, chat_id: str) -> Path:
        return workspace.worktree_path(self._workspace, chat_id)

    def new_digest(self, chat_id: str) -> Digest:
        """An empty digest for a run of the chat (tool-call paths shown relative to its worktree)."""
        return Digest(roots=(str(self.worktree(chat_id)), str(self._workspace)))

    async def digest(self, row: SubagentRow) -> Digest:
        run = self._runner.active.get(row.id)
        if run is not None:
            return run.digest
        cached = self._digests.get(row.id)
        if cached is not None:
            return cached
        digest = self.new_digest(row.chat_id)
        for ev in await events_store.list_events(self._db, row.id):
            digest.apply(ev.kind, ev.payload, ev.created_at)
        if row.status in TERMINAL_STATUSES:
            self._digests.put(row.id, digest)
        return digest

    async def subagent(
        self, row: SubagentRow, digest: Digest | None = None, *, children: list[str] | None = None
    ) -> SubagentView:
        """The run's view; `children` when the caller knows them (a run just written has none)."""
        if digest is None:
            digest = await self.digest(row)
        collisions: list[Collision] = []
        if row.patch_id is not None:
            patch = await patches_store.get(self._db, row.session_id, row.patch_id)
            if patch is not None:
                collisions = await self.collisions(patch)
        if row.worker_host is not None and row.worker_pid is not None:
            worker = WorkerRef(host=row.worker_host, pid=row.worker_pid)
        elif row.owner_pid is not None:
            worker = WorkerRef(host=procs.host_name(), pid=row.owner_pid)
        else:
            worker = None
        pending = self._runner.permissions.pending(row.id)
        if pending is None and row.status == "awaiting_permission" and row.id not in self._runner.active:
            pending = await self._pending_elsewhere(row.id)
        return SubagentView(
            subagent_id=row.id,
            session_id=row.session_id,
            chat_id=row.chat_id,
            agent=row.agent,
            worktree=row.worktree or str(self.worktree(row.chat_id)),
            worker=worker,
            status=row.status,
            prompt=row.prompt,
            activity=digest.activity(),
            final_message=row.final_message,
            stop_reason=row.stop_reason,
            error=row.error,
            usage=Usage(**row.usage) if row.usage else None,
            patch_id=row.patch_id,
            pending_permission=pending,
            collisions=collisions,
            session_note=digest.session_note,
            created_at=row.created_at,
            finished_at=row.finished_at,
            parent_subagent_id=row.parent_subagent_id,
            children=children if children is not None else await runs_store.child_ids(self._db, row.id),
            retry_of=row.retry_of,
            depth=row.depth,
            images=len(row.images),
        )

    async def _pending_elsewhere(self, run_id: str) -> PendingPermission | None:
        """The pending request of a run another process drives, as its store row says."""
        for p in await permissions_store.for_subagent(self._db, run_id):
            if p.status == "pending":
                return PendingPermission(
                    request_id=p.id,
                    title=p.title,
                    options=[PermissionOptionView(**o) for o in p.options],
                    deadline=p.deadline,
                )
        return None

    async def answer_elsewhere(self, row: SubagentRow, request_id: str, option_id: str) -> None:
        """Answer the pending request of a run another process drives, in the store (its driver
        hears it); the same refusals as answering one driven here."""
        pending = await self._pending_elsewhere(row.id)
        if pending is None or pending.request_id != request_id:
            raise NotFoundError(
                f"no pending permission request {request_id!r} for subagent {row.id!r}; check "
                "subagent_status (it may have timed out or been answered already)"
            )
        valid = [o.option_id for o in pending.options]
        if option_id not in valid:
            raise InvalidRequestError(
                f"option {option_id!r} is not an option of permission request {request_id!r}; "
                f"valid option ids: {', '.join(valid)}"
            )
        await permissions_store.decide(self._db, request_id, "answered", option_id)

    async def collisions(self, patch: PatchRow, pending: Sequence[PatchRow] | None = None) -> list[Collision]:
        """Other chats' pending patches (in the same session) touching the same or adjacent lines."""
        if patch.status != "pending":
            return []
        if pending is None:
            # Only the other chats' (a chat's own pending patch, diff and all, is not read for nothing).
            pending = await patches_store.list_patches(
                self._db, patch.session_id, other_than_chat=patch.chat_id, status="pending"
            )
        others = [(p.id, p.chat_id, _parsed(p)) for p in pending if p.chat_id != patch.chat_id]
        if not others:
            return []
        return [
            Collision(file=o.file, other_patch_id=o.other_patch_id, other_chat_id=o.other_chat_id)
            for o in workspace.find_collisions(_parsed(patch), others)
        ]

    def patch(
        self, p: PatchRow, collisions: list[Collision], *, include_hunks: bool, include_diff: bool
    ) -> PatchView:
        return PatchView(
            id=p.id,
            session_id=p.session_id,
            chat_id=p.chat_id,
            subagent_id=p.subagent_id,
            agent=p.agent,
            status=p.status,
            parent_patch_id=p.parent_patch_id,
            failed_mid_turn=p.failed_mid_turn,
            file_count=p.file_count,
            hunk_count=p.hunk_count,
            additions=p.additions,
            deletions=p.deletions,
            files=[PatchFileView(**f) for f in p.files],
            created_at=p.created_at,
            base_sha=p.base_sha,
            collisions=collisions,
            hunks=[HunkView(**h) for h in p.hunks] if include_hunks else None,
            diff=p.diff if include_diff else None,
        )


def _parsed(patch: PatchRow) -> workspace.ParsedDiff:
    # As stored when it was recorded: listing patches (collisions for every pending one) never
    # re-parses their diffs.
    return workspace.ParsedDiff.from_records(patch.files, patch.hunks)
