"""The sqlite store: opening, migrating, refusing what it cannot use, and the table modules."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from boocode_mcp.errors import StoreError
from boocode_mcp.store import (
    LATEST_VERSION,
    Database,
    chats,
    events,
    migrate,
    open_db,
    patches,
    permissions,
    sessions,
    traces,
)
from boocode_mcp.store import subagents as runs
from boocode_mcp.store.migrations import load_migrations

pytestmark = pytest.mark.anyio


async def schema_of(db_path: Path) -> list[tuple[str, str]]:
    async with open_db(db_path) as db:
        cur = await db.execute("SELECT name, sql FROM sqlite_master ORDER BY name")
        return [(r["name"], r["sql"]) for r in await cur.fetchall()]


async def test_migrating_twice_is_a_no_op_on_either_database(db: Database) -> None:
    assert await migrate(db) == LATEST_VERSION
    assert await migrate(db) == LATEST_VERSION
    rows = await db.execute_fetchall("SELECT version, name FROM schema_versions ORDER BY version")
    assert [(int(r[0]), r[1]) for r in rows] == [(m.version, m.name) for m in load_migrations()]


async def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    first = await schema_of(path)
    async with open_db(path) as db:
        assert await migrate(db) == LATEST_VERSION
        assert await migrate(db) == LATEST_VERSION
    assert await schema_of(path) == first
    assert {"sessions", "chats", "subagents", "events", "traces", "patches", "permissions"} <= {
        n for n, _ in first
    }


async def test_a_database_from_a_newer_boocode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match=rf"{path}.*newer BooCode.*upgrade boocode-mcp"):
        async with open_db(path):
            pass


async def test_a_corrupt_database_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database, just text pretending to be one" * 100)
    with pytest.raises(StoreError, match=rf"{path}.*move it aside"):
        async with open_db(path):
            pass


async def test_an_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores directory modes; /proc refuses new directories even to root.
        target = Path("/proc/boocode-test/b.db")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "sub" / "b.db"
    with pytest.raises(StoreError, match=str(target.parent)):
        async with open_db(target):
            pass


async def test_a_database_path_under_a_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=str(blocker)):
        async with open_db(blocker / "b.db"):
            pass


async def test_tables_round_trip_and_lookups_are_scoped_by_session(store_target: str | Path) -> None:
    async with open_db(store_target) as db:
        await sessions.create(db, "s1")
        await sessions.create(db, "s1")  # idempotent
        await sessions.create(db, "s2")
        assert await sessions.exists(db, "s1") and not await sessions.exists(db, "nope")
        await chats.insert(db, chat_id="c1", session_id="s1", agent="fixture", worktree="/w/c1")
        await chats.set_base(db, "c1", "abc", "boocode/c1")
        chat = await chats.get(db, "s1", "c1")
        assert chat is not None and (chat.base_sha, chat.branch) == ("abc", "boocode/c1")
        assert await chats.get(db, "s2", "c1") is None
        assert await chats.get(db, None, "c1") == chat

        kw = {
            "session_id": "s1",
            "chat_id": "c1",
            "agent": "fixture",
            "model": "m",
            "mode": None,
            "owner_pid": 1,
        }
        assert await runs.insert_if_chat_idle(db, subagent_id="r1", prompt="p1", **kw)  # type: ignore[arg-type]
        # One live run per chat: a second insert is refused in the same statement.
        assert not await runs.insert_if_chat_idle(db, subagent_id="r2", prompt="p2", **kw)  # type: ignore[arg-type]
        await runs.set_status(db, "r1", "completed", usage={"input_tokens": 3}, final_message="done")
        assert await runs.insert_if_chat_idle(db, subagent_id="r2", prompt="p2", **kw)  # type: ignore[arg-type]
        r1 = await runs.get(db, "s1", "r1")
        assert r1 is not None and r1.usage == {"input_tokens": 3} and r1.model == "m"
        assert await runs.get(db, "s2", "r1") is None
        assert [r.id for r in await runs.list_runs(db, "s1", 10)] == ["r2", "r1"]
        assert [r.id for r in await runs.live_for_chat(db, "c1")] == ["r2"]
        assert await runs.mark_interrupted_if_live(db, "r2", "gone")
        assert not await runs.mark_interrupted_if_live(db, "r1", "gone")  # finished runs stay
        with pytest.raises(ValueError, match="bogus"):
            await runs.set_status(db, "r1", "failed", bogus=1)

        await events.insert(db, "r1", 1, "text", {"text": "a"})
        await events.insert(db, "r1", 2, "text", {"text": "b"})
        assert [(e.seq, e.payload["text"]) for e in await events.list_events(db, "r1")] == [
            (1, "a"),
            (2, "b"),
        ]

        for pid, status in (("p1", "superseded"), ("p2", "pending")):
            await patches.insert(
                db,
                patch_id=pid,
                session_id="s1",
                chat_id="c1",
                subagent_id="r1",
                parent_patch_id=None,
                agent="fixture",
                base_sha="abc",
                diff="diff",
                hunks=[{"file": "f"}],
                files=[{"path": "f"}],
                additions=1,
                deletions=0,
                failed_mid_turn=False,
            )
            await patches.set_status(db, pid, status)
        assert [p.id for p in await patches.list_patches(db, "s1", status="pending")] == ["p2"]
        assert await patches.get(db, "s2", "p2") is None
        # Heads (no diff read) and contents, for collisions.
        assert await patches.head(db, "s1", "p1") == patches.PatchHead("p1", "s1", "c1", "superseded")
        assert await patches.head(db, "s2", "p1") is None
        assert [h.id for h in await patches.pending_heads(db, "s1")] == ["p2"]
        assert await patches.pending_heads(db, "s1", other_than_chat="c1") == []
        assert await patches.pending_heads(db, "s2") == []
        assert await patches.contents(db, ["p2", "gone"]) == {"p2": ([{"path": "f"}], [{"file": "f"}])}
        assert await patches.unapplied_chat_ids(db) == {"c1"}

        await permissions.insert(
            db, request_id="q", session_id="s1", subagent_id="r1", title="t", options=[], deadline=1.0
        )
        await permissions.decide(db, "q", "answered", "yes")
        await permissions.decide(db, "q", "timed_out", None)  # a decided request stays decided
        [perm] = await permissions.for_subagent(db, "r1")
        assert (perm.status, perm.decision) == ("answered", "yes")

        tid = await traces.start(
            db,
            session_id="s1",
            subagent_id="r1",
            source="agent",
            tool_name="Read",
            tool_call_id="t1",
            input={"a": 1},
            started_at=1.0,
        )
        assert tid is not None
        again = await traces.start(
            db,
            session_id="s1",
            subagent_id="r1",
            source="agent",
            tool_name="Read",
            tool_call_id="t1",
            input=None,
            started_at=2.0,
        )
        assert again is None  # one trace per agent tool call
        await traces.update(db, tid, outcome="ok", finished_at=3.0, latency_ms=2000.0)
        [tv] = await traces.list_traces(db, "s1")
        assert (tv.input, tv.outcome, tv.latency_ms) == ({"a": 1}, "ok", 2000.0)
        assert await traces.list_traces(db, "s2") == []


async def test_two_hosts_cannot_both_queue_a_run_on_one_chat(store_target: str | Path) -> None:
    # The spawn's own check cannot see another host's insert in flight; the unique index can.
    async with open_db(store_target) as a, open_db(store_target) as b:
        await sessions.create(a, "s")
        await chats.insert(a, chat_id="c", session_id="s", agent="fixture", worktree="/w")
        kw = {
            "session_id": "s",
            "chat_id": "c",
            "agent": "fixture",
            "model": None,
            "mode": None,
            "owner_pid": 1,
        }
        won = await asyncio.gather(
            *(
                runs.insert_if_chat_idle(db, subagent_id=f"r{i}", prompt="p", **kw)  # type: ignore[arg-type]
                for i, db in enumerate((a, b, a, b))
            )
        )
        assert sum(1 for w in won if w is not None) == 1
        assert len(await runs.live_for_chat(a, "c")) == 1


async def test_a_postgres_store_of_a_newer_schema_is_refused_naming_the_url(pg_url: str) -> None:
    async with open_db(pg_url) as db:
        await db.execute(
            "INSERT INTO schema_versions (version, name, applied_at) VALUES (?, 'future', 0)",
            (LATEST_VERSION + 3,),
        )
    with pytest.raises(StoreError, match=r"postgresql://boocode@/t_\w+\?host=.*newer BooCode.*\[store\] url"):
        async with open_db(pg_url):
            pass


async def test_an_unreachable_postgres_store_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://someone:s3cret@/nowhere?host={tmp_path}&password=hunter2"
    with pytest.raises(StoreError) as caught:
        async with open_db(url):
            pass
    message = str(caught.value)
    assert "cannot reach the PostgreSQL store postgresql://someone:***@/nowhere" in message
    assert "s3cret" not in message and "hunter2" not in message
    assert "BOOCODE_DB_URL" in message


async def test_a_sessions_pending_patches_are_found_without_reading_any_patch_row(tmp_path: Path) -> None:
    # A patch's status lies after its diff: a query reading rows to filter on it reads every diff
    # of the session, superseded ones included, as each turn ends.
    async with open_db(tmp_path / "b.db") as db:
        cur = await db.execute(
            "EXPLAIN QUERY PLAN SELECT id, session_id, chat_id, status FROM patches"
            " WHERE session_id = ? AND status = 'pending' AND chat_id != ? ORDER BY created_at DESC, id DESC",
            ("s", "c"),
        )
        plan = " ".join(str(r[3]) for r in await cur.fetchall())
    assert "COVERING INDEX patches_pending" in plan and "TEMP B-TREE" not in plan, plan
