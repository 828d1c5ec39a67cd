"""Applying a set of patches to the main workspace's working tree, all of them or none.

The patches are first applied in order to a scratch copy of the files they touch (so patch 2 sees
patch 1), with the repository's own git settings and attributes. Only when every patch applies are
the results written into the workspace; a failure while writing restores every file from a backup.
The user's index and uncommitted changes to other files are left alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio

from boocode_mcp.errors import WorkspaceError
from boocode_mcp.workspace.diff import ParsedDiff, parse_unified_diff
from boocode_mcp.workspace.git import GitRepo, capture_head, git_apply, open_repo, run_git, user_identity_env


@dataclass(frozen=True)
class ApplyConflict:
    """Why one file of one patch does not apply, in git's words."""

    patch_id: str
    file: str
    reason: str


@dataclass(frozen=True)
class ApplyOutcome:
    """What apply_patches did: every patch id (or none) applied, or the conflicts that stopped it."""

    applied: tuple[str, ...]
    conflicts: tuple[ApplyConflict, ...]
    dry_run: bool
    commit_sha: str | None


@dataclass(frozen=True)
class _Change:
    path: str
    existed: bool  # in the workspace before
    exists: bool  # after all patches


def _path_problem(repo: Path, rel: str) -> str | None:
    """Why a patch may not write `rel` in the workspace, or None."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts:
        return "the path leaves the workspace"
    if any(part.lower() == ".git" for part in pure.parts):
        # Not only the workspace's own: a nested .git would make a repository whose config (and the
        # commands it names) the patch's author chose.
        return "the path is inside a .git directory"
    parent = (repo / rel).parent.resolve()
    if not parent.is_relative_to(repo.resolve()):
        return "the path goes through a symbolic link that leaves the workspace"
    return None


def _lexists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _copy_entry(src: Path, dst: Path) -> bool:
    """Copy a file, symlink or (empty) directory marker from src to dst; False when src is absent."""
    try:
        mode = src.lstat().st_mode
    except OSError:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISDIR(mode):
        # A directory where a patch expects a file: keep it so git reports the clash.
        dst.mkdir(exist_ok=True)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)
    return True


def _same_entry(a: Path, b: Path) -> bool:
    """Whether two paths hold the same kind of entry with the same bytes and permission bits."""
    a_exists, b_exists = _lexists(a), _lexists(b)
    if not (a_exists and b_exists):
        return a_exists == b_exists
    sa, sb = a.lstat(), b.lstat()
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISDIR(sa.st_mode):
        return True
    if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode) or sa.st_size != sb.st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def _place(src: Path, dst: Path) -> None:
    """Put the entry at src at dst, replacing what is there in one rename."""
    tmp = dst.with_name(f".{dst.name}.boocode-{os.getpid()}.tmp")
    if _lexists(tmp):
        tmp.unlink()
    if src.is_symlink():
        os.symlink(os.readlink(src), tmp)
    else:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove directories left empty by a deletion, as git does, up to (not including) stop."""
    current = start
    while current != stop and current.is_relative_to(stop):
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def _write_all(repo: Path, scratch: Path, backup: Path, changes: Sequence[_Change]) -> None:
    """Write every change into the workspace; on any failure restore what was written and re-raise."""
    for change in changes:
        if not _same_entry(repo / change.path, backup / change.path):
            raise WorkspaceError(
                f"{change.path} changed in the workspace while the patches were being checked; "
                "nothing was written, try again"
            )
    done: list[_Change] = []
    created: list[Path] = []
    try:
        # Deletions first, so a file can give way to a directory of the same name.
        for change in sorted(changes, key=lambda c: c.exists):
            target = repo / change.path
            done.append(change)
            if change.exists:
                missing = [p for p in target.parents if p.is_relative_to(repo) and not p.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                created.extend(reversed(missing))
                _place(scratch / change.path, target)
            elif _lexists(target):
                target.unlink()
                _prune_empty_dirs(target.parent, repo)
    except OSError as exc:
        _restore(repo, backup, done, created)
        failed = done[-1].path if done else "the workspace"
        raise WorkspaceError(
            f"could not write {failed}: {exc.strerror or exc}; every file was restored, nothing was applied"
        ) from exc
    except BaseException:
        _restore(repo, backup, done, created)
        raise


def _restore(repo: Path, backup: Path, done: Sequence[_Change], created: Sequence[Path]) -> None:
    for change in reversed(done):
        target = repo / change.path
        if change.existed:
            target.parent.mkdir(parents=True, exist_ok=True)
            _place(backup / change.path, target)
        elif _lexists(target):
            target.unlink()
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            continue


def _conflicts_from(patch_id: str, parsed: ParsedDiff, stderr: str) -> list[ApplyConflict]:
    """One conflict per file named in git apply's errors; the whole message when it names none."""
    paths = sorted(parsed.paths, key=len, reverse=True)
    reasons: dict[str, list[str]] = {}
    loose: list[str] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        text = line.removeprefix("error: ")
        match = next((p for p in paths if p in text), None)
        if match is None:
            loose.append(text)
        else:
            reasons.setdefault(match, []).append(text)
    if not reasons:
        first = parsed.files[0].path if parsed.files else ""
        return [ApplyConflict(patch_id, first, "; ".join(loose) or "git apply failed")]
    return [ApplyConflict(patch_id, path, "; ".join(texts)) for path, texts in reasons.items()]


async def apply_patches(
    repo: Path | GitRepo,
    patches: Sequence[tuple[str, str]],
    *,
    dry_run: bool = False,
    commit_message: str | None = None,
) -> ApplyOutcome:
    """Apply `patches` ([(patch_id, diff)], in order) to the workspace's working tree, all or none.

    Every patch is checked before anything is written; on any conflict the workspace is left
    byte-identical and each conflicting file of each patch is reported. With `commit_message`,
    exactly the files the patches changed are committed (the rest of the index is kept).
    """
    git = await open_repo(repo)
    repo = git.work_tree
    parsed = [(pid, text, parse_unified_diff(text)) for pid, text in patches]
    conflicts: list[ApplyConflict] = []
    paths: dict[str, None] = {}
    for pid, _text, diff in parsed:
        for path in diff.paths:
            problem = _path_problem(repo, path)
            if problem:
                conflicts.append(ApplyConflict(pid, path, problem))
            paths[path] = None
    if conflicts:
        return ApplyOutcome((), tuple(conflicts), dry_run, None)

    with tempfile.TemporaryDirectory(prefix="boocode-apply-") as tmp:
        scratch, backup = Path(tmp) / "work", Path(tmp) / "orig"
        scratch.mkdir()
        backup.mkdir()

        def copy_in() -> dict[str, bool]:
            existed = {}
            for path in paths:
                existed[path] = _copy_entry(repo / path, backup / path)
                _copy_entry(repo / path, scratch / path)
                # A file where a patch needs a directory must be in the scratch copy for git to see it.
                for parent in PurePosixPath(path).parents:
                    entry = repo / parent
                    if str(parent) != "." and _lexists(entry) and not entry.is_dir():
                        _copy_entry(entry, scratch / parent)
            return existed

        existed = await anyio.to_thread.run_sync(copy_in)
        for pid, text, diff in parsed:
            if not text.strip():
                continue
            result = await git_apply(git.scratch(scratch), text)
            if result.returncode != 0:
                conflicts.extend(_conflicts_from(pid, diff, result.err))
        if conflicts:
            return ApplyOutcome((), tuple(conflicts), dry_run, None)
        applied = tuple(pid for pid, _ in patches)
        if dry_run:
            return ApplyOutcome(applied, (), True, None)

        def plan() -> list[_Change]:
            return [
                _Change(path, existed[path], _lexists(scratch / path))
                for path in paths
                if not _same_entry(scratch / path, backup / path)
            ]

        changes = await anyio.to_thread.run_sync(plan)
        await anyio.to_thread.run_sync(_write_all, repo, scratch, backup, changes)
        commit_sha = None
        if commit_message is not None and changes:
            try:
                commit_sha = await _commit(git, [c.path for c in changes], commit_message)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_restore, repo, backup, changes, [])
                raise
    return ApplyOutcome(applied, (), False, commit_sha)


async def _commit(repo: GitRepo, paths: Sequence[str], message: str) -> str:
    """Commit the working-tree state of exactly `paths` on top of HEAD; the index follows for them."""
    head = await capture_head(repo)
    listing = b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)
    identity = await user_identity_env(repo)
    with tempfile.TemporaryDirectory(prefix="boocode-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **identity}
        await run_git(repo, "read-tree", head, env=env)
        await run_git(repo, "update-index", "--add", "--remove", "-z", "--stdin", env=env, input=listing)
        tree = (await run_git(repo, "write-tree", env=env)).out.strip()
        sha = (
            await run_git(repo, "commit-tree", "--no-gpg-sign", tree, "-p", head, "-m", message, env=env)
        ).out.strip()
    subject = message.splitlines()[0] if message.strip() else "BooCode patches"
    await run_git(repo, "update-ref", "-m", f"commit: {subject}", "HEAD", sha, head)
    # Keep the user's index in step for the committed files so `git status` shows them clean.
    await run_git(repo, "update-index", "--add", "--remove", "-z", "--stdin", input=listing, check=False)
    return sha
