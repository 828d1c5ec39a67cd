"""The store functions behind delegation, retry, the inbox, list_agents and the runs listing, on
sqlite and on PostgreSQL (the `db` fixture): run lineage, retries, waiting permissions, conflicted
patches, agent capabilities, and a runs page cursor that holds across runs created at one instant."""

from __future__ import annotations

import pytest

from boocode_mcp.store import agent_capabilities, chats, listing, permissions, sessions
from boocode_mcp.store import patches as patches_store
from boocode_mcp.store import subagents as runs
from boocode_mcp.store.agent_capabilities import AgentCapabilities
from boocode_mcp.store.db import Database

pytestmark = pytest.mark.anyio


async def queue(db: Database, run_id: str, chat_id: str, **lineage: object) -> runs.SubagentRow:
    row = await runs.insert_if_chat_idle(
        db, subagent_id=run_id, session_id="s", chat_id=chat_id, agent="fixture", prompt=f"do {run_id}",
        model=None, mode=None, owner_pid=1, **lineage,  # type: ignore[arg-type]
    )  # fmt: skip
    assert row is not None
    return row


@pytest.fixture
async def chats_made(db: Database) -> Database:
    await sessions.create(db, "s")
    for chat_id in ("parent-chat", "child-chat", "other-chat"):
        await chats.insert(db, chat_id=chat_id, session_id="s", agent="fixture", worktree="/w")
    return db


async def test_lineage_retries_and_what_the_inbox_reads(chats_made: Database) -> None:
    db = chats_made
    image = {"sha256": "ab" * 32, "mime_type": "image/png", "size": 3}
    parent = await queue(db, "p", "parent-chat")
    await runs.set_status(db, "p", "running")
    child = await queue(db, "c1", "child-chat", parent_subagent_id="p", depth=1, images=[image])
    assert (child.parent_subagent_id, child.depth, child.images) == ("p", 1, (image,))
    await runs.set_status(db, "c1", "failed", error="boom", finished_at=child.created_at + 1)
    retry = await queue(db, "c2", "child-chat", parent_subagent_id="p", depth=1, retry_of="c1")
    await runs.set_status(db, "c2", "interrupted", error="killed", finished_at=child.created_at + 2)

    assert await runs.child_ids(db, "p") == ["c1", "c2"]
    assert [r.id for r in await runs.children(db, ["p", "nobody"])] == ["c1", "c2"]
    assert await runs.count_spawned(db, "p") == 1, "a child's retry is not another child"
    assert await runs.retried_by(db, "c1") == "c2" and await runs.retried_by(db, "c2") is None
    latest = await runs.latest_for_chat(db, "child-chat")
    assert latest is not None and latest.id == retry.id
    assert await runs.chat_has_child_of_chat(db, "child-chat", "parent-chat")
    assert not await runs.chat_has_child_of_chat(db, "other-chat", "parent-chat")
    # c1 was retried; c2 (interrupted) was not.
    assert [r.id for r in await runs.unretried_failures(db, 10)] == ["c2"]
    assert parent.depth == 0 and parent.parent_subagent_id is None


async def test_waiting_permissions_and_conflicted_patches(chats_made: Database) -> None:
    db = chats_made
    await queue(db, "asks", "parent-chat")
    await runs.set_status(db, "asks", "awaiting_permission")
    await queue(db, "asked", "child-chat")
    await runs.set_status(db, "asked", "completed")
    for request_id, run_id in (("q1", "asks"), ("q2", "asked")):
        await permissions.insert(
            db, request_id=request_id, session_id="s", subagent_id=run_id, title=f"Write {request_id}",
            options=[{"option_id": "0", "name": "Allow", "kind": "allow_once"}], deadline=2e9,
        )  # fmt: skip
    # Only the request of a run still waiting for it.
    assert [p.id for p in await permissions.waiting(db, 10)] == ["q1"]

    for patch_id, chat_id in (("x", "parent-chat"), ("y", "child-chat")):
        await patches_store.insert(
            db, parent_patch_id=None, patch_id=patch_id, session_id="s", chat_id=chat_id, subagent_id=None,
            agent="fixture", base_sha="0" * 40, diff="", hunks=[], files=[], additions=0, deletions=0,
            failed_mid_turn=False,
        )  # fmt: skip
    await patches_store.record_conflicts(db, {"x": [{"file": "a.txt", "reason": "changed"}]})
    [conflict] = await patches_store.pending_conflicts(db, 10)
    assert (conflict.patch_id, conflict.conflicts) == ("x", [{"file": "a.txt", "reason": "changed"}])
    await patches_store.set_status(db, "x", "discarded")
    assert await patches_store.pending_conflicts(db, 10) == []


async def test_agent_capabilities_are_replaced_by_the_latest_start(db: Database) -> None:
    seen = AgentCapabilities("opencode", image=False, audio=False, embedded_context=True, mcp_http=True,
                             mcp_sse=False, load_session=True, agent_version="1.0")  # fmt: skip
    await agent_capabilities.record(db, seen)
    await agent_capabilities.record(db, AgentCapabilities(**{**seen.__dict__, "image": True, "seen_at": 0.0}))
    got = await agent_capabilities.get(db, "opencode")
    assert got is not None and got.image and got.mcp_http and got.agent_version == "1.0"
    assert set(await agent_capabilities.all_agents(db)) == {"opencode"}
    assert await agent_capabilities.get(db, "qwen") is None


async def test_a_runs_page_cursor_holds_across_runs_created_at_one_instant(chats_made: Database) -> None:
    db = chats_made
    for i in range(7):
        await chats.insert(db, chat_id=f"chat{i}", session_id="s", agent="fixture", worktree="/w")
        await queue(db, f"r{i}", f"chat{i}")
    await db.execute("UPDATE subagents SET created_at = 1000.0")
    seen: list[str] = []
    before = None
    while True:
        page = await listing.runs_page(db, listing.RunFilter(), before=before, limit=3)
        seen += [r.id for r in page]
        if len(page) < 3:
            break
        before = listing.Cursor(created_at=page[-1].created_at, id=page[-1].id)
    assert seen == sorted((f"r{i}" for i in range(7)), reverse=True)
