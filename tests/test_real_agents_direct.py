"""Real agents (opencode, qwen-code) driven directly over ACP against the scripted model server.

These pin what BooCode relies on from each agent, without BooCode in between: a text turn, a
scripted file write landing on disk, cancel of a slow turn, and session/load in a new process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from acp import text_block

from tests.model_server import ModelServer, RequestRecord
from tests.real_agents import (  # noqa: F401 - pytest fixtures
    direct_agent,
    model_server_fixture,
    real_agent_fixture,
    setup_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.real_agents]

TURN_S = 120


async def _wait_request(server: ModelServer, predicate: Any, within: float) -> RequestRecord:
    return await anyio.to_thread.run_sync(lambda: server.wait_for(predicate, within))


async def test_text_turn(real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path) -> None:
    name, binary = real_agent
    setup = setup_for(name, binary, model_server.base_url, git_repo.parent / "scratch")
    with anyio.fail_after(TURN_S):
        async with direct_agent(setup, git_repo, git_repo.parent / "agent.log") as agent:
            sid = (await agent.conn.new_session(cwd=str(git_repo), mcp_servers=[])).session_id
            resp = await agent.conn.prompt(session_id=sid, prompt=[text_block("please say hello-direct")])
    assert resp.stop_reason == "end_turn"
    assert "hello-direct" in agent.client.text()
    assert any(r.kind == "text" and r.tool_names for r in model_server.completions())


async def test_scripted_write_lands_on_disk(
    real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path
) -> None:
    name, binary = real_agent
    setup = setup_for(name, binary, model_server.base_url, git_repo.parent / "scratch")
    with anyio.fail_after(TURN_S):
        async with direct_agent(setup, git_repo, git_repo.parent / "agent.log") as agent:
            sid = (await agent.conn.new_session(cwd=str(git_repo), mcp_servers=[])).session_id
            resp = await agent.conn.prompt(
                session_id=sid, prompt=[text_block("write file notes/direct.txt with direct-content")]
            )
    assert resp.stop_reason == "end_turn"
    assert (git_repo / "notes" / "direct.txt").read_text().strip() == "direct-content"
    kinds = [r.kind for r in model_server.completions()]
    assert "tool_call" in kinds and "final" in kinds, kinds


async def test_cancel_slow_turn_then_next_turn(
    real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path
) -> None:
    name, binary = real_agent
    setup = setup_for(name, binary, model_server.base_url, git_repo.parent / "scratch")
    with anyio.fail_after(TURN_S):
        async with direct_agent(setup, git_repo, git_repo.parent / "agent.log") as agent:
            sid = (await agent.conn.new_session(cwd=str(git_repo), mcp_servers=[])).session_id
            result: dict[str, Any] = {}

            async def run_slow() -> None:
                result["resp"] = await agent.conn.prompt(session_id=sid, prompt=[text_block("slow")])

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_slow)
                slow = await _wait_request(
                    model_server, lambda r: r.kind == "slow" and r.chunks_sent >= 3, 30
                )
                await agent.conn.cancel(session_id=sid)
            assert result["resp"].stop_reason == "cancelled"
            # The agent dropped the model stream: the server saw the disconnect well before the end.
            await _wait_request(model_server, lambda r: r is slow and (r.disconnected or r.finished), 15)
            assert slow.disconnected, f"slow stream ran to the end ({slow.chunks_sent} chunks)"
            resp = await agent.conn.prompt(session_id=sid, prompt=[text_block("say after-cancel")])
    assert resp.stop_reason == "end_turn"
    assert "after-cancel" in agent.client.text()


async def test_session_load_in_new_process(
    real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path
) -> None:
    name, binary = real_agent
    setup = setup_for(name, binary, model_server.base_url, git_repo.parent / "scratch")
    log = git_repo.parent / "agent.log"
    with anyio.fail_after(2 * TURN_S):
        async with direct_agent(setup, git_repo, log) as first:
            assert first.init.agent_capabilities.load_session
            sid = (await first.conn.new_session(cwd=str(git_repo), mcp_servers=[])).session_id
            await first.conn.prompt(session_id=sid, prompt=[text_block("remember marker-one, say ok")])
            await setup.wait_recorded("marker-one")
        async with direct_agent(setup, git_repo, log) as second:
            assert second.proc.pid != first.proc.pid
            await second.conn.load_session(cwd=str(git_repo), session_id=sid, mcp_servers=[])
            mark = model_server.mark()
            resp = await second.conn.prompt(session_id=sid, prompt=[text_block("say marker-two")])
    assert resp.stop_reason == "end_turn"
    turn = [r for r in model_server.since(mark) if r.kind == "text"]
    assert turn, [r.kind for r in model_server.since(mark)]
    assert "marker-one" in turn[-1].all_text(), "history was not carried into the loaded session"
