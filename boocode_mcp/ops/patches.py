"""Patches: list and review them, apply them all or none, discard one."""

from __future__ import annotations

from collections.abc import Sequence

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome
from boocode_mcp.views import ApplyResult, PatchList, PatchStatus, PatchView

MAX_PATCH_LIMIT = 200


def patch_line(p: PatchView) -> str:
    """One patch as text, with the ids needed to review and apply it."""
    files = ", ".join(f.path for f in p.files[:5]) + (", …" if len(p.files) > 5 else "")
    text = (
        f"patch {p.id} [{p.status}] of subagent {p.subagent_id} (agent {p.agent}, chat {p.chat_id}, "
        f"session {p.session_id}): {p.file_count} file(s) +{p.additions} -{p.deletions}: {files}"
    )
    if p.failed_mid_turn:
        text += " (turn did not finish)"
    if p.collisions:
        text += "; overlaps " + ", ".join(f"{c.file} with patch {c.other_patch_id}" for c in p.collisions)
    if p.diff:
        text += "\n" + p.diff.rstrip("\n")
    return text


async def list_patches(
    caller: Caller,
    *,
    session_id: str | None = None,
    chat_id: str | None = None,
    status: PatchStatus | None = None,
    limit: int = 20,
    include_hunks: bool = False,
) -> Outcome[PatchList]:
    """The workspace's patches newest first (one session's with `session_id`); `include_hunks`
    adds the structured hunks and the unified diff, in the result and in the text."""
    if not 1 <= limit <= MAX_PATCH_LIMIT:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_PATCH_LIMIT} (got {limit})")
    patches = await caller.engine.list_patches(
        await caller.session_filter(session_id),
        chat_id=chat_id,
        status=status,
        limit=limit,
        include_hunks=include_hunks,
        include_diff=include_hunks,
    )
    text = "\n".join(patch_line(p) for p in patches) if patches else "no patches"
    return Outcome(PatchList(patches=patches), text)


async def get_patch(
    caller: Caller, patch_id: str, *, session_id: str | None = None, include_diff: bool = True
) -> Outcome[PatchView]:
    patch = await caller.engine.get_patch(
        await caller.session_filter(session_id), patch_id, include_hunks=True, include_diff=include_diff
    )
    return Outcome(patch, patch_line(patch))


async def apply_pending(
    caller: Caller,
    *,
    patch_ids: Sequence[str] | None = None,
    chat_id: str | None = None,
    dry_run: bool = False,
    commit_message: str | None = None,
    session_id: str | None = None,
) -> Outcome[ApplyResult]:
    """Apply patches all or none: `patch_ids` or `chat_id`'s pending patch from any session, else
    every pending patch of the caller's own session (which says so when others have some)."""
    engine = caller.engine
    selecting = patch_ids is not None or chat_id is not None
    sid = await caller.session_filter(session_id)
    if sid is None and not selecting:
        sid = await caller.own_session()
    out = await engine.apply_pending(
        sid, patch_ids=patch_ids, chat_id=chat_id, dry_run=dry_run, commit_message=commit_message
    )
    text = _apply_text(out)
    if not selecting and not out.applied and not out.conflicts:
        elsewhere = [
            p for p in await engine.list_patches(None, status="pending", limit=20) if p.session_id != sid
        ]
        if elsewhere:
            ids = ", ".join(f"{p.id} (chat {p.chat_id}, session {p.session_id})" for p in elsewhere)
            text = (
                f"no pending patches in this session ({sid}); other sessions have pending patches: "
                f"{ids}; apply them with patch_ids (review first with list_patches include_hunks)"
            )
    return Outcome(out, text)


def _apply_text(out: ApplyResult) -> str:
    if out.conflicts:
        conflicts = "; ".join(f"{c.patch_id}: {c.file}: {c.reason}" for c in out.conflicts)
        return f"nothing applied, the workspace is unchanged; conflicts: {conflicts}"
    if not out.applied:
        return "no pending patches to apply"
    verb = "would apply" if out.dry_run else "applied"
    text = f"{verb} {', '.join(out.applied)}"
    if out.commit_sha:
        text += f"; committed {out.commit_sha}"
    return text


async def discard(caller: Caller, patch_id: str, *, session_id: str | None = None) -> Outcome[PatchView]:
    patch = await caller.engine.discard(await caller.session_filter(session_id), patch_id)
    return Outcome(patch, f"discarded patch {patch.id} (chat {patch.chat_id}, session {patch.session_id})")
