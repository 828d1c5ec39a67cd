"""Patch tools: list_patches and apply_pending."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from boocode_mcp.tools.calls import SessionArg, tool_call
from boocode_mcp.views import ApplyResult, PatchList, PatchStatus, PatchView


def _patch_line(p: PatchView) -> str:
    files = ", ".join(f.path for f in p.files[:5]) + (", …" if len(p.files) > 5 else "")
    line = (
        f"patch {p.id} [{p.status}] chat {p.chat_id} ({p.agent}): {p.file_count} file(s) "
        f"+{p.additions} -{p.deletions}: {files}"
    )
    if p.failed_mid_turn:
        line += " (turn did not finish)"
    if p.collisions:
        line += "; overlaps " + ", ".join(f"{c.file} with patch {c.other_patch_id}" for c in p.collisions)
    return line


async def list_patches(
    ctx: Context[Any, Any],
    session_id: SessionArg = None,
    chat_id: Annotated[str | None, Field(description="only this chat's patches")] = None,
    status: Annotated[
        PatchStatus | None,
        Field(description="only patches in this state (pending applied superseded discarded conflicted)"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="at most this many, newest first")] = 20,
    include_hunks: Annotated[bool, Field(description="include every hunk's lines")] = False,
) -> Annotated[CallToolResult, PatchList]:
    arguments = {"session_id": session_id, "chat_id": chat_id, "status": status, "limit": limit,
                 "include_hunks": include_hunks}  # fmt: skip
    async with tool_call(ctx, "list_patches", arguments, session_id) as call:
        patches = await call.engine.list_patches(
            call.session_id, chat_id=chat_id, status=status, limit=limit, include_hunks=include_hunks
        )
        text = "\n".join(_patch_line(p) for p in patches) if patches else "no patches"
        return call.done(PatchList(patches=patches), text)


async def apply_pending(
    ctx: Context[Any, Any],
    patch_ids: Annotated[
        list[str] | None,
        Field(description="patches to apply, in order; omit to apply every pending patch (of chat_id)"),
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
    async with tool_call(ctx, "apply_pending", arguments, session_id) as call:
        out = await call.engine.apply_pending(
            call.session_id,
            patch_ids=patch_ids,
            chat_id=chat_id,
            dry_run=dry_run,
            commit_message=commit_message,
        )
        return call.done(out, _apply_text(out))


def _apply_text(out: ApplyResult) -> str:
    if out.conflicts:
        conflicts = "; ".join(f"{c.patch_id}: {c.file}: {c.reason}" for c in out.conflicts)
        text = f"nothing applied, the workspace is unchanged; conflicts: {conflicts}"
    elif not out.applied:
        text = "no pending patches to apply"
    else:
        verb = "would apply" if out.dry_run else "applied"
        text = f"{verb} {', '.join(out.applied)}"
        if out.commit_sha:
            text += f"; committed {out.commit_sha}"
    return text


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        list_patches,
        description="List the patches subagents produced (one per turn; a newer pending patch of a "
        "chat supersedes the older one), newest first, with files, line counts and overlaps with "
        "other chats' pending patches; include_hunks adds the changed lines.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    mcp.add_tool(
        apply_pending,
        description="Apply pending patches to the workspace, all or nothing: on any conflict "
        "nothing is written and every conflict is reported. Select by patch_ids or chat_id (default: "
        "every pending patch of the session); dry_run only checks.",
        annotations=ToolAnnotations(destructive_hint=True),
    )
