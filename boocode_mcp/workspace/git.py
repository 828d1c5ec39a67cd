"""Running the git CLI defensively, and the repository-level facts BooCode needs.

An agent controls every byte of its worktree, a `.git` file and `.gitattributes` included, and git
runs commands named by configuration (an fsmonitor hook, hooks, external diff and textconv
programs, filter drivers, ssh and credential helpers). So every git command BooCode runs goes
through `run_git` with a `GitRepo`, which

- pins the repository and work tree it acts on (`--git-dir`, `--work-tree`): git never follows a
  worktree's `.git` file, and a chat worktree's `.git` must still point at the git directory the
  main repository recorded when BooCode created it (`TamperedWorktreeError` otherwise, before any
  git runs);
- switches every config-driven command off in command-line scope, which overrides every config
  file: fixed settings for single-valued keys, and for named drivers (`filter.<name>.*`,
  `diff.<name>.*`) the names read from the repository's effective configuration, again whenever
  a file it came from changes;
- runs without the system config, with an environment cleared of every `GIT_*` variable a parent
  process might have set (identity and the choice of global config file aside), output
  unlocalized (git's messages are parsed), and nothing that prompts.

The user's own config files are read (identity, excludes, line endings); an agent cannot reach
them, and the commands they name are switched off like any other.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import WorkspaceError

# Variables a parent process may set that git reads, kept: they name who commits, and which file
# is the user's global config (its commands are switched off like any other's).
_KEPT_GIT_VARS = frozenset(
    {
        "GIT_CONFIG_GLOBAL",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
    }
)

# Set on every command, in command-line scope (above every config file and include).
FIXED_CONFIG: tuple[tuple[str, str], ...] = (
    # Output BooCode's parsers rely on.
    ("core.quotePath", "true"),
    ("color.ui", "false"),
    ("diff.noprefix", "false"),
    ("diff.mnemonicPrefix", "false"),
    ("diff.relative", "false"),
    ("diff.submodule", "short"),
    # Config-driven commands, all off. /dev/null as the hooks directory: it can never hold a hook
    # (an empty directory could be written to).
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("diff.external", ""),
    ("core.sshCommand", ""),
    ("core.askPass", ""),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    # No transport at all (BooCode never fetches): no remote helper, proxy or upload-pack hook runs.
    ("protocol.allow", "never"),
    ("submodule.recurse", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
)

# Variables of named drivers that hold a command, and the value that switches each off.
_DRIVER_OFF = {
    "filter": {"clean": "", "smudge": "", "process": "", "required": "false"},
    "diff": {"command": "", "textconv": ""},
}
_INCLUDE_KEY = re.compile(r"^include(?:if\..*)?\.path$")

# Identity for the commits BooCode makes for itself (re-baselines), and the fallback for a user
# commit on a machine with no configured identity.
BOOCODE_IDENTITY = {
    "GIT_AUTHOR_NAME": "BooCode",
    "GIT_AUTHOR_EMAIL": "boocode@localhost",
    "GIT_COMMITTER_NAME": "BooCode",
    "GIT_COMMITTER_EMAIL": "boocode@localhost",
}

EXCLUDE_LINE = f"/{BOOCODE_DIR}/"
# A .git file git writes is one short line; anything longer is not one.
_DOT_GIT_MAX = 4096


class TamperedWorktreeError(WorkspaceError):
    """A chat worktree's `.git` no longer points at the git directory BooCode created it with."""


@dataclass(frozen=True)
class GitResult:
    """A finished git command: exit code and raw output."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


Stamp = tuple[int, int, int, int] | None


def file_stamp(path: str | Path) -> Stamp:
    """What tells a file changed (mtime, ctime, size, inode); None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class ConfigCommands:
    """The named drivers (filters, diff drivers) a repository's configuration defines, to switch
    each off by name; read again whenever a file they were read from (or an include names) changes.

    One per main repository, shared with its worktrees; a git directory's answer is kept until a
    stamp of its files changes.
    """

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[tuple[Path, Stamp], ...], tuple[tuple[str, str], ...]]] = {}

    async def overrides(self, repo: GitRepo) -> tuple[tuple[str, str], ...]:
        known = self._known.get(repo.git_dir)
        if known is not None and all(file_stamp(p) == s for p, s in known[0]):
            return known[1]
        files = set(_default_config_files(repo))
        if known is not None:
            files.update(p for p, _ in known[0])
        # Stamped before reading: a change while git reads them is seen by the next call.
        stamps = {p: file_stamp(p) for p in files}
        result = await _run(
            _argv(repo, ("config", "--list", "-z", "--show-origin")),
            str(repo.work_tree),
            git_env(config=FIXED_CONFIG),
            None,
        )
        if result.returncode != 0:
            raise WorkspaceError(f"cannot read the git configuration of {repo.work_tree}: {result.err}")
        overrides, read_from = _parse_config_listing(result.stdout, repo.work_tree)
        for p in read_from:
            stamps.setdefault(p, file_stamp(p))
        self._known[repo.git_dir] = (tuple(stamps.items()), overrides)
        return overrides


