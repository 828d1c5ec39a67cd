"""Reviewing patches: listing them, applying pending ones to the workspace (all or none, the chats
re-baselined), discarding them (their changes taken back out of the chat's worktree)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio

from boocode_mcp import workspace
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.presenter import Presenter
from boocode_mcp.store import chats as chats_store
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store.db import Database
from boocode_mcp.store.patches import PatchRow
from boocode_mcp.views import ApplyResult, Collision, Conflict, PatchView


@dataclasses.dataclass(frozen=True, kw_only=True)
class PatchReview:
    """The patches of one workspace, as the engine's front ends review and apply them."""

    db: Database
    git: workspace.GitRepo
    presenter: Presenter
    check_chat_idle: Callable[[str], Awaitable[None]]
    notify: Callable[[str], None]
    # Move an applied patch's chat to its new base here (its worktree is here); on a shared store
    # the worker that next runs the chat does it in its own clone.
    rebaseline: bool = True
    # Two applies at once could both see a patch pending and apply it twice.
    apply_lock: anyio.Lock = dataclasses.field(default_factory=anyio.Lock, init=False)

    async def list_patches(
        self,
        session_id: str | None,
        *,
        chat_id: str | None,
        status: str | None,
        limit: int,
        include_hunks: bool,
        include_diff: bool = False,
    ) -> list[PatchView]:
        """Newest first."""
        rows = await patches_store.list_patches(
            self.db, session_id, chat_id=chat_id, status=status, limit=limit
        )
        out: list[PatchView] = []
        pending_by_session: dict[str, list[PatchRow]] = {}
        for p in rows:
            collisions: list[Collision] = []
            if p.status == "pending":
                if p.session_id not in pending_by_session:
                    pending_by_session[p.session_id] = await patches_store.list_patches(
                        self.db, p.session_id, status="pending"
                    )
                collisions = await self.presenter.collisions(p, pending_by_session[p.session_id])
            out.append(
                self.presenter.patch(p, collisions, include_hunks=include_hunks, include_diff=include_diff)
            )
        return out

    async def row(self, session_id: str | None, patch_id: str) -> PatchRow:
        p = await patches_store.get(self.db, session_id, patch_id)
        if p is None:
            where = f"in session {session_id!r}" if session_id is not None else "in this workspace"
            raise NotFoundError(f"no patch {patch_id!r} {where}; list them with list_patches")
        return p

    async def get_patch(
        self, session_id: str | None, patch_id: str, *, include_hunks: bool, include_diff: bool
    ) -> PatchView:
        p = await self.row(session_id, patch_id)
        collisions = await self.presenter.collisions(p)
        return self.presenter.patch(p, collisions, include_hunks=include_hunks, include_diff=include_diff)

    async def apply_pending(
        self,
        selected: Callable[[], Awaitable[list[PatchRow]]],
        *,
        dry_run: bool,
        commit_message: str | None,
    ) -> ApplyResult:
        """Apply the patches `selected` gives (read under the apply lock), all or none.

        On success each patch is marked applied and its chat re-baselined, so the chat's later
        patches hold only newer work; on conflict nothing changes.
        """
        async with self.apply_lock:
            return await self._apply(await selected(), dry_run, commit_message)

    async def _apply(
        self, selected: Sequence[PatchRow], dry_run: bool, commit_message: str | None
    ) -> ApplyResult:
        if not selected:
            return ApplyResult(applied=[], conflicts=[], dry_run=dry_run)
        outcome = await workspace.apply_patches(
            self.git, [(p.id, p.diff) for p in selected], dry_run=dry_run, commit_message=commit_message
        )
        conflicts = [Conflict(patch_id=c.patch_id, file=c.file, reason=c.reason) for c in outcome.conflicts]
        if conflicts or dry_run:
            return ApplyResult(
                applied=list(outcome.applied),
                conflicts=conflicts,
                dry_run=dry_run,
                commit_sha=outcome.commit_sha,
            )
        now = time.time()
        for p in selected:
            await patches_store.set_status(self.db, p.id, "applied", applied_at=now)
            owner = await chats_store.get(self.db, p.session_id, p.chat_id)
            if self.rebaseline and owner is not None and owner.base_sha is not None:
                # The chat's later patches are diffed against what has now been applied.
                tree = await workspace.chat_worktree(self.git, owner.id)
                new_base = await workspace.rebaseline(tree, p.base_sha, p.diff)
                await chats_store.set_base(self.db, owner.id, new_base)
            self.notify(f"patches://{p.session_id}/{p.id}")
        return ApplyResult(
            applied=[p.id for p in selected], conflicts=[], dry_run=False, commit_sha=outcome.commit_sha
        )

    async def discard(self, session_id: str | None, patch_id: str) -> PatchView:
        """Discard a pending patch: its changes leave the chat's worktree, so the chat's next patch
        does not carry them again. The main workspace is not touched."""
        p = await self.row(session_id, patch_id)
        if p.status != "pending":
            raise InvalidRequestError(f"patch {patch_id!r} is {p.status}, not pending; nothing to discard")
        # A live turn is still writing the worktree: reverting under it would corrupt its work.
        await self.check_chat_idle(p.chat_id)
        owner = await chats_store.get(self.db, p.session_id, p.chat_id)
        if owner is not None and await anyio.Path(owner.worktree).is_dir():
            await workspace.revert_worktree(await workspace.chat_worktree(self.git, owner.id), p.diff)
        await patches_store.set_status(self.db, p.id, "discarded")
        self.notify(f"patches://{p.session_id}/{p.id}")
        return await self.get_patch(p.session_id, p.id, include_hunks=False, include_diff=False)
