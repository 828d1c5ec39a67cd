"""How every tool handler runs: traced, with BooCode's errors turned into readable tool errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field, ValidationError

from boocode_mcp.errors import BooCodeError
from boocode_mcp.ops import Caller, Outcome
from boocode_mcp.tools.state import ServerState, bearer_token, state_of

if TYPE_CHECKING:
    from boocode_mcp.tracing import McpCall

logger = logging.getLogger(__name__)

# Ids find their objects in every session of the workspace, and listings cover all of them; a
# session id only narrows.
SessionArg = Annotated[
    str | None,
    Field(
        description="only this BooCode session (ids and listings otherwise cover every session of the "
        "workspace)"
    ),
]


@dataclass(frozen=True)
class Call:
    """What a tool handler works with: the operation's caller (engine and this connection's own
    session, in which the call is traced) and the trace."""

    caller: Caller
    trace: McpCall

    def done(self, outcome: Outcome[Any]) -> CallToolResult:
        """The tool's answer; its text also becomes the trace's output excerpt."""
        self.trace.output = outcome.text
        return result(outcome.result, outcome.text)


@asynccontextmanager
async def tool_call(
    ctx: Context[Any, Any], tool_name: str, arguments: Mapping[str, Any]
) -> AsyncIterator[Call]:
    """Resolve the connection's session, record the call in its traces, turn refusals into
    `ToolError`.

    `ToolError` is the only exception whose text reaches the host; anything else is shown as a bare
    "Error executing tool X", which tells the user nothing. The tracer sees the
    original exception first, so the trace keeps its type.
    """
    state = state_of(ctx)
    try:
        caller = await (_agent_caller(state, ctx) if state.for_agents else _host_caller(state, ctx))
        sid = await caller.own_session()
        run = caller.delegator.subagent_id if caller.delegator is not None else None
        async with state.engine.tracer.mcp_call(sid, tool_name, dict(arguments), subagent_id=run) as trace:
            yield Call(caller, trace)
    except ToolError:
        raise
    except BooCodeError as e:
        raise ToolError(str(e)) from e
    except ValidationError as e:
        raise ToolError(f"{tool_name}: invalid value: {e}") from e
    except Exception as e:
        # A bug, not a refusal: keep the traceback in the server log and tell the host where it is.
        logger.exception("%s failed unexpectedly", tool_name)
        raise ToolError(
            f"{tool_name} failed with an internal error ({type(e).__name__}: {e}); "
            "the BooCode server log has the details"
        ) from e


async def _host_caller(state: ServerState, ctx: Context[Any, Any]) -> Caller:
    sid = await state.session_for(ctx, None)

    async def own_session() -> str:
        return sid

    return Caller(state.engine, own_session)


async def _agent_caller(state: ServerState, ctx: Context[Any, Any]) -> Caller:
    """The caller an agent's call acts as: its chat's run, named by the credential the call
    carries. Checked on every call, so a credential stops working the moment it is revoked."""
    grant = state.engine.agent_gateway.lookup(bearer_token(ctx))
    if grant is None:
        raise ToolError(
            "refused: this call carries no valid BooCode credential (it is missing, or its agent "
            "session has ended); BooCode's tools are for the agent session they were given to"
        )
    run = await state.engine.calling_run(grant)

    async def own_session() -> str:
        return run.session_id

    return Caller(state.engine, own_session, delegator=run)


def result(model: BaseModel, text: str) -> CallToolResult:
    """The model as structured content plus a short text for hosts that only read text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )
