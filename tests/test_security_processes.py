"""No process outlives BooCode: a hostile agent's terminal (its own process group, with a child
of its own) survives a SIGKILL of the BooCode process that started it only until the next BooCode
process starts up. Real processes, checked by pid (pidfds) and by process group (/proc)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.engine import Engine
from boocode_mcp.store import open_db
from boocode_mcp.store import terminals as terminal_rows
from tests.conftest import TIMEOUT_S
from tests.real_agents import group_members, wait_group_gone
from tests.test_security_agent import HOSTILE_AGENT, hostile_config

pytestmark = pytest.mark.anyio

CYCLES = 5

OWNER_SCRIPT = """
import sys, anyio
from pathlib import Path
from boocode_mcp import procs
from boocode_mcp.engine import Engine
from tests.test_security_agent import hostile_config

async def main() -> None:
    async with Engine.open(Path(sys.argv[1]), config=hostile_config()) as engine:
        sid = await engine.ensure_session()
        view = await engine.spawn(sid, "terminal-bg sh -c 'sleep 600 & exec sleep 600'")
        done = await engine.wait_finished(sid, view.subagent_id)
        print(done.final_message, flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def start_owner_with_a_terminal(repo: Path) -> tuple[asyncio.subprocess.Process, str]:
    """A BooCode process whose agent holds a live terminal; returns it and the terminal's id."""
    owner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OWNER_SCRIPT,
        str(repo),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).parent.parent),
    )
    assert owner.stdout is not None
    try:
        with anyio.fail_after(TIMEOUT_S):
            line = (await owner.stdout.readline()).decode()
    except BaseException:
        owner.kill()
        await owner.wait()
        raise
    assert line.startswith("terminal "), line
    return owner, line.split()[1]


async def live_members(pgid: int, at_least: int) -> list[int]:
    """The group's live processes, once there are `at_least` of them (the shell forks its child)."""
    with anyio.fail_after(10):
        # Polling: nothing signals a fork in another process group.
        while len(members := group_members(pgid)) < at_least:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return members


async def test_terminal_groups_of_a_killed_boocode_are_reaped_at_the_next_start(git_repo: Path) -> None:
    assert HOSTILE_AGENT.is_file()
    db_path = git_repo / ".boocode" / "boocode.db"
    reaped = 0
    for _ in range(CYCLES):
        owner, terminal_id = await start_owner_with_a_terminal(git_repo)
        async with open_db(db_path) as db:
            [row] = [r for r in await terminal_rows.list_all(db, procs.host_name()) if r.id == terminal_id]
        assert row.owner_pid == owner.pid
        members = await live_members(row.pgid, at_least=2)
        exits = [os.pidfd_open(pid) for pid in members]
        try:
            owner.kill()  # SIGKILL: the owner cleans up nothing
            await owner.wait()
            # The terminal outlived its owner: only a record can find it now.
            assert sorted(group_members(row.pgid)) == sorted(members)
            async with Engine.open(git_repo, config=hostile_config()) as engine:
                assert row.pgid in engine.recovery.killed_groups
                with anyio.fail_after(10):
                    for fd in exits:
                        await anyio.wait_readable(fd)  # every process of the group, by pid
                await wait_group_gone(row.pgid)  # and no process left in the group
                async with open_db(db_path) as db:
                    assert [r.id for r in await terminal_rows.list_all(db, procs.host_name())] == []
        finally:
            for fd in exits:
                os.close(fd)
            if group_members(row.pgid):
                procs.kill_group(row.pgid)  # a failed check must not leave the sleepers behind
        reaped += 1
    assert reaped == CYCLES


async def test_a_released_terminal_leaves_no_record_and_a_live_owner_keeps_its_own(git_repo: Path) -> None:
    db_path = git_repo / ".boocode" / "boocode.db"
    async with Engine.open(git_repo, config=hostile_config()) as engine:
        sid = await engine.ensure_session()
        view = await engine.spawn(sid, "terminal sh -c 'echo hi'")
        with anyio.fail_after(TIMEOUT_S):
            done = await engine.wait_finished(sid, view.subagent_id)
        assert done.final_message is not None and done.final_message.endswith("hi\n")
        bg = await engine.spawn(sid, "terminal-bg sleep 600", chat_id=view.chat_id)
        with anyio.fail_after(TIMEOUT_S):
            await engine.wait_finished(sid, bg.subagent_id)
        async with open_db(db_path) as db:
            # The released one is gone, the live one stays.
            [row] = await terminal_rows.list_all(db, procs.host_name())
        # A second BooCode process starting now must leave a live owner's terminal alone.
        async with Engine.open(git_repo, config=hostile_config()) as second:
            assert row.pgid not in second.recovery.killed_groups
            assert group_members(row.pgid) == [row.pgid]
    # Closing the engine closed the agent and its terminal, and dropped the record.
    await wait_group_gone(row.pgid)
    async with open_db(db_path) as db:
        assert await terminal_rows.list_all(db, procs.host_name()) == []
