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
import functools
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import WorkspaceError
from boocode_mcp.lru import Lru
from boocode_mcp.procs import pid_alive
from boocode_mcp.workspace.diff import FileDiff, ParsedDiff, parse_unified_diff
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
from boocode_mcp.workspace.libgit import DIFF_CONFIG, NeedsGitCli, Staged, StagingArea

# Dots only between other characters: the id becomes a directory and part of ref names, so no
# "..", no leading dot, no ".lock" suffix.
_CHAT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worktree:
    """A chat's worktree: where it is, its branch, the commit its changes are measured against, and
    the repository git commands on it are pinned to."""

    path: Path
    branch: str
    base_sha: str
    git: GitRepo


@functools.lru_cache(maxsize=1024)
def worktree_path(repo: Path, chat_id: str) -> Path:
    """Where the worktree of `chat_id` lives (no I/O; asked several times for each spawn and view,
    and the same each time)."""
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


class ChatTrees:
    """`chat_worktree` of each chat, kept while neither the worktree's directory nor the record of
    it in the main repository's admin directory was replaced or rewritten: two stats on a chat's
    later turns instead of reading that record and resolving both paths."""

    def __init__(self, main: GitRepo, max_entries: int = 256) -> None:
        self._main = main
        self._kept: Lru[str, tuple[GitRepo, tuple[int, ...]]] = Lru(max_entries)

    async def get(self, chat_id: str) -> GitRepo:
        kept = self._kept.get(chat_id)
        if kept is not None and _linked_stamp(kept[0]) == kept[1]:
            return kept[0]
        tree = await chat_worktree(self._main, chat_id)
        stamp = _linked_stamp(tree)
        if stamp is not None:
            self._kept.put(chat_id, (tree, stamp))
        return tree


def _linked_stamp(tree: GitRepo) -> tuple[int, ...] | None:
    """The worktree directory itself (not a symlink: lstat) and its admin directory's `gitdir`
    record, which `chat_worktree` checks names it; a rewritten record has a new ctime whatever
    its mtime says."""
    try:
        work = os.lstat(tree.work_tree)
        record = os.stat(tree.git_dir / "gitdir")
    except OSError:
        return None
    if not stat.S_ISDIR(work.st_mode):
        return None
    return (work.st_dev, work.st_ino, record.st_dev, record.st_ino, record.st_size, record.st_mtime_ns,
            record.st_ctime_ns)  # fmt: skip


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


@dataclass(frozen=True)
class WorktreeDiff:
    """A worktree's changes against a base: the diff's text and its files."""

    text: str
    parsed: ParsedDiff


