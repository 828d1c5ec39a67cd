"""A worktree staged in-process, with libgit2 (through pygit2): no `git add` process per turn.

After each turn BooCode needs what `git add -A` into a private index holding the chat's base, then
`git diff --cached --binary -M --full-index <base>` (with the settings of `DIFF_CONFIG`), would
say. The staging is done here, in this process, and kept between turns, so a turn pays for what
changed since the last one:

- one private index per worktree tracks the worktree's files (stat data and object ids), and a
  walk of the worktree (`diff_to_workdir`, stat data first, C code) stages only files changed
  since; a turn that changed nothing is known to have changed nothing without a git process;
- it says which paths it staged anew, and whether rename pairing could have changed, so the caller
  needs the diff of those paths only;
- those paths' sections of the diff are written here too when each is a plain text file whose
  section is certain to be git's byte for byte (the common turn: files edited or added, none
  deleted); git makes the diff otherwise (`worktrees.py`): rename pairing, binary patches, symlinks,
  gitlinks, diff drivers, text that is not UTF-8, names git quotes.

libgit2 never runs a command: no hook, fsmonitor, filter or credential helper exists for it,
whatever any config or `.gitattributes` says. And the repository is opened without ever reading the
worktree's `.git`: a private git directory of ours (under BooCode's own directory) names the
repository's common directory and the worktree explicitly, and holds the private index. The
worktree's own `.git` is still checked (`check_dot_git`) before each diff, as for every git command.

Where libgit2 and git disagree, git decides: a file with a `working-tree-encoding` attribute (git
re-encodes it when staging; libgit2 cannot) raises `NeedsGitCli`, and the caller stages with the git
CLI instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import ConfigLevel, DeltaStatus, DiffFlag, DiffOption, RepositoryOpenFlag
from pygit2.ffi import ffi

from boocode_mcp.errors import WorkspaceError
from boocode_mcp.workspace.git import GitRepo, Stamp, file_stamp

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

# How every diff BooCode makes is made, whatever the user's git config says: git's defaults, set in
# command-line scope on each `git diff` (worktrees.py), and the same here for the sections libgit2
# writes. A patch's text then depends on the worktree alone, and the two writers agree byte for
# byte (pinned by a randomized test against git).
CONTEXT_LINES = 3
DIFF_CONFIG: tuple[tuple[str, str], ...] = (
    ("diff.algorithm", "myers"),
    ("diff.context", str(CONTEXT_LINES)),
    ("diff.interHunkContext", "0"),
    ("diff.indentHeuristic", "true"),
    ("diff.suppressBlankEmpty", "false"),
    ("diff.orderFile", "/dev/null"),
    ("core.bigFileThreshold", "512m"),
)
# libgit2 decides text or binary by its own rule (git's is a NUL byte); the rule here is git's.
_RENDER_FLAGS = DiffOption.FORCE_TEXT | DiffOption.INDENT_HEURISTIC
# Sections written here at most for this many paths, of files of at most this size: beyond, one
# git process costs less than this process's time on the event loop.
_RENDER_MAX_PATHS = 64
_RENDER_MAX_BYTES = 1 << 20
_REGULAR_MODES = frozenset({0o100644, 0o100755})


def _attribute_cache_flush() -> Callable[[pygit2.Repository], bool] | None:
    """libgit2's `git_attr_cache_flush`, which pygit2 does not bind: it empties a repository's cache
    of parsed `.gitattributes` and `.gitignore` files (libgit2 checks a cached file only by mtime,
    size and inode, so a file rewritten with its mtime put back would go unnoticed), and the next
    lookup reads them again. With it a repository can stay open between stagings and still read
    those files afresh each time; without it (None), one is opened for each staging.

    The one place BooCode reaches below pygit2: the function is looked up through pygit2's own
    extension module (dlsym searches the libraries it links, the libgit2 pygit2 ships among them),
    and called with the repository's `git_repository *` (`Repository._repo`, the pointer pygit2's
    own modules pass to libgit2), both stable within the pygit2 range BooCode pins.
    """
    try:
        flush = ctypes.CDLL(pygit2._libgit2.__file__).git_attr_cache_flush
    except (AttributeError, OSError):
        return None
    flush.argtypes = [ctypes.c_void_p]
    flush.restype = ctypes.c_int

    def call(repo: pygit2.Repository) -> bool:
        pointer = getattr(repo, "_repo", None)
        if pointer is None:
            return False
        return int(flush(int(ffi.cast("uintptr_t", pointer)))) == 0

    return call


_FLUSH_ATTRIBUTES = _attribute_cache_flush()


class NeedsGitCli(Exception):
    """The worktree holds a change libgit2 would stage differently from git (the message says
    which); the caller stages it with the git CLI."""


@dataclass(frozen=True)
class Staged:
    """What a call to `StagingArea.stage` did.

    `touched`: the paths whose staged entry changed since the last call. `whole`: the diff must be
    made anew for every path (first call, another base, or a rename pairing may have changed: a
    path touched was or is added or deleted while the diff holds a deletion); otherwise only the
    sections of `touched` can differ from the last diff. `sections`: when not `whole`, and asked
    for, those sections as git writes them (path -> text, "" for a path whose file is as in the
    base), written here; None when git must write them.
    """

    index_file: Path
    touched: frozenset[bytes]
    whole: bool
    sections: dict[str, str] | None = None


class StagingArea:
    """A worktree staged into a private index against a base commit, turn after turn.

    Not thread-safe: one caller at a time (`DiffIndex` holds a lock). `directory` is ours alone.
    """

    def __init__(self, tree: GitRepo, directory: Path) -> None:
        self.tree = tree
        self._dir = directory
        self.index_file = directory / "index"
        # Whether the private index exists (made from the worktree's own index and a base).
        self._seeded = False
        # The base the state below is about, and (during a call) its tree.
        self._base: str | None = None
        self._base_tree: pygit2.Tree | None = None
        # Paths staged but not in the base, paths of the base not staged, and paths staged as
        # another kind of file than in the base (git shows those as a deletion and an addition).
        self._added: set[bytes] = set()
        self._deleted: set[bytes] = set()
        self._retyped: set[bytes] = set()
        # Directories holding a path staged since the index was made (their `.gitattributes`
        # decide how it was staged), and the stamps of every file that decides it.
        self._dirs: set[bytes] = {b""}
        self._rules: dict[str, Stamp] = {}
        # The stamps of every file that decides whether a staged file outside the base is ignored
        # (`.gitignore` of those directories, the exclude files), as of the last check.
        self._ignores: dict[str, Stamp] | None = None
        # The repository, kept open between stagings (see _open), and the base's tree in it.
        self._repo: pygit2.Repository | None = None
        self._tree_of: tuple[str, pygit2.Tree] | None = None
        self._index_stamp: Stamp = None

    def reset(self) -> None:
        """Forget everything: the next call starts from the worktree's own index again."""
        self._close()
        self._seeded = False
        self._base = self._base_tree = None
        self._added, self._deleted, self._retyped = set(), set(), set()
        self._dirs, self._rules, self._ignores = {b""}, {}, None

    @property
    def seeded(self) -> bool:
        return self._seeded

    def prepare(self, base: str) -> None:
        """Make the private index now (it holds `base`'s tree), so the first call need not."""
        if not self._seeded:
            self._done(self._open(base))

    def close(self) -> None:
        """Close the repository kept open (the index and the state stay)."""
        self._close()

    def _close(self) -> None:
        repo, self._repo, self._tree_of = self._repo, None, None
        if repo is not None:
            repo.free()

    def _done(self, repo: pygit2.Repository) -> None:
        if repo is not self._repo:
            repo.free()

    def _write_index(self, index: pygit2.Index) -> None:
        index.write()
        # What the file is once written: a repository kept open is used again only while it is so
        # (its index in memory is the file's, racy-entry stamp included).
        self._index_stamp = file_stamp(self.index_file)

    def _open(self, base: str) -> pygit2.Repository:
        """The repository through the private git directory (made, with its index, on first use).

        libgit2 caches parsed `.gitignore` and `.gitattributes` files, checked by mtime, size and
        inode only: a file rewritten with its mtime put back would go unnoticed. So the repository
        stays open between calls only where that cache can be emptied at each call
        (`_FLUSH_ATTRIBUTES`), else it is opened anew. (Its config is re-read by libgit2 when a
        config file's stat data change, and one rewritten keeping them changes the stamps of
        `_rules`, which starts everything over.)
        """
        if self._repo is not None:
            if (
                file_stamp(self.index_file) == self._index_stamp
                and _FLUSH_ATTRIBUTES is not None
                and _FLUSH_ATTRIBUTES(self._repo)
            ):
                return self._repo
            self._close()
        d = self._dir
        if not self._seeded:
            self._seed_files()
        try:
            repo = pygit2.Repository(str(d), RepositoryOpenFlag.NO_SEARCH)
            repo.workdir = str(self.tree.work_tree)
            if not self._seeded:
                try:
                    index = repo.index
                except pygit2.GitError:
                    # A format libgit2 does not read (a split or sparse index) or a damaged
                    # file: start without stat data.
                    self.index_file.unlink(missing_ok=True)
                    index = repo.index
                # read_tree keeps the stat data of entries whose object id and mode match the tree's.
                index.read_tree(_tree(repo, base, self.tree))
                self._write_index(index)
                self._seeded = True
                self._base = base
        except pygit2.GitError as e:
            raise WorkspaceError(f"cannot open the repository of {self.tree.work_tree}: {e}") from e
        if _FLUSH_ATTRIBUTES is not None:
            self._repo = repo
        return repo

    def _base_tree_in(self, repo: pygit2.Repository, base: str) -> pygit2.Tree:
        kept = self._tree_of
        if kept is not None and kept[0] == base and repo is self._repo:
            return kept[1]
        found = _tree(repo, base, self.tree)
        if repo is self._repo:
            self._tree_of = (base, found)
        return found

    def _seed_files(self) -> None:
        d = self._dir
        d.mkdir(parents=True, exist_ok=True)
        # What libgit2 needs to open a worktree's git directory: the common directory it shares,
        # where the worktree is (`gitdir`: its `.git` path, which is never read), and a HEAD.
        (d / "commondir").write_text(f"{self.tree.common_dir}\n", encoding="utf-8")
        (d / "gitdir").write_text(f"{self.tree.work_tree / '.git'}\n", encoding="utf-8")
        (d / "HEAD").write_text("ref: refs/heads/boocode-private-index\n", encoding="utf-8")
        for name in ("index", "index.lock"):
            (d / name).unlink(missing_ok=True)
        # Without an index of its own, every file is hashed once.
        with contextlib.suppress(OSError):
            _copy_with_mtime(self.tree.index_file, self.index_file)

    def stage(self, base: str, *, render: bool = False) -> Staged:
        """Stage the worktree as `git add -A` into an index of commit `base` would, now; with
        `render`, write the sections of the paths touched too where that is certain to give git's."""
        rules = {f: file_stamp(f) for f in self._rules}
        if rules != self._rules or (self._seeded and self._base != base):
            # How files are converted when staged (line endings, ident) may have changed: staged
            # ids of files untouched since may no longer be what staging them now gives; or the
            # base moved. Start over, as a fresh index of the base would.
            self.reset()
        whole = not self._seeded
        repo = self._open(base)
        try:
            index = repo.index
            self._base_tree = self._base_tree_in(repo, base)
            moved_before = self._added | self._deleted | self._retyped
            deletions_before = bool(self._deleted or self._retyped)
            touched = self._walk(index)
            touched |= self._reconcile(repo, index)
            for path in touched:
                self._track(index, path)
            self._check_encodings(repo, index, touched)
            # Also when nothing was staged anew: the walk refreshed stat data, which spares the next
            # walk rehashing those files.
            self._write_index(index)
            # A rename pairs a deleted path with an added one: which pairs git finds can change only
            # when a path touched now was or is one of them.
            moved = bool(touched & (moved_before | self._added | self._deleted | self._retyped))
            whole = whole or (moved and (deletions_before or bool(self._deleted or self._retyped)))
            sections = None
            if render and not whole and 0 < len(touched) <= _RENDER_MAX_PATHS:
                sections = self._sections(repo, index, touched)
        except pygit2.GitError as e:
            self.reset()
            raise WorkspaceError(f"cannot stage worktree {self.tree.work_tree}: {e}") from e
        except BaseException:
            # Half-updated state: start over next time.
            self.reset()
            raise
        finally:
            self._base_tree = None
            self._done(repo)
        # As seen before this call's staging; files of directories first met now, as of now.
        self._rules = {f: rules[f] if f in rules else file_stamp(f) for f in self._rule_files()}
        return Staged(self.index_file, frozenset(touched), whole, sections)

    def _sections(
        self, repo: pygit2.Repository, index: pygit2.Index, touched: set[bytes]
    ) -> dict[str, str] | None:
        """The diff sections of `touched` (none of them deleted or renamed: the diff is not made
        whole), each as git writes it; None as soon as one is not certain to be git's."""
        sections: dict[str, str] = {}
        for path in touched:
            name = _plain_name(path)
            if name is None or repo.get_attr(name, "diff") is not None:
                # A name git quotes or pads; a diff driver (funcname patterns, binary, -diff).
                return None
            base = self._base_entry(name)
            staged = index[name] if name in index else None  # noqa: SIM401 (an Index has no get)
            old = None if base is None else (base.filemode, base.id)
            new = None if staged is None else (staged.mode, staged.id)
            section = _section(repo, name, old, new)
            if section is None:
                return None
            sections[name] = section
        return sections

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

    def _walk(self, index: pygit2.Index) -> set[bytes]:
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
        entry = self._base_entry(name)
        if entry is not None:
            index.add(pygit2.IndexEntry(name, entry.id, entry.filemode))
        elif name in index:
            index.remove(name)

    def _base_entry(self, name: str) -> pygit2.Object | None:
        """The base tree's entry of file (or gitlink, or symlink) `name`, if it has one."""
        assert self._base_tree is not None
        try:
            entry = self._base_tree[name]
        except (KeyError, UnicodeError):
            return None
        return None if isinstance(entry, pygit2.Tree) else entry

    def _track(self, index: pygit2.Index, path: bytes) -> None:
        """Bring `_added` and `_deleted` up to date for `path`."""
        name = os.fsdecode(path)
        base = self._base_entry(name)
        staged = index[name] if name in index else None  # noqa: SIM401 (an Index has no get)
        for kept in (self._added, self._deleted, self._retyped):
            kept.discard(path)
        if staged is not None and base is None:
            self._added.add(path)
        elif base is not None and staged is None:
            self._deleted.add(path)
        elif base is not None and staged is not None and stat.S_IFMT(base.filemode ^ staged.mode):
            self._retyped.add(path)

    def _reconcile(self, repo: pygit2.Repository, index: pygit2.Index) -> set[bytes]:
        """Keep to what `git add -A` into an index of the base would stage: files of the base stay
        tracked even when ignored (one deleted, then written again, is staged again), and a new
        file is staged only while it is not ignored (one staged earlier leaves when a later
        `.gitignore` covers it). The paths changed."""
        touched: set[bytes] = set()
        for path in sorted(self._deleted):
            name = os.fsdecode(path)
            try:
                mode = os.lstat(os.path.join(self.tree.work_tree, name)).st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode) and name not in index:
                self._as_in_base(index, name)
                index.add(name)
                touched.add(path)
        ignores = {f: file_stamp(f) for f in self._ignore_files(repo)}
        if self._added and ignores != self._ignores:
            for path in sorted(self._added - self._untracked(index)):
                if os.fsdecode(path) in index:
                    index.remove(os.fsdecode(path))
                    touched.add(path)
        self._ignores = ignores
        return touched

    def _untracked(self, index: pygit2.Index) -> set[bytes]:
        """Which of the staged files outside the base are not ignored now: a walk of the worktree
        over a copy of the index without them (the other files match their stat data, so nothing is
        rehashed; the copy, the index of a second handle on the private git directory, is never
        written)."""
        self._write_index(index)
        other = pygit2.Repository(str(self._dir), RepositoryOpenFlag.NO_SEARCH)
        try:
            other.workdir = str(self.tree.work_tree)
            tracked = other.index
            for path in self._added:
                if os.fsdecode(path) in tracked:
                    tracked.remove(os.fsdecode(path))
            walk = tracked.diff_to_workdir(_UNTRACKED)
            return {
                d.new_file.raw_path.rstrip(b"/") for d in walk.deltas if d.status == DeltaStatus.UNTRACKED
            }
        finally:
            other.free()

    def _check_encodings(self, repo: pygit2.Repository, index: pygit2.Index, paths: set[bytes]) -> None:
        for path in paths:
            name = os.fsdecode(path)
            if name in index and repo.get_attr(path, "working-tree-encoding"):
                raise NeedsGitCli(
                    f"{name} has a working-tree-encoding attribute: git re-encodes such a file when "
                    "staging it, libgit2 cannot"
                )


