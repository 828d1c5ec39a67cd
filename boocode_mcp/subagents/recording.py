"""Each chat's worktree as the runner uses it: made on first use, its diff index kept ready, and the
patch of a turn recorded from it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import anyio

from boocode_mcp import procs, workspace
from boocode_mcp.errors import BooCodeError
from boocode_mcp.store import chats, patches, subagents
from boocode_mcp.store.chats import ChatRow
from boocode_mcp.store.db import Database
from boocode_mcp.subagents.run import Run
from boocode_mcp.workspace import GitRepo
from boocode_mcp.workspace.worktrees import in_memory_root

log = logging.getLogger(__name__)


class ChatWorktrees:
    """The runner's view of chat worktrees: `ensure` one (and its base), `record_patch` after a turn.

    One private diff index per worktree (under `index_root`), so the diff after a turn costs what
    changed since the last one: staged in this process, then one `git diff` of the paths touched
    (none when nothing changed).
    """

    def __init__(
        self,
        db: Database,
        git: GitRepo,
        index_root: Path,
        notify: Callable[[str], None],
        *,
        shared: bool = False,
        remote: str | None = None,
    ) -> None:
        self._db = db
        # On a shared (PostgreSQL) store a chat's worktree lives on whichever worker runs it: made
        # from the run's base commit (fetched from `remote`) and the chat's patches (see ensure_run).
        self._shared = shared
        self._remote = remote
        self._git = git
        self._notify = notify
        self._indexes = workspace.DiffIndexes(in_memory_root(index_root))
        self._trees = workspace.ChatTrees(git)
        # create_worktree runs `git worktree prune`, which deletes the admin directory of a worktree
        # another `git worktree add` is still creating (its add then fails): one creation at a time.
        self._create_lock = anyio.Lock()

    @property
    def root(self) -> Path:
        return self._git.work_tree

    def close(self) -> None:
        self._indexes.close()

    async def ensure_run(self, run: Run) -> tuple[GitRepo, str]:
        """The worktree (and base) a run's turn works in."""
        if not self._shared:
            return await self.ensure(run.row.session_id, run.row.chat_id)
        async with self._create_lock:
            return await self._ensure_shared(run)

    async def _ensure_shared(self, run: Run) -> tuple[GitRepo, str]:
        """The chat's worktree in this worker's clone. Kept warm when the chat's previous turn ran
        here (the applied patches since then become its new base); otherwise made afresh: the run's
        base commit, the chat's applied patches in order as its base, its pending patch on top."""
        chat_id = run.row.chat_id
        history = list(reversed(await patches.list_patches(self._db, None, chat_id=chat_id)))
        previous = [r for r in await subagents.for_chat(self._db, chat_id) if r.id != run.id and r.worktree]
        local = workspace.worktree_path(self._git.work_tree, chat_id)
        exists = local in await workspace.list_worktrees(self._git)
        if (
            exists
            and previous
            and previous[-1].worktree == str(local)
            and previous[-1].worker_host == procs.host_name()
        ):
            made = await workspace.create_worktree(self._git, chat_id)
            base = made.base_sha
            for p in history:
                if p.status == "applied" and p.base_sha == base:
                    base = await workspace.rebaseline(made.git, base, p.diff)
            return made.git, base
        if exists:
            await workspace.remove_worktree(self._git, chat_id, force=True)
        if run.row.base_sha is None:
            raise BooCodeError(f"run {run.id} names no base commit to start chat {chat_id} from")
        await workspace.fetch_commit(self._git, self._remote, run.row.base_sha)
        made = await workspace.create_worktree(self._git, chat_id, base=run.row.base_sha)
        self._indexes.forget(made.path)
        base = made.base_sha
        pending = None
        for p in history:
            if p.status == "applied":
                base = await workspace.rebaseline(made.git, base, p.diff)
            elif p.status == "pending":
                pending = p
        if base != made.base_sha:
            await workspace.run_git(made.git, "reset", "--quiet", "--hard", base)
        if pending is not None:
            await workspace.apply_to_worktree(made.git, pending.diff)
        return made.git, base

    async def ensure(self, session_id: str, chat_id: str) -> tuple[GitRepo, str]:
        """The chat's worktree (created on first use, or again if it was removed) and its base."""
        ready = await self._ready(session_id, chat_id)
        if ready is not None:
            return await self._trees.get(chat_id), ready
        async with self._create_lock:
            # Again under the lock: a pre-warm and the chat's first turn may both get here.
            chat = await self._chat(session_id, chat_id)
            if chat.base_sha is not None and _is_dir(chat.worktree):
                return await workspace.chat_worktree(self._git, chat_id), chat.base_sha
            made = await workspace.create_worktree(self._git, chat_id, base=chat.base_sha)
            self._indexes.forget(made.path)
            base = chat.base_sha or made.base_sha
            await chats.set_base(self._db, chat_id, base, made.branch)
        return made.git, base

    async def _chat(self, session_id: str, chat_id: str) -> ChatRow:
        chat = await chats.get(self._db, session_id, chat_id)
        if chat is None:
            raise BooCodeError(f"chat {chat_id!r} disappeared from the database")
        return chat

    async def _ready(self, session_id: str, chat_id: str) -> str | None:
        """The chat's base when its worktree is ready (None when it must be made)."""
        chat = await self._chat(session_id, chat_id)
        if chat.base_sha is not None and _is_dir(chat.worktree):
            return chat.base_sha
        return None

    def prepared(self, tree: GitRepo) -> bool:
        """Whether the worktree's diff index is ready (as it is from a chat's second turn on)."""
        return self._indexes.get(tree).prepared

    async def prepare(self, tree: GitRepo, base: str) -> None:
        """Get the worktree's diff index ready for `base` ahead of the diff; a failure only costs
        speed (the diff does it again and reports its error)."""
        try:
            await self._indexes.get(tree).prepare(base)
        except Exception as e:
            log.debug("preparing the diff index of %s failed: %s", tree.work_tree, e)

    async def changes(self, tree: GitRepo, base: str) -> workspace.WorktreeDiff:
        """The chat's worktree against its base, now."""
        return await self._indexes.get(tree).changes(base)

    async def record_patch(
        self, run: Run, base: str, changes: workspace.WorktreeDiff, *, failed: bool
    ) -> str | None:
        """`changes` (the chat's worktree against `base`) as a pending patch superseding the chat's
        older pending one; None when the worktree holds no change."""
        if not changes.text.strip():
            return None
        parsed = changes.parsed
        diff = changes.text
        files_json, hunks_json = parsed.to_json()
        patch_id = uuid.uuid4().hex
        session_id = run.row.session_id
        patch = patches.NewPatch(
            patch_id=patch_id,
            session_id=session_id,
            chat_id=run.row.chat_id,
            subagent_id=run.id,
            agent=run.row.agent,
            base_sha=base,
            diff=diff,
            hunks_json=hunks_json,
            files_json=files_json,
            file_count=parsed.file_count,
            hunk_count=parsed.hunk_count,
            additions=parsed.additions,
            deletions=parsed.deletions,
            failed_mid_turn=failed,
        )
        superseded = await patches.insert_superseding(self._db, patch)
        for old in superseded:
            self._notify(f"patches://{session_id}/{old}")
        self._notify(f"patches://{session_id}/{patch_id}")
        return patch_id


def _is_dir(path: str) -> bool:
    # A stat, cheaper than a trip to a worker thread: this is on the path of every turn.
    return Path(path).is_dir()
