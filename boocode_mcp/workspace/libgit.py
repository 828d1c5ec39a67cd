"""A worktree staged and diffed in-process, with libgit2 (through pygit2): no git process per turn.

After each turn BooCode needs what `git add -A` into a private index holding the chat's base, then
`git diff --cached --binary -M <base>`, would say. Two git processes cost more than the rest of a
warm turn together; libgit2 does the same work inside this process and keeps its state between
turns, so a turn pays for what changed since the last one, not for the whole tree or the whole
change:

- one private index per worktree tracks the worktree's files (stat data and object ids), and a
  walk of the worktree (`diff_to_workdir`, stat data first) stages only files changed since;
- the patch of each file is kept; a turn recomputes only the files it touched, or, when renames
  are possible and the set of added or deleted files changed, the rename pairing (from kept
  object ids, texts of unchanged files reused).

libgit2 never runs a command: no hook, fsmonitor, external diff, textconv, filter or credential
helper exists for it, whatever any config or `.gitattributes` says. And the repository is opened
without ever reading the worktree's `.git`: a private git directory of ours (under BooCode's own
directory) names the repository's common directory and the worktree explicitly, and holds the
private index. The worktree's own `.git` is still checked (`check_dot_git`) before each diff, as
for every git command.

Where libgit2 and git disagree, git decides: a file with a `working-tree-encoding` attribute
(git re-encodes it when staging; libgit2 cannot) raises `NeedsGitCli`, and the caller diffs with
the git CLI instead. Applying patches (`git apply`) and everything else stays with the git CLI.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import ConfigLevel, DeltaStatus, DiffFind, DiffFlag, DiffOption, RepositoryOpenFlag
from pygit2.errors import check_error
from pygit2.ffi import C, ffi

from boocode_mcp.errors import WorkspaceError
from boocode_mcp.workspace.diff import FileDiff, parse_unified_diff
from boocode_mcp.workspace.git import GitRepo

# The system config (/etc/gitconfig) is not read, as by every git command BooCode runs
# (GIT_CONFIG_NOSYSTEM): what libgit2 stages must be what BooCode's `git apply` later expects. A
# setting of libgit2 in this process, which only BooCode uses.
pygit2.settings.search_path[ConfigLevel.SYSTEM] = ""

# Staging: tracked files whose stat data changed are rehashed (and their stat data refreshed even
# when the content did not change), new files not ignored are listed one by one.
_STAGE = (
    DiffOption.INCLUDE_UNTRACKED
    | DiffOption.RECURSE_UNTRACKED_DIRS
    | DiffOption.INCLUDE_TYPECHANGE
    | DiffOption.UPDATE_INDEX
)
_UNTRACKED = DiffOption.INCLUDE_UNTRACKED | DiffOption.RECURSE_UNTRACKED_DIRS
# The patch: binary files as `git apply --binary` takes them. No INCLUDE_TYPECHANGE: a file turned
# into a symlink is a deletion and an addition, as git shows it.
_PATCH = DiffOption.SHOW_BINARY
# Renames as `git diff -M` finds them: a deleted file and an added one at least half similar,
# whitespace counted as git counts it (libgit2 ignores leading whitespace by default).
_RENAMES = DiffFind.FIND_RENAMES | DiffFind.FIND_DONT_IGNORE_WHITESPACE
_EXACT_PATHS = 1 << 12  # GIT_DIFF_DISABLE_PATHSPEC_MATCH: pathspecs are literal paths

Key = tuple[int, bytes, bytes, str, str, int, int, int]


class NeedsGitCli(Exception):
    """The worktree holds a change libgit2 would stage differently from git (the message says
    which); the caller diffs it with the git CLI."""


@dataclass(frozen=True)
class Section:
    """One file's part of a diff: its text and what it parses to."""

    key: Key
    path: bytes
    text: str
    file: FileDiff


