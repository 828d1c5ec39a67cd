"""Telling when two chats' pending patches edit the same lines of the same file.

Two patches collide on a file when the old-line regions they change overlap or touch, which is
when applying both would conflict or silently interleave. Context lines do not count: hunks three
lines apart share context but change different lines. Whole-file changes (binary, added,
deleted, renamed) collide with any change to that file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from boocode_mcp.workspace.diff import FileDiff, Hunk, ParsedDiff


@dataclass(frozen=True)
class Overlap:
    """My patch and another chat's pending patch both change `file` at the same place."""

    file: str
    other_patch_id: str
    other_chat_id: str


# A region is a closed interval on a doubled line axis: line L is 2L, the gap before line L is
# 2L-1. Changed lines s..e occupy [2s-1, 2e+1] (their bordering gaps included, so adjacent
# changes touch); an insertion before line L is the point 2L-1.
_Region = tuple[int, int]
_WHOLE_FILE: _Region = (-(2**62), 2**62)


def _region(start: int, deleted: int) -> _Region:
    if deleted:
        return (2 * start - 1, 2 * (start + deleted - 1) + 1)
    return (2 * start - 1, 2 * start - 1)


def _hunk_regions(hunk: Hunk) -> Iterator[_Region]:
    line = hunk.old_start if hunk.old_count else hunk.old_start + 1
    run_start: int | None = None
    deleted = 0
    for text in hunk.lines:
        tag = text[:1]
        if tag in ("-", "+"):
            if run_start is None:
                run_start, deleted = line, 0
            if tag == "-":
                deleted += 1
                line += 1
        elif tag != "\\":
            if run_start is not None:
                yield _region(run_start, deleted)
                run_start = None
            line += 1
    if run_start is not None:
        yield _region(run_start, deleted)


def _regions(diff: FileDiff) -> list[_Region]:
    if diff.binary or diff.status in ("added", "deleted", "renamed") or not diff.hunks:
        return [_WHOLE_FILE]
    return [r for hunk in diff.hunks for r in _hunk_regions(hunk)]


def _keys(diff: FileDiff) -> set[str]:
    # A rename changes its old name too; a copy leaves its source alone.
    keys = {diff.path}
    if diff.status == "renamed" and diff.old_path is not None:
        keys.add(diff.old_path)
    return keys


def _touch(a: Sequence[_Region], b: Sequence[_Region]) -> bool:
    return any(a0 <= b1 and b0 <= a1 for a0, a1 in a for b0, b1 in b)


def find_collisions(mine: ParsedDiff, others: Sequence[tuple[str, str, ParsedDiff]]) -> list[Overlap]:
    """Files `mine` shares with other pending patches ([(patch_id, chat_id, parsed)]) at touching lines."""
    found: list[Overlap] = []
    for theirs_id, theirs_chat, theirs in others:
        for my_file in mine.files:
            my_keys = _keys(my_file)
            for their_file in theirs.files:
                shared = my_keys & _keys(their_file)
                if shared and _touch(_regions(my_file), _regions(their_file)):
                    found.append(Overlap(min(shared), theirs_id, theirs_chat))
                    break
    return found
