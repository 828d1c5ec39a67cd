"""apply_patches on real repositories: all or nothing, conflicts per file, binary patches, commits."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from boocode_mcp.errors import WorkspaceError
from boocode_mcp.workspace import (
    ApplyConflict,
    apply_patches,
    create_worktree,
    diff_worktree,
    rebaseline,
)
from boocode_mcp.workspace import apply as apply_module
from tests.conftest import git

pytestmark = pytest.mark.anyio


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root (.git included) with its content hash and mode."""
    snap: dict[str, tuple[str, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            snap[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mode,
            )
    return snap


async def _patch(repo: Path, chat: str, files: dict[str, bytes | None]) -> str:
    """A chat's patch: write `files` (None deletes) in its worktree and diff it."""
    wt = await create_worktree(repo, chat)
    for name, data in files.items():
        path = wt.path / name
        if data is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return await diff_worktree(wt.git, wt.base_sha)


async def test_applies_to_the_working_tree_not_the_index(git_repo: Path) -> None:
    patch = await _patch(
        git_repo, "c1", {"src/app.py": b"def main():\n    return 2\n", "docs/new.md": b"new\n"}
    )
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert outcome.applied == ("p1",)
    assert (outcome.conflicts, outcome.dry_run, outcome.commit_sha) == ((), False, None)
    assert (git_repo / "src" / "app.py").read_text() == "def main():\n    return 2\n"
    assert (git_repo / "docs" / "new.md").read_text() == "new\n"
    status = git(git_repo, "status", "--porcelain")
    assert " M src/app.py" in status
    assert "?? docs/" in status


async def test_keeps_uncommitted_user_changes_elsewhere_and_in_the_same_file(git_repo: Path) -> None:
    lines = [f"line {i}\n" for i in range(12)]
    (git_repo / "long.txt").write_text("".join(lines))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "long")
    (git_repo / "long.txt").write_text("".join([*lines[:-1], "user edit\n"]))
    (git_repo / "user.txt").write_text("mine\n")
    patch = await _patch(git_repo, "c1", {"long.txt": "".join(["agent edit\n", *lines[1:]]).encode()})
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert outcome.conflicts == ()
    assert (git_repo / "long.txt").read_text() == "".join(["agent edit\n", *lines[1:-1], "user edit\n"])
    assert (git_repo / "user.txt").read_text() == "mine\n"


async def test_later_patches_see_earlier_ones(git_repo: Path) -> None:
    p1 = await _patch(git_repo, "c1", {"README.md": b"# demo\none\n"})
    wt2 = await create_worktree(git_repo, "c2")
    (wt2.path / "README.md").write_text("# demo\none\n")
    git(wt2.path, "commit", "-qam", "as if p1 were applied")
    (wt2.path / "README.md").write_text("# demo\none\ntwo\n")
    p2 = await diff_worktree(wt2.git, git(wt2.path, "rev-parse", "HEAD").strip())
    outcome = await apply_patches(git_repo, [("p1", p1), ("p2", p2)])
    assert outcome.applied == ("p1", "p2")
    assert (git_repo / "README.md").read_text() == "# demo\none\ntwo\n"


async def test_conflicting_pair_leaves_workspace_byte_identical(git_repo: Path) -> None:
    p1 = await _patch(git_repo, "c1", {"src/app.py": b"def main():\n    return 10\n", "a.txt": b"a\n"})
    p2 = await _patch(git_repo, "c2", {"src/app.py": b"def main():\n    return 20\n", "b.txt": b"b\n"})
    (git_repo / "untracked.txt").write_text("user's\n")
    before = _snapshot(git_repo)

    outcome = await apply_patches(git_repo, [("p1", p1), ("p2", p2)])

    assert outcome.applied == ()
    assert [(c.patch_id, c.file) for c in outcome.conflicts] == [("p2", "src/app.py")]
    assert "patch does not apply" in outcome.conflicts[0].reason
    assert _snapshot(git_repo) == before


async def test_every_conflicting_file_is_reported(git_repo: Path) -> None:
    patch = await _patch(git_repo, "c1", {"src/app.py": b"x\n", "README.md": b"y\n", "ok.txt": b"ok\n"})
    (git_repo / "src" / "app.py").write_text("user rewrote it\n")
    (git_repo / "README.md").write_text("and this\n")
    before = _snapshot(git_repo)
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert sorted(c.file for c in outcome.conflicts) == ["README.md", "src/app.py"]
    assert all(c.patch_id == "p1" for c in outcome.conflicts)
    assert _snapshot(git_repo) == before


async def test_new_file_that_already_exists_conflicts(git_repo: Path) -> None:
    patch = await _patch(git_repo, "c1", {"notes.txt": b"agent\n"})
    (git_repo / "notes.txt").write_text("user\n")
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert outcome.conflicts == (
        ApplyConflict("p1", "notes.txt", "notes.txt: already exists in working directory"),
    )
    assert (git_repo / "notes.txt").read_text() == "user\n"


async def test_binary_deletion_rename_and_mode_patches_apply(git_repo: Path) -> None:
    (git_repo / "tool.sh").write_text("echo hi\n")
    (git_repo / "logo.bin").write_bytes(b"\0old" * 50)
    text = "".join(f"line {i}\n" for i in range(20))
    (git_repo / "long.txt").write_text(text)
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "more")
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "logo.bin").write_bytes(b"\0new" * 60)
    (wt.path / "fresh.bin").write_bytes(bytes(range(256)))
    (wt.path / "README.md").unlink()
    (wt.path / "tool.sh").chmod(0o755)
    (wt.path / "long.txt").rename(wt.path / "renamed.txt")
    patch = await diff_worktree(wt.git, wt.base_sha)

    outcome = await apply_patches(git_repo, [("p1", patch)])

    assert outcome.conflicts == ()
    assert (git_repo / "logo.bin").read_bytes() == b"\0new" * 60
    assert (git_repo / "fresh.bin").read_bytes() == bytes(range(256))
    assert not (git_repo / "README.md").exists()
    assert os.access(git_repo / "tool.sh", os.X_OK)
    assert not (git_repo / "long.txt").exists()
    assert (git_repo / "renamed.txt").read_text() == text


