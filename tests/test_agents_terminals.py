"""Terminals: own process groups, output limit keeping the tail, kill on release and close."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.agents.terminals import TerminalError, TerminalManager

pytestmark = pytest.mark.anyio


async def gone(pgid: int) -> bool:
    """Whether the group disappears; killed grandchildren linger as zombies until init reaps them."""
    with anyio.move_on_after(5):
        # Polling: nothing signals when init reaps a zombie.
        while procs.group_alive(pgid):  # noqa: ASYNC110
            await anyio.sleep(0.01)
        return True
    return False


async def test_output_and_exit_code(tmp_path: Path) -> None:
    terms = TerminalManager(tmp_path)
    tid = await terms.create("sh", ["-c", "echo hello; echo oops >&2; exit 3"])
    with anyio.fail_after(10):
        exit_ = await terms.wait_for_exit(tid)
    assert (exit_.exit_code, exit_.signal) == (3, None)
    snap = terms.output(tid)
    assert snap.output == "hello\noops\n" and not snap.truncated
    assert snap.exit is not None and snap.exit.exit_code == 3
    await terms.close_all()


async def test_output_limit_keeps_the_tail_on_a_char_boundary(tmp_path: Path) -> None:
    terms = TerminalManager(tmp_path)
    # "é" is two bytes: a 5-byte limit over "aéééé" would start mid-character.
    tid = await terms.create("printf", ["aéééé"], output_byte_limit=5)
    with anyio.fail_after(10):
        await terms.wait_for_exit(tid)
    snap = terms.output(tid)
    assert snap.truncated and snap.output == "éé"
    await terms.close_all()


async def test_release_kills_the_whole_group(tmp_path: Path) -> None:
    terms = TerminalManager(tmp_path)
    tid = await terms.create("sh", ["-c", "sleep 60 & sleep 60"])
    pgid = terms.get(tid).pgid
    assert procs.group_alive(pgid) and terms.output(tid).exit is None
    with anyio.fail_after(10):
        await terms.release(tid)
    assert await gone(pgid)
    with pytest.raises(TerminalError, match="no terminal") as exc:
        terms.output(tid)
    assert exc.value.not_found


async def test_kill_reports_the_signal(tmp_path: Path) -> None:
    terms = TerminalManager(tmp_path)
    tid = await terms.create("sleep", ["60"])
    with anyio.fail_after(10):
        await terms.kill(tid)
        exit_ = await terms.wait_for_exit(tid)
    assert exit_ == exit_.__class__(exit_code=None, signal="SIGKILL")
    await terms.close_all()


async def test_close_all_kills_every_terminal(tmp_path: Path) -> None:
    terms = TerminalManager(tmp_path)
    pgids = []
    for _ in range(3):
        tid = await terms.create("sleep", ["60"])
        pgids.append(terms.get(tid).pgid)
    with anyio.fail_after(10):
        await terms.close_all()
    assert len(terms) == 0 and not any(procs.group_alive(p) for p in pgids)


async def test_cwd_must_stay_in_the_worktree(tmp_path: Path) -> None:
    root = tmp_path / "wt"
    (root / "sub").mkdir(parents=True)
    terms = TerminalManager(root)
    with pytest.raises(TerminalError, match="outside the worktree"):
        await terms.create("true", cwd=str(tmp_path))
    tid = await terms.create("pwd", cwd="sub")
    with anyio.fail_after(10):
        await terms.wait_for_exit(tid)
    assert terms.output(tid).output.strip() == str((root / "sub").resolve())
    with pytest.raises(TerminalError, match="cannot run"):
        await terms.create("boocode-no-such-command-x")
    await terms.close_all()


async def test_env_is_allow_listed_plus_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    terms = TerminalManager(tmp_path)
    tid = await terms.create("sh", ["-c", 'echo "key=$OPENAI_API_KEY extra=$EXTRA"'], env={"EXTRA": "1"})
    with anyio.fail_after(10):
        await terms.wait_for_exit(tid)
    assert terms.output(tid).output == "key= extra=1\n"
    await terms.close_all()
