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
from boocode_mcp.lru import Lru
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
        # Stored patches' files and hunks, parsed: a stored patch's content never changes (only its
        # status does, which is always read).
        self._parsed: Lru[str, workspace.ParsedDiff] = Lru(256)

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
        collisions = await self._run_collisions(row) if row.patch_id is not None else []
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
            others: Sequence[patches_store.PatchHead | PatchRow] = await patches_store.pending_heads(
                self._db, patch.session_id, other_than_chat=patch.chat_id
            )
        else:
            others = [p for p in pending if p.chat_id != patch.chat_id]
        if not others:
            return []
        # Rows at hand need no read.
        for p in (patch, *(o for o in others if isinstance(o, PatchRow))):
            if self._parsed.get(p.id) is None:
                self._parsed.put(p.id, _parsed(p))
        return await self._collisions_of(patch.id, others)

    async def _run_collisions(self, row: SubagentRow) -> list[Collision]:
        """The collisions of a run's patch: nothing of the patch itself is read unless another chat
        of the session has a pending patch (a run's view is read as each of its turns ends)."""
        assert row.patch_id is not None
        others = await patches_store.pending_heads(self._db, row.session_id, other_than_chat=row.chat_id)
        if not others:
            return []
        mine = await patches_store.head(self._db, row.session_id, row.patch_id)
        if mine is None or mine.status != "pending":
            return []
        return await self._collisions_of(mine.id, others)

    async def _collisions_of(
        self, patch_id: str, others: Sequence[patches_store.PatchHead | PatchRow]
    ) -> list[Collision]:
        parsed = await self._parsed_patches([patch_id, *(o.id for o in others)])
        mine = parsed.get(patch_id)
        theirs = [(o.id, o.chat_id, parsed[o.id]) for o in others if o.id in parsed]
        if mine is None or not theirs:
            return []
        return [
            Collision(file=o.file, other_patch_id=o.other_patch_id, other_chat_id=o.other_chat_id)
            for o in workspace.find_collisions(mine, theirs)
        ]

    async def _parsed_patches(self, patch_ids: list[str]) -> dict[str, workspace.ParsedDiff]:
        """The patches' files and hunks, parsed: kept ones, the others read (a patch deleted since
        is left out)."""
        found: dict[str, workspace.ParsedDiff] = {}
        missing: list[str] = []
        for patch_id in patch_ids:
            kept = self._parsed.get(patch_id)
            if kept is not None:
                found[patch_id] = kept
            else:
                missing.append(patch_id)
        for patch_id, (files, hunks) in (await patches_store.contents(self._db, missing)).items():
            found[patch_id] = self._parsed.put(patch_id, workspace.ParsedDiff.from_records(files, hunks))
        return found

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