class DiffIndex:
    """The diff of one worktree against its base, again and again (a chat's worktree after each turn).

    Gives what `diff_worktree` gives, which is what `git add -A` into an index of the base and then
    `git diff --cached --binary -M --full-index <base>` give: the worktree is staged into a private
    index in this process (libgit2, see `libgit.py`: a stat walk, only files changed since the last
    call hashed), and that index is diffed. The state kept between calls makes a call pay for what
    changed since the last one: a worktree that did not change is answered with the last diff (no
    git process); a turn that changed some files gets the sections of those files only, replacing
    theirs in the last diff, written in this process when they are plain text files (no git
    process), else by one `git diff` of those files; the whole diff is made again by git only when
    a rename pairing may have changed. The worktree's own index is never written.

    One call at a time. The staging runs on the event loop when the last one took under `INLINE_S`
    (a trip to a worker thread and back costs more, milliseconds when the machine is busy), else in
    a worker thread; a cancelled call still finishes its (in-process) staging before the
    cancellation is seen, so no state is left half-written.
    """

    def __init__(self, tree: GitRepo, directory: Path) -> None:
        self.tree = tree
        self._dir = directory
        self._area = StagingArea(tree, directory)
        self._lock = anyio.Lock()
        # Set once libgit2 turned out to stage a file of this worktree differently from git: the
        # git CLI stages it from then on.
        self._git_cli: str | None = None
        # How long the last staging took (seconds), None before the first.
        self._last_s: float | None = None
        # The last diff, by file, and the base it is against; None when the private index may hold
        # what no diff has been made of (a failed or cancelled `git diff`).
        self._last: _Sections | None = None

    @property
    def prepared(self) -> bool:
        """Whether `prepare` has nothing to do (the private index is made, or git stages instead)."""
        return self._git_cli is not None or self._area.seeded

    async def prepare(self, base: str) -> None:
        """Make the private index now, so the next `changes(base)` skips that step."""
        async with self._lock:
            if self._git_cli is None and not self._area.seeded:
                await anyio.to_thread.run_sync(self._area.prepare, base)

    async def diff(self, base: str) -> str:
        """The worktree's changes against commit `base`, exactly as `diff_worktree` reports them."""
        return (await self.changes(base)).text

    async def changes(self, base: str) -> WorktreeDiff:
        """The worktree's changes against commit `base`, with the diff's files."""
        # A stat, cheaper than a trip to a worker thread: this is on the path of every turn.
        if not self.tree.work_tree.is_dir():
            raise WorkspaceError(f"worktree {self.tree.work_tree} does not exist")
        if self.tree.chat_worktree:
            check_dot_git(self.tree)
        # `.boocode/` never belongs in a patch: excluded through info/exclude, shared by every worktree.
        ensure_excluded(self.tree)
        if not _SHA_RE.fullmatch(base):
            base = await resolve_commit(self.tree, base)
        async with self._lock:
            if self._git_cli is None:
                inline = self._last_s is not None and self._last_s < INLINE_S and self._area.seeded
                # Sections written while staging are of use only on top of the last diff.
                render = self._last is not None and self._last.base == base
                try:
                    if inline:
                        staged = self._timed_stage(base, render)
                    else:
                        staged = await anyio.to_thread.run_sync(self._timed_stage, base, render)
                except NeedsGitCli as e:
                    self._git_cli = str(e)
                    self._area.reset()
                    self._last = None
                    log.info("staging %s with the git CLI from now on: %s", self.tree.work_tree, e)
                else:
                    return await self._diff_staged(base, staged)
            started = time.perf_counter()
            text = await _git_cli_diff(self.tree, base)
            _log_timings({"git add + git diff": time.perf_counter() - started})
            return WorktreeDiff(text, parse_unified_diff(text))

    def _timed_stage(self, base: str, render: bool) -> Staged:
        started = time.perf_counter()
        try:
            return self._area.stage(base, render=render)
        except BaseException:
            self._last_s = None
            raise
        finally:
            if self._last_s is not None or self._area.seeded:
                self._last_s = time.perf_counter() - started

    async def _diff_staged(self, base: str, staged: Staged) -> WorktreeDiff:
        """The diff of the private index as staged: the last one, the last one with the sections
        of the paths touched made again (written while staging, or by git), or all of it made again."""
        stage_s = self._last_s or 0.0
        last, self._last = self._last, None
        # Only the sections of the paths touched can differ from the last diff.
        on_last = last if last is not None and last.base == base and not staged.whole else None
        if on_last is not None and not staged.touched:
            self._last = on_last
            _log_timings({"stage": stage_s}, reused=True)
            return on_last.diff
        if on_last is not None and staged.sections is not None:
            written = sorted(staged.sections)
            self._last = on_last.replaced(written, "".join(staged.sections[p] for p in written))
            _log_timings({"stage": stage_s}, paths=written, written=True)
            return self._last.diff
        started = time.perf_counter()
        env = {"GIT_INDEX_FILE": str(staged.index_file)}
        paths: list[str] | None = None
        if on_last is None or len(staged.touched) > _MAX_PATHS:
            found = _Sections.of(base, await _diff_index(self.tree, base, env))
        else:
            paths = sorted(os.fsdecode(p) for p in staged.touched)
            found = on_last.replaced(paths, await _diff_index(self.tree, base, env, paths))
        self._last = found
        _log_timings({"stage": stage_s, "git diff": time.perf_counter() - started}, paths=paths)
        return found.diff

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def close_repository(self) -> None:
        """Close the repository its staging keeps open (opened again by the next diff); only when
        not busy."""
        if not self.busy:
            self._area.close()

    def discard(self) -> None:
        """Delete the private index and what was kept with it; only when not busy."""
        if self.busy:
            return
        self._area.reset()
        self._last = None
        shutil.rmtree(self._dir, ignore_errors=True)


# A diff whose last staging took less than this stages on the event loop (see `DiffIndex`): a few
# small files changed in a small tree. A turn that changes much more stalls the loop once, that long.
INLINE_S = 0.003
# More paths touched than this: one `git diff` of everything rather than a command line of paths.
_MAX_PATHS = 200


