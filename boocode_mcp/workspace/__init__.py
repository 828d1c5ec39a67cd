"""The git workspace: per-chat worktrees, their diffs, and applying patches to the main workspace."""

from boocode_mcp.workspace.apply import ApplyConflict, ApplyOutcome, apply_patches
from boocode_mcp.workspace.collisions import Overlap, find_collisions
from boocode_mcp.workspace.diff import FileDiff, FileStatus, Hunk, ParsedDiff, parse_unified_diff
from boocode_mcp.workspace.git import capture_head, ensure_repo, exclude_boocode_dir
from boocode_mcp.workspace.worktrees import (
    DiffIndex,
    DiffIndexes,
    Worktree,
    create_worktree,
    diff_worktree,
    is_dirty,
    list_worktrees,
    rebaseline,
    remove_worktree,
    revert_worktree,
    worktree_path,
)

__all__ = [
    "ApplyConflict",
    "ApplyOutcome",
    "DiffIndex",
    "DiffIndexes",
    "FileDiff",
    "FileStatus",
    "Hunk",
    "Overlap",
    "ParsedDiff",
    "Worktree",
    "apply_patches",
    "capture_head",
    "create_worktree",
    "diff_worktree",
    "ensure_repo",
    "exclude_boocode_dir",
    "find_collisions",
    "is_dirty",
    "list_worktrees",
    "parse_unified_diff",
    "rebaseline",
    "remove_worktree",
    "revert_worktree",
    "worktree_path",
]
