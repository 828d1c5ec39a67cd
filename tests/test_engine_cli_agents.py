"""Command-line agents through the engine: runs, patches, cancel, failure, fallback and recovery,
with the scripted command-line program (tests/fixtures/fixture_cli.py) and real git repositories."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from boocode_mcp.engine import Engine
from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.store import agent_sessions
from boocode_mcp.views import SubagentView
from tests.cli_support import boo, boo_json
from tests.conftest import (
    FIXTURE_CLI,
    TIMEOUT_S,
    finished,
    killed_owner,
    reopened_reaping,
    run_turn,
    write_config,
)
from tests.real_agents import wait_group_gone

pytestmark = pytest.mark.anyio

PY = json.dumps(sys.executable)
FX = json.dumps(str(FIXTURE_CLI))
CLI_AGENTS = f"""
[agents.fx-cli]
protocol = "cli"
command = {PY}
args = [{FX}, "--format", "opencode", "--model={{model}}"]
stdin = true
parser = "jsonl"

[agents.fx-resume]
protocol = "cli"
command = {PY}
args = [{FX}, "{{prompt}}"]
resume = ["--continue"]

[agents.broken]
command = {PY}
args = ["-c", "import sys; print('no ACP here', file=sys.stderr); sys.exit(3)"]
fallback = "fx-cli"

[agents.broken-nofallback]
command = {PY}
args = ["-c", "import sys; sys.exit(3)"]
fallback = "ghost-cli"

[agents.ghost-cli]
protocol = "cli"
command = "boocode-no-such-cli-tool"
args = ["{{prompt}}"]
install = "pip install ghost-cli"
"""


@pytest.fixture
async def engine(git_repo: Path, user_config: Path) -> AsyncIterator[Engine]:
    write_config(git_repo, extra=CLI_AGENTS)
    async with Engine.open(git_repo, user_config=user_config) as eng:
        yield eng


async def test_a_cli_turn_becomes_a_patch_that_applies(engine: Engine, git_repo: Path) -> None:
    sid = await engine.ensure_session()
    done = await run_turn(engine, sid, "write notes/cli.txt from the cli agent", agent="fx-cli")
    assert done.status == "completed", done.error
    assert done.final_message == "wrote notes/cli.txt" and done.session_note is None
    assert done.activity.files_touched == ["notes/cli.txt"]
    [tool] = done.activity.tool_calls
    assert (
        tool.title.startswith("write ")
        and tool.title.endswith("/notes/cli.txt")
        and tool.status == "completed"
    )
    assert done.usage is not None and (done.usage.input_tokens, done.usage.output_tokens) == (3, 2)
    assert done.patch_id is not None and not (git_repo / "notes" / "cli.txt").exists()
    [patch] = await engine.list_patches(sid)
    assert patch.id == done.patch_id and patch.agent == "fx-cli"
    assert [f.path for f in patch.files] == ["notes/cli.txt"]
    result = await engine.apply_pending(sid, patch_ids=[patch.id])
    assert result.applied == [patch.id]
    assert (git_repo / "notes" / "cli.txt").read_text() == "from the cli agent\n"
    [row] = await engine.agent_sessions(done.chat_id)
    assert (row.backend, row.status, row.pid) == ("cli", "idle", None)
    assert row.acp_session_id == "fixture-session-1"  # the tool's own session id, from its stream


async def test_model_reaches_the_placeholder_and_a_follow_up_says_it_lacks_context(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await run_turn(engine, sid, "say one", agent="fx-cli")
    second = await run_turn(engine, sid, "args", chat_id=first.chat_id, model="m-7")
    assert first.session_note is None
    assert second.status == "completed", second.error
    assert json.loads(second.final_message or "")["argv"][-1] == "--model=m-7"
    # fx-cli has no resume arguments: the follow-up is a fresh start, and the status says so.
    assert second.session_note is not None and "without the chat's earlier context" in second.session_note


async def test_follow_up_of_an_agent_with_resume_args_continues(engine: Engine) -> None:
    sid = await engine.ensure_session()
    first = await run_turn(engine, sid, "args", agent="fx-resume")
    second = await run_turn(engine, sid, "args", chat_id=first.chat_id)
    assert not json.loads(first.final_message or "")["continue"]
    assert json.loads(second.final_message or "")["continue"] and second.session_note is None


async def test_a_failing_command_fails_the_run_with_its_stderr(engine: Engine) -> None:
    sid = await engine.ensure_session()
    done = await run_turn(engine, sid, "fail", agent="fx-resume")
    assert done.status == "failed"
    assert done.error is not None and "exited with code 3" in done.error
    assert "fixture-cli: something went wrong" in done.error and "giving up" in done.error


async def wait_for_group(engine: Engine, view: SubagentView) -> int:
    """The pgid the run's agent_sessions row records once the turn's process runs."""
    with anyio.fail_after(TIMEOUT_S):
        while True:
            row = await agent_sessions.get(engine.db, view.chat_id, view.agent)
            if row is not None and row.pgid is not None:
                return row.pgid
            await engine.wait(view.session_id, view.subagent_id, 1.0)


async def test_cancel_ends_the_process_group(engine: Engine) -> None:
    sid = await engine.ensure_session()
    view = await engine.spawn(sid, "spawn", agent="fx-resume")
    pgid = await wait_for_group(engine, view)
    with anyio.fail_after(TIMEOUT_S):
        await engine.cancel(sid, view.subagent_id)
    done = await finished(engine, sid, view.subagent_id)
    assert done.status == "cancelled" and done.stop_reason == "cancelled"
    await wait_group_gone(pgid)
    row = await agent_sessions.get(engine.db, view.chat_id, "fx-resume")
    assert row is not None and row.pgid is None and row.status == "idle"


async def test_an_acp_agent_that_exits_before_initialize_falls_back(engine: Engine) -> None:
    sid = await engine.ensure_session()
    done = await run_turn(engine, sid, "say via-fallback", agent="broken")
    assert done.status == "completed", done.error
    assert done.agent == "broken" and done.final_message == "via-fallback"
    note = done.session_note or ""
    assert "'broken' failed its ACP handshake" in note and "exited with code 3" in note
    assert "this turn ran on its fallback 'fx-cli'" in note
    # The next turn tries the ACP agent again, and falls back again.
    again = await run_turn(engine, sid, "say again", chat_id=done.chat_id)
    assert again.status == "completed" and again.final_message == "again"
    assert "failed its ACP handshake" in (again.session_note or "")
    [row] = await engine.agent_sessions(done.chat_id)
    assert row.agent == "broken" and row.pid is None
    assert row.input_tokens == 6  # both fallback turns counted on the chat's agent


async def test_a_fallback_that_cannot_run_fails_naming_both(engine: Engine) -> None:
    sid = await engine.ensure_session()
    done = await run_turn(engine, sid, "say hi", agent="broken-nofallback")
    assert done.status == "failed"
    error = done.error or ""
    assert "'broken-nofallback'" in error and "exited with code 3 while starting" in error
    assert "its fallback cannot run either" in error and "pip install ghost-cli" in error


PNG_URI = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"pixels" * 8).decode()


async def test_a_cli_agent_is_refused_images_at_spawn(engine: Engine) -> None:
    sid = await engine.ensure_session()
    with pytest.raises(InvalidRequestError, match="'fx-cli' is a command-line agent and cannot take images"):
        await engine.spawn(sid, "say hi", agent="fx-cli", images=[PNG_URI])
    assert await engine.list_subagents(sid) == []  # refused before anything was recorded


async def test_a_fallback_turn_with_images_fails_saying_the_fallback_cannot_take_them(engine: Engine) -> None:
    sid = await engine.ensure_session()
    # The ACP agent may take images (it has never started), so the spawn is taken; its turn falls
    # back to a command line, which must not run the prompt without them.
    done = await run_turn(engine, sid, "say hi", agent="broken", images=[PNG_URI])
    assert done.status == "failed"
    error = done.error or ""
    assert "'fx-cli' is a command-line agent and cannot take images" in error
    assert "use an ACP agent that takes them" in error


OWNER_SCRIPT = """
import sqlite3, sys, anyio
from pathlib import Path
from boocode_mcp.engine import Engine

