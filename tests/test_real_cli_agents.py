"""Real agents in their one-shot command modes (`opencode-cli`, `qwen-cli`) through the BooCode MCP
server, end to end, against the scripted model server (tests/model_server.py).

The workspace config replaces the built-in `<agent>-cli` entry with the same arguments plus what
the stub provider needs (tests/real_agents.py `cli_spec_for`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.config import AgentSpec
from tests.model_server import ModelServer
from tests.real_agents import (  # noqa: F401 - pytest fixtures
    agent_table,
    boocode_mcp,
    cli_spec_for,
    model_server_fixture,
    real_agent_fixture,
    wait_group_gone,
    wait_request,
)

pytestmark = [pytest.mark.anyio, pytest.mark.real_agents]

# Bound on each test: a one-shot turn takes seconds, the tool's start-up included; room for a slow
# machine, and a hang still fails.
TEST_S = 180

# An ACP command that exits before it answers `initialize`.
NOT_ACP = AgentSpec(
    command=sys.executable, args=("-c", "import sys; print('no ACP', file=sys.stderr); sys.exit(3)")
)


@dataclass(frozen=True)
class Workspace:
    repo: Path
    scratch: Path
    name: str
    spec: AgentSpec
    server: ModelServer

    @property
    def agent(self) -> str:
        return f"{self.name}-cli"

    def log(self, name: str) -> Path:
        return self.scratch / "logs" / name

    def write_config(self, **extra: AgentSpec) -> None:
        tables = [agent_table(self.agent, self.spec), *(agent_table(n, s) for n, s in extra.items())]
        (self.repo / ".boocode").mkdir(exist_ok=True)
        (self.repo / ".boocode" / "config.toml").write_text("\n".join(tables))

    def session(self) -> Any:
        return boocode_mcp(self.repo, self.scratch, self.log("boocode.log"))


@pytest.fixture
def ws(real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path) -> Workspace:
    name, binary = real_agent
    scratch = git_repo.parent / "scratch"
    spec = cli_spec_for(name, binary, model_server.base_url, scratch / "agent")
    workspace = Workspace(git_repo, scratch, name, spec, model_server)
    workspace.write_config()
    return workspace


async def test_write_becomes_patch_and_applies(ws: Workspace) -> None:
    target = ws.repo / "notes" / "from-cli.txt"
    with anyio.fail_after(TEST_S):
        async with ws.session() as bc:
            status, patches, applied = await bc.write_and_apply(
                ws.agent, "notes/from-cli.txt", "cli-content", ws.repo
            )
    assert [p["id"] for p in patches] == [status["patch_id"]]
    # Only the file the agent was asked to write: nothing of the tool's own state leaks in.
    assert [f["path"] for f in patches[0]["files"]] == ["notes/from-cli.txt"]
    assert "notes/from-cli.txt" in status["activity"]["files_touched"]
    assert applied["applied"] == [status["patch_id"]] and applied["conflicts"] == []
    assert target.read_text().strip() == "cli-content"


async def test_text_turn_then_a_follow_up_continues_the_tools_session(ws: Workspace) -> None:
    # One test for both: the follow-up needs a first turn, and each turn costs a tool start-up.
    with anyio.fail_after(2 * TEST_S):
        async with ws.session() as bc:
            first = await bc.run("remember cli-marker, please say hello-cli", agent=ws.agent)
            assert first["status"] == "completed", first
            [row] = await bc.agent_sessions(first["chat_id"])
            mark = ws.server.mark()
            second = await bc.run("say two", chat_id=first["chat_id"])
    assert "hello-cli" in (first["final_message"] or "") and first["session_note"] is None
    assert first["worktree"] and Path(first["worktree"]) != ws.repo
    # One process per turn: none is left between turns, and the tool's session id is kept.
    assert (row["backend"], row["status"], row["pid"]) == ("cli", "idle", None)
    assert row["acp_session_id"] and not row["acp_session_id"].startswith("cli-")
    assert second["status"] == "completed", second
    assert "two" in (second["final_message"] or "") and second["session_note"] is None
    # `--continue` brought the first turn back: the model saw it in the second turn's history.
    turn = [r for r in ws.server.since(mark) if r.kind == "text"]
    assert turn and "cli-marker" in turn[0].all_text()


async def test_cancel_slow_turn_leaves_no_process(ws: Workspace) -> None:
    with anyio.fail_after(TEST_S):
        async with ws.session() as bc:
            spawned = await bc.spawn("slow 1000", agent=ws.agent)
            slow = await wait_request(ws.server, lambda r: r.kind == "slow" and r.chunks_sent >= 3, 120)
            [row] = await bc.agent_sessions(spawned["chat_id"])
            pid = row["pid"]
            assert pid is not None and procs.group_alive(pid)
            await bc.call("cancel_subagent", subagent_id=spawned["subagent_id"])
            cancelled = await bc.wait_status(spawned["subagent_id"])
            await wait_request(ws.server, lambda r: r is slow and (r.disconnected or r.finished), 60)
            [after] = await bc.agent_sessions(spawned["chat_id"])
            # The process group is gone while the server still runs, not only when it exits.
            await wait_group_gone(pid)
    assert cancelled["status"] == "cancelled", cancelled
    assert slow.disconnected, f"slow stream ran to the end ({slow.chunks_sent} chunks)"
    assert not procs.pid_alive(pid) and after["pid"] is None


# How to make each tool fail for real, and the words its error must carry.
FAILURES = {
    # The model server refuses the request: opencode exits 1 with the reason in its JSON stream.
    "opencode": ("fail with boom-cli", {}, "stub failure boom-cli"),
    # No API key: qwen-code exits 1 with the reason in its stream-json result.
    "qwen": ("say nothing", {"OPENAI_API_KEY": None}, "Missing API key"),
}


async def test_failing_command_reports_its_error(ws: Workspace) -> None:
    prompt, env_change, words = FAILURES[ws.name]
    env = {k: v for k, v in {**ws.spec.env, **env_change}.items() if v is not None}
    ws.write_config(**{"broken-cli": ws.spec.model_copy(update={"env": env})})
    with anyio.fail_after(TEST_S):
        async with ws.session() as bc:
            status = await bc.run(prompt, agent="broken-cli")
    assert status["status"] == "failed", status
    assert "'broken-cli' exited with code 1" in status["error"] and words in status["error"]


async def test_acp_command_that_exits_before_initialize_falls_back(ws: Workspace) -> None:
    ws.write_config(**{"not-acp": NOT_ACP.model_copy(update={"fallback": ws.agent})})
    with anyio.fail_after(TEST_S):
        async with ws.session() as bc:
            status = await bc.run("please say via-fallback", agent="not-acp")
            [row] = await bc.agent_sessions(status["chat_id"])
    assert status["status"] == "completed", status
    assert status["agent"] == "not-acp" and "via-fallback" in (status["final_message"] or "")
    note = status["session_note"] or ""
    assert "'not-acp' failed its ACP handshake" in note and "exited with code 3" in note
    assert f"ran on its fallback {ws.agent!r}" in note
    assert row["agent"] == "not-acp" and row["pid"] is None
