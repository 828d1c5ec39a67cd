"""BooCode's own git never runs a command of an agent's choosing (nor one the user's config names).

Regression for an agent that, writing files only, made BooCode's end-of-turn patch capture run its
command: `evilgit/HEAD`, `evilgit/objects/info/keep`, `evilgit/refs/heads/keep`, `evilgit/config`
with `core.fsmonitor = "touch <outside>; false"`, then `.git` = `gitdir: evilgit`. Git followed the
worktree's `.git` file, read that config and ran the command. Here a real scripted agent process
writes each payload into its real worktree; BooCode must run none of them (the sentinel directory
outside stays empty) and fail the turn with an error naming the tampered `.git`. Each payload is
first shown to be live: plain git in the tampered worktree runs it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp.engine import Engine
from boocode_mcp.errors import WorkspaceError
from boocode_mcp.views import SubagentView
from boocode_mcp.workspace import TamperedWorktreeError, chat_worktree, create_worktree, diff_worktree
from tests.conftest import git

pytestmark = pytest.mark.anyio

TIMEOUT_S = 30
# Every hook a git command BooCode runs could start.
HOOKS = ("post-index-change", "reference-transaction", "post-checkout", "pre-commit", "post-commit")
# What the evil repository needs for git to take it as one.
EVIL_REPO = {"HEAD": "ref: refs/heads/main\n", "objects/info/keep": "", "refs/heads/keep": ""}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Where every payload writes its sentinel: outside the repository and its worktrees."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def touch(sentinel: Path) -> str:
    return f"touch {shlex.quote(str(sentinel))}; false"


def sentinels(outside: Path) -> list[str]:
    return sorted(p.name for p in outside.iterdir())


# The agent writes its files itself, as agents with their own edit tools do: what BooCode's fs
# callbacks accept or refuse plays no part here.
writes_itself = pytest.mark.engine_config(agent_extra='env = { FIXTURE_NO_FS = "1" }')


async def turn(engine: Engine, prompt: str, follow: SubagentView | None = None) -> SubagentView:
    """A turn on a new chat, or on the chat of `follow`, run to its end (bounded)."""
    sid = follow.session_id if follow is not None else await engine.ensure_session()
    view = await engine.spawn(sid, prompt, chat_id=follow.chat_id if follow is not None else None)
    with anyio.fail_after(TIMEOUT_S):
        return await engine.wait_finished(sid, view.subagent_id)


def put_files(files: dict[str, Any]) -> str:
    return "put-files " + json.dumps(files)


def evil_repo(at: str, config: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    files: dict[str, Any] = {f"{at}/{name}": text for name, text in EVIL_REPO.items()}
    files[f"{at}/config"] = config
    for name, text in (extra or {}).items():
        files[f"{at}/{name}"] = text
    return files


# name -> (config of the evil repository, files beside it in the worktree, git commands that run
# the payload when git follows the tampered .git)
Payload = Callable[[Path], tuple[str, dict[str, Any], list[list[str]]]]
PAYLOADS: dict[str, Payload] = {
    "fsmonitor": lambda out: (f'[core]\n\tfsmonitor = "{touch(out / "fsmonitor")}"\n', {}, [["status"]]),
    "hooks": lambda out: (
        "[core]\n\thooksPath = evilhooks\n",
        {f"evilhooks/{h}": {"text": f"#!/bin/sh\n{touch(out / h)}\n", "mode": 0o755} for h in HOOKS},
        [["add", "-A"]],
    ),
    "diff.external": lambda out: (
        f'[diff]\n\texternal = "{touch(out / "external")}"\n',
        {},
        [["add", "-A"], ["diff", "--cached"]],
    ),
    "textconv": lambda out: (
        f'[diff "evil"]\n\ttextconv = "{touch(out / "textconv")}"\n',
        {".gitattributes": "* diff=evil\n"},
        [["add", "-A"], ["diff", "--cached"]],
    ),
    "filter": lambda out: (
        f'[filter "evil"]\n\tprocess = "{touch(out / "process")}"\n\tclean = "{touch(out / "clean")}"\n'
        f'\tsmudge = "{touch(out / "smudge")}"\n',
        {".gitattributes": "* filter=evil\n"},
        [["add", "-A"]],
    ),
    "include.path": lambda out: (
        "[include]\n\tpath = evil.inc\n",
        {"evilgit/evil.inc": f'[core]\n\tfsmonitor = "{touch(out / "included")}"\n'},
        [["status"]],
    ),
}


def run_plain_git(worktree: Path, commands: list[list[str]]) -> None:
    """Git as BooCode used to run it: in the worktree, finding the repository through `.git`."""
    for argv in commands:
        subprocess.run(["git", *argv], cwd=worktree, capture_output=True, check=False)


def assert_refused(done: SubagentView) -> None:
    assert done.status == "failed", done
    assert done.patch_id is None
    assert done.error is not None
    assert "could not be recorded as a patch" in done.error
    assert f"the .git of worktree {done.worktree}" in done.error
    assert "BooCode runs no git command there" in done.error


@writes_itself
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
async def test_an_agent_pointing_dot_git_at_its_own_repository_runs_nothing(
    engine: Engine, outside: Path, payload: str
) -> None:
    config, beside, live_with = PAYLOADS[payload](outside)
    files = {
        "notes.txt": "agent work\n",
        **beside,
        **evil_repo("evilgit", config),
        ".git": "gitdir: evilgit\n",
    }

    done = await turn(engine, put_files(files))

    assert done.final_message == f"put {len(files)}"
    assert sentinels(outside) == []
    assert_refused(done)
    assert "points at" in (done.error or "")
    # A later turn of the chat meets the same refusal; still nothing ran.
    again = await turn(engine, "write more.txt more", done)
    assert_refused(again)
    assert sentinels(outside) == []
    # The payload was live: git that follows the worktree's .git runs it.
    run_plain_git(Path(done.worktree), live_with)
    assert sentinels(outside) != []


@writes_itself
@pytest.mark.parametrize("kind", ["directory", "symlink"])
async def test_a_dot_git_replaced_by_a_directory_or_a_symlink_runs_nothing(
    engine: Engine, outside: Path, kind: str
) -> None:
    configs, beside = [], {}
    for make in PAYLOADS.values():
        config, extra, _ = make(outside)
        configs.append(config.replace("evil.inc", "../evilgit/evil.inc"))
        beside.update(extra)
    config = "".join(configs)
    # In order: the .git file goes, then the evil repository is written as .git itself, or beside
    # it with .git a symbolic link to it ("./.git": a second key for the same path).
    files: dict[str, Any] = {"notes.txt": "agent work\n", **beside, ".git": {"remove": True}}
    if kind == "directory":
        files.update(evil_repo(".git", config))
    else:
        files.update(evil_repo("evilgit", config))
        files["./.git"] = {"symlink": "evilgit"}

    done = await turn(engine, put_files(files))

    assert sentinels(outside) == []
    assert_refused(done)
    assert f"is a {'directory' if kind == 'directory' else 'symbolic link'}" in (done.error or "")
    run_plain_git(Path(done.worktree), [["status"], ["add", "-A"], ["diff", "--cached"]])
    assert sentinels(outside) != []


@writes_itself
async def test_commands_the_users_own_config_names_stay_off_on_agent_files(
    engine: Engine, git_repo: Path, outside: Path, tmp_path: Path
) -> None:
    # The user's repository config names commands (an fsmonitor, hooks, filter and diff drivers,
    # one through an include); the agent's .gitattributes would point git at them for its files.
    hooks = tmp_path / "user-hooks"
    hooks.mkdir()
    for h in HOOKS:
        (hooks / h).write_text(f"#!/bin/sh\n{touch(outside / h)}\n")
        (hooks / h).chmod(0o755)
    included = tmp_path / "included.gitconfig"
    included.write_text(f'[filter "inc"]\n\tclean = "{touch(outside / "inc-clean")}"\n')
    config = {
        "core.fsmonitor": touch(outside / "fsmonitor"),
        "core.hooksPath": str(hooks),
        "diff.external": touch(outside / "external"),
        "diff.evil.textconv": touch(outside / "textconv"),
        "diff.evil.command": touch(outside / "diff-command"),
        "filter.evil.process": touch(outside / "process"),
        "filter.evil.clean": touch(outside / "clean"),
        "filter.evil.smudge": touch(outside / "smudge"),
        "filter.evil.required": "true",
        "include.path": str(included),
    }
    for key, value in config.items():
        git(git_repo, "config", key, value)
    attributes = "* filter=evil diff=evil\n*.inc filter=inc\n"

    first = await turn(engine, put_files({".gitattributes": attributes, "a.txt": "a\n", "b.inc": "b\n"}))
    assert first.status == "completed", first.error
    assert first.patch_id is not None
    second = await turn(engine, put_files({"c.txt": "c\n"}), first)
    assert second.status == "completed", second.error
    sid = second.session_id
    patch = await engine.get_patch(sid, second.patch_id or "")
    assert sorted(f.path for f in patch.files) == [".gitattributes", "a.txt", "b.inc", "c.txt"]
    await engine.discard(sid, second.patch_id or "")
    third = await turn(engine, put_files({"d.txt": "d\n"}), first)
    assert third.status == "completed", third.error
    result = await engine.apply_pending(sid, chat_id=third.chat_id, commit_message="agent work")
    assert result.conflicts == [] and result.commit_sha is not None
    assert (git_repo / "d.txt").read_text() == "d\n"

    assert sentinels(outside) == []
    # The config was live: the user's own git in the main checkout runs it.
    run_plain_git(git_repo, [["status"], ["add", "-A"]])
    assert sentinels(outside) != []


async def test_the_git_directory_is_the_one_the_main_repository_recorded(git_repo: Path) -> None:
    wt = await create_worktree(git_repo, "chat-a")
    assert wt.git.git_dir == git_repo / ".git" / "worktrees" / "chat-a"
    # Another admin directory name (git numbers it when the usual one is taken) is found through the
    # main repository's records, not through the worktree's .git file.
    moved = git_repo / ".git" / "worktrees" / "chat-a1"
    wt.git.git_dir.rename(moved)
    (wt.path / ".git").write_text(f"gitdir: {moved}\n")
    tree = await chat_worktree(git_repo, "chat-a")
    assert tree.git_dir == moved
    (wt.path / "x.txt").write_text("x\n")
    assert "b/x.txt" in await diff_worktree(tree, wt.base_sha)
    # The worktree's .git naming another (real) git directory is refused, not followed.
    other = await create_worktree(git_repo, "chat-b")
    (wt.path / ".git").write_text(f"gitdir: {other.git.git_dir}\n")
    with pytest.raises(TamperedWorktreeError, match="points at"):
        await diff_worktree(tree, wt.base_sha)
    assert issubclass(TamperedWorktreeError, WorkspaceError)


async def test_inherited_git_variables_do_not_redirect_boocodes_git(
    git_repo: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt = await create_worktree(git_repo, "chat-a")
    evil = outside.parent / "evil-config"
    evil.write_text(f'[core]\n\tfsmonitor = "{touch(outside / "env-config")}"\n')
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "include.path")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(evil))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'include.path'='{evil}'")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", touch(outside / "external-env"))
    monkeypatch.setenv("GIT_DIR", str(outside))
    (wt.path / "x.txt").write_text("x\n")
    assert "b/x.txt" in await diff_worktree(wt.git, wt.base_sha)
    assert sentinels(outside) == []
    assert os.environ["GIT_DIR"] == str(outside)
