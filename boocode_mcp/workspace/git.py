"""Running the git CLI, and the repository-level facts BooCode needs: toplevel, HEAD, exclusions.

Every git call goes through `run_git` so that all of them share one environment: no variable
inherited from a parent git (a hook, an editor) can redirect BooCode to another repository or
index, output is never localized (git's messages are parsed), and nothing prompts.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from boocode_mcp.config import BOOCODE_DIR
from boocode_mcp.errors import WorkspaceError

# Variables that would make git act on another repository, work tree or index than the one BooCode
# names explicitly.
_GIT_LOCATION_VARS = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_PREFIX",
        "GIT_QUARANTINE_PATH",
        "GIT_LITERAL_PATHSPECS",
        "GIT_GLOB_PATHSPECS",
        "GIT_NOGLOB_PATHSPECS",
        "GIT_ICASE_PATHSPECS",
    }
)

# Output settings that user configuration may change but BooCode's parsers rely on.
_STABLE_CONFIG = (
    "-c",
    "core.quotePath=true",
    "-c",
    "color.ui=false",
    "-c",
    "diff.noprefix=false",
    "-c",
    "diff.mnemonicPrefix=false",
    "-c",
    "diff.relative=false",
    "-c",
    "diff.external=",
    "-c",
    "core.hooksPath=/dev/null",
)

# Identity for the commits BooCode makes for itself (re-baselines), and the fallback for a user
# commit on a machine with no configured identity.
BOOCODE_IDENTITY = {
    "GIT_AUTHOR_NAME": "BooCode",
    "GIT_AUTHOR_EMAIL": "boocode@localhost",
    "GIT_COMMITTER_NAME": "BooCode",
    "GIT_COMMITTER_EMAIL": "boocode@localhost",
}

EXCLUDE_LINE = f"/{BOOCODE_DIR}/"


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


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a git child: ours minus repository-locating variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


async def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> GitResult:
    """Run `git args…` in `cwd`; with `check`, a non-zero exit is a WorkspaceError quoting git."""
    argv = ["git", *_STABLE_CONFIG, *args]
    try:
        result = await _run(argv, str(cwd), git_env(env), input)
    except FileNotFoundError as exc:
        if not await anyio.Path(cwd).is_dir():
            raise WorkspaceError(f"{cwd} does not exist or is not a directory") from exc
        raise WorkspaceError("git is not installed: no 'git' on PATH; install git") from exc
    if check and result.returncode != 0:
        raise WorkspaceError(f"git {_describe(args)} failed in {cwd}: {result.err or 'no output'}")
    return result


async def git_apply(
    cwd: Path, diff: str, *options: str, git_options: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> GitResult:
    """`git [git_options] apply --binary options…` of `diff` (text as `diff_worktree` gives it,
    binary patches included), not checked: each caller words a refusal for what it was doing."""
    return await run_git(
        cwd,
        *git_options,
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


async def ensure_repo(path: Path) -> Path:
    """The toplevel of the git work tree holding `path`; a clear error when there is none."""
    if not await anyio.Path(path).is_dir():
        raise WorkspaceError(f"{path} does not exist or is not a directory; give an existing git repository")
    result = await run_git(path, "rev-parse", "--show-toplevel", check=False)
    top = result.out.strip()
    if result.returncode != 0 or not top:
        raise WorkspaceError(
            f"{path} is not a git repository; run `git init` there and make a first commit, "
            "or give a directory inside a git work tree"
        )
    return Path(top)


async def capture_head(repo: Path) -> str:
    """The commit HEAD points at; a repository without commits is an error saying what to do."""
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    sha = result.out.strip()
    if result.returncode != 0 or not sha:
        raise WorkspaceError(
            f"{repo} has no commit yet: BooCode needs one as the base of its worktrees; "
            "make one (e.g. `git commit --allow-empty -m init`)"
        )
    return sha


async def resolve_commit(repo: Path, rev: str) -> str:
    """The full sha of commit `rev`, or a WorkspaceError naming it."""
    result = await run_git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    sha = result.out.strip()
    if not sha:
        raise WorkspaceError(f"{rev!r} is not a commit in {repo}")
    return sha


# (work tree, name, identity of its .git entry) -> the path git named. A chat's worktree asks for
# the same two paths after every turn; each answer costs a git process.
_GIT_PATHS: dict[tuple[str, str, object], Path] = {}
_GIT_PATHS_MAX = 512


def _dot_git_identity(repo: Path) -> object | None:
    """What makes a cached answer stale: a worktree's `.git` file names its admin directory (its
    text is the identity); a `.git` directory replaced is a new repository (a new inode). None when
    `repo` is not the top of a work tree."""
    dot_git = repo / ".git"
    try:
        st = dot_git.stat()
        if stat.S_ISREG(st.st_mode):
            return dot_git.read_bytes()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


async def git_path(repo: Path, name: str) -> Path:
    """Where git keeps `name` (e.g. info/exclude, index) for the work tree `repo`."""
    identity = _dot_git_identity(repo)
    key = (str(repo), name, identity) if identity is not None else None
    if key is not None and (cached := _GIT_PATHS.get(key)) is not None:
        return cached
    result = await run_git(repo, "rev-parse", "--git-path", name)
    path = Path(result.out.strip())
    path = path if path.is_absolute() else repo / path
    if key is not None:
        if len(_GIT_PATHS) >= _GIT_PATHS_MAX:
            _GIT_PATHS.pop(next(iter(_GIT_PATHS)))
        _GIT_PATHS[key] = path
    return path


async def exclude_boocode_dir(repo: Path) -> None:
    """Keep `.boocode/` out of `git status` through info/exclude, never the user's .gitignore."""
    exclude = await git_path(repo, "info/exclude")
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


async def user_identity_env(repo: Path) -> dict[str, str]:
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
