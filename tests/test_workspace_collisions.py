"""find_collisions: two chats' pending patches that change the same or touching lines of a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from boocode_mcp.workspace import (
    Overlap,
    ParsedDiff,
    create_worktree,
    diff_worktree,
    find_collisions,
    parse_unified_diff,
)
from tests.conftest import git

pytestmark = pytest.mark.anyio

_LINES = [f"line {i}\n" for i in range(1, 41)]


@pytest.fixture
def repo(git_repo: Path) -> Path:
    (git_repo / "f.txt").write_text("".join(_LINES))
    (git_repo / "g.txt").write_text("".join(_LINES))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "forty lines")
    return git_repo


async def _edit(repo: Path, chat: str, changes: dict[int, str | None], name: str = "f.txt") -> ParsedDiff:
    """Replace (str) or delete (None) 1-based lines of `name` in the chat's worktree; its parsed diff."""
    wt = await create_worktree(repo, chat)
    lines = list(_LINES)
    for number in sorted(changes, reverse=True):
        replacement = changes[number]
        if replacement is None:
            del lines[number - 1]
        else:
            lines[number - 1] = replacement
    (wt.path / name).write_text("".join(lines))
    return parse_unified_diff(await diff_worktree(wt.git, wt.base_sha))


async def test_same_line_collides(repo: Path) -> None:
    mine = await _edit(repo, "a", {10: "mine\n"})
    theirs = await _edit(repo, "b", {10: "theirs\n"})
    assert find_collisions(mine, [("p-b", "b", theirs)]) == [Overlap("f.txt", "p-b", "b")]


async def test_adjacent_lines_collide(repo: Path) -> None:
    mine = await _edit(repo, "a", {10: "mine\n"})
    theirs = await _edit(repo, "b", {11: "theirs\n"})
    assert find_collisions(mine, [("p-b", "b", theirs)]) == [Overlap("f.txt", "p-b", "b")]


async def test_lines_sharing_only_context_do_not_collide(repo: Path) -> None:
    # Three lines apart: the hunks' context overlaps, the changed lines do not touch.
    mine = await _edit(repo, "a", {10: "mine\n"})
    theirs = await _edit(repo, "b", {13: "theirs\n"})
    m, t = mine.files[0].hunks[0], theirs.files[0].hunks[0]
    assert t.old_start < m.old_start + m.old_count
    assert find_collisions(mine, [("p-b", "b", theirs)]) == []


async def test_far_apart_and_other_files_do_not_collide(repo: Path) -> None:
    mine = await _edit(repo, "a", {2: "mine\n"})
    far = await _edit(repo, "b", {30: "theirs\n"})
    other_file = await _edit(repo, "c", {2: "theirs\n"}, name="g.txt")
    assert find_collisions(mine, [("p-b", "b", far), ("p-c", "c", other_file)]) == []


async def test_insertion_touching_a_changed_line_collides(repo: Path) -> None:
    mine = await _edit(repo, "a", {20: None})
    wt = await create_worktree(repo, "b")
    (wt.path / "f.txt").write_text("".join([*_LINES[:20], "inserted\n", *_LINES[20:]]))
    theirs = parse_unified_diff(await diff_worktree(wt.git, wt.base_sha))
    assert find_collisions(mine, [("p-b", "b", theirs)]) == [Overlap("f.txt", "p-b", "b")]


async def test_whole_file_changes_collide_with_any_edit(repo: Path) -> None:
    mine = await _edit(repo, "a", {40: "mine\n"})
    wt = await create_worktree(repo, "b")
    (wt.path / "f.txt").rename(wt.path / "moved.txt")
    renamed = parse_unified_diff(await diff_worktree(wt.git, wt.base_sha))
    assert renamed.files[0].status == "renamed"
    assert find_collisions(mine, [("p-b", "b", renamed)]) == [Overlap("f.txt", "p-b", "b")]


def test_both_adding_the_same_file_collide() -> None:
    added = parse_unified_diff(
        "diff --git a/n.txt b/n.txt\nnew file mode 100644\n--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+x\n"
    )
    assert find_collisions(added, [("p2", "c2", added)]) == [Overlap("n.txt", "p2", "c2")]