async def test_dry_run_checks_without_writing(git_repo: Path) -> None:
    patch = await _patch(git_repo, "c1", {"README.md": b"# new\n"})
    before = _snapshot(git_repo)
    outcome = await apply_patches(git_repo, [("p1", patch)], dry_run=True)
    assert (outcome.applied, outcome.conflicts, outcome.dry_run) == (("p1",), (), True)
    assert _snapshot(git_repo) == before


async def test_commit_message_commits_exactly_the_touched_files(git_repo: Path) -> None:
    (git_repo / "user.txt").write_text("not mine to commit\n")
    (git_repo / "staged.txt").write_text("user staged this\n")
    git(git_repo, "add", "staged.txt")
    patch = await _patch(
        git_repo, "c1", {"README.md": None, "new.txt": b"added\n", "src/app.py": b"print(1)\n"}
    )
    old_head = git(git_repo, "rev-parse", "HEAD").strip()

    outcome = await apply_patches(git_repo, [("p1", patch)], commit_message="Apply agent work")

    assert outcome.commit_sha == git(git_repo, "rev-parse", "HEAD").strip()
    assert git(git_repo, "rev-parse", "HEAD~1").strip() == old_head
    changed = git(git_repo, "show", "--name-status", "--format=%s", "HEAD").split("\n")
    assert changed[0] == "Apply agent work"
    assert sorted(line for line in changed[1:] if line) == ["A\tnew.txt", "D\tREADME.md", "M\tsrc/app.py"]
    status = git(git_repo, "status", "--porcelain").splitlines()
    assert sorted(status) == ["?? user.txt", "A  staged.txt"]


async def test_paths_leaving_the_workspace_are_refused(git_repo: Path) -> None:
    evil = (
        "diff --git a/../evil.txt b/../evil.txt\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/../evil.txt\n@@ -0,0 +1 @@\n+x\n"
    )
    outcome = await apply_patches(git_repo, [("p1", evil)])
    assert outcome.conflicts == (ApplyConflict("p1", "../evil.txt", "the path leaves the workspace"),)
    assert not (git_repo.parent / "evil.txt").exists()


async def test_paths_inside_any_git_directory_are_refused(git_repo: Path) -> None:
    # A nested .git would be a repository whose config (and the commands it names) the patch chose.
    for path in (".git/config", "sub/.git/config", "sub/.GIT/hooks/post-checkout"):
        evil = (
            f"diff --git a/{path} b/{path}\nnew file mode 100644\n"
            f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x\n"
        )
        outcome = await apply_patches(git_repo, [("p1", evil)])
        assert outcome.conflicts == (ApplyConflict("p1", path, "the path is inside a .git directory"),)
    assert not (git_repo / "sub").exists()


