"""Stored rows as the views the front ends get (the row→view mapping, in one place).

A run's view adds what the row does not hold: its activity digest (live for a run in flight, else
rebuilt from its events once and kept in the one `DigestCache`), its pending permission and the
collisions of its patch; a patch's view adds its collisions with other chats' pending patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from boocode_mcp import workspace
from boocode_mcp.states import TERMINAL_STATUSES
from boocode_mcp.store import events as events_store
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store.patches import PatchRow
from boocode_mcp.store.subagents import SubagentRow
from boocode_mcp.subagents.digest import Digest, DigestCache
from boocode_mcp.subagents.runner import Runner
from boocode_mcp.views import Collision, HunkView, PatchFileView, PatchView, SubagentView, Usage


class Presenter:
    """Maps runs and patches of one workspace to their views."""

    def __init__(
        self, db: aiosqlite.Connection, workspace_dir: Path, runner: Runner, digests: DigestCache
    ) -> None:
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

    async def subagent(self, row: SubagentRow, digest: Digest | None = None) -> SubagentView:
        if digest is None:
            digest = await self.digest(row)
        collisions: list[Collision] = []
        if row.patch_id is not None:
            patch = await patches_store.get(self._db, row.session_id, row.patch_id)
            if patch is not None:
                collisions = await self.collisions(patch)
        return SubagentView(
            subagent_id=row.id,
            session_id=row.session_id,
            chat_id=row.chat_id,
            agent=row.agent,
            worktree=str(self.worktree(row.chat_id)),
            status=row.status,
            prompt=row.prompt,
            activity=digest.activity(),
            final_message=row.final_message,
            stop_reason=row.stop_reason,
            error=row.error,
            usage=Usage(**row.usage) if row.usage else None,
            patch_id=row.patch_id,
            pending_permission=self._runner.permissions.pending(row.id),
            collisions=collisions,
            session_note=digest.session_note,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    async def collisions(self, patch: PatchRow, pending: Sequence[PatchRow] | None = None) -> list[Collision]:
        """Other chats' pending patches (in the same session) touching the same or adjacent lines."""
        if patch.status != "pending":
            return []
        if pending is None:
            pending = await patches_store.list_patches(self._db, patch.session_id, status="pending")
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