@dataclass(frozen=True)
class Changes:
    """The worktree against a base: the diff's file sections, in path order."""

    base: str
    sections: tuple[Section, ...]

    @functools.cached_property
    def text(self) -> str:
        return "".join(s.text for s in self.sections)


class StagingArea:
    """A worktree staged into a private index, diffed against a base commit, turn after turn.

    Not thread-safe: one caller at a time (`DiffIndex` holds a lock). `directory` is ours alone.
    """

    def __init__(self, tree: GitRepo, directory: Path) -> None:
        self.tree = tree
        self._dir = directory
        # Whether the private index exists (made from the worktree's own index and a base).
        self._seeded = False
        # The base the state below is about, and (during a call) its tree.
        self._base: str | None = None
        self._base_tree: pygit2.Tree | None = None
        # Each path's sections (a path deleted and added again, as a file turned into a symlink,
        # has two), keyed by the path they are sorted by.
        self._sections: dict[bytes, list[Section]] = {}
        # Paths staged but not in the base, and paths of the base not staged.
        self._added: set[bytes] = set()
        self._deleted: set[bytes] = set()
        self._last: Changes | None = None
        # Directories holding a path staged since the index was made (their `.gitattributes`
        # decide how it was staged), and the stamps of every file that decides it.
        self._dirs: set[bytes] = {b""}
        self._rules: dict[str, Stamp] = {}
        # The stamps of every file that decides whether a staged file outside the base is ignored
        # (`.gitignore` of those directories, the exclude files), as of the last check.
        self._ignores: dict[str, Stamp] = {}
        # What the last call cost, by phase (seconds): staging, and the diff's text unless reused.
        self.timings: dict[str, float] = {}

    def reset(self) -> None:
        """Forget everything: the next call starts from the worktree's own index again."""
        self._seeded = False
        self._base = self._base_tree = self._last = None
        self._sections, self._added, self._deleted = {}, set(), set()
        self._dirs, self._rules, self._ignores = {b""}, {}, {}

    @property
    def seeded(self) -> bool:
        return self._seeded

    def prepare(self, base: str) -> None:
        """Make the private index now (it holds `base`'s tree), so the first diff need not."""
        if not self._seeded:
            self._open(base).free()

    def _open(self, base: str) -> pygit2.Repository:
        """The repository through the private git directory (made, with its index, on first use).

        Opened anew on each call: libgit2 caches parsed `.gitignore` and `.gitattributes` files
        and config, checked by mtime, size and inode only, and a file rewritten with its mtime
        put back would go unnoticed.
        """
        d = self._dir
        if not self._seeded:
            self._seed_files(base)
        try:
            repo = pygit2.Repository(str(d), RepositoryOpenFlag.NO_SEARCH)
            repo.workdir = str(self.tree.work_tree)
            if not self._seeded:
                try:
                    index = repo.index
                except pygit2.GitError:
                    # A format libgit2 does not read (a split or sparse index) or a damaged
                    # file: start without stat data.
                    (d / "index").unlink(missing_ok=True)
                    index = repo.index
                # read_tree keeps the stat data of entries whose object id and mode match the tree's.
                index.read_tree(_tree(repo, base, self.tree))
                index.write()
                self._seeded = True
                self._base = base
        except pygit2.GitError as e:
            raise WorkspaceError(f"cannot open the repository of {self.tree.work_tree}: {e}") from e
        return repo

    def _seed_files(self, base: str) -> None:
        d = self._dir
        d.mkdir(parents=True, exist_ok=True)
        # What libgit2 needs to open a worktree's git directory: the common directory it shares,
        # where the worktree is (`gitdir`: its `.git` path, which is never read), and a HEAD.
        (d / "commondir").write_text(f"{self.tree.common_dir}\n", encoding="utf-8")
        (d / "gitdir").write_text(f"{self.tree.work_tree / '.git'}\n", encoding="utf-8")
        (d / "HEAD").write_text("ref: refs/heads/boocode-private-index\n", encoding="utf-8")
        for name in ("index", "index.lock", "index.untracked"):
            (d / name).unlink(missing_ok=True)
        # Without an index of its own, every file is hashed once.
        with contextlib.suppress(OSError):
            _copy_with_mtime(self.tree.index_file, d / "index")

    def changes(self, base: str) -> tuple[Changes, bool]:
        """The worktree against commit `base` now, and whether that is the last call's answer
        (nothing changed since, same base)."""
        rules = {f: _stamp(f) for f in self._rules}
        if rules != self._rules:
            # How files are converted when staged (line endings, ident) may have changed: staged
            # ids of files untouched since may no longer be what staging them now gives. Start
            # over, as a fresh index of the base would.
            self.reset()
        started = time.perf_counter()
        repo = self._open(base)
        try:
            index = repo.index
            fresh = self._base != base or self._last is None
            self._base, self._base_tree = base, _tree(repo, base, self.tree)
            if fresh:
                self._stage(index)
                staged = time.perf_counter()
                self._recompute(repo, index)
                if self._reconcile(repo, index):
                    self._recompute(repo, index)
            else:
                before = self._added | self._deleted
                renames_before = bool(self._deleted)
                touched = self._stage(index)
                diff = self._track(repo, index, touched)
                fixed = self._reconcile(repo, index)
                if fixed:
                    touched |= fixed
                    diff = self._track(repo, index, fixed)
                staged = time.perf_counter()
                if not touched and self._last is not None:
                    self.timings = {"stage": staged - started}
                    return self._last, True
                moved = bool(touched & (before | self._added | self._deleted))
                if moved and (renames_before or self._deleted):
                    self._recompute(repo, index)
                else:
                    self._update(repo, index, touched, diff if not fixed else None)
            index.write()
        except pygit2.GitError as e:
            self.reset()
            raise WorkspaceError(f"cannot diff worktree {self.tree.work_tree}: {e}") from e
        except BaseException:
            # Half-updated state: start over next time.
            self.reset()
            raise
        finally:
            self._base_tree = None
            repo.free()
        ordered = tuple(s for path in sorted(self._sections) for s in _in_order(self._sections[path]))
        self._last = Changes(base, ordered)
        self.timings = {"stage": staged - started, "diff text": time.perf_counter() - staged}
        # As seen before this call's staging; files of directories first met now, as of now.
        self._rules = {f: rules[f] if f in rules else _stamp(f) for f in self._rule_files()}
        return self._last, False

    def _rule_files(self) -> list[str]:
        """Every file that decides how a staged file is converted: the `.gitattributes` of each
        directory that holds one, the repository's and the user's attributes and config files."""
        common, xdg = self.tree.common_dir, _xdg_git()
        extra = (common / "info" / "attributes", common / "config", _home() / ".gitconfig", xdg / "config")
        return self._in_dirs(b".gitattributes") + [str(p) for p in (*extra, xdg / "attributes")]

    def _ignore_files(self, repo: pygit2.Repository) -> list[str]:
        """Every file that decides whether a staged file is ignored: the `.gitignore` of each
        directory that holds one, the repository's exclude file and the user's."""
        config = repo.config
        excludes = str(config["core.excludesFile"]) if "core.excludesFile" in config else None
        extra = [
            self.tree.common_dir / "info" / "exclude",
            Path(excludes or _xdg_git() / "ignore").expanduser(),
        ]
        return self._in_dirs(b".gitignore") + [str(p) for p in extra]

    def _in_dirs(self, name: bytes) -> list[str]:
        root = os.fsencode(self.tree.work_tree)
        return [os.fsdecode(os.path.join(root, d, name)) for d in sorted(self._dirs)]

    def _stage(self, index: pygit2.Index) -> set[bytes]:
        """Stage what changed in the worktree since the last call; the paths touched."""
        touched: set[bytes] = set()
        root = os.fsencode(self.tree.work_tree)
        for delta in index.diff_to_workdir(_STAGE).deltas:
            new, old = delta.new_file, delta.old_file
            if new.flags & DiffFlag.EXISTS or _nested_repository(os.path.join(root, new.raw_path)):
                # A repository nested in the worktree is listed as a directory ("sub/"); staged, it
                # is a gitlink to its HEAD, as `git add` makes it.
                path = new.raw_path.rstrip(b"/")
                name = os.fsdecode(path)
                self._as_in_base(index, name)
                try:
                    index.add(name)
                except pygit2.GitError as e:
                    if os.path.isdir(os.path.join(self.tree.work_tree, name)):
                        raise WorkspaceError(
                            f"the worktree {self.tree.work_tree} holds a git repository at {name} with "
                            f"no commit checked out ({e}); git cannot stage that either: make a commit "
                            "in it or remove it"
                        ) from e
                    raise
                touched.add(path)
            else:
                index.remove(os.fsdecode(old.raw_path))
                touched.add(old.raw_path)
        for path in touched:
            self._dirs.update(_ancestors(path))
        return touched

    def _as_in_base(self, index: pygit2.Index, name: str) -> None:
        """Put the base's entry for `name` (or none) back in the index before staging the file:
        line-ending conversion (`text=auto`) looks at the index's version of a file, which must be
        the base's, as in an index of the base, not what an earlier turn staged."""
        assert self._base_tree is not None
        try:
            entry = self._base_tree[name]
        except (KeyError, UnicodeError):
            entry = None
        if entry is not None and not isinstance(entry, pygit2.Tree):
            index.add(pygit2.IndexEntry(name, entry.id, entry.filemode))
        elif name in index:
            index.remove(name)

    def _reconcile(self, repo: pygit2.Repository, index: pygit2.Index) -> set[bytes]:
        """Keep to what `git add -A` into an index of the base would stage: files of the base stay
        tracked even when ignored (one deleted, then written again, is staged again), and a new
        file is staged only while it is not ignored (one staged earlier leaves when a later
        `.gitignore` covers it). The paths changed."""
        touched: set[bytes] = set()
        for path in sorted(self._deleted):
            try:
                mode = os.lstat(os.path.join(self.tree.work_tree, os.fsdecode(path))).st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode):
                self._as_in_base(index, os.fsdecode(path))
                index.add(os.fsdecode(path))
                touched.add(path)
        ignores = {f: _stamp(f) for f in self._ignore_files(repo)}
        if self._added and (ignores != self._ignores or self._last is None):
            for path in self._added - self._untracked(repo, index):
                if os.fsdecode(path) in index:
                    index.remove(os.fsdecode(path))
                    touched.add(path)
        self._ignores = ignores
        return touched

    def _untracked(self, repo: pygit2.Repository, index: pygit2.Index) -> set[bytes]:
        """The files outside the base that are not ignored now: a walk over a copy of the index
        without them (the files there match their stat data, so nothing is rehashed)."""
        copy = self._dir / "index.untracked"
        index.write()
        _copy_with_mtime(self._dir / "index", copy)
        tracked = pygit2.Index(str(copy))
        for path in self._added:
            name = os.fsdecode(path)
            if name in tracked:
                tracked.remove(name)
        walk = _diff(repo, _UNTRACKED, workdir_of=tracked)
        return {d.new_file.raw_path.rstrip(b"/") for d in walk.deltas if d.status == DeltaStatus.UNTRACKED}

    def _track(self, repo: pygit2.Repository, index: pygit2.Index, paths: set[bytes]) -> pygit2.Diff | None:
        """Bring `_added` and `_deleted` up to date for `paths`; the diff of those paths."""
        if not paths:
            return None
        assert self._base_tree is not None
        diff = _diff(repo, _PATCH, tree=self._base_tree, index=index, paths=paths)
        kinds: dict[bytes, set[int]] = {}
        for delta in diff.deltas:
            kinds.setdefault(_sort_path(delta), set()).add(int(delta.status))
        for path in paths | set(kinds):
            self._added.discard(path)
            self._deleted.discard(path)
            found = kinds.get(path, set())
            if found == {DeltaStatus.ADDED}:
                self._added.add(path)
            elif found == {DeltaStatus.DELETED}:
                self._deleted.add(path)
        return diff

    def _update(
        self, repo: pygit2.Repository, index: pygit2.Index, paths: set[bytes], diff: pygit2.Diff | None
    ) -> None:
        """Replace the sections of `paths`, which no rename involves."""
        assert self._base_tree is not None
        if diff is None:
            diff = _diff(repo, _PATCH, tree=self._base_tree, index=index, paths=paths)
        fresh: dict[bytes, list[Section]] = {}
        for i, delta in enumerate(diff.deltas):
            section = self._section(repo, index, diff, i, delta)
            fresh.setdefault(section.path, []).append(section)
        for path in paths | set(fresh):
            self._sections.pop(path, None)
        self._sections.update(fresh)

    def _recompute(self, repo: pygit2.Repository, index: pygit2.Index) -> None:
        """The whole diff again, renames paired; the sections of unchanged files reused."""
        assert self._base_tree is not None
        diff = _diff(repo, _PATCH, tree=self._base_tree, index=index)
        diff.find_similar(flags=_RENAMES)
        kept = {s.key: s for sections in self._sections.values() for s in sections}
        self._sections, self._added, self._deleted = {}, set(), set()
        for i, delta in enumerate(diff.deltas):
            key = _key(delta)
            section = kept.get(key) or self._section(repo, index, diff, i, delta, key)
            self._sections.setdefault(section.path, []).append(section)
            if delta.status in (DeltaStatus.ADDED, DeltaStatus.RENAMED):
                self._added.add(delta.new_file.raw_path)
            if delta.status in (DeltaStatus.DELETED, DeltaStatus.RENAMED):
                self._deleted.add(delta.old_file.raw_path)

    def _section(
        self,
        repo: pygit2.Repository,
        index: pygit2.Index,
        diff: pygit2.Diff,
        i: int,
        delta: pygit2.DiffDelta,
        key: Key | None = None,
    ) -> Section:
        path = _sort_path(delta)
        if delta.status != DeltaStatus.DELETED and repo.get_attr(
            delta.new_file.raw_path, "working-tree-encoding"
        ):
            raise NeedsGitCli(
                f"{os.fsdecode(path)} has a working-tree-encoding attribute: git re-encodes such a "
                "file when staging it, libgit2 cannot"
            )
        patch = diff[i]
        data = patch.data if patch is not None else b""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Text that is not UTF-8 goes as a binary patch: a diff is always valid text, and
            # `git apply` takes it back byte for byte.
            text = self._binary_section(repo, index, delta)
        parsed = parse_unified_diff(text).files
        if len(parsed) != 1:
            raise WorkspaceError(f"cannot read the diff of {os.fsdecode(path)}: {text[:200]!r}")
        return Section(key or _key(delta), path, text, parsed[0])

    def _binary_section(self, repo: pygit2.Repository, index: pygit2.Index, delta: pygit2.DiffDelta) -> str:
        assert self._base_tree is not None
        old, new = delta.old_file.raw_path, delta.new_file.raw_path
        flags = _PATCH | DiffOption.FORCE_BINARY
        diff = _diff(repo, flags, tree=self._base_tree, index=index, paths={old, new})
        if delta.status == DeltaStatus.RENAMED:
            diff.find_similar(flags=_RENAMES)
        for i, d in enumerate(diff.deltas):
            if (d.status, d.old_file.raw_path, d.new_file.raw_path) == (delta.status, old, new):
                patch = diff[i]
                if patch is not None:
                    return patch.data.decode("ascii")
        raise WorkspaceError(f"cannot make a binary patch of {os.fsdecode(new)} in {self.tree.work_tree}")