async def test_symlinked_directory_leaving_the_workspace_is_refused(git_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (git_repo / "link").symlink_to(outside)
    patch = (
        "diff --git a/link/x.txt b/link/x.txt\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/link/x.txt\n@@ -0,0 +1 @@\n+x\n"
    )
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert [c.file for c in outcome.conflicts] == ["link/x.txt"]
    assert list(outside.iterdir()) == []


async def test_empty_patch_applies_as_nothing(git_repo: Path) -> None:
    before = _snapshot(git_repo)
    outcome = await apply_patches(git_repo, [("p1", "")], commit_message="nothing")
    assert (outcome.applied, outcome.conflicts, outcome.commit_sha) == (("p1",), (), None)
    assert _snapshot(git_repo) == before


async def test_unparseable_patch_is_a_conflict_not_a_crash(git_repo: Path) -> None:
    outcome = await apply_patches(git_repo, [("p1", "this is not a diff\n")])
    assert outcome.applied == ()
    (conflict,) = outcome.conflicts
    assert conflict.patch_id == "p1"
    assert "No valid patches" in conflict.reason


async def test_file_in_the_way_of_a_new_directory_conflicts(git_repo: Path) -> None:
    patch = await _patch(git_repo, "c1", {"README.md": b"# x\n", "notes/today.md": b"hi\n"})
    (git_repo / "notes").write_text("a file, not a directory\n")
    before = _snapshot(git_repo)
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert [c.file for c in outcome.conflicts] == ["notes/today.md"]
    assert _snapshot(git_repo) == before


async def test_failure_while_writing_restores_every_file(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch = await _patch(
        git_repo, "c1", {"README.md": None, "a/new.txt": b"new\n", "src/app.py": b"changed\n"}
    )
    (git_repo / "user.txt").write_text("user\n")
    before = _snapshot(git_repo)
    real_place = apply_module._place
    calls = 0

    def failing_place(src: Path, dst: Path) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        real_place(src, dst)

    monkeypatch.setattr(apply_module, "_place", failing_place)
    with pytest.raises(WorkspaceError, match=r"could not write src/app.py: No space left.*restored"):
        await apply_patches(git_repo, [("p1", patch)])
    monkeypatch.setattr(apply_module, "_place", real_place)
    assert _snapshot(git_repo) == before
    assert not (git_repo / "a").exists()


async def test_crlf_and_unicode_paths_apply(git_repo: Path) -> None:
    (git_repo / "wín dows.txt").write_bytes(b"one\r\ntwo\r\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "crlf")
    patch = await _patch(git_repo, "c1", {"wín dows.txt": b"one\r\nTWO\r\n", "日本/新.md": b"x\n"})
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert outcome.conflicts == ()
    assert (git_repo / "wín dows.txt").read_bytes() == b"one\r\nTWO\r\n"
    assert (git_repo / "日本" / "新.md").read_bytes() == b"x\n"


async def test_conflict_on_a_unicode_path_names_it(git_repo: Path) -> None:
    (git_repo / "é.txt").write_text("a\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "unicode")
    patch = await _patch(git_repo, "c1", {"é.txt": b"b\n"})
    (git_repo / "é.txt").write_text("user\n")
    outcome = await apply_patches(git_repo, [("p1", patch)])
    assert [c.file for c in outcome.conflicts] == ["é.txt"]


async def test_commit_and_rebaseline_work_without_a_git_identity(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(git_repo, "config", "--unset", "user.name")
    git(git_repo, "config", "--unset", "user.email")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("EMAIL", "")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    wt = await create_worktree(git_repo, "c1")
    (wt.path / "README.md").write_text("# agent\n")
    patch = await diff_worktree(wt.git, wt.base_sha)

    outcome = await apply_patches(git_repo, [("p1", patch)], commit_message="agent work")
    await rebaseline(wt.git, wt.base_sha, patch)

    assert outcome.commit_sha is not None
    author = git(git_repo, "log", "-1", "--format=%an <%ae>").strip()
    assert author == "BooCode <boocode@localhost>"
