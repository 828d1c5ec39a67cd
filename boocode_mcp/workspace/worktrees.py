"""A git worktree per chat: create, diff against its base, re-baseline, remove.

A chat's worktree lives at `<repo>/.boocode/worktrees/<chat_id>` on branch `boocode/<chat_id>`.
Its base (the commit its next patch is measured against) is kept reachable by the ref
`refs/boocode/bases/<chat_id>`. BooCode never touches a worktree's own index or HEAD: diffs are
computed in a temporary index (GIT_INDEX_FILE), so an agent may use git in its worktree freely.
Every git command on a worktree is pinned to the git directory the main repository recorded for it
(see `git.py`): what the worktree's own `.git` file says is checked, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import WorkspaceError
from boocode_mcp.procs import pid_alive
from boocode_mcp.workspace.diff import parse_unified_diff
from boocode_mcp.workspace.git import (
    BOOCODE_IDENTITY,
    GitRepo,
    TamperedWorktreeError,
    capture_head,
    check_dot_git,
    ensure_excluded,
    git_apply,
    open_repo,
    resolve_commit,
    run_git,
)

# Dots only between other characters: the id becomes a directory and part of ref names, so no
# "..", no leading dot, no ".lock" suffix.
_CHAT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")

log = logging.getLogger(__name__)

# BooCode's own index files: a format `DiffIndex` can read, in one file.
_PRIVATE_INDEX = (("index.version", "2"), ("core.splitIndex", "false"))

_DIFF_ARGS = (
    "diff",
    "--cached",
    "--binary",
    "-M",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


@dataclass(frozen=True)
class Worktree:
    """A chat's worktree: where it is, its branch, the commit its changes are measured against, and
    the repository git commands on it are pinned to."""

    path: Path
    branch: str
    base_sha: str
    git: GitRepo


def worktree_path(repo: Path, chat_id: str) -> Path:
    """Where the worktree of `chat_id` lives (no I/O)."""
    return repo / BOOCODE_DIR / "worktrees" / chat_id


def _check_chat_id(chat_id: str) -> None:
    if not _CHAT_ID_RE.fullmatch(chat_id) or chat_id.endswith(".lock") or len(chat_id) > 128:
        raise WorkspaceError(
            f"chat id {chat_id!r} cannot name a worktree: use letters, digits, '-', '_' and single dots"
        )


def _branch(chat_id: str) -> str:
    return f"boocode/{chat_id}"


def _base_ref(chat_id: str) -> str:
    return f"refs/boocode/bases/{chat_id}"


async def _ref_sha(repo: GitRepo, ref: str) -> str | None:
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    sha = result.out.strip()
    return sha if result.returncode == 0 and sha else None


def _admin_dir(repo: GitRepo, path: Path) -> Path | None:
    """The git directory the main repository recorded for its worktree at `path`: the entry of
    `<common dir>/worktrees/` whose `gitdir` names `path/.git` (usually the one named after it)."""
    root = repo.common_dir / "worktrees"
    want = os.path.realpath(path)

    def names(admin: Path) -> bool:
        try:
            recorded = Path((admin / "gitdir").read_text(encoding="utf-8", errors="replace").strip())
        except OSError:
            return False
        return recorded.name == ".git" and os.path.realpath(recorded.parent) == want

    usual = root / path.name
    if names(usual):
        return usual
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return None
    return next((admin for admin in entries if admin != usual and names(admin)), None)


async def chat_worktree(repo: Path | GitRepo, chat_id: str) -> GitRepo:
    """The chat's worktree as git commands on it are pinned: its work tree and the git directory
    the main repository recorded for it. A WorkspaceError when it has none."""
    _check_chat_id(chat_id)
    main = await open_repo(repo)
    path = worktree_path(main.work_tree, chat_id)
    admin = _admin_dir(main, path)
    if admin is None:
        raise WorkspaceError(f"chat {chat_id} has no worktree registered in {main.work_tree}")
    return main.linked(path, admin)


async def list_worktrees(repo: Path | GitRepo) -> list[Path]:
    """BooCode's worktrees of `repo` (those under .boocode/worktrees) whose directories exist."""
    main = await open_repo(repo)
    root = (main.work_tree / BOOCODE_DIR / "worktrees").resolve()
    result = await run_git(main, "worktree", "list", "--porcelain", "-z")
    found: list[Path] = []
    for item in result.stdout.split(b"\0"):
        if not item.startswith(b"worktree "):
            continue
        path = Path(item[len(b"worktree ") :].decode("utf-8", "surrogateescape"))
        if path.parent.resolve() == root and await anyio.Path(path).is_dir():
            found.append(worktree_path(main.work_tree, path.name))
    return sorted(found)