@dataclass(frozen=True)
class _Sections:
    """A diff cut into its files: path (the new one; the old one of a deletion) → the text of its
    sections and what they parse to. A path has two sections when it changed kind (a file turned
    into a symlink: its deletion, then its addition)."""

    base: str
    files: dict[str, tuple[str, tuple[FileDiff, ...]]]

    @classmethod
    def of(cls, base: str, text: str) -> _Sections:
        files: dict[str, tuple[str, tuple[FileDiff, ...]]] = {}
        for section in _file_sections(text):
            parsed = parse_unified_diff(section).files
            if len(parsed) != 1:
                raise WorkspaceError(f"cannot read a section of git's diff: {section[:200]!r}")
            text_before, files_before = files.get(parsed[0].path, ("", ()))
            files[parsed[0].path] = (text_before + section, (*files_before, parsed[0]))
        return cls(base, files)

    def replaced(self, paths: list[str], text: str) -> _Sections:
        """These sections with those of `paths` made again (`text`: the diff of those paths)."""
        files = dict(self.files)
        for path in paths:
            files.pop(path, None)
        files.update(_Sections.of(self.base, text).files)
        # git's order: by path, bytewise (a rename where its new path sorts).
        ordered = sorted(files, key=os.fsencode)
        return _Sections(self.base, {path: files[path] for path in ordered})

    @functools.cached_property
    def diff(self) -> WorktreeDiff:
        text = "".join(t for t, _ in self.files.values())
        return WorktreeDiff(text, ParsedDiff(tuple(f for _, fs in self.files.values() for f in fs)))


def _file_sections(text: str) -> list[str]:
    """A diff's text cut before each `diff --git` line (no line of a hunk or of a binary patch can
    start so)."""
    if not text:
        return []
    starts = [0] if text.startswith("diff --git ") else []
    at = text.find("\ndiff --git ")
    while at >= 0:
        starts.append(at + 1)
        at = text.find("\ndiff --git ", at + 1)
    if starts[:1] != [0]:
        raise WorkspaceError(f"git's diff does not start with a file header: {text[:200]!r}")
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _log_timings(
    timings: dict[str, float], *, reused: bool = False, paths: list[str] | None = None, written: bool = False
) -> None:
    """What a diff cost, at DEBUG (what the bench breaks down), with the record attributes
    `timings` (phase → seconds), `diff_reused` (no git process ran: the last diff was the answer),
    `diffed_paths` (how many paths the diff was limited to; None: all of them) and
    `sections_written` (those paths' sections were written while staging: no git process ran)."""
    extra = {
        "timings": timings,
        "diff_reused": reused,
        "diffed_paths": None if paths is None else len(paths),
        "sections_written": written,
    }
    log.debug("diff index timings", extra=extra)


_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


async def diff_worktree(tree: GitRepo, base: str) -> str:
    """The worktree's changes against commit `base` as a git binary unified diff, new files included.

    Text that is not UTF-8 is emitted as a binary patch, so the result is always valid text that
    `git apply` takes back unchanged.
    """
    with tempfile.TemporaryDirectory(prefix="boocode-index-") as tmp:
        return await DiffIndex(tree, Path(tmp) / "index").diff(base)


_IN_MEMORY_PREFIX = "indexes-"


def in_memory_root(root: Path) -> Path:
    """Where to keep the files `DiffIndexes(root)` would keep under `root`: a directory of this
    user's in a filesystem held in memory when there is one (`$XDG_RUNTIME_DIR`, else `/dev/shm`),
    else `root`.

    A private index is rewritten after every turn that changed something, and replacing a file on
    a disk filesystem costs a journal commit (milliseconds when the disk is busy); in memory it
    costs nothing. The directory must be this user's own and closed to others (mode 0700), else it
    is not used. Its name is derived from `root`, so two workspaces never share one.
    """
    digest = hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:16]
    for base in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if not base or not os.path.isdir(base):
            continue
        mine = Path(base) / f"boocode-{os.getuid()}"
        try:
            mine.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(mine)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return mine / f"{_IN_MEMORY_PREFIX}{digest}"
    return root


def _sweep(root: Path) -> None:
    """Delete the index directories under `root` of processes no longer alive."""
    with contextlib.suppress(OSError):
        for stale in root.iterdir():
            if stale.name.isdigit() and not pid_alive(int(stale.name)):
                shutil.rmtree(stale, ignore_errors=True)


