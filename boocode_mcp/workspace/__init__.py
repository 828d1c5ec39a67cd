"""The git workspace: per-chat worktrees, their diffs, and applying patches to the main workspace."""

from boocode_mcp.workspace.apply import ApplyConflict, ApplyOutcome, apply_patches
from boocode_mcp.workspace.collisions import Overlap, find_collisions
from boocode_mcp.workspace.diff import FileDiff, FileStatus, Hunk, ParsedDiff, parse_unified_diff
from boocode_mcp.workspace.git import (
    GitRepo,
    TamperedWorktreeError,
    capture_head,
    ensure_repo,
    exclude_boocode_dir,
    fetch_commit,
    open_repo,
    run_git,
)
from boocode_mcp.workspace.worktrees import (
    DiffIndex,
    DiffIndexes,
    Worktree,
    apply_to_worktree,
    chat_worktree,
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
    "GitRepo",
    "Hunk",
    "Overlap",
    "ParsedDiff",
    "TamperedWorktreeError",
    "Worktree",
    "apply_patches",
    "apply_to_worktree",
    "capture_head",
    "chat_worktree",
    "create_worktree",
    "diff_worktree",
    "ensure_repo",
    "exclude_boocode_dir",
    "fetch_commit",
    "find_collisions",
    "is_dirty",
    "list_worktrees",
    "open_repo",
    "parse_unified_diff",
    "rebaseline",
    "remove_worktree",
    "revert_worktree",
    "run_git",
    "worktree_path",
]