_Entry = tuple[int, pygit2.Oid]


def _plain_name(path: bytes) -> str | None:
    """`path` when git writes it as it is in a diff's headers (printable ASCII, no quote or
    backslash, which git quotes); None otherwise."""
    if not all(0x20 <= b < 0x7F for b in path) or b'"' in path or b"\\" in path:
        return None
    return path.decode("ascii")


def _text(repo: pygit2.Repository, entry: _Entry | None) -> bytes | None:
    """A file's bytes when git diffs it as UTF-8 text (no NUL byte, which makes it binary to git,
    and valid UTF-8, which BooCode's patches are; at most `_RENDER_MAX_BYTES`); None otherwise."""
    if entry is None:
        return b""
    if entry[0] not in _REGULAR_MODES:
        return None
    data: bytes = repo[entry[1]].read_raw()
    if len(data) > _RENDER_MAX_BYTES or b"\0" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return data


def _section(repo: pygit2.Repository, name: str, old: _Entry | None, new: _Entry | None) -> str | None:
    """The section `git diff --cached --binary -M --full-index` (with `DIFF_CONFIG`) writes for file
    `name`, from `old` (its base entry) to `new` (its staged entry), either possibly absent: git's
    extended headers, written here, and libgit2's hunks; None when the file is not text as above."""
    if old == new:
        return ""
    old_data, new_data = _text(repo, old), _text(repo, new)
    if old_data is None or new_data is None:
        return None
    parts = [f"diff --git a/{name} b/{name}\n"]
    if old is None:
        assert new is not None
        parts.append(f"new file mode {new[0]:o}\n")
    elif new is None:
        parts.append(f"deleted file mode {old[0]:o}\n")
    elif old[0] != new[0]:
        parts.append(f"old mode {old[0]:o}\nnew mode {new[0]:o}\n")
    old_id, new_id = (str(e[1]) if e is not None else None for e in (old, new))
    if old_id == new_id:
        return "".join(parts)
    zero = "0" * len(old_id or new_id or "")
    same_mode = f" {old[0]:o}" if old is not None and new is not None and old[0] == new[0] else ""
    parts.append(f"index {old_id or zero}..{new_id or zero}{same_mode}\n")
    patch = pygit2.Patch.create_from(
        old_data, new_data, name, name, flag=_RENDER_FLAGS, context_lines=CONTEXT_LINES, interhunk_lines=0
    )
    text = patch.data
    hunks = text.find(b"\n@@ ")
    if hunks >= 0:
        # git pads a name holding a space with a tab on these two lines (so a reader can tell
        # where it ends); libgit2's own header is not used.
        pad = "\t" if " " in name else ""
        parts.append(f"--- a/{name}{pad}\n" if old is not None else "--- /dev/null\n")
        parts.append(f"+++ b/{name}{pad}\n" if new is not None else "+++ /dev/null\n")
        try:
            # Hunks of UTF-8 files are UTF-8 (a hunk header's quoted line is cut where a character
            # ends, as git cuts it); should they not be, git makes the diff, as a binary patch.
            parts.append(text[hunks + 1 :].decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return "".join(parts)


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


def _tree(repo: pygit2.Repository, base: str, tree: GitRepo) -> pygit2.Tree:
    try:
        return repo[base].peel(pygit2.Tree)
    except (KeyError, ValueError, pygit2.GitError) as e:
        raise WorkspaceError(f"{base!r} is not a commit in {tree.work_tree}") from e


def _copy_with_mtime(src: Path, dst: Path) -> None:
    # The copy keeps the file's mtime: an index's mtime is what its racy-entry check compares entries
    # with, and a copy stamped "now" would make a file changed in the same tick as the original was
    # written look unchanged.
    with open(src, "rb") as f:
        data = f.read()
        st = os.fstat(f.fileno())
    dst.write_bytes(data)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
