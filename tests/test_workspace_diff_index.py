"""The kept diff index of a chat's worktree: always exactly what diff_worktree reports, and git calls
that can be cancelled."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from boocode_mcp.workspace import (
    DiffIndexes,
    Worktree,
    create_worktree,
    diff_worktree,
    parse_unified_diff,
    rebaseline,
)
from boocode_mcp.workspace.git import _run, git_env
from boocode_mcp.workspace.worktrees import in_memory_root
from tests.conftest import git

pytestmark = pytest.mark.anyio


@pytest.fixture
async def indexes() -> AsyncIterator[DiffIndexes]:
    kept = DiffIndexes()
    try:
        yield kept
    finally:
        kept.close()


def _own_index(wt: Worktree) -> str:
    """The worktree's own index, entry by entry (what BooCode must never change)."""
    return git(wt.path, "ls-files", "--stage", "--debug")


async def _same_as_fresh(indexes: DiffIndexes, wt: Worktree, base: str) -> str:
    kept = await indexes.get(wt.git).diff(base)
    assert kept == await diff_worktree(wt.git, base)
    return kept


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_kept_index_matches_a_fresh_one_turn_after_turn(git_repo: Path, indexes: DiffIndexes) -> None:
    wt = await create_worktree(git_repo, "chat-a")
    own = _own_index(wt)
    steps: list[Callable[[], object]] = [
        lambda: None,
        lambda: _write(wt.path / "src" / "app.py", "def main():\n    return 2\n"),
        lambda: _write(wt.path / "new" / "one.txt", "one\n"),
        lambda: (wt.path / "README.md").unlink(),
        lambda: (wt.path / "new" / "one.txt").rename(wt.path / "new" / "two.txt"),
        lambda: _write(wt.path / "src" / "app.py", "def main():\n    return 1\n"),
        lambda: (wt.path / "new" / "two.txt").unlink(),
        lambda: _write(wt.path / "README.md", "# demo\n"),
    ]
    seen = []
    for step in steps:
        step()
        await indexes.get(wt.git).prepare(wt.base_sha)  # ahead of time, as the runner does
        seen.append(await _same_as_fresh(indexes, wt, wt.base_sha))
        seen.append(await _same_as_fresh(indexes, wt, wt.base_sha))  # and without a prepare
    assert seen[0] == "" and seen[-1] == ""
    assert "b/new/one.txt" in seen[4] and "deleted file" in seen[6]
    assert _own_index(wt) == own


async def test_same_size_edit_in_the_checkout_second_is_seen_later(
    git_repo: Path, indexes: DiffIndexes
) -> None:
    # Regression: the temporary index was seeded with a copy of the worktree's own index stamped
    # "now". Git trusts an entry whose stat data matches (mtime to the second, size, inode) unless
    # the entry is as new as the index file, so a same-size edit made in the second the worktree
    # was checked out vanished from diffs taken after that second.
    for attempt in range(5):
        wt = await create_worktree(git_repo, f"chat-racy-{attempt}")
        app = wt.path / "src" / "app.py"
        app.write_text(app.read_text().replace("return 1", "return 7"))  # same size, same inode
        entry_ctime = git(wt.path, "ls-files", "--debug", "src/app.py").split("ctime: ")[1].split(":")[0]
        if int(app.stat().st_ctime) == int(entry_ctime):
            break
    else:
        pytest.fail("could not edit a file within the second of its checkout in 5 attempts")
    # Into the next second: now only git's racy-entry check can notice the edit.
    await anyio.sleep(1.05 - time.time() % 1)
    assert "+    return 7" in await diff_worktree(wt.git, wt.base_sha)
    assert "+    return 7" in await indexes.get(wt.git).diff(wt.base_sha)


async def test_ignored_file_of_the_base_deleted_then_recreated(git_repo: Path, indexes: DiffIndexes) -> None:
    # Tracked in the base although ignored: `git add -A` keeps it only while the index tracks it.
    (git_repo / ".gitignore").write_text("*.log\n")
    (git_repo / "keep.log").write_text("kept\n")
    git(git_repo, "add", "-f", ".gitignore", "keep.log")
    git(git_repo, "commit", "-q", "-m", "tracked log")
    wt = await create_worktree(git_repo, "chat-b")
    (wt.path / "keep.log").unlink()
    assert "deleted file" in await _same_as_fresh(indexes, wt, wt.base_sha)
    (wt.path / "keep.log").write_text("kept again\n")
    diff = parse_unified_diff(await _same_as_fresh(indexes, wt, wt.base_sha))
    assert [(f.path, f.status) for f in diff.files] == [("keep.log", "modified")]


async def test_file_that_becomes_ignored_leaves_the_diff(git_repo: Path, indexes: DiffIndexes) -> None:
    wt = await create_worktree(git_repo, "chat-c")
    _write(wt.path / "out" / "data.txt", "data\n")
    assert "b/out/data.txt" in await _same_as_fresh(indexes, wt, wt.base_sha)
    # A .gitignore that ignores itself and everything beside it: not in any diff, yet it changes
    # what the next diff may hold.
    (wt.path / "out" / ".gitignore").write_text("*\n")
    assert await _same_as_fresh(indexes, wt, wt.base_sha) == ""


async def test_new_base_after_rebaseline(git_repo: Path, indexes: DiffIndexes) -> None:
    wt = await create_worktree(git_repo, "chat-d")
    _write(wt.path / "a.txt", "a\n")
    first = await _same_as_fresh(indexes, wt, wt.base_sha)
    await indexes.get(wt.git).prepare(wt.base_sha)
    new_base = await rebaseline(wt.git, wt.base_sha, first)
    assert await _same_as_fresh(indexes, wt, new_base) == ""
    _write(wt.path / "b.txt", "b\n")
    diff = parse_unified_diff(await _same_as_fresh(indexes, wt, new_base))
    assert diff.paths == ("b.txt",)


