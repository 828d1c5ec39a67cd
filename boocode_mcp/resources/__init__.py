"""The MCP resources, each a JSON document that `resources/updated` announces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from pydantic import BaseModel

from boocode_mcp.errors import BooCodeError, NotFoundError
from boocode_mcp.views import AgentSessionList, Inbox, TraceList

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from boocode_mcp.engine import Engine

JSON = "application/json"
TEMPLATES = (
    "traces://{session_id}",
    "agent-sessions://{chat_id}",
    "subagents://{subagent_id}",
    "patches://{session_id}/{patch_id}",
    "workflows://{workflow_run_id}",
)
STATIC = ("agent-sessions://list", "inbox://", "agents://list")


async def _json(read: Awaitable[BaseModel]) -> str:
    try:
        model = await read
    except NotFoundError as e:
        raise ResourceNotFoundError(str(e)) from e
    except BooCodeError as e:
        raise ResourceError(str(e)) from e
    return model.model_dump_json()


async def _traces(engine: Engine, session_id: str) -> TraceList:
    return TraceList(session_id=session_id, traces=await engine.traces(session_id))


async def _agent_sessions(engine: Engine, chat_id: str | None) -> AgentSessionList:
    return AgentSessionList(agent_sessions=await engine.agent_sessions(chat_id))


async def _inbox(engine: Engine) -> Inbox:
    return Inbox(items=await engine.inbox())


async def _agents(engine: Engine) -> BaseModel:
    from boocode_mcp.ops.workspace import AgentList

    return AgentList(agents=await engine.list_agents(), workspace_config=engine.registry.workspace_config())


def register_resources(mcp: MCPServer[Any], engine: Engine) -> None:
    # A static resource cannot take a Context, so every handler reaches the engine through this
    # closure.

    @mcp.resource(
        "agent-sessions://list",
        name="agent-sessions",
        description="Every warm or remembered agent session: chat, agent, ACP session id, pid, "
        "status, last activity, token use",
        mime_type=JSON,
    )
    async def agent_sessions_list() -> str:
        return await _json(_agent_sessions(engine, None))

    @mcp.resource(
        "inbox://",
        name="inbox",
        description="What needs a person: failed or interrupted runs not yet retried, runs waiting "
        "for a permission answer, pending patches whose apply conflicted; newest first",
        mime_type=JSON,
    )
    async def inbox() -> str:
        return await _json(_inbox(engine))

    @mcp.resource(
        "agents://list",
        name="agents",
        description="The agents a run may name, as list_agents reports them",
        mime_type=JSON,
    )
    async def agents() -> str:
        return await _json(_agents(engine))

    @mcp.resource(
        "agent-sessions://{chat_id}",
        name="agent-session",
        description="The agent sessions of one chat",
        mime_type=JSON,
    )
    async def agent_sessions_of_chat(chat_id: str) -> str:
        return await _json(_agent_sessions(engine, chat_id))

    @mcp.resource(
        "traces://{session_id}",
        name="traces",
        description="Every traced tool call of a session: MCP calls and the agents' own tool calls",
        mime_type=JSON,
    )
    async def traces(session_id: str) -> str:
        return await _json(_traces(engine, session_id))

    @mcp.resource(
        "subagents://{subagent_id}",
        name="subagent",
        description="One subagent run of the workspace, as subagent_status reports it",
        mime_type=JSON,
    )
    async def subagent(subagent_id: str) -> str:
        return await _json(engine.status(None, subagent_id))

    @mcp.resource(
        "patches://{session_id}/{patch_id}",
        name="patch",
        description="One patch of a session with its hunks",
        mime_type=JSON,
    )
    async def patch(session_id: str, patch_id: str) -> str:
        return await _json(engine.get_patch(session_id, patch_id, include_hunks=True))

    @mcp.resource(
        "workflows://{workflow_run_id}",
        name="workflow-run",
        description="One workflow run as workflow_status reports it: steps, logs, result",
        mime_type=JSON,
    )
    async def workflow_run(workflow_run_id: str) -> str:
        return await _json(engine.workflows.status(workflow_run_id))
