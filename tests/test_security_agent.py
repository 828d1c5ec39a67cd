"""A hostile agent against what BooCode does for it (fs callbacks, capabilities, the JSON-RPC
stream): a real agent process over real pipes, driven through the engine in a real git worktree.
Every attack counts its attempts; nothing may land (or be read) outside the worktree, the worktree's
git metadata is off limits, and garbage on the wire is reported as what it is."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boocode_mcp.agents.registry import AgentRegistry
from boocode_mcp.config import AgentSpec, Config
from boocode_mcp.engine import Engine
from tests.conftest import TESTS_DIR, run_turn
from tests.test_agents_backend import open_backend, turn

pytestmark = pytest.mark.anyio

HOSTILE_AGENT = TESTS_DIR / "fixtures" / "hostile_agent.py"
ATTEMPTS = 200


def hostile_config() -> Config:
    spec = AgentSpec(command=sys.executable, args=(str(HOSTILE_AGENT),))
    return Config(default_agent="hostile", agents={"hostile": spec})


@pytest.fixture
async def engine(git_repo: Path) -> AsyncIterator[Engine]:
    async with Engine.open(git_repo, config=hostile_config()) as eng:
        yield eng


def counts(reply: str | None) -> dict[str, int]:
    assert reply is not None
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", reply)}


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]


def written_files(worktree: Path) -> list[Path]:
    return [p for p in worktree.rglob("f*.txt") if ".git" not in p.parts]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The sentinel directory the attacks aim at: it must stay as the test left it."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


async def test_symlink_swap_race_writes_never_land_outside(engine: Engine, outside: Path) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, f"race-write box {outside} {ATTEMPTS}")
    assert run.status == "completed", run.error
    got = counts(run.final_message)
    assert got["attempts"] == ATTEMPTS and got["written"] + got["refused"] == ATTEMPTS
    assert got["flips"] > 0  # the directory really was swapped while the writes went on
    assert files_under(outside) == []
    # Every write the client accepted is a file inside the worktree.
    assert len(written_files(Path(run.worktree))) == got["written"]


async def test_symlink_swap_race_reads_never_read_outside(engine: Engine, outside: Path) -> None:
    (outside / "secret.txt").write_text("OUTSIDE\n")
    sid = await engine.ensure_session()
    # The chat's worktree exists from its first turn on; the file to read is put there by the agent.
    first = await run_turn(engine, sid, "write box/secret.txt inside")
    assert first.status == "completed", first.error
    run = await run_turn(engine, sid, f"race-read box {outside} {ATTEMPTS}", chat_id=first.chat_id)
    assert run.status == "completed", run.error
    got = counts(run.final_message)
    assert got["attempts"] == ATTEMPTS and got["inside"] + got["refused"] == ATTEMPTS
    assert got["outside"] == 0 and got["flips"] > 0
    assert [p.name for p in files_under(outside)] == ["secret.txt"]


@pytest.mark.parametrize("path", [".git", ".git/config", "sub/.git/config", ".GIT/hooks/pre-commit"])
async def test_the_worktrees_git_metadata_cannot_be_written_or_read(engine: Engine, path: str) -> None:
    sid = await engine.ensure_session()
    run = await run_turn(engine, sid, f"write {path} gitdir: evilgit")
    assert run.final_message is not None and run.final_message.startswith("error -32602")
    assert path in run.final_message and ".git" in run.final_message
    worktree = Path(run.worktree)
    assert (worktree / ".git").is_file()  # git's own pointer, untouched
    assert "evilgit" not in (worktree / ".git").read_text()
    read = await run_turn(engine, sid, f"read {path}", chat_id=run.chat_id)
    assert read.final_message is not None and read.final_message.startswith("error -32602")


async def test_invalid_paths_are_invalid_params_naming_the_path(tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    async with open_backend(tmp_path, worktree) as backend:
        for command in ("read", "write"):
            _, rec = await turn(backend, f"{command} bad\x00name.txt x")
            assert rec.text.startswith("error -32602"), rec.text
            assert "bad\\x00name.txt" in rec.text and "NUL" in rec.text
        _, rec = await turn(backend, "read no/such/file.txt")
        assert rec.text.startswith("error -32002") and "no/such/file.txt" in rec.text
        _, rec = await turn(backend, f"write {'x' * 300}.txt long")
        assert rec.text.startswith("error -32602") and "too long" in rec.text
    assert [p.name for p in worktree.iterdir()] == []


async def test_capabilities_not_advertised_are_not_served(tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    spec = AgentSpec(command=sys.executable, args=(str(HOSTILE_AGENT),), fs=False, terminal=False)
    agent = AgentRegistry(Config(agents={"h": spec})).resolve("h")
    async with open_backend(tmp_path, worktree, agent) as backend:
        # The agent was told there is no fs and no terminal, and asks the client anyway.
        _, rec = await turn(backend, "client-write escaped.txt x")
        assert rec.text.startswith("error -32601"), rec.text
        _, rec = await turn(backend, "terminal sh -c 'touch ran.txt'")
        assert rec.text.startswith("error -32601"), rec.text
    assert not (worktree / "escaped.txt").exists() and not (worktree / "ran.txt").exists()


async def test_invalid_frames_fail_the_run_saying_what_the_agent_sent(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await run_turn(engine, sid, "pid")
    frames = "'[1, 2, 3]' null 'not json at all' '{\"foo\": 1}'"
    run = await run_turn(engine, sid, f"bad-frames {frames}", chat_id=first.chat_id)
    assert run.status == "failed" and run.error is not None
    assert "SIGKILL" not in run.error and "killed" not in run.error
    assert "4 line(s) that are not JSON-RPC messages" in run.error and "'[1, 2, 3]'" in run.error
    assert run.final_message is None or "done" in run.final_message
    # The connection lived on: the same agent process answers the next turn.
    again = await run_turn(engine, sid, "pid", chat_id=first.chat_id)
    assert again.status == "completed" and again.final_message == first.final_message
