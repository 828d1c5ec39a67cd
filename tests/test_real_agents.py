"""Real agents (opencode, qwen-code) driven through the BooCode MCP server, end to end.

Each test starts the real `boocode-mcp` console script on stdio for a temporary git workspace
whose .boocode/config.toml points the agent at the scripted model server (tests/model_server.py),
and drives it with the MCP SDK client the way a host would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from tests.model_server import ModelServer, message_text
from tests.real_agents import (  # noqa: F401 - pytest fixtures
    TERMINAL,
    AgentSetup,
    boocode_mcp,
    model_server_fixture,
    real_agent_fixture,
    setup_for,
    wait_group_gone,
    wait_request,
    write_workspace_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.real_agents]

# One turn against the stub model takes a few seconds including a cold agent start; these bounds
# leave room for a slow CI machine and still fail a hang quickly.
TEST_S = 180


@dataclass(frozen=True)
class Workspace:
    repo: Path
    scratch: Path
    setup: AgentSetup
    server: ModelServer

    @property
    def agent(self) -> str:
        return self.setup.name

    def log(self, name: str) -> Path:
        return self.scratch / "logs" / name


@pytest.fixture
def ws(real_agent: tuple[str, Path], model_server: ModelServer, git_repo: Path) -> Workspace:
    name, binary = real_agent
    scratch = git_repo.parent / "scratch"
    setup = setup_for(name, binary, model_server.base_url, scratch / "agent")
    write_workspace_config(git_repo, [setup])
    return Workspace(git_repo, scratch, setup, model_server)


async def test_text_turn(ws: Workspace) -> None:
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            status = await bc.run("please say hello-boocode", agent=ws.agent)
            [session] = await bc.agent_sessions(status["chat_id"])
        # The agent (spawned as the leader of its own group) died with the daemon.
        await wait_group_gone(session["pid"])
    assert status["status"] == "completed", status
    assert status["agent"] == ws.agent
    assert "hello-boocode" in (status["final_message"] or "")
    # BooCode ran the agent in the chat's worktree, not in the workspace itself.
    assert status["worktree"] and Path(status["worktree"]) != ws.repo


async def test_write_becomes_patch_and_applies(ws: Workspace) -> None:
    target = ws.repo / "notes" / "from-agent.txt"
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            status, patches, applied = await bc.write_and_apply(
                ws.agent, "notes/from-agent.txt", "agent-content", ws.repo
            )
    assert [p["id"] for p in patches] == [status["patch_id"]]
    patch = patches[0]
    assert patch["status"] == "pending" and patch["agent"] == ws.agent
    # Only the file the agent was asked to write: no agent config or state leaks into the patch.
    assert [f["path"] for f in patch["files"]] == ["notes/from-agent.txt"]
    assert applied["applied"] == [status["patch_id"]] and applied["conflicts"] == []
    assert target.read_text().strip() == "agent-content"


async def test_follow_up_reuses_the_warm_agent(ws: Workspace) -> None:
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            first = await bc.run("remember warm-marker, say one", agent=ws.agent)
            assert first["status"] == "completed", first
            before = await bc.agent_sessions(first["chat_id"])
            mark = ws.server.mark()
            second = await bc.run("say two", chat_id=first["chat_id"])
            after = await bc.agent_sessions(first["chat_id"])
    assert second["status"] == "completed", second
    assert second["chat_id"] == first["chat_id"] and "two" in (second["final_message"] or "")
    assert len(before) == 1 and len(after) == 1, (before, after)
    assert before[0]["pid"] is not None and after[0]["pid"] == before[0]["pid"]
    assert after[0]["acp_session_id"] == before[0]["acp_session_id"]
    # Same agent session: the model saw the first turn in the second turn's history.
    turn = [r for r in ws.server.since(mark) if r.kind == "text"]
    assert turn and "warm-marker" in turn[-1].all_text()


async def test_cancel_slow_turn_then_next_turn(ws: Workspace) -> None:
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            spawned = await bc.spawn("slow", agent=ws.agent)
            slow = await wait_request(ws.server, lambda r: r.kind == "slow" and r.chunks_sent >= 3, 60)
            await bc.call("cancel_subagent", subagent_id=spawned["subagent_id"])
            cancelled = await bc.wait_status(spawned["subagent_id"])
            # The agent dropped its model stream rather than letting it run to the end.
            await wait_request(ws.server, lambda r: r is slow and (r.disconnected or r.finished), 30)
            after = await bc.run("say after-cancel", chat_id=spawned["chat_id"])
    assert cancelled["status"] == "cancelled", cancelled
    assert slow.disconnected, f"slow stream ran to the end ({slow.chunks_sent} chunks)"
    assert after["status"] == "completed", after
    assert "after-cancel" in (after["final_message"] or "")


async def test_follow_up_after_restart_resumes_session(ws: Workspace) -> None:
    with anyio.fail_after(2 * TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode-1.log")) as bc:
            first = await bc.run("remember restart-marker, say one", agent=ws.agent)
            assert first["status"] == "completed", first
            [before] = await bc.agent_sessions(first["chat_id"])
        # No waiting for the agent's record here: the server's own shutdown must leave the agent
        # time to persist the turn (the spec's settle_s covers agents that write it late).
        # A new BooCode daemon on the same workspace: the old agent died with the old daemon.
        await wait_group_gone(before["pid"])
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode-2.log")) as bc:
            mark = ws.server.mark()
            second = await bc.run("say two", chat_id=first["chat_id"], session_id=first["session_id"])
            [after] = await bc.agent_sessions(first["chat_id"])
    assert second["status"] == "completed", second
    assert after["pid"] != before["pid"]
    # Resumed through session/load: the same agent session, and the earlier turn reached the model.
    assert after["acp_session_id"] == before["acp_session_id"]
    turn = [r for r in ws.server.since(mark) if r.kind == "text"]
    assert turn and "restart-marker" in turn[-1].all_text()


@pytest.mark.parametrize("real_agent", ["qwen"], indirect=True)  # opencode asks no permission by default
async def test_permission_question_answered_over_mcp(ws: Workspace) -> None:
    write_workspace_config(ws.repo, [ws.setup], policy="ask")
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            spawned = await bc.spawn("write file asked.txt with allowed-content", agent=ws.agent)
            asking = await bc.wait_status(
                spawned["subagent_id"], frozenset({"awaiting_permission", *TERMINAL})
            )
            assert asking["status"] == "awaiting_permission", asking
            pending = asking["pending_permission"]
            # qwen's own option ids; BooCode passes them through with their ACP kinds.
            kinds = {o["kind"]: o["option_id"] for o in pending["options"]}
            assert {"allow_once", "reject_once"} <= set(kinds), pending
            await bc.call(
                "respond_permission",
                subagent_id=spawned["subagent_id"],
                request_id=pending["request_id"],
                option_id=kinds["allow_once"],
            )
            done = await bc.wait_status(spawned["subagent_id"])
            patches = (await bc.call("list_patches", chat_id=spawned["chat_id"]))["patches"]
    assert done["status"] == "completed", done
    assert [f["path"] for p in patches for f in p["files"]] == ["asked.txt"]


async def test_boocode_acp_prewarms_the_agent_and_applies_its_write(ws: Workspace) -> None:
    """An editor's session through `boocode acp`: the agent is started before the first prompt,
    that prompt runs on it, and `/apply` lands its file."""
    from boocode_mcp.daemon.wire import stop_daemon
    from tests.acp_support import RecordingClient, boocode_acp, new_session, prompt, warm_agents, warmed

    client = RecordingClient()
    with anyio.fail_after(TEST_S):
        async with boocode_acp(ws.repo, client) as conn:
            sid = await new_session(conn, ws.repo)
            pid = await warmed(ws.repo, sid, ws.agent)
            resp = await prompt(conn, sid, "write file notes/from-editor.txt with editor-content")
            assert resp.stop_reason == "end_turn"
            assert warm_agents(ws.repo, sid) == {ws.agent: pid}  # the turn ran on the warm agent
            assert "notes/from-editor.txt" in client.messages()
            await prompt(conn, sid, "/apply")
            assert "applied" in client.messages()
        # The editor is gone; its agent stays warm in the daemon until the daemon stops.
        assert pid in warm_agents(ws.repo, sid).values()
        await anyio.to_thread.run_sync(stop_daemon, ws.repo)
        await wait_group_gone(pid)
    assert (ws.repo / "notes" / "from-editor.txt").read_text().strip() == "editor-content"


async def test_the_agent_calls_boocodes_search_memory_through_its_own_mcp_support(ws: Workspace) -> None:
    """BooCode hands every agent session its own MCP server; a real agent's model asks for
    search_memory, the agent calls it (through whichever transport it took), and the result goes
    back to the model. The call is BooCode's, attributed to the run; the run records the usage
    the agent reported, cache reads included."""
    memory = ws.repo / ".boocode" / "memory"
    memory.mkdir(parents=True, exist_ok=True)
    (memory / "deploys.md").write_text("# Deploys\nShip through the okapi pipeline on Tuesdays.\n")
    mark = ws.server.mark()
    with anyio.fail_after(TEST_S):
        async with boocode_mcp(ws.repo, ws.scratch, ws.log("boocode.log")) as bc:
            prompt = 'use tool search_memory with {"query": "okapi"}'
            status = await bc.run(prompt, agent=ws.agent)
            traces = await bc.resource(f"traces://{status['session_id']}")
    assert status["status"] == "completed", status
    # What each agent reports of the model's usage (the scripted provider says 10 prompt tokens, 4
    # of them read from its cache, and 5 completion tokens per response): opencode in its
    # PromptResponse (input without the cache reads), qwen-code in its chunks' _meta, summed over
    # the turn's responses. Neither reports cost, cache writes or a context window.
    usage = status["usage"]
    assert usage["cache_read_tokens"] and usage["cache_read_tokens"] % 4 == 0, usage
    assert usage["output_tokens"] and usage["output_tokens"] % 5 == 0, usage
    assert (usage["cost"], usage["cache_write_tokens"], usage["context_size"]) == (None, None, None), usage
    requests = ws.server.since(mark)
    # qwen-code first loads the deferred tool's schema (tool_search), opencode calls it at once.
    called = [r for r in requests if r.kind == "tool_call" and (r.tool_name or "").endswith("search_memory")]
    assert len(called) == 1, [(r.kind, r.tool_name) for r in requests]
    answered = next(r for r in requests if r.kind == "final" and r.started_at > called[0].started_at)
    assert "okapi" in message_text(answered.messages[-1]), answered.messages[-1]
    calls = [t for t in traces["traces"] if t["tool_name"] == "search_memory"]
    assert [(t["source"], t["subagent_id"], t["outcome"]) for t in calls] == [
        ("mcp", status["subagent_id"], "ok")
    ]
