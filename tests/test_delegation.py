"""BooCode's MCP server inside every agent session, and subagents that delegate (README, "BooCode
inside every agent session").

One engine (opened as the daemon opens it, with the agent endpoint attached) on one real git
repository serves every test here; the fixture agent (tests/fixtures/fixture_agent.py) is a real
ACP agent process that acts as an MCP client of the server its session is given, over HTTP (it
advertises mcpCapabilities.http) or over stdio (`boocode-mcp` relaying to the same endpoint).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from boocode_mcp.agent_mcp import open_engine
from boocode_mcp.agents.backend import McpGrant
from boocode_mcp.engine import Engine
from boocode_mcp.tools import AGENT_TOOLS, DELEGATION_TOOLS
from boocode_mcp.views import SubagentView
from tests.conftest import FIXTURE_AGENT, TIMEOUT_S, git, write_config

pytestmark = pytest.mark.anyio

FIXTURE = f"command = {sys.executable!r}\nargs = [{str(FIXTURE_AGENT)!r}]\n"
# fixture: HTTP MCP, delegates. fixture-stdio: stdio MCP only. fixture-plain: HTTP, no delegation.
AGENTS = (
    "[delegation]\nmax_depth = 1\nmax_children = 2\n"
    f"[agents.fixture-stdio]\n{FIXTURE}"
    f'[agents.fixture-plain]\n{FIXTURE}env = {{ FIXTURE_MCP_HTTP = "1" }}\n'
)
ID = re.compile(r"subagent ([0-9a-f-]{36})")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    repo = tmp_path_factory.mktemp("delegation") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    write_config(repo, extra=AGENTS, agent_extra='env = { FIXTURE_MCP_HTTP = "1" }\ndelegate = true')
    async with open_engine(repo) as eng:
        yield eng


async def turn(engine: Engine, prompt: str, **spawn: Any) -> SubagentView:
    sid = spawn.pop("session_id", None) or await engine.ensure_session()
    view = await engine.spawn(sid if spawn.get("chat_id") is None else None, prompt, **spawn)
    with anyio.fail_after(TIMEOUT_S):
        return await engine.wait_finished(None, view.subagent_id)


def reply(view: SubagentView) -> str:
    assert view.status == "completed", (view.status, view.error)
    return view.final_message or ""


def call(tool: str, **arguments: Any) -> str:
    return f"mcp-call {tool} {json.dumps(arguments)}"


async def test_each_agent_session_is_given_boocode_over_http_or_stdio(engine: Engine) -> None:
    http = json.loads(reply(await turn(engine, "mcp-servers")).removeprefix("servers: "))
    assert http == [
        {"name": "boocode", "transport": "http", "url": http[0]["url"], "headers": ["Authorization"]}
    ]
    assert http[0]["url"].startswith("http://127.0.0.1:")
    stdio = json.loads(
        reply(await turn(engine, "mcp-servers", agent="fixture-stdio")).removeprefix("servers: ")
    )
    assert [(s["transport"], s["env"]) for s in stdio] == [
        ("stdio", ["BOOCODE_AGENT_URL", "BOOCODE_AGENT_TOKEN"])
    ]
    assert Path(stdio[0]["command"]).is_absolute() and "--workspace" in stdio[0]["args"]


@pytest.mark.parametrize(
    ("agent", "offered"),
    [
        ("fixture", AGENT_TOOLS | DELEGATION_TOOLS),
        ("fixture-plain", AGENT_TOOLS),
        ("fixture-stdio", AGENT_TOOLS),
    ],
)
async def test_an_agent_is_offered_exactly_its_tools(
    engine: Engine, agent: str, offered: frozenset[str]
) -> None:
    tools = reply(await turn(engine, "mcp-tools", agent=agent)).removeprefix("tools: ").split()
    assert set(tools) == offered
    assert not {"apply_pending", "run_command", "respond_permission"} & set(tools)


@pytest.mark.parametrize("agent", ["fixture", "fixture-stdio"])
async def test_an_agent_call_is_attributed_to_its_run(engine: Engine, agent: str) -> None:
    (engine.workspace / ".boocode" / "memory").mkdir(parents=True, exist_ok=True)
    (engine.workspace / ".boocode" / "memory" / "deploy.md").write_text(
        "# Deploys\nUse the zebrafish pipeline.\n"
    )
    run = await turn(engine, call("search_memory", query="zebrafish"), agent=agent)
    assert "zebrafish" in reply(run) and reply(run).startswith("result: ")
    traced = [t for t in await engine.traces(run.session_id) if t.tool_name == "search_memory"]
    assert [(t.source, t.subagent_id, t.session_id, t.outcome) for t in traced] == [
        ("mcp", run.subagent_id, run.session_id, "ok")
    ]


async def test_children_link_both_ways_within_the_depth_and_fan_out_limits(engine: Engine) -> None:
    grandchild = call("spawn_subagent", prompt="echo too deep")
    batch = [
        ["spawn_subagent", {"prompt": grandchild, "wait_seconds": 20}],
        ["spawn_subagent", {"prompt": "echo second child", "wait_seconds": 20}],
        ["spawn_subagent", {"prompt": "echo third child"}],
    ]
    parent = await turn(engine, f"mcp-batch {json.dumps(batch)}")
    lines = reply(parent).splitlines()
    first, second = (ID.search(line).group(1) for line in lines[:2])  # type: ignore[union-attr]
    assert lines[2].startswith("3. tool error: ") and "children" in lines[2], lines[2]

    status = await engine.status(None, parent.subagent_id)
    assert status.children == [first, second] and status.depth == 0
    child = await engine.status(None, first)
    assert (child.parent_subagent_id, child.depth, child.session_id) == (
        parent.subagent_id,
        1,
        parent.session_id,
    )
    # The child (depth 1) asked for a child of its own: depth 2 is past [delegation] max_depth = 1.
    assert child.status == "completed" and child.final_message is not None
    assert child.final_message.startswith("tool error: ") and "depth" in child.final_message
    assert child.children == []


async def test_cancelling_a_parent_cancels_its_children(engine: Engine) -> None:
    parent = await turn(engine, call("spawn_subagent", prompt="slow 2000 20"))
    child_id = ID.search(reply(parent)).group(1)  # type: ignore[union-attr]
    assert (await engine.status(None, child_id)).status in ("queued", "running")
    with anyio.fail_after(TIMEOUT_S):
        await engine.cancel(None, parent.subagent_id)
        child = await engine.wait_finished(None, child_id)
    assert child.status == "cancelled"
    assert (await engine.status(None, parent.subagent_id)).status == "completed", "a finished parent stays so"


async def test_an_agent_may_cancel_only_its_own_children(engine: Engine) -> None:
    sid = await engine.ensure_session()
    other = await engine.spawn(sid, "slow 2000 20")
    try:
        refused = reply(await turn(engine, call("cancel_subagent", subagent_id=other.subagent_id)))
        assert refused.startswith("tool error: ") and "not one of this run's children" in refused
        assert (await engine.status(None, other.subagent_id)).status in ("queued", "running")
    finally:
        with anyio.fail_after(TIMEOUT_S):
            await engine.cancel(None, other.subagent_id)


async def test_a_credential_works_only_while_its_agent_session_lives(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants: list[McpGrant] = []
    grant = engine.agent_gateway.grant

    async def recorded(chat_id: str, agent: str, *, http: bool) -> McpGrant | None:
        given = await grant(chat_id, agent, http=http)
        if given is not None:
            grants.append(given)
        return given

    monkeypatch.setattr(engine.agent_gateway, "grant", recorded)
    run = await turn(engine, "hello")
    (server,) = grants[-1].servers
    url, header = server.url, server.headers[0]  # type: ignore[union-attr]
    headers = {header.name: header.value}

    async with Client(
        streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)), mode="legacy"
    ) as client:
        hits = await client.call_tool("search_memory", {"query": "anything"})
        assert not hits.is_error
        await engine.release_chat(None, run.chat_id)  # its agent session ends
        with pytest.raises(Exception, match="error response"):
            await client.call_tool("search_memory", {"query": "anything"})

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    async with httpx2.AsyncClient() as http:
        for refused in ({}, headers, {"Authorization": "Bearer not-a-credential"}):
            response = await http.post(
                url, json=initialize, headers={**refused, "Accept": "application/json, text/event-stream"}
            )
            assert response.status_code == 401, (refused, response.text)
            assert "credential" in response.json()["detail"]
