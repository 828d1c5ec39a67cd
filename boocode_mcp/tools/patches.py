"""Patch tools: list_patches and apply_pending."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.ops import patches as ops
from boocode_mcp.tools.calls import SessionArg, tool_call
from boocode_mcp.views import ApplyResult, PatchList, PatchStatus


async def list_patches(
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
    chat_id: Annotated[str | None, Field(description="only this chat's patches")] = None,
    status: Annotated[
        PatchStatus | None,
        Field(description="only patches in this state (pending applied superseded discarded conflicted)"),
    ] = None,
    limit: Annotated[
        int, Field(ge=1, le=ops.MAX_PATCH_LIMIT, description="at most this many, newest first")
    ] = 20,
    include_hunks: Annotated[
        bool, Field(description="include every hunk's lines and the unified diff (also in the text)")
    ] = False,
) -> Annotated[CallToolResult, PatchList]:
    arguments = {"session_id": session_id, "chat_id": chat_id, "status": status, "limit": limit,
                 "include_hunks": include_hunks}  # fmt: skip
    async with tool_call(ctx, "list_patches", arguments) as call:
        return call.done(
            await ops.list_patches(
                call.caller,
                session_id=session_id,
                chat_id=chat_id,
                status=status,
                limit=limit,
                include_hunks=include_hunks,
            )
        )


async def apply_pending(
    ctx: Context[Any, Any],
    patch_ids: Annotated[
        list[str] | None,
        Field(
            description="patches to apply, in order (from any session); omit to apply chat_id's "
            "pending patch, or every pending patch of this connection's session"
        ),
    ] = None,
    chat_id: Annotated[str | None, Field(description="apply this chat's pending patch")] = None,
    dry_run: Annotated[bool, Field(description="only check that everything applies; write nothing")] = False,
    commit_message: Annotated[
        str | None, Field(description="also commit exactly the touched files with this message")
    ] = None,
    session_id: SessionArg = None,
) -> Annotated[CallToolResult, ApplyResult]:
    arguments = {"patch_ids": patch_ids, "chat_id": chat_id, "dry_run": dry_run,
                 "commit_message": commit_message, "session_id": session_id}  # fmt: skip
    async with tool_call(ctx, "apply_pending", arguments) as call:
        return call.done(
            await ops.apply_pending(
                call.caller,
                patch_ids=patch_ids,
                chat_id=chat_id,
                dry_run=dry_run,
                commit_message=commit_message,
                session_id=session_id,
            )
        )


def register_listing(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        list_patches,
        description="List the patches subagents produced in this workspace (one per turn; a newer "
        "pending patch of a chat supersedes the older one), newest first, with files, line counts "
        "and overlaps with other chats' pending patches; include_hunks adds the changed lines and "
        "the unified diff.",
        annotations=ToolAnnotations(read_only_hint=True),
    )


def register(mcp: MCPServer[Any]) -> None:
    register_listing(mcp)
    mcp.add_tool(
        apply_pending,
        description="Apply pending patches to the workspace, all or nothing: on any conflict "
        "nothing is written and every conflict is reported. Select by patch_ids or chat_id (from "
        "any conversation; default: every pending patch of this connection's session); dry_run "
        "only checks.",
        annotations=ToolAnnotations(destructive_hint=True),
    )