class DiffIndexes:
    """The `DiffIndex` of each recently diffed worktree, in one private directory; `close` deletes it.

    With `root`, that directory is `root/<pid>`, and the directories a killed process left there
    are deleted when the next one starts; without, it is a temporary directory.
    """

    def __init__(self, root: Path | None = None, max_entries: int = 64, max_open: int = 8) -> None:
        self._root = root
        self._max = max_entries
        self._open_max = max_open
        self._dir: Path | None = None
        self._entries: dict[Path, DiffIndex] = {}
        self._counter = 0

    def _directory(self) -> Path:
        if self._dir is None:
            if self._root is None:
                self._dir = Path(tempfile.mkdtemp(prefix="boocode-indexes-"))
            else:
                self._root.mkdir(parents=True, exist_ok=True)
                _sweep(self._root)
                if self._root.name.startswith(_IN_MEMORY_PREFIX):
                    # Beside it, the indexes of other workspaces (in memory, this user's): those a
                    # killed process left for a workspace that never starts again would stay
                    # until the machine restarts.
                    for other in self._root.parent.glob(f"{_IN_MEMORY_PREFIX}*"):
                        if other != self._root:
                            _sweep(other)
                            with contextlib.suppress(OSError):
                                other.rmdir()
                self._dir = self._root / str(os.getpid())
                # (Again if another workspace's sweep took the directory while it was empty.)
                self._dir.mkdir(parents=True, exist_ok=True)
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
        # A repository kept open holds its object database's files open: only the most recently
        # used indexes keep theirs.
        for other in list(self._entries.values())[: -self._open_max]:
            other.close_repository()
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
            if self._root is not None:
                # Gone once empty (another process of the workspace may still keep indexes there).
                with contextlib.suppress(OSError):
                    self._root.rmdir()


# --- the git CLI, for what libgit2 stages differently ---------------------------------------

# BooCode's own index files: one file, in a format any git reads.
_PRIVATE_INDEX = (("index.version", "2"), ("core.splitIndex", "false"))

_DIFF_ARGS = (
    "diff",
    "--cached",
    "--binary",
    "-M",
    # Whole object ids: a stored patch names its blobs unambiguously however the repository grows
    # (git's abbreviations lengthen with it), and the sections written in-process name them so too.
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


async def _git_cli_diff(tree: GitRepo, base: str) -> str:
    """`diff_worktree` by git processes: the worktree staged (`git add -A`) into a temporary index
    of `base` that starts with the stat data of the worktree's own index, then `git diff --cached`."""
    with tempfile.TemporaryDirectory(prefix="boocode-index-") as tmp:
        index = Path(tmp) / "index"
        env = {"GIT_INDEX_FILE": str(index)}
        own = tree.index_file
        if own.is_file():
            # copy2 keeps the file's mtime, which git's racy-entry check compares entries against: a
            # copy stamped "now" would make a file changed in the same second as the worktree's own
            # index was written (same size, same inode) look unchanged, and its change would be lost.
            shutil.copy2(own, index)
        # `read-tree -m` keeps the stat data of the entries that match `base`, so `git add` rehashes
        # only what changed; an index it refuses (e.g. one left mid-merge) is replaced.
        result = await run_git(tree, "read-tree", "-m", base, env=env, check=False, config=_PRIVATE_INDEX)
        if result.returncode != 0:
            index.unlink(missing_ok=True)
            await run_git(tree, "read-tree", base, env=env, config=_PRIVATE_INDEX)
        await run_git(tree, "add", "-A", "--", ".", env=env, config=_PRIVATE_INDEX)
        return await _diff_index(tree, base, env)


async def _diff_index(tree: GitRepo, base: str, env: dict[str, str], paths: Sequence[str] = ()) -> str:
    """`git diff --cached --binary -M --full-index` (with `DIFF_CONFIG`) of the index `env` names
    against `base` (of `paths` only, when given: literal paths). Text that is not UTF-8 goes as a
    binary patch (the `-diff` attribute for those files), so the diff is always valid text that
    `git apply` takes back byte for byte."""
    env = {**env, "GIT_LITERAL_PATHSPECS": "1"} if paths else env
    raw = (await run_git(tree, *_DIFF_ARGS, base, "--", *paths, env=env, config=DIFF_CONFIG)).stdout
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    with tempfile.TemporaryDirectory(prefix="boocode-attributes-") as tmp:
        attributes = Path(tmp) / "attributes"
        attributes.write_text(
            "".join(f"{_attr_pattern(p)} -diff\n" for p in _non_utf8_paths(raw)), encoding="utf-8"
        )
        config = [*DIFF_CONFIG, ("core.attributesFile", str(attributes))]
        raw = (await run_git(tree, *_DIFF_ARGS, base, "--", *paths, env=env, config=config)).stdout
    return raw.decode("utf-8", "replace")


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
    return await diff_worktree(tree, base) != ""


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