async def test_least_recently_used_indexes_are_dropped(git_repo: Path) -> None:
    kept = DiffIndexes(max_entries=2)
    try:
        trees = [await create_worktree(git_repo, f"chat-{i}") for i in range(3)]
        for wt in trees:
            _write(wt.path / "x.txt", wt.path.name)
            assert await _same_as_fresh(kept, wt, wt.base_sha) != ""
        # The first one was dropped for the third; asking again starts it afresh, still exact.
        assert await _same_as_fresh(kept, trees[0], trees[0].base_sha) != ""
    finally:
        kept.close()


async def test_cancelled_git_call_kills_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = ["sh", "-c", f'echo $$ > "{pid_file}.tmp"; mv "{pid_file}.tmp" "{pid_file}"; exec sleep 30']
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_run, argv, str(tmp_path), git_env(), None)
            # The child is another process: no event reaches us from it, its pid file is the signal.
            while not await anyio.Path(pid_file).exists():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            started = time.monotonic()
            tg.cancel_scope.cancel()
        assert time.monotonic() - started < 5
        pid = int(pid_file.read_text())
        # Killed at once, then reaped by the abandoned worker thread (no event to wait on).
        while _alive(pid):  # noqa: ASYNC110
            await anyio.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_index_directory_of_a_dead_process_is_deleted(git_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "indexes"
    dead = (await anyio.run_process(["sh", "-c", "echo $$"])).stdout.decode().strip()  # exited: pid dead
    (root / dead).mkdir(parents=True)
    (root / dead / "index-1").write_bytes(b"left by a killed server")
    kept = DiffIndexes(root)
    wt = await create_worktree(git_repo, "chat-f")
    _write(wt.path / "f.txt", "f\n")
    assert await _same_as_fresh(kept, wt, wt.base_sha) != ""
    assert [p.name for p in root.iterdir()] == [str(os.getpid())]
    kept.close()
    assert not root.exists()


async def test_in_memory_indexes_a_killed_process_left_for_another_workspace_are_deleted(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    dead = (await anyio.run_process(["sh", "-c", "echo $$"])).stdout.decode().strip()  # exited: pid dead
    gone = in_memory_root(tmp_path / "deleted-workspace" / ".boocode" / "indexes")
    (gone / dead).mkdir(parents=True)
    (gone / dead / "index-1").write_bytes(b"left by a killed server of a workspace since deleted")
    alive = in_memory_root(tmp_path / "other-workspace" / ".boocode" / "indexes")
    (alive / "1").mkdir(parents=True)  # pid 1 lives: its index stays
    kept = DiffIndexes(in_memory_root(git_repo / ".boocode" / "indexes"))
    wt = await create_worktree(git_repo, "chat-g")
    _write(wt.path / "g.txt", "g\n")
    assert await _same_as_fresh(kept, wt, wt.base_sha) != ""
    assert not gone.exists() and (alive / "1").is_dir()
    kept.close()


async def test_a_diff_reused_for_an_unchanged_worktree_is_never_stale(
    git_repo: Path, indexes: DiffIndexes
) -> None:
    # The kept index answers an unchanged worktree with its last diff (no `git diff`): every kind of
    # change in between must still show, including a same-size edit in the second of the last diff
    # (git's racy-entry check), a file put back as it was, and a mode change.
    wt = await create_worktree(git_repo, "chat-reuse")
    app = wt.path / "src" / "app.py"
    first = await _same_as_fresh(indexes, wt, wt.base_sha)
    assert first == "" and await indexes.get(wt.git).diff(wt.base_sha) == ""
    app.write_text(app.read_text().replace("return 1", "return 7"))
    seven = await _same_as_fresh(indexes, wt, wt.base_sha)
    app.write_text(app.read_text().replace("return 7", "return 8"))  # same size, same second
    eight = await _same_as_fresh(indexes, wt, wt.base_sha)
    assert "+    return 7" in seven and "+    return 8" in eight
    app.write_text("def main():\n    return 1\n")
    assert await _same_as_fresh(indexes, wt, wt.base_sha) == ""
    app.chmod(0o755)
    assert "new mode 100755" in await _same_as_fresh(indexes, wt, wt.base_sha)
    (wt.path / "README.md").unlink()
    assert "deleted file" in await _same_as_fresh(indexes, wt, wt.base_sha)
    # A new base (after an apply) is never answered with the diff against the old one.
    diff = await indexes.get(wt.git).diff(wt.base_sha)
    new_base = await rebaseline(wt.git, wt.base_sha, diff)
    assert await _same_as_fresh(indexes, wt, new_base) == ""


async def test_each_diff_logs_whether_the_last_diff_was_reused(
    git_repo: Path, indexes: DiffIndexes, caplog: pytest.LogCaptureFixture
) -> None:
    wt = await create_worktree(git_repo, "chat-log")
    caplog.set_level(logging.DEBUG, logger="boocode_mcp.workspace.worktrees")
    (wt.path / "a.txt").write_text("a\n")
    await indexes.get(wt.git).diff(wt.base_sha)
    await indexes.get(wt.git).diff(wt.base_sha)
    records = [r for r in caplog.records if hasattr(r, "timings")]
    assert [getattr(r, "diff_reused") for r in records] == [False, True]  # noqa: B009
    assert [set(getattr(r, "timings")) for r in records] == [{"stage", "git diff"}, {"stage"}]  # noqa: B009
