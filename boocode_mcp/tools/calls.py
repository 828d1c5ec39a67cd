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
from boocode_mcp.tools.state import state_of

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine
    from boocode_mcp.tracing import McpCall

logger = logging.getLogger(__name__)

# Every tool that creates or reads subagents, chats, patches or traces takes this.
SessionArg = Annotated[
    str | None,
    Field(description="BooCode session to act in; default: this connection's own session"),
]


@dataclass(frozen=True)
class Call:
    """What a tool handler works with: the engine, the session the call acts in, its trace."""

    engine: Engine
    session_id: str
    trace: McpCall

    def done(self, model: BaseModel, text: str) -> CallToolResult:
        """The tool's answer; its text also becomes the trace's output excerpt."""
        self.trace.output = text
        return result(model, text)


@asynccontextmanager
async def tool_call(
    ctx: Context[Any, Any], tool_name: str, arguments: Mapping[str, Any], session_id: str | None = None
) -> AsyncIterator[Call]:
    """Resolve the call's session, record the call in the traces, turn refusals into `ToolError`.

    `ToolError` is the only exception whose text reaches the host; anything else is shown as a bare
    "Error executing tool X" by the SDK, which tells the user nothing. The tracer sees the
    original exception first, so the trace keeps its type.
    """
    state = state_of(ctx)
    try:
        sid = await state.session_for(ctx, session_id)
        async with state.engine.tracer.mcp_call(sid, tool_name, dict(arguments)) as trace:
            yield Call(state.engine, sid, trace)
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


def result(model: BaseModel, text: str) -> CallToolResult:
    """The model as structured content plus a short text for hosts that only read text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )


def clip(text: str | None, limit: int = 300) -> str:
    """One line of at most `limit` characters, for the text summaries."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
