"""`boocode acp` driven by real ACP clients over real pipes: the SDK's client side and acpx.

The backend is the scripted fixture agent; BooCode runs it in the chat's worktree and passes its
updates through to the editor.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from acp import PROTOCOL_VERSION, RequestError, connect_to_agent, image_block, text_block
from acp.schema import (
    AgentMessageChunk,
    AvailableCommandsUpdate,
    ClientCapabilities,
    ToolCallStart,
    UserMessageChunk,
)

from boocode_mcp.daemon.wire import stop_daemon
from tests.acp_support import (
    ACPX,
    BOOCODE,
    TURN_TIMEOUT,
    RecordingClient,
    boocode_acp,
    configure,
    interrupt_slow_turn,
    prompt,
    text_of,
)
from tests.conftest import git
from tests.real_agents import wait_group_gone

pytestmark = pytest.mark.anyio


@pytest.fixture
def workspace(git_repo: Path) -> Path:
    return configure(git_repo)


async def test_one_shot_turn_streams_updates_with_workspace_paths(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        resp = await prompt(conn, sid, "write hello.txt hi there")
    assert resp.stop_reason == "end_turn"
    # The editor learns BooCode's commands before the first turn's output.
    assert isinstance(client.updates[0], AvailableCommandsUpdate)
    starts = [u for u in client.updates if isinstance(u, ToolCallStart)]
    assert starts, client.updates
    # The agent worked in the chat's worktree; the editor sees the workspace path.
    assert [loc.path for loc in starts[0].locations or []] == [str(workspace / "hello.txt")]
    text = client.messages()
    assert "wrote hello.txt" in text
    assert "patch" in text and "hello.txt" in text and "+1" in text
    assert set(client.commands()) >= {"apply", "discard", "patches", "status", "agent"}
    assert not (workspace / "hello.txt").exists()  # nothing lands until /apply


async def test_an_image_from_the_editor_reaches_the_backend_agent(workspace: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"from the editor"
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        assert client.agent_capabilities.prompt_capabilities.image is True
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        with anyio.fail_after(TURN_TIMEOUT):
            blocks = [text_block("images"), image_block(base64.b64encode(png).decode(), "image/png")]
            resp = await conn.prompt(session_id=sid, prompt=blocks)
    assert resp.stop_reason == "end_turn"
    assert f"images: 1 image/png {hashlib.sha256(png).hexdigest()}" in client.messages()


async def test_workspace_is_the_editors_cwd_without_workspace_option(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client, "--agent", "fixture", workspace_arg=False) as conn:
        sid = (await conn.new_session(cwd=str(workspace / "src"), mcp_servers=[])).session_id
        await prompt(conn, sid, "write from-cwd.txt x")
        assert "from-cwd.txt" in client.messages()
        await prompt(conn, sid, "/apply")
    # The git repository above the editor's cwd is the workspace.
    assert (workspace / "from-cwd.txt").read_text() == "x"


async def test_unknown_agent_option_refuses_new_session(workspace: Path) -> None:
    async with boocode_acp(workspace, RecordingClient(), "--agent", "no-such-agent") as conn:
        with pytest.raises(RequestError, match="no-such-agent"):
            await conn.new_session(cwd=str(workspace), mcp_servers=[])


async def test_session_persists_across_restarts_and_apply_lands_the_file(workspace: Path) -> None:
    first = RecordingClient()
    async with boocode_acp(workspace, first) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        assert (await prompt(conn, sid, "write notes.txt first note")).stop_reason == "end_turn"

    second = RecordingClient()
    async with boocode_acp(workspace, second) as conn:
        with anyio.fail_after(TURN_TIMEOUT):
            await conn.load_session(cwd=str(workspace), session_id=sid, mcp_servers=[])
        replay = [u for u in second.updates if isinstance(u, UserMessageChunk | AgentMessageChunk)]
        assert isinstance(replay[0], UserMessageChunk) and text_of(replay[0]) == "write notes.txt first note"
        assert isinstance(replay[1], AgentMessageChunk) and "wrote notes.txt" in text_of(replay[1])
        assert "apply" in second.commands()
        # The backend agent restored its own context through session/load.
        second.updates.clear()
        await prompt(conn, sid, "history")
        assert "history: 1 prompts: write notes.txt first note" in second.messages()
        assert "context" not in second.messages()
        # The backend's own session/load replay is BooCode's business, not the editor's.
        assert not any(isinstance(u, UserMessageChunk) for u in second.updates)
        second.updates.clear()
        await prompt(conn, sid, "/apply")
        assert "applied" in second.messages()
    assert (workspace / "notes.txt").read_text() == "first note"


async def test_next_turn_says_when_the_agent_lost_its_context(git_repo: Path) -> None:
    workspace = configure(git_repo, env='{ FIXTURE_NO_LOAD = "1" }')
    async with boocode_acp(workspace, RecordingClient()) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(conn, sid, "remember me")
    # The daemon kept the agent warm across the two editor connections; a restart loses it.
    stop_daemon(workspace)
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        await conn.load_session(cwd=str(workspace), session_id=sid, mcp_servers=[])
        client.updates.clear()
        await prompt(conn, sid, "history")
    text = client.messages()
    assert "history: 0 prompts" in text  # a fresh agent session ...
    assert text.index("context") < text.index("history: 0 prompts")  # ... announced before it speaks


async def test_apply_conflict_is_reported_and_workspace_untouched(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(conn, sid, "write README.md from the agent")
        (workspace / "README.md").write_text("# changed by the user\n")
        git(workspace, "commit", "-qam", "user edit")
        client.updates.clear()
        await prompt(conn, sid, "/apply")
        assert "conflict" in client.messages() and "README.md" in client.messages()
    assert (workspace / "README.md").read_text() == "# changed by the user\n"


async def test_cancel_stops_the_turn(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        resp = await interrupt_slow_turn(conn, client, sid, lambda: conn.cancel(session_id=sid))
        assert resp.stop_reason == "cancelled"
        chunks = [u for u in client.updates if text_of(u).startswith("chunk")]
        assert 0 < len(chunks) < 500
        # The session is usable again after the cancel.
        client.updates.clear()
        assert (await prompt(conn, sid, "hello again")).stop_reason == "end_turn"
        assert "echo: hello again" in client.messages()


async def test_permission_request_is_forwarded_to_the_editor(workspace: Path) -> None:
    client = RecordingClient(allow=True)
    async with boocode_acp(workspace, client) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(conn, sid, "permission granted.txt")
    assert len(client.permission_requests) == 1
    _, options = client.permission_requests[0]
    assert {o.kind for o in options} == {"allow_once", "allow_always", "reject_once", "reject_always"}
    assert "allowed" in client.messages()
    assert "granted.txt" in client.messages()  # the turn's patch summary names the file


async def test_agent_command_and_unknown_session(workspace: Path) -> None:
    client = RecordingClient()
    async with boocode_acp(workspace, client) as conn:
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(conn, sid, "/agent no-such-agent")
        assert "no-such-agent" in client.messages()
        client.updates.clear()
        await prompt(conn, sid, "/agent fixture")
        assert "later turns use fixture" in client.messages()
        client.updates.clear()
        await prompt(conn, sid, "/status")
        assert "no turn" in client.messages()
        with pytest.raises(RequestError):
            await conn.load_session(cwd=str(workspace), session_id="no-such-session", mcp_servers=[])


# -- acpx: a third-party command-line ACP client ----------------------------------------------


def _acpx(workspace: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    agent = f"{BOOCODE} acp --workspace {workspace}"
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [str(ACPX), "--cwd", str(workspace), "--approve-all", "--ttl", "30", "--agent", agent, *args],
        capture_output=True,
        text=True,
        timeout=TURN_TIMEOUT,
        env=env,
    )


needs_acpx = pytest.mark.skipif(
    not ACPX.exists() or shutil.which("node") is None,
    reason=f"acpx is not installed at {ACPX}: npm install --prefix ~/.cache/boocode-agents/acpx acpx@0.19.1",
)


@needs_acpx
def test_acpx_one_shot(workspace: Path, tmp_path: Path) -> None:
    done = _acpx(workspace, tmp_path, "exec", "write from-acpx.txt hello acpx")
    assert done.returncode == 0, done.stderr
    assert "wrote from-acpx.txt" in done.stdout
    assert "patch" in done.stdout


@needs_acpx
def test_acpx_persistent_session_then_apply(workspace: Path, tmp_path: Path) -> None:
    # `sessions new` runs BooCode in a process of its own; the first prompt starts another one,
    # which must session/load the conversation; the later prompts reach acpx's warm queue owner.
    created = _acpx(workspace, tmp_path, "sessions", "new")
    assert created.returncode == 0, created.stderr
    try:
        first = _acpx(workspace, tmp_path, "prompt", "write acpx-notes.txt persisted")
        assert first.returncode == 0, first.stderr
        assert "wrote acpx-notes.txt" in first.stdout
        second = _acpx(workspace, tmp_path, "prompt", "history")
        assert second.returncode == 0, second.stderr
        assert "write acpx-notes.txt persisted" in second.stdout
        applied = _acpx(workspace, tmp_path, "prompt", "/apply")
        assert applied.returncode == 0, applied.stderr
        assert "applied" in applied.stdout
    finally:
        # Ends acpx's queue owner and with it the BooCode process.
        _acpx(workspace, tmp_path, "sessions", "close")
    assert (workspace / "acpx-notes.txt").read_text() == "persisted"


def _pgid_of_command(argv: list[str]) -> int | None:
    """The process group of the live process running exactly `argv`, from /proc."""
    wanted = ("\0".join(argv) + "\0").encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == wanted:
                return os.getpgid(int(cmdline.parent.name))
        except (OSError, ProcessLookupError):
            continue
    return None


@pytest.mark.parametrize("engine_in", ["daemon", "no-daemon"])
async def test_sighup_ends_the_front_end_and_stopping_leaves_no_process(
    workspace: Path, engine_in: str
) -> None:
    """An editor or terminal that goes away sends SIGHUP. Without a daemon BooCode must still end
    what it started: the agent and the terminals it runs for the agent, each in a process group of
    its own. With one, only the front end ends; stopping the daemon then ends the rest."""
    log = (workspace.parent / "acp-hup.log").open("ab")
    extra = ["--no-daemon"] if engine_in == "no-daemon" else []
    proc = await asyncio.create_subprocess_exec(
        str(BOOCODE), "acp", "--workspace", str(workspace), *extra,
        cwd=workspace.parent, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=log, start_new_session=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    client = RecordingClient()
    conn = connect_to_agent(client, proc.stdin, proc.stdout)  # type: ignore[arg-type]
    sleeper = ["sleep", "3131"]  # an argv no other process of the machine runs
    try:
        await conn.initialize(
            protocol_version=PROTOCOL_VERSION, client_capabilities=ClientCapabilities(terminal=True)
        )
        sid = (await conn.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(conn, sid, "pid")
        agent_pgid = int(re.findall(r"\d+", client.messages())[0])
        await prompt(conn, sid, "terminal-bg " + " ".join(sleeper))
        terminal_pgid = _pgid_of_command(sleeper)
        assert terminal_pgid is not None, "the agent's terminal should be running"
        proc.send_signal(signal.SIGHUP)
        with anyio.fail_after(30):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    assert code == 0, (workspace.parent / "acp-hup.log").read_text()[-3000:]
    if engine_in == "daemon":
        assert _pgid_of_command(sleeper) == terminal_pgid, "the front end's SIGHUP stopped the daemon's work"
        stop_daemon(workspace)
    await wait_group_gone(agent_pgid)
    await wait_group_gone(terminal_pgid)
