"""store/agent_sessions.py against a real migrated sqlite database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from boocode_mcp.store import ConstraintError, Database, open_db
from boocode_mcp.store import agent_sessions as rows
from boocode_mcp.store.agent_sessions import AgentSessionRow

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(store_target: str | Path) -> AsyncIterator[Database]:
    async with open_db(store_target) as conn:
        await conn.execute("INSERT INTO sessions (id, created_at) VALUES ('s1', 0)")
        for chat in ("c1", "c2"):
            await conn.execute(
                "INSERT INTO chats (id, session_id, agent, worktree, created_at, updated_at) "
                "VALUES (?, 's1', 'fx', '/w', 0, 0)",
                (chat,),
            )
        yield conn


async def test_upsert_get_roundtrip_and_replace(db: Database) -> None:
    row = AgentSessionRow(
        chat_id="c1",
        agent="fx",
        acp_session_id="s-1",
        pid=10,
        pgid=10,
        owner_pid=1,
        status="active",
        last_active_at=5.0,
        input_tokens=3,
        output_tokens=4,
        cost=0.5,
        load_supported=True,
        note="n",
    )
    await rows.upsert(db, row)
    assert await rows.get(db, "c1", "fx") == row
    await rows.upsert(db, row.with_(status="idle", load_supported=False, note=None))
    got = await rows.get(db, "c1", "fx")
    assert got is not None and got.status == "idle" and got.load_supported is False and got.note is None
    assert await rows.get(db, "c1", "other") is None


async def test_listing_and_marks(db: Database) -> None:
    await rows.upsert(
        db, AgentSessionRow(chat_id="c1", agent="fx", owner_pid=1, pid=5, pgid=5, last_active_at=1)
    )
    await rows.upsert(db, AgentSessionRow(chat_id="c2", agent="fx", owner_pid=2, last_active_at=2))
    await rows.upsert(db, AgentSessionRow(chat_id="c1", agent="qwen", owner_pid=1, last_active_at=3))
    assert [(r.chat_id, r.agent) for r in await rows.list_all(db)] == [
        ("c1", "qwen"),
        ("c2", "fx"),
        ("c1", "fx"),
    ]
    assert [r.agent for r in await rows.list_by_chat(db, "c1")] == ["fx", "qwen"]
    assert [r.chat_id for r in await rows.list_by_owner(db, 2)] == ["c2"]
    assert [(r.chat_id, r.agent) for r in await rows.list_live(db, "here")] == [("c1", "fx")]
    # A process on another host sharing the store: its agents are not this host's to reap.
    await rows.upsert(db, AgentSessionRow(chat_id="c2", agent="qwen", pid=7, pgid=7, owner_host="there"))
    assert [(r.chat_id, r.agent) for r in await rows.list_live(db, "here")] == [("c1", "fx")]
    assert [(r.chat_id, r.agent) for r in await rows.list_live(db, "there")] == [("c1", "fx"), ("c2", "qwen")]
    assert ("c2", "qwen") not in [(r.chat_id, r.agent) for r in await rows.list_unclosed(db, "here")]
    await rows.add_usage(db, "c1", "fx", input_tokens=5, output_tokens=6, cost=0.25)
    await rows.add_usage(db, "c1", "fx", input_tokens=1, cost=0.25)
    await rows.mark_status(db, "c1", "fx", "crashed", note="boom")
    got = await rows.get(db, "c1", "fx")
    assert got is not None and (got.input_tokens, got.output_tokens, got.cost) == (6, 6, 0.5)
    assert got.status == "crashed" and got.note == "boom"
    await rows.mark_closed(db, "c1", "fx")
    got = await rows.get(db, "c1", "fx")
    assert got is not None and got.status == "closed" and got.pid is None and got.pgid is None
    assert got.note == "boom"
    view = got.to_view()
    assert view.status == "closed" and view.input_tokens == 6 and view.backend == "acp"


async def test_row_needs_its_chat(db: Database) -> None:
    with pytest.raises(ConstraintError):
        await rows.upsert(db, AgentSessionRow(chat_id="nope", agent="fx"))


async def test_status_is_checked(db: Database) -> None:
    with pytest.raises(ConstraintError):
        await rows.upsert(db, AgentSessionRow(chat_id="c1", agent="fx", status="weird"))  # type: ignore[arg-type]