def _default_config_files(repo: GitRepo) -> Iterable[Path]:
    home = Path(os.environ.get("HOME", "/"))
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if global_config := os.environ.get("GIT_CONFIG_GLOBAL"):
        yield Path(global_config)
    yield home / ".gitconfig"
    yield (Path(xdg) if xdg else home / ".config") / "git" / "config"
    yield repo.common_dir / "config"
    yield repo.git_dir / "config.worktree"


def _parse_config_listing(raw: bytes, cwd: Path) -> tuple[tuple[tuple[str, str], ...], set[Path]]:
    """(the overrides that switch off every driver command listed, every file the listing came
    from or names as an include) from `git config --list -z --show-origin`."""
    overrides: dict[str, str] = {}
    files: set[Path] = set()
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    for origin, entry in zip(fields[0::2], fields[1::2], strict=False):
        source: Path | None = None
        if origin.startswith("file:"):
            source = cwd / Path(origin[len("file:") :]).expanduser()
            files.add(source)
        key, _, value = entry.partition("\n")
        section, _, rest = key.partition(".")
        name, _, variable = rest.rpartition(".")
        off = _DRIVER_OFF.get(section, {}).get(variable) if name else None
        if off is not None:
            overrides[key] = off
        elif _INCLUDE_KEY.match(key) and value:
            target = Path(value).expanduser()
            if not target.is_absolute() and source is not None:
                target = source.parent / target
            files.add(target)
    return tuple(overrides.items()), files


@dataclass(frozen=True)
class GitRepo:
    """A repository as BooCode runs git on it: the work tree and git directory every command is
    pinned to. `chat_worktree` is set on a chat's worktree, whose `.git` file is checked before
    each command."""

    work_tree: Path
    git_dir: Path
    common_dir: Path
    chat_worktree: bool = False
    commands: ConfigCommands = field(default_factory=ConfigCommands, compare=False, repr=False)

    @property
    def index_file(self) -> Path:
        return self.git_dir / "index"

    @property
    def exclude_file(self) -> Path:
        return self.common_dir / "info" / "exclude"

    def linked(self, work_tree: Path, git_dir: Path) -> GitRepo:
        """A chat worktree of this repository, at `work_tree` with admin directory `git_dir`."""
        return GitRepo(work_tree, git_dir, self.common_dir, chat_worktree=True, commands=self.commands)

    def scratch(self, work_tree: Path) -> GitRepo:
        """This repository's git directory over another work tree (a scratch copy of some files)."""
        return GitRepo(work_tree, self.git_dir, self.common_dir, commands=self.commands)


