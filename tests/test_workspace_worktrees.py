"""Per-chat worktrees in real git repositories: creation, diffs, re-baselining, removal."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import anyio
import pytest

from boocode_mcp.errors import WorkspaceError
from boocode_mcp.workspace import (
    ChatTrees,
    apply_patches,
    capture_head,
    create_worktree,
    diff_worktree,
    ensure_repo,
    exclude_boocode_dir,
    is_dirty,
    list_worktrees,
    open_repo,
    parse_unified_diff,
    rebaseline,
    remove_worktree,
    worktree_path,
)
from tests.conftest import git

pytestmark = pytest.mark.anyio


async def test_not_a_repository_names_the_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(WorkspaceError, match=f"{plain} is not a git repository.*git init"):
        await ensure_repo(plain)


async def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="nowhere does not exist"):
        await ensure_repo(tmp_path / "nowhere")


async def test_ensure_repo_finds_toplevel_from_a_subdirectory(git_repo: Path) -> None:
    assert await ensure_repo(git_repo / "src") == await anyio.Path(git_repo).resolve()


async def test_capture_head(git_repo: Path) -> None:
    assert await capture_head(git_repo) == git(git_repo, "rev-parse", "HEAD").strip()


async def test_capture_head_without_commits_says_what_to_do(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(WorkspaceError, match=r"no commit yet.*--allow-empty"):
        await capture_head(tmp_path)


async def test_exclude_is_idempotent_and_leaves_gitignore_alone(git_repo: Path) -> None:
    (git_repo / ".boocode").mkdir()
    (git_repo / ".boocode" / "boocode.db").write_text("x")
    await exclude_boocode_dir(git_repo)
    await exclude_boocode_dir(git_repo)
    exclude = (git_repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.boocode/") == 1
    assert not (git_repo / ".gitignore").exists()
    assert git(git_repo, "status", "--porcelain") == ""


async def test_create_worktree_on_new_branch_from_head(git_repo: Path) -> None:
    head = await capture_head(git_repo)
    wt = await create_worktree(git_repo, "chat-1")
    assert wt.path == worktree_path(Path(await anyio.Path(git_repo).resolve()), "chat-1")
    assert (wt.branch, wt.base_sha) == ("boocode/chat-1", head)
    assert (wt.path / "src" / "app.py").read_text() == "def main():\n    return 1\n"
    assert git(wt.path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "boocode/chat-1"
    # The main repository does not see BooCode's directory.
    assert git(git_repo, "status", "--porcelain") == ""
    assert await list_worktrees(git_repo) == [wt.path]


async def test_create_worktree_is_idempotent(git_repo: Path) -> None:
    first = await create_worktree(git_repo, "chat-1")
    (first.path / "keep.txt").write_text("agent work\n")
    again = await create_worktree(git_repo, "chat-1")
    assert again == first
    assert (again.path / "keep.txt").read_text() == "agent work\n"


async def test_create_worktree_rejects_unsafe_chat_ids(git_repo: Path) -> None:
    for bad in ("../x", "a/b", ".hidden", "a..b", "x.lock", ""):
        with pytest.raises(WorkspaceError, match="cannot name a worktree"):
            await create_worktree(git_repo, bad)


async def test_diff_includes_untracked_and_leaves_worktree_index_alone(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "src" / "app.py").write_text("def main():\n    return 2\n")
    (wt.path / "new.txt").write_text("hello\n")
    (wt.path / "pic.bin").write_bytes(b"\0\1\2" * 100)
    (wt.path / ".boocode").mkdir()
    (wt.path / ".boocode" / "scratch").write_text("never in a patch\n")
    own_index = Path(git(wt.path, "rev-parse", "--git-path", "index").strip())
    own_index = own_index if own_index.is_absolute() else wt.path / own_index
    before = hashlib.sha256(own_index.read_bytes()).hexdigest()

    text = await diff_worktree(wt.git, wt.base_sha)

    parsed = parse_unified_diff(text)
    assert sorted(f.path for f in parsed.files) == ["new.txt", "pic.bin", "src/app.py"]
    assert hashlib.sha256(own_index.read_bytes()).hexdigest() == before
    # The agent's own view of its worktree is untouched: the new file is still untracked to git.
    assert "?? new.txt" in git(wt.path, "status", "--porcelain")


async def test_diff_respects_gitignore(git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text("build/\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "ignore")
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "build").mkdir()
    (wt.path / "build" / "out.o").write_bytes(b"\0obj")
    assert await diff_worktree(wt.git, wt.base_sha) == ""
    assert not await is_dirty(wt.git, wt.base_sha)


async def test_diff_sees_commits_the_agent_made(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "README.md").write_text("# changed\n")
    git(wt.path, "commit", "-qam", "agent commit")
    text = await diff_worktree(wt.git, wt.base_sha)
    assert parse_unified_diff(text).files[0].path == "README.md"


async def test_non_utf8_text_becomes_a_binary_patch_that_applies(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    text = await diff_worktree(wt.git, wt.base_sha)
    (f,) = parse_unified_diff(text).files
    assert f.binary
    outcome = await apply_patches(git_repo, [("p1", text)])
    assert outcome.conflicts == ()
    assert (git_repo / "latin1.txt").read_bytes() == "café\n".encode("latin-1")


async def test_rebaseline_makes_the_next_diff_hold_only_new_work(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "README.md").write_text("# demo\nfirst turn\n")
    (wt.path / "first.txt").write_text("one\n")
    first = await diff_worktree(wt.git, wt.base_sha)
    assert parse_unified_diff(first).file_count == 2

    new_base = await rebaseline(wt.git, wt.base_sha, first)

    assert new_base != wt.base_sha
    assert await diff_worktree(wt.git, new_base) == ""
    assert not await is_dirty(wt.git, new_base)
    (wt.path / "second.txt").write_text("two\n")
    second = parse_unified_diff(await diff_worktree(wt.git, new_base))
    assert [f.path for f in second.files] == ["second.txt"]
    # The new base is kept reachable, and an existing worktree reports it.
    assert git(git_repo, "rev-parse", "refs/boocode/bases/c1").strip() == new_base
    assert (await create_worktree(git_repo, "c1")).base_sha == new_base
    # The worktree's own HEAD did not move.
    assert git(wt.path, "rev-parse", "HEAD").strip() == wt.base_sha


async def test_rebaseline_with_a_diff_that_does_not_apply_is_an_error(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    bogus = "diff --git a/nope.txt b/nope.txt\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(WorkspaceError, match="cannot re-baseline"):
        await rebaseline(wt.git, wt.base_sha, bogus)


async def test_remove_clean_worktree(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    assert await remove_worktree(git_repo, "c1")
    assert not wt.path.exists()
    assert await list_worktrees(git_repo) == []
    assert git(git_repo, "branch", "--list", "boocode/c1") == ""
    assert not await remove_worktree(git_repo, "c1")


async def test_remove_refuses_a_dirty_worktree_unless_forced(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "unsaved.txt").write_text("work\n")
    with pytest.raises(WorkspaceError, match="has changes that are in no applied patch"):
        await remove_worktree(git_repo, "c1")
    assert (wt.path / "unsaved.txt").exists()
    assert await remove_worktree(git_repo, "c1", force=True)
    assert not wt.path.exists()


async def test_remove_after_rebaseline_counts_as_clean(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "done.txt").write_text("applied\n")
    await rebaseline(wt.git, wt.base_sha, await diff_worktree(wt.git, wt.base_sha))
    assert await remove_worktree(git_repo, "c1")


async def test_recreate_after_directory_deleted_by_hand(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    shutil.rmtree(wt.path)
    again = await create_worktree(git_repo, "c1")
    assert (again.path / "README.md").exists()


async def test_main_workspace_diff_never_sees_worktrees(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "agent.txt").write_text("inside the chat's worktree\n")
    main = await open_repo(git_repo)
    assert await diff_worktree(main, wt.base_sha) == ""
    assert not await is_dirty(main, wt.base_sha)


async def test_list_ignores_worktrees_that_are_not_boocodes(git_repo: Path, tmp_path: Path) -> None:
    git(git_repo, "worktree", "add", "-q", str(tmp_path / "users-own"), "-b", "feature")
    wt = await create_worktree(git_repo, "c1")
    assert await list_worktrees(git_repo) == [wt.path]


async def test_a_kept_chat_worktree_is_looked_up_again_once_it_or_its_record_changes(git_repo: Path) -> None:
    main = await open_repo(git_repo)
    made = await create_worktree(main, "c1")
    trees = ChatTrees(main)
    first = await trees.get("c1")
    assert first == made.git
    assert await trees.get("c1") == first
    # The record rewritten to name another directory, with the same size and its mtime put back:
    # seen all the same (its ctime moved), and no worktree of the chat is registered any more.
    record = first.git_dir / "gitdir"
    saved, st = record.read_bytes(), record.stat()
    other = saved.replace(b"/c1/", b"/c2/")
    assert other != saved and len(other) == len(saved)
    record.write_bytes(other)
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(WorkspaceError, match="no worktree registered"):
        await trees.get("c1")
    record.write_bytes(saved)
    assert await trees.get("c1") == first