Stamp = tuple[int, int, int, int] | None


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _nested_repository(path: bytes) -> bool:
    """Whether `path` is a repository nested in the worktree (whose delta does not always say that
    it exists)."""
    return os.path.isdir(path) and os.path.lexists(os.path.join(path, b".git"))


def _home() -> Path:
    return Path(os.environ.get("HOME", "/"))


def _xdg_git() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config") / "git"


def _ancestors(path: bytes) -> list[bytes]:
    parts = path.split(b"/")[:-1]
    return [b"/".join(parts[:i]) for i in range(len(parts) + 1)]


def _in_order(sections: list[Section]) -> list[Section]:
    """A path's sections as `git apply` takes them: its deletion before its addition (a file
    turned into a symlink, or a symlink into a file)."""
    return sorted(sections, key=lambda s: s.file.status != "deleted")


def _tree(repo: pygit2.Repository, base: str, tree: GitRepo) -> pygit2.Tree:
    try:
        return repo[base].peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise WorkspaceError(f"{base!r} is not a commit in {tree.work_tree}") from e


def _key(delta: pygit2.DiffDelta) -> Key:
    old, new = delta.old_file, delta.new_file
    return (
        int(delta.status),
        old.raw_path,
        new.raw_path,
        str(old.id),
        str(new.id),
        old.mode,
        new.mode,
        delta.similarity,
    )