def check_dot_git(tree: GitRepo) -> None:
    """Raise TamperedWorktreeError unless the chat worktree's `.git` is the regular file git wrote,
    naming its git directory."""
    dot_git = tree.work_tree / ".git"
    problem: str | None = None
    try:
        fd = os.open(dot_git, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        problem = "is missing"
    except OSError as exc:
        problem = "is a symbolic link" if os.path.islink(dot_git) else f"cannot be read ({exc.strerror})"
    else:
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                problem = "is a directory"
            elif not stat.S_ISREG(st.st_mode) or st.st_size > _DOT_GIT_MAX:
                problem = "is not a .git file"
            else:
                text = os.read(fd, _DOT_GIT_MAX).decode("utf-8", "replace")
                problem = _dot_git_text_problem(tree, text)
        finally:
            os.close(fd)
    if problem is not None:
        raise TamperedWorktreeError(
            f"the .git of worktree {tree.work_tree} {problem}; it must be the file naming the worktree's "
            f"git directory {tree.git_dir}. Something in the worktree replaced it, so BooCode runs no "
            f"git command there: restore it (one line, `gitdir: {tree.git_dir}`) or start a new chat"
        )


def _dot_git_text_problem(tree: GitRepo, text: str) -> str | None:
    lines = text.splitlines()
    if len(lines) != 1 or not lines[0].startswith("gitdir: "):
        return "is not a .git file"
    if lines[0] == f"gitdir: {tree.git_dir}":
        # As git wrote it: the very path (no need to resolve both, a stat per component each).
        return None
    target = Path(lines[0][len("gitdir: ") :])
    target = target if target.is_absolute() else tree.work_tree / target
    if os.path.realpath(target) != os.path.realpath(tree.git_dir):
        return f"points at {target}"
    return None


def git_env(extra: Mapping[str, str] | None = None, config: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """The environment of a git child: ours without git's variables, `config` in command-line
    scope (GIT_CONFIG_COUNT: keys and values kept apart, so neither can inject the other), `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _KEPT_GIT_VARS}
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_ATTR_NOSYSTEM"] = "1"
    count = 0
    for key, value in config:
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    if extra:
        env.update(extra)
    return env


def _argv(repo: GitRepo, args: Sequence[str]) -> list[str]:
    return ["git", "--no-pager", f"--git-dir={repo.git_dir}", f"--work-tree={repo.work_tree}", *args]


async def run_git(
    repo: GitRepo,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    config: Sequence[tuple[str, str]] = (),
) -> GitResult:
    """Run `git args…` on `repo`, pinned and with every config-driven command off; `config` adds
    settings for this call. With `check`, a non-zero exit is a WorkspaceError quoting git."""
    if repo.chat_worktree:
        check_dot_git(repo)
    settings = (*FIXED_CONFIG, *await repo.commands.overrides(repo), *config)
    try:
        result = await _run(_argv(repo, args), str(repo.work_tree), git_env(env, settings), input)
    except FileNotFoundError as exc:
        raise _spawn_error(repo.work_tree, exc) from exc
    if check and result.returncode != 0:
        raise WorkspaceError(f"git {_describe(args)} failed in {repo.work_tree}: {result.err or 'no output'}")
    return result


def _spawn_error(cwd: Path, exc: OSError) -> WorkspaceError:
    if not cwd.is_dir():
        return WorkspaceError(f"{cwd} does not exist or is not a directory")
    return WorkspaceError("git is not installed: no 'git' on PATH; install git")


async def git_apply(
    repo: GitRepo,
    diff: str,
    *options: str,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    """`git apply --binary options…` of `diff` (text as `diff_worktree` gives it, binary patches
    included), not checked: each caller words a refusal for what it was doing."""
    return await run_git(
        repo,
        "apply",
        "--binary",
        "--whitespace=nowarn",
        *options,
        env=env,
        input=diff.encode("utf-8", "surrogateescape"),
        check=False,
    )


async def _run(argv: list[str], cwd: str, env: dict[str, str], input: bytes | None) -> GitResult:
    """Run one git process to completion in a worker thread.

    A worker thread rather than asyncio's subprocess transport: git runs for a millisecond or two,
    and asyncio's fork, child-watcher thread and pipe transports cost about as much again, on the
    event loop. Cancelling kills the process (as anyio.run_process does) and returns at once.
    """
    lock = threading.Lock()
    started: list[subprocess.Popen[bytes]] = []
    cancelled = False

    def run() -> GitResult:
        with lock:
            if cancelled:
                raise RuntimeError("cancelled before git started")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
            )
            started.append(proc)
        out, err = proc.communicate(input)
        return GitResult(proc.returncode, out, err)

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        with lock:
            cancelled = True
            for proc in started:
                # The abandoned thread's communicate() then returns and reaps it.
                proc.kill()
        raise


def _describe(args: Sequence[str]) -> str:
    shown = [a for a in args if not a.startswith("-")][:2]
    return " ".join(shown) or " ".join(args[:1])


async def open_repo(path: Path | GitRepo) -> GitRepo:
    """The git repository whose work tree holds `path` (a directory the user gave), located once;
    every later command on it is pinned to what this found. A clear error when there is none."""
    if isinstance(path, GitRepo):
        return path
    if not await anyio.Path(path).is_dir():
        raise WorkspaceError(f"{path} does not exist or is not a directory; give an existing git repository")
    argv = ["git", "--no-pager", "rev-parse", "--path-format=absolute"]
    argv += ["--show-toplevel", "--absolute-git-dir", "--git-common-dir"]
    try:
        result = await _run(argv, str(path), git_env(config=FIXED_CONFIG), None)
    except FileNotFoundError as exc:
        raise _spawn_error(path, exc) from exc
    lines = result.out.splitlines()
    if result.returncode != 0 or len(lines) != 3:
        raise WorkspaceError(
            f"{path} is not a git repository; run `git init` there and make a first commit, "
            "or give a directory inside a git work tree"
        )
    top, git_dir, common = (Path(line) for line in lines)
    return GitRepo(top, git_dir, common)


async def ensure_repo(path: Path) -> Path:
    """The toplevel of the git work tree holding `path`; a clear error when there is none."""
    return (await open_repo(path)).work_tree


async def capture_head(repo: Path | GitRepo) -> str:
    """The commit HEAD points at; a repository without commits is an error saying what to do."""
    git = await open_repo(repo)
    result = await run_git(git, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    sha = result.out.strip()
    if result.returncode != 0 or not sha:
        raise WorkspaceError(
            f"{git.work_tree} has no commit yet: BooCode needs one as the base of its worktrees; "
            "make one (e.g. `git commit --allow-empty -m init`)"
        )
    return sha


async def resolve_commit(repo: GitRepo, rev: str) -> str:
    """The full sha of commit `rev`, or a WorkspaceError naming it."""
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    sha = result.out.strip()
    if not sha:
        raise WorkspaceError(f"{rev!r} is not a commit in {repo.work_tree}")
    return sha


async def fetch_commit(repo: GitRepo, remote: str | None, sha: str) -> None:
    """Make sure commit `sha` is in `repo`, fetching it from `remote` when it is not (a worker on
    another host starting a run from the requester's commit). The fetch goes through the clone's
    own remote configuration (its URL, ssh and credentials: the worker's operator set them up);
    hooks and fsmonitor stay off. A commit the remote does not have is a WorkspaceError saying to
    push it."""
    if (await run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False)).returncode == 0:
        return
    if remote is None:
        raise WorkspaceError(f"commit {sha} is not in {repo.work_tree} and no remote is set to fetch it from")
    argv = ["git", "--no-pager", f"--git-dir={repo.git_dir}", "fetch", "--quiet", "--no-recurse-submodules"]
    env = git_env(config=(("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false")))
    for refspec in ((), (sha,)):
        # Every branch first (any server allows it); then the commit by name (servers that allow it).
        result = await _run([*argv, remote, *refspec], str(repo.work_tree), env, None)
        found = await run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False)
        if found.returncode == 0:
            return
    raise WorkspaceError(
        f"the run's base commit {sha} is not on remote {remote!r} of {repo.work_tree} "
        f"({result.err or 'not found'}): push it from the workspace that spawned the run "
        f"(git push {remote} HEAD), then spawn the run again"
    )


async def exclude_boocode_dir(repo: Path | GitRepo) -> None:
    """Keep `.boocode/` out of `git status` through info/exclude, never the user's .gitignore."""
    ensure_excluded(await open_repo(repo))


def ensure_excluded(repo: GitRepo) -> None:
    """`exclude_boocode_dir` for a repository already located (a file read, no git process)."""
    exclude = repo.exclude_file
    try:
        existing = exclude.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        existing = ""
    lines = {line.strip() for line in existing.splitlines()}
    if lines & {EXCLUDE_LINE, f"{BOOCODE_DIR}/", f"/{BOOCODE_DIR}", BOOCODE_DIR}:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    separator = "" if not existing or existing.endswith("\n") else "\n"
    with exclude.open("a", encoding="utf-8") as f:
        f.write(f"{separator}# BooCode's database, worktrees and logs\n{EXCLUDE_LINE}\n")


async def user_identity_env(repo: GitRepo) -> dict[str, str]:
    """BooCode's identity for the parts of user.name/user.email git has no value for, else nothing."""
    env: dict[str, str] = {}
    for key, names in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")),
    ):
        result = await run_git(repo, "config", "--get", key, check=False)
        if result.returncode != 0 or not result.out.strip():
            for name in names:
                if name not in os.environ:
                    env[name] = BOOCODE_IDENTITY[name]
    return env
