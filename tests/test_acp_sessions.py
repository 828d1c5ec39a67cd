"""`boocode acp` session management for an editor's history: session/list, session/resume and
session/close, driven by the SDK's client side over real pipes against the fixture agent."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import tomllib
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from acp import RequestError
from acp.schema import UserMessageChunk

from boocode_mcp.trust import trust_workspace
from boocode_mcp.workspace import worktree_path
from tests.acp_support import (
    TURN_TIMEOUT,
    RecordingClient,
    boocode_acp,
    configure,
    interrupt_slow_turn,
    new_session,
    prompt,
    warm_agents,
    warmed,
)
from tests.conftest import seed_run
from tests.real_agents import wait_group_gone

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(git_repo: Path) -> Path:
    return configure(git_repo)


async def test_list_shows_sessions_that_ran_newest_first_and_resume_keeps_context(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        first = await new_session(conn, workspace)
        await prompt(conn, first, "write a.txt   the first\ttask")
        second = await new_session(conn, workspace)
        await prompt(conn, second, "hello from the second")
        await new_session(conn, workspace)  # never prompted: nothing to come back to
        listed = await conn.list_sessions(cwd=str(workspace))
        assert [s.session_id for s in listed.sessions] == [second, first]
        assert [s.title for s in listed.sessions] == ["hello from the second", "write a.txt the first task"]
        assert {s.cwd for s in listed.sessions} == {str(workspace)}
        stamps = [datetime.fromisoformat(s.updated_at or "") for s in listed.sessions]
        assert stamps[0] >= stamps[1] and all(abs(t.timestamp() - time.time()) < 600 for t in stamps)
        assert listed.next_cursor is None
        # A directory inside the workspace names the same workspace.
        inside = await conn.list_sessions(cwd=str(workspace / "src"))
        assert [s.session_id for s in inside.sessions] == [second, first]
        with pytest.raises(RequestError, match="cursor 'x'"):
            await conn.list_sessions(cwd=str(workspace), cursor="x")

    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        # Another process lists what the first stored, and resumes a session without a replay.
        assert [s.session_id for s in (await conn.list_sessions()).sessions] == [second, first]
        with anyio.fail_after(TURN_TIMEOUT):
            await conn.resume_session(session_id=first, cwd=str(workspace))
        assert not any(isinstance(u, UserMessageChunk) for u in client.updates)
        assert "apply" in client.commands()
        # Reopening starts the chat's agent before the next prompt, and it loads its session.
        pid = await warmed(workspace, first)
        await prompt(conn, first, "history")
        assert "history: 1 prompts: write a.txt" in client.messages()
        client.updates.clear()
        await prompt(conn, first, "pid")
        assert first_number(client.messages()) == pid
        with pytest.raises(RequestError, match="no session 'nope'"):
            await conn.resume_session(session_id="nope", cwd=str(workspace))


async def seed_finished_sessions(workspace: Path, count: int) -> list[str]:
    """`count` sessions with one finished run each, oldest first, as another process left them."""
    ids = [f"seeded-{i:03d}" for i in range(count)]
    (workspace / ".boocode").mkdir(exist_ok=True)
    for i, sid in enumerate(ids):
        await seed_run(
            workspace / ".boocode" / "boocode.db",
            workspace,
            session_id=sid,
            chat_id=f"chat-{i:03d}",
            run_id=f"run-{i:03d}",
            owner_pid=1,
            status="completed",
            prompt=f"task {i}",
            finished_at=1_700_000_000.0 + i,
        )
    return ids


async def test_list_pages_through_every_session_once(workspace: Path) -> None:
    ids = await seed_finished_sessions(workspace, 57)
    async with boocode_acp(workspace, RecordingClient()) as conn:
        page = await conn.list_sessions(cwd=str(workspace))
        assert len(page.sessions) == 50 and page.next_cursor is not None
        rest = await conn.list_sessions(cwd=str(workspace), cursor=page.next_cursor)
        assert len(rest.sessions) == 7 and rest.next_cursor is None
    listed = [s.session_id for s in page.sessions + rest.sessions]
    assert listed == list(reversed(ids))  # most recently active first, each once
    assert page.sessions[0].title == "task 56"


def first_number(text: str) -> int:
    match = re.search(r"\d+", text)
    assert match is not None, text
    return int(match.group())


async def test_close_cancels_the_turn_and_frees_the_agent_until_reopened(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = await new_session(conn, workspace)
        await prompt(conn, sid, "pid")
        agent_pid = first_number(client.messages())
        resp = await interrupt_slow_turn(conn, client, sid, lambda: conn.close_session(session_id=sid))
        assert resp.stop_reason == "cancelled"
        await wait_group_gone(agent_pid)  # the backend agent runs in a group of its own
        # Closed: this connection no longer knows it, but it is stored and opens again.
        with pytest.raises(RequestError, match="unknown session"):
            await conn.prompt(session_id=sid, prompt=[])
        with pytest.raises(RequestError, match="not open in this connection"):
            await conn.close_session(session_id=sid)
        await conn.resume_session(session_id=sid, cwd=str(workspace))
        client.updates.clear()
        await prompt(conn, sid, "pid")
        assert first_number(client.messages()) != agent_pid
        client.updates.clear()
        await prompt(conn, sid, "history")
        # The restarted agent loaded its session: the earlier prompts are its context again.
        assert "history: 3 prompts: pid" in client.messages()


# -- pre-warm: a new session's worktree and agent start before its first prompt ----------------


def worktree_of(workspace: Path, chat_id: str) -> Path:
    return worktree_path(workspace, chat_id)


def chat_rows(workspace: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(workspace / ".boocode" / "boocode.db")
    try:
        return [(str(s), str(c)) for s, c in db.execute("SELECT session_id, id FROM chats").fetchall()]
    finally:
        db.close()


async def test_a_new_session_is_warm_before_its_first_prompt(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = await new_session(conn, workspace)
        pid = await warmed(workspace, sid)
        [(_, chat)] = chat_rows(workspace)
        assert worktree_of(workspace, chat).is_dir()
        await prompt(conn, sid, "pid")
        assert first_number(client.messages()) == pid  # the first turn ran on the pre-warmed agent
        await prompt(conn, sid, "write w.txt warm")
        await prompt(conn, sid, "/apply")
    assert (workspace / "w.txt").read_text() == "warm"
    assert chat_rows(workspace) == [(sid, chat)]  # a chat that ran is kept for session/load


async def test_an_unprompted_session_leaves_no_agent_worktree_or_chat(workspace: Path) -> None:
    async with boocode_acp(workspace, RecordingClient()) as conn:
        closed = await new_session(conn, workspace)
        closed_pid = await warmed(workspace, closed)
        [(_, closed_chat)] = chat_rows(workspace)
        closed_tree = worktree_of(workspace, closed_chat)
        await conn.close_session(session_id=closed)
        await wait_group_gone(closed_pid)
        assert chat_rows(workspace) == [] and not closed_tree.exists()
        # Left open when the editor goes away: the same clean-up on the way out.
        left = await new_session(conn, workspace)
        left_pid = await warmed(workspace, left)
        [(_, left_chat)] = chat_rows(workspace)
    await wait_group_gone(left_pid)
    assert chat_rows(workspace) == [] and not worktree_of(workspace, left_chat).exists()


async def test_switching_agent_before_the_first_prompt_warms_the_new_one(workspace: Path) -> None:
    config = workspace / ".boocode" / "config.toml"
    fixture = tomllib.loads(config.read_text())["agents"]["fixture"]
    command, args = json.dumps(fixture["command"]), json.dumps(fixture["args"])
    config.write_text(config.read_text() + f"\n[agents.other]\ncommand = {command}\nargs = {args}\n")
    trust_workspace(workspace)
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = await new_session(conn, workspace)
        first = await warmed(workspace, sid)
        await prompt(conn, sid, "/agent other")
        other = await warmed(workspace, sid, "other")
        await wait_group_gone(first)  # the agent it started with is not left idling
        client.updates.clear()
        await prompt(conn, sid, "pid")
        assert first_number(client.messages()) == other


async def test_prewarm_off_starts_nothing_before_the_first_prompt(workspace: Path) -> None:
    config = workspace / ".boocode" / "config.toml"
    config.write_text(config.read_text() + "\n[pool]\nprewarm = false\n")
    trust_workspace(workspace)
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = await new_session(conn, workspace)
        await anyio.sleep(1)  # what a pre-warm would have used to start the agent
        assert chat_rows(workspace) == [] and warm_agents(workspace, sid) == {}
        await prompt(conn, sid, "pid")
        assert list(warm_agents(workspace, sid).values()) == [first_number(client.messages())]