async def create_worktree(repo: Path | GitRepo, chat_id: str, base: str | None = None) -> Worktree:
    """The worktree of `chat_id` on branch boocode/<chat_id> at `base` (default HEAD).

    Idempotent: when the chat already has a worktree it is returned as is, with the chat's current
    base (moved by `rebaseline`) as its base_sha.
    """
    _check_chat_id(chat_id)
    main = await open_repo(repo)
    ensure_excluded(main)
    path = worktree_path(main.work_tree, chat_id)
    branch = _branch(chat_id)
    if path in await list_worktrees(main) and (path / ".git").exists():
        tree = await chat_worktree(main, chat_id)
        recorded = await _ref_sha(main, _base_ref(chat_id))
        if recorded is None:
            recorded = await resolve_commit(main, base) if base else await capture_head(tree)
        return Worktree(path, branch, recorded, tree)
    base_sha = await resolve_commit(main, base) if base else await capture_head(main)
    # A worktree whose directory was deleted by hand still holds its branch; forget it first.
    await run_git(main, "worktree", "prune")
    if path.exists():
        with contextlib.suppress(OSError):
            path.rmdir()
        if path.exists():
            raise WorkspaceError(
                f"{path} exists but is not a git worktree; move it away so BooCode can create the "
                f"worktree of chat {chat_id} there"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    await run_git(main, "worktree", "add", "--quiet", "-B", branch, str(path), base_sha)
    await run_git(main, "update-ref", _base_ref(chat_id), base_sha)
    return Worktree(path, branch, base_sha, await chat_worktree(main, chat_id))


async def _reset_index(tree: GitRepo, index: Path, base: str, *, seed: bool) -> None:
    """Make `index` hold exactly the tree of `base`, keeping stat data where it can.

    `read-tree -m` keeps the stat data of the entries that match `base`, so a later `git add`
    rehashes only what changed. With `seed`, the worktree's own index is copied first (a fresh
    index has no stat data); an index read-tree refuses (e.g. one left mid-merge) is replaced by a
    plain read of `base`.
    """
    env = {"GIT_INDEX_FILE": str(index)}
    if seed:
        _seed_index(tree.index_file, index)
    # On a missing index file (nothing to seed from) this is a plain read of `base`.
    result = await run_git(tree, "read-tree", "-m", base, env=env, check=False, config=_PRIVATE_INDEX)
    if result.returncode == 0:
        return
    _unlink(index)
    await run_git(tree, "read-tree", base, env=env, config=_PRIVATE_INDEX)


def _seed_index(own: Path, index: Path) -> None:
    # Local file operations on small files: not worth a worker thread each.
    _unlink(index)
    if own.is_file():
        # copy2 keeps the file's mtime, which git's racy-entry check compares entries against: a
        # copy stamped "now" would make a file changed in the same second as the worktree's own
        # index was written (same size, same inode) look unchanged, and its change would be lost.
        shutil.copy2(own, index)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _stage(tree: GitRepo, index: Path) -> dict[str, str]:
    """`git add` every file of the worktree (untracked ones included) into `index`; the
    environment that points git at it."""
    # `.boocode/` never belongs in a patch. Excluding it through info/exclude (shared by every
    # worktree) rather than an exclude pathspec: `git add` fails on a pathspec naming an ignored path.
    ensure_excluded(tree)
    env = {"GIT_INDEX_FILE": str(index)}
    await run_git(tree, "add", "-A", "--", ".", env=env, config=_PRIVATE_INDEX)
    return env


@contextlib.asynccontextmanager
async def _staged(tree: GitRepo, base: str) -> AsyncIterator[dict[str, str]]:
    """A temporary index holding the worktree's files (untracked ones included) over `base`.

    Yields the environment that points git at it.
    """
    with tempfile.TemporaryDirectory(prefix="boocode-index-") as tmp:
        index = Path(tmp) / "index"
        await _reset_index(tree, index, base, seed=True)
        yield await _stage(tree, index)


async def _diff_staged(tree: GitRepo, base: str, env: dict[str, str]) -> str:
    raw = (await run_git(tree, *_DIFF_ARGS, base, "--", env=env)).stdout
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    with tempfile.TemporaryDirectory(prefix="boocode-attr-") as tmp:
        attributes = Path(tmp) / "attributes"
        attributes.write_text(
            "".join(f"{_attr_pattern(p)} -diff\n" for p in _non_utf8_paths(raw)), encoding="utf-8"
        )
        raw = (
            await run_git(
                tree, *_DIFF_ARGS, base, "--", env=env, config=[("core.attributesFile", str(attributes))]
            )
        ).stdout
    return raw.decode("utf-8", "replace")


async def diff_worktree(tree: GitRepo, base: str) -> str:
    """The worktree's changes against commit `base` as a git binary unified diff, new files included.

    Text that is not UTF-8 is emitted as a binary patch, so the result is always valid text that
    `git apply` takes back unchanged.
    """
    if not await anyio.Path(tree.work_tree).is_dir():
        raise WorkspaceError(f"worktree {tree.work_tree} does not exist")
    async with _staged(tree, base) as env:
        return await _diff_staged(tree, base, env)


class DiffIndex:
    """A private index for diffing one worktree again and again (a chat's worktree after each turn).

    Gives what `diff_worktree` gives, with as few git processes as the answer allows. It keeps two
    index files: one holding exactly the base (with the stat data of the worktree's files, so `git
    add` rehashes only files that differ from it), made by `prepare` ahead of time and again only
    when the base moves; and one it copies that into and stages the worktree in (`git add`), which
    is then diffed against the base. When the staged entries are those of the previous diff against
    the same base, the worktree has not changed since and that diff is the answer: no `git diff`
    runs. The worktree's own index is never touched.
    """

    def __init__(self, tree: GitRepo, index_file: Path) -> None:
        self.tree = tree
        self._index = index_file
        self._base_index = index_file.with_name(index_file.name + ".base")
        self._lock = anyio.Lock()
        # The base `_base_index` holds exactly, if it is ready.
        self._base: str | None = None
        # Whether the files may be stale or half-written (a failed or cancelled git): start over.
        self._seed = True
        # (base, fingerprint of the staged entries, diff) of the last diff.
        self._last: tuple[str, bytes, str] | None = None

    async def prepare(self, base: str) -> None:
        """Make the index of `base` now, so the next `diff(base)` skips that step."""
        async with self._lock:
            await self._prepare(base)

    async def _prepare(self, base: str) -> None:
        if self._base == base:
            return
        self._base = None
        if self._seed:
            # Left by a git killed mid-write (a cancelled diff); only this object uses the files.
            for path in (self._index, self._base_index):
                path.with_name(path.name + ".lock").unlink(missing_ok=True)
        try:
            await _reset_index(self.tree, self._base_index, base, seed=self._seed)
        except BaseException:
            self._seed = True
            raise
        self._seed = False
        self._base = base

    async def diff(self, base: str) -> str:
        """The worktree's changes against commit `base`, exactly as `diff_worktree` reports them."""
        # A stat, cheaper than a trip to a worker thread: this is on the path of every turn.
        if not self.tree.work_tree.is_dir():
            raise WorkspaceError(f"worktree {self.tree.work_tree} does not exist")
        async with self._lock:
            await self._prepare(base)
            try:
                started = time.perf_counter()
                # copy2: the copy keeps the file's mtime, which git's racy-entry check relies on.
                shutil.copy2(self._base_index, self._index)
                env = await _stage(self.tree, self._index)
                staged = time.perf_counter()
                fingerprint = _staged_fingerprint(self._index, len(base) // 2)
                last = self._last
                if fingerprint is not None and last is not None and last[:2] == (base, fingerprint):
                    _log_timings(staged - started, None)
                    return last[2]
                self._last = None
                text = await _diff_staged(self.tree, base, env)
                if fingerprint is not None:
                    self._last = (base, fingerprint, text)
                _log_timings(staged - started, time.perf_counter() - staged)
                return text
            except BaseException:
                self._seed = True
                self._base = None
                raise

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def discard(self) -> None:
        """Delete the index files (and locks a killed git may have left); only when not busy."""
        if self.busy:
            return
        self._base = None
        self._last = None
        self._seed = True
        for path in (self._index, self._base_index):
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".lock").unlink(missing_ok=True)


def _log_timings(stage_s: float, diff_s: float | None) -> None:
    """What a diff cost, at DEBUG with the record attribute `timings` (what the bench breaks down):
    `git add`, and `git diff` unless the last diff was reused."""
    timings = {"git add": stage_s} if diff_s is None else {"git add": stage_s, "git diff": diff_s}
    log.debug("diff index timings", extra={"timings": timings, "diff_reused": diff_s is None})


# An index file larger than this (some thousands of entries) is not read in Python: a `git diff`
# costs less than parsing it.
_FINGERPRINT_MAX_BYTES = 1 << 19


def _staged_fingerprint(index: Path, hash_size: int) -> bytes | None:
    """A digest of an index's entries (mode, object id, stage, path: not stat data), or None when
    it cannot be read cheaply (too large, or a format version other than 2 and 3)."""
    try:
        data = index.read_bytes() if index.stat().st_size <= _FINGERPRINT_MAX_BYTES else b""
    except OSError:
        return None
    if len(data) < 12 or data[:4] != b"DIRC":
        return None
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3):
        return None
    digest = hashlib.sha256()
    pos = 12
    # Each entry: 40 bytes of stat data and mode, the object id, 2 bytes of flags (2 more when
    # extended), the path, then NUL padding to a multiple of 8 bytes.
    for _ in range(count):
        start = pos
        mode_at, id_at = pos + 24, pos + 40
        flags_at = id_at + hash_size
        if flags_at + 2 > len(data):
            return None
        (flags,) = struct.unpack_from(">H", data, flags_at)
        path_at = flags_at + 2 + (2 if version == 3 and flags & 0x4000 else 0)
        end = data.find(b"\0", path_at)
        if end < 0:
            return None
        digest.update(data[mode_at : mode_at + 4])
        digest.update(data[id_at:flags_at])
        digest.update(bytes((flags >> 12 & 3,)))
        digest.update(data[path_at : end + 1])
        pos = start + ((end - start) // 8 + 1) * 8
    return digest.digest()


class DiffIndexes:
    """The `DiffIndex` of each recently diffed worktree, in one private directory; `close` deletes it.

    With `root`, that directory is `root/<pid>`, and the directories a killed process left there
    are deleted when the next one starts; without, it is a temporary directory.
    """

    def __init__(self, root: Path | None = None, max_entries: int = 64) -> None:
        self._root = root
        self._max = max_entries
        self._dir: Path | None = None
        self._entries: dict[Path, DiffIndex] = {}
        self._counter = 0

    def _directory(self) -> Path:
        if self._dir is None:
            if self._root is None:
                self._dir = Path(tempfile.mkdtemp(prefix="boocode-indexes-"))
            else:
                self._root.mkdir(parents=True, exist_ok=True)
                for stale in self._root.iterdir():
                    if stale.name.isdigit() and not pid_alive(int(stale.name)):
                        shutil.rmtree(stale, ignore_errors=True)
                self._dir = self._root / str(os.getpid())
                self._dir.mkdir(exist_ok=True)
        return self._dir

    def get(self, tree: GitRepo) -> DiffIndex:
        """The worktree's index (created on first use); the least recently used beyond the cap
        are dropped."""
        worktree = tree.work_tree
        entry = self._entries.pop(worktree, None)
        if entry is not None and entry.tree != tree:
            # The worktree was made anew (another git directory): its old index is of no use.
            entry.discard()
            entry = None
        if entry is None:
            self._counter += 1
            entry = DiffIndex(tree, self._directory() / f"index-{self._counter}")
            idle = [w for w, e in self._entries.items() if not e.busy]
            for dropped in idle[: max(0, len(self._entries) + 1 - self._max)]:
                # Least recently used first; an index in use stays (its diff must finish on it).
                self._entries.pop(dropped).discard()
        self._entries[worktree] = entry
        return entry

    def forget(self, worktree: Path) -> None:
        """Drop the worktree's index (the worktree was created anew)."""
        entry = self._entries.pop(worktree, None)
        if entry is not None:
            entry.discard()

    def close(self) -> None:
        self._entries.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _non_utf8_paths(raw: bytes) -> list[str]:
    """Paths of the file sections of a diff whose bytes are not valid UTF-8."""
    paths: list[str] = []
    for section in re.split(rb"(?m)^(?=diff --git )", raw):
        try:
            section.decode("utf-8")
        except UnicodeDecodeError:
            # quotePath keeps the header lines ASCII, so they parse even when the body does not decode.
            header = section.split(b"\n@@", 1)[0].decode("utf-8", "replace")
            paths.extend(parse_unified_diff(header).paths)
    return paths


def _attr_pattern(path: str) -> str:
    escaped = re.sub(r"([\\*?\[\]!#])", r"\\\1", path)
    if any(c in escaped for c in ' \t"\n'):
        body = escaped.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
        return f'"/{body}"'
    return f"/{escaped}"


async def is_dirty(tree: GitRepo, base: str) -> bool:
    """Whether the worktree's files differ from commit `base` (untracked files count)."""
    async with _staged(tree, base) as env:
        result = await run_git(tree, "diff", "--cached", "--quiet", base, "--", env=env, check=False)
    if result.returncode not in (0, 1):
        raise WorkspaceError(f"git diff failed in {tree.work_tree}: {result.err}")
    return result.returncode == 1


async def rebaseline(tree: GitRepo, base: str, diff: str) -> str:
    """Record `base` + `diff` as the chat's new base commit and return its sha.

    The commit is built in a temporary index (the worktree's files and index stay as they are) and
    kept reachable by refs/boocode/bases/<chat_id>, so later diffs hold only newer work.
    """
    chat_id = tree.work_tree.name
    _check_chat_id(chat_id)
    if not diff.strip():
        await run_git(tree, "update-ref", _base_ref(chat_id), base)
        return await resolve_commit(tree, base)
    with tempfile.TemporaryDirectory(prefix="boocode-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **BOOCODE_IDENTITY}
        await run_git(tree, "read-tree", base, env=env)
        applied = await git_apply(tree, diff, "--cached", env=env)
        if applied.returncode != 0:
            raise WorkspaceError(
                f"cannot re-baseline worktree {tree.work_tree}: its patch does not apply to "
                f"{base[:12]}: {applied.err}"
            )
        tree_sha = (await run_git(tree, "write-tree", env=env)).out.strip()
        message = f"BooCode: base of chat {chat_id} after its patch was applied"
        sha = (
            await run_git(tree, "commit-tree", "--no-gpg-sign", tree_sha, "-p", base, "-m", message, env=env)
        ).out.strip()
    await run_git(tree, "update-ref", _base_ref(chat_id), sha)
    return sha


async def revert_worktree(tree: GitRepo, diff: str) -> None:
    """Take a discarded patch's changes back out of the worktree's files (reverse apply).

    Only the worktree's files change, never its index; a patch that no longer reverses cleanly (the
    files moved on since) is a WorkspaceError and nothing is written, since git apply is atomic.
    """
    if not diff.strip():
        return
    result = await git_apply(tree, diff, "-R")
    if result.returncode != 0:
        raise WorkspaceError(
            f"cannot discard the patch from worktree {tree.work_tree}: its files changed since the patch "
            f"was recorded ({result.err}); nothing was changed"
        )


async def apply_to_worktree(tree: GitRepo, diff: str) -> None:
    """Put a patch's changes into the worktree's files (a worker resuming a chat another worker ran:
    its pending work, on the base it was measured against)."""
    if not diff.strip():
        return
    result = await git_apply(tree, diff)
    if result.returncode != 0:
        raise WorkspaceError(f"cannot restore the chat's pending patch in {tree.work_tree}: {result.err}")


async def remove_worktree(repo: Path | GitRepo, chat_id: str, *, force: bool = False) -> bool:
    """Remove the chat's worktree, branch and base ref; False when it had none.

    A worktree holding changes beyond its base is kept (WorkspaceError) unless `force`; so is one
    whose `.git` was tampered with (TamperedWorktreeError), whose changes cannot be told safely.
    """
    _check_chat_id(chat_id)
    main = await open_repo(repo)
    path = worktree_path(main.work_tree, chat_id)
    await run_git(main, "worktree", "prune")
    registered = path in await list_worktrees(main)
    removed = registered
    if registered:
        tree = await chat_worktree(main, chat_id)
        if not force:
            base = await _ref_sha(main, _base_ref(chat_id)) or await capture_head(tree)
            if await is_dirty(tree, base):
                raise WorkspaceError(
                    f"worktree {path} of chat {chat_id} has changes that are in no applied patch; "
                    "apply or discard them first, or remove it with force"
                )
        extra = ("--force", "--force") if force else ("--force",)
        try:
            await run_git(main, "worktree", "remove", *extra, str(path))
        except WorkspaceError:
            try:
                check_dot_git(tree)
            except TamperedWorktreeError:
                # git refuses to remove a worktree whose .git is not its own; the directory goes, and
                # the prune then drops its git directory.
                shutil.rmtree(path)
                await run_git(main, "worktree", "prune")
            else:
                raise
    elif path.exists():
        if not force:
            raise WorkspaceError(f"{path} is not a registered git worktree; remove it with force or by hand")
        shutil.rmtree(path)
        removed = True
    await run_git(main, "branch", "-D", _branch(chat_id), check=False)
    await run_git(main, "update-ref", "-d", _base_ref(chat_id), check=False)
    return removed
