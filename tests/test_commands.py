"""run_command: real processes, no shell, cwd confined to the workspace, group kill on timeout."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from boocode_mcp.commands import run_command
from boocode_mcp.errors import CommandError, InvalidRequestError, PathOutsideWorkspaceError

pytestmark = pytest.mark.anyio


def _live_members(pgid: int) -> list[int]:
    """Pids of the group that are still running; killed ones may linger as zombies until reaped."""
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            live.append(int(entry.name))
    return live


async def _assert_group_gone(pgid: int) -> None:
    """Every member of the group exits (bounded): SIGKILL is delivered asynchronously."""
    with anyio.fail_after(5):
        for pid in _live_members(pgid):
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                # A pidfd becomes readable when its process exits.
                await anyio.wait_readable(pidfd)
            finally:
                os.close(pidfd)
    assert _live_members(pgid) == []


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    return ws


async def test_runs_a_program_in_the_workspace(workspace: Path) -> None:
    result = await run_command(workspace, "pwd")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(await anyio.Path(workspace).resolve())
    assert (result.stderr, result.truncated, result.timed_out) == ("", False, False)
    assert result.duration_ms >= 0


async def test_exit_code_and_stderr(workspace: Path) -> None:
    result = await run_command(workspace, "sh", ["-c", "echo oops >&2; exit 3"])
    assert (result.exit_code, result.stderr, result.stdout) == (3, "oops\n", "")


async def test_shell_metacharacters_stay_literal(workspace: Path) -> None:
    (workspace / "x").write_text("keep me")
    arg = "$(echo hi); rm -rf x && `id` | cat > y *"
    result = await run_command(workspace, "echo", [arg])
    assert result.stdout == arg + "\n"
    assert (workspace / "x").read_text() == "keep me"
    assert not (workspace / "y").exists()


async def test_timeout_kills_the_whole_group(workspace: Path) -> None:
    started = time.monotonic()
    result = await run_command(workspace, "sh", ["-c", "sleep 30 & echo $!; echo $$; sleep 30"], timeout_s=1)
    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.exit_code is None
    assert elapsed < 10
    grandchild, leader = (int(x) for x in result.stdout.split())
    # The leader's pid is the group id (own session); nothing of the group is left, the
    # backgrounded sleep included.
    await _assert_group_gone(leader)
    assert grandchild not in _live_members(leader)


async def test_background_leftovers_are_killed_when_the_program_exits(workspace: Path) -> None:
    result = await run_command(workspace, "sh", ["-c", "sleep 30 & echo $$"], timeout_s=20)
    assert (result.exit_code, result.timed_out) == (0, False)
    assert result.duration_ms < 10_000
    await _assert_group_gone(int(result.stdout))


async def test_chatty_output_is_capped_and_never_blocks(workspace: Path) -> None:
    script = "import sys\nsys.stdout.write('o' * 1_000_000)\nsys.stderr.write('e' * 1_000_000)\n"
    result = await run_command(workspace, sys.executable, ["-c", script], output_cap=1000, timeout_s=20)
    assert (result.exit_code, result.timed_out, result.truncated) == (0, False, True)
    assert result.stdout == "o" * 1000
    assert result.stderr == "e" * 1000


async def test_default_cap_is_32k(workspace: Path) -> None:
    result = await run_command(workspace, sys.executable, ["-c", "print('x' * 40_000)"])
    assert result.truncated
    assert len(result.stdout) == 32_768


async def test_output_under_the_cap_is_not_truncated(workspace: Path) -> None:
    result = await run_command(workspace, "printf", ["héllo"], output_cap=6)
    assert (result.stdout, result.truncated) == ("héllo", False)


async def test_cut_inside_a_multibyte_character_drops_the_partial_character(workspace: Path) -> None:
    result = await run_command(workspace, "printf", ["aé"], output_cap=2)
    assert (result.stdout, result.truncated) == ("a", True)


async def test_cwd_inside_the_workspace(workspace: Path) -> None:
    result = await run_command(workspace, "pwd", cwd="sub")
    assert result.stdout.strip().endswith("/ws/sub")
    absolute = await run_command(workspace, "pwd", cwd=str(workspace / "sub"))
    assert absolute.stdout == result.stdout


@pytest.mark.parametrize("cwd", ["..", "sub/../..", "/", "/tmp"])
async def test_cwd_escapes_are_refused(workspace: Path, cwd: str) -> None:
    with pytest.raises(PathOutsideWorkspaceError, match="outside the workspace"):
        await run_command(workspace, "pwd", cwd=cwd)


async def test_cwd_symlink_leaving_the_workspace_is_refused(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "link").symlink_to(outside)
    with pytest.raises(PathOutsideWorkspaceError, match="link"):
        await run_command(workspace, "pwd", cwd="link")


async def test_missing_cwd_is_a_command_error(workspace: Path) -> None:
    with pytest.raises(CommandError, match="'nope' is not an existing directory"):
        await run_command(workspace, "pwd", cwd="nope")


async def test_missing_program_is_a_clear_error(workspace: Path) -> None:
    with pytest.raises(CommandError, match="program 'no-such-program-xyz' not found on PATH"):
        await run_command(workspace, "no-such-program-xyz", ["a"])


async def test_not_executable_program(workspace: Path) -> None:
    (workspace / "script.sh").write_text("echo hi\n")
    with pytest.raises(CommandError, match="not executable"):
        await run_command(workspace, "./script.sh")


async def test_bad_arguments_are_refused(workspace: Path) -> None:
    with pytest.raises(InvalidRequestError, match="needs a program"):
        await run_command(workspace, "")
    with pytest.raises(InvalidRequestError, match="timeout_s"):
        await run_command(workspace, "true", timeout_s=0)


async def test_environment_is_allow_listed_plus_given(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOCODE_TEST_SECRET", "hunter2")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent")
    result = await run_command(workspace, "env", env={"GIVEN_VAR": "given value"})
    lines = result.stdout.splitlines()
    assert "GIVEN_VAR=given value" in lines
    assert not any(line.startswith(("BOOCODE_TEST_SECRET=", "OPENAI_API_KEY=")) for line in lines)
    assert any(line.startswith("PATH=") for line in lines)


async def test_cancelling_the_caller_kills_the_group(workspace: Path) -> None:
    pid_file = workspace / "pid"
    with anyio.move_on_after(1):
        await run_command(workspace, "sh", ["-c", f"echo $$ > {pid_file}; sleep 30"], timeout_s=60)
    leader = int(pid_file.read_text())
    await _assert_group_gone(leader)


async def test_missing_workspace_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="gone does not exist"):
        await run_command(tmp_path / "gone", "pwd")