def _sort_path(delta: pygit2.DiffDelta) -> bytes:
    """The path a section is sorted and kept by: the new one, the old one for a deletion."""
    if delta.status == DeltaStatus.DELETED:
        return delta.old_file.raw_path
    return delta.new_file.raw_path


def _copy_with_mtime(src: Path, dst: Path) -> None:
    # The copy keeps the file's mtime: an index's mtime is what its racy-entry check compares entries
    # with, and a copy stamped "now" would make a file changed in the same tick as the original was
    # written look unchanged.
    with open(src, "rb") as f:
        data = f.read()
        st = os.fstat(f.fileno())
    dst.write_bytes(data)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _diff(
    repo: pygit2.Repository,
    flags: int,
    *,
    tree: pygit2.Tree | None = None,
    index: pygit2.Index | None = None,
    paths: Iterable[bytes] = (),
    workdir_of: pygit2.Index | None = None,
) -> pygit2.Diff:
    """`tree` against `index`, or the worktree against `workdir_of`, with options pygit2's own
    methods do not take.

    The one place BooCode uses pygit2's low-level layer (its cffi `C` and `ffi`, and the pointers
    its objects wrap), pinned to the releases checked in pyproject.toml: the `a/` and `b/` prefixes
    are set (libgit2 otherwise follows the user's `diff.noprefix` and `diff.mnemonicPrefix`, and
    the patch would no longer apply with -p1), pathspecs are literal paths, and a worktree walk can
    use an index that is not the repository's own.
    """
    opts = ffi.new("git_diff_options *")
    check_error(C.git_diff_options_init(opts, 1))
    opts.flags = int(flags)
    opts.context_lines = 3
    opts.interhunk_lines = 0
    # Kept alive until the diff is made (libgit2 copies them into it).
    keep: list[Any] = [ffi.new("char[]", b"a/"), ffi.new("char[]", b"b/")]
    opts.old_prefix, opts.new_prefix = keep
    names = [ffi.new("char[]", p) for p in sorted(paths)]
    if names:
        array = ffi.new("char *[]", names)
        keep.append(array)
        opts.pathspec.strings = array
        opts.pathspec.count = len(names)
        opts.flags |= _EXACT_PATHS
    out = ffi.new("git_diff **")
    if workdir_of is not None:
        check_error(C.git_diff_index_to_workdir(out, repo._repo, workdir_of._index, opts))
    else:
        assert tree is not None and index is not None
        ctree = ffi.new("git_tree **")
        ffi.buffer(ctree)[:] = tree._pointer[:]
        check_error(C.git_diff_tree_to_index(out, repo._repo, ctree[0], index._index, opts))
    return pygit2.Diff.from_c(bytes(ffi.buffer(out)[:]), repo)