async def main() -> None:
    async with Engine.open(Path(sys.argv[1]), user_config=Path(sys.argv[2])) as engine:
        sid = await engine.ensure_session()
        view = await engine.spawn(sid, "spawn", agent="fx-resume")
        db = sqlite3.connect(Path(sys.argv[1]) / ".boocode" / "boocode.db")
        query = "SELECT pgid FROM agent_sessions WHERE chat_id = ?"
        while (row := db.execute(query, (view.chat_id,)).fetchone()) is None or row[0] is None:
            await anyio.sleep(0.01)
        print(row[0], flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def test_a_turn_left_running_by_a_killed_boocode_is_reaped_at_start_up(
    git_repo: Path, user_config: Path
) -> None:
    write_config(git_repo, extra=CLI_AGENTS)
    _, line = await killed_owner(OWNER_SCRIPT, git_repo, user_config)
    pgid = int(line)
    # The tool (and the child it started) outlived its owner, in its own group.
    async with reopened_reaping(git_repo, user_config, pgid):
        pass
    await wait_group_gone(pgid)


def test_boocode_agents_lists_each_agents_protocol(git_repo: Path) -> None:
    write_config(git_repo, extra=CLI_AGENTS)
    listed = {a["name"]: a for a in boo_json(git_repo, "agents")["agents"]}
    assert listed["fx-cli"]["protocol"] == "cli" and listed["fx-cli"]["installed"]
    assert listed["ghost-cli"]["protocol"] == "cli" and not listed["ghost-cli"]["installed"]
    assert listed["opencode-cli"]["protocol"] == "cli" and listed["opencode-cli"]["builtin"]
    assert listed["broken"]["protocol"] == listed["fixture"]["protocol"] == "acp"
    # A command line carries no images, whether or not the tool has run here.
    assert listed["fx-cli"]["images"] is False and listed["opencode-cli"]["images"] is False
    assert listed["fixture"]["images"] is None  # an ACP agent: unknown until it has started here
    header, *rows = boo(git_repo, "agents").stdout.splitlines()
    row = next(line for line in rows if line.startswith("fx-cli "))

    def column(name: str) -> str:
        start = header.index(name)
        return row[start:].split()[0]

    assert (column("installed"), column("protocol"), column("images")) == ("yes", "cli", "no")
