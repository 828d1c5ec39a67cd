"""The per-workspace daemon behind every front end: work outlives the host that started it, every
connection sees the workspace, one engine per workspace, and no process outlives the daemon."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from boocode_mcp.daemon.relay import READ_ONLY_TOOLS
from boocode_mcp.daemon.wire import (
    PROTOCOL,
    DaemonError,
    DaemonPaths,
    NotRunning,
    connect,
    control,
    stop_daemon,
)
from boocode_mcp.trust import trust_workspace
from tests.mcp_support import (
    BOOCODE,
    BOOCODE_MCP,
    TERMINAL,
    call,
    configure,
    inprocess_server,
    process_running,
    run_turn,
    server_env,
    stdio_params,
    user_config,
    wait_for,
)

pytestmark = pytest.mark.anyio

TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _user_config_of_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started from this process (wire.connect) inherit its environment, as any front
    end's daemon does: give it the user config directory where `configure` trusted the workspace."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def boo(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`boocode ARGS --workspace REPO`, as a user in a shell would run it."""
    return subprocess.run(
        [str(BOOCODE), *args, "--workspace", str(repo)],
        env=server_env(repo),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


async def aboo(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: boo(repo, *args))


def daemon_pid(repo: Path) -> int:
    return int(control(repo, "status")["pid"])


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if hasattr(c, "text"))


def ids_in(text: str, noun: str) -> list[str]:
    """The ids a host's model would read after `noun` in a tool's text ("patch 3f…", …)."""
    return re.findall(rf"\b{noun} ([0-9a-f-]{{32,36}})\b", text)


def wait_until(predicate: Any, timeout_s: float = TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


async def test_a_run_outlives_its_host_and_a_text_only_host_reviews_and_applies_it(git_repo: Path) -> None:
    """A host that sees only tool texts spawns, quits before the run ends; a second host process
    finds the run, reviews its diff and applies it with the ids it read in texts alone."""
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as first:
        spawned = await first.call_tool("spawn_subagent", {"prompt": "slow-write 1000 done.txt finished"})
        assert not spawned.is_error
        text = text_of(spawned)
    run_id = ids_in(text, "subagent")[0]
    session_id = ids_in(text, "session")[0]
    assert ids_in(text, "chat")
    # The host is gone; the run is not.
    async with Client(stdio_params(git_repo), mode="auto") as second:
        with anyio.fail_after(TIMEOUT_S):
            while True:
                status = await second.call_tool("subagent_status", {"subagent_id": run_id, "wait_seconds": 5})
                status_text = text_of(status)
                if "completed" in status_text or "failed" in status_text:
                    break
        assert f"subagent {run_id}" in status_text and "completed" in status_text
        patch_id = ids_in(status_text, "patch")[0]
        review = text_of(await second.call_tool("list_patches", {"include_hunks": True}))
        assert f"patch {patch_id}" in review and f"session {session_id}" in review
        assert "+++ b/done.txt" in review and "+finished" in review
        applied = text_of(await second.call_tool("apply_pending", {"patch_ids": [patch_id]}))
        assert f"applied {patch_id}" in applied
    assert (git_repo / "done.txt").read_text() == "finished"


async def test_two_hosts_share_one_daemon_and_one_warm_agent(git_repo: Path) -> None:
    configure(git_repo)
    async with (
        Client(stdio_params(git_repo), mode="legacy") as one,
        Client(stdio_params(git_repo), mode="auto") as two,
    ):
        first = await run_turn(one, "pid")
        second = await run_turn(two, "pid", chat_id=first["chat_id"])
        assert second["final_message"] == first["final_message"], "the follow-up started a new agent"
        assert second["session_id"] == first["session_id"], "a chat's runs stay in the chat's session"
        assert control(git_repo, "status")["front_ends"] == 2
    # Both front ends exited: the agent is still warm in the one daemon.
    assert process_running(int(first["final_message"]))
    assert control(git_repo, "status")["agents_warm"] == 1


def test_a_piped_script_spawns_and_exits_and_the_run_completes(git_repo: Path) -> None:
    configure(git_repo)
    client = {"name": "sh", "version": "1"}
    lines = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "spawn_subagent", "arguments": {"prompt": "slow-write 500 piped.txt ok"}}},
    ]  # fmt: skip
    script = (
        "printf '%s\\n' "
        + " ".join(f"'{json.dumps(m)}'" for m in lines)
        + f" | {BOOCODE_MCP} --workspace {git_repo}"
    )
    done = subprocess.run(
        ["sh", "-c", script], env=server_env(git_repo), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["id"] for a in answers] == [0, 1], "every request read before stdin closed is answered"
    run_id = answers[1]["result"]["structuredContent"]["subagent_id"]

    def status() -> dict[str, Any]:
        shown = boo(git_repo, "show", run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    wait_until(lambda: status()["status"] in TERMINAL, what="the piped run to finish")
    run = status()
    assert run["status"] == "completed" and run["patch_id"]


async def test_a_killed_daemon_leaves_an_interrupted_run_reaped_agents_and_a_usable_chat(
    git_repo: Path,
) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client:
        warm = await run_turn(client, "pid")
        agent_pid = int(warm["final_message"])
        spawned = await call(client, "spawn_subagent", prompt="slow 5000 20", chat_id=warm["chat_id"])
        await wait_for(client, spawned["subagent_id"], {"running"})
        killed = daemon_pid(git_repo)
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: not process_running(killed), what="the daemon to die")
        # The relay answers for the daemon it lost and starts a new one on the next request.
        final = await wait_for(client, spawned["subagent_id"], TERMINAL)
        assert final["status"] == "interrupted"
        assert daemon_pid(git_repo) != killed
        wait_until(lambda: not process_running(agent_pid), what="the orphaned agent to be reaped")
        again = await run_turn(client, "write after.txt again", chat_id=warm["chat_id"])
        assert again["status"] == "completed"


async def test_the_relay_resends_exactly_the_tools_marked_read_only(git_repo: Path) -> None:
    # A read whose daemon died is sent again to the next one; anything else must never be.
    configure(git_repo)
    async with inprocess_server(git_repo) as server, Client(server) as client:
        tools = (await client.list_tools()).tools
    marked = {t.name for t in tools if t.annotations is not None and t.annotations.read_only_hint}
    assert marked and marked == READ_ONLY_TOOLS


async def test_daemon_stop_interrupts_runs_and_leaves_no_process(git_repo: Path) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client:
        warm = await run_turn(client, "pid")
        spawned = await call(client, "spawn_subagent", prompt="slow 5000 20", chat_id=warm["chat_id"])
        await wait_for(client, spawned["subagent_id"], {"running"})
        pid = daemon_pid(git_repo)
        done = await aboo(git_repo, "daemon", "stop", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"stopped": True, "pid": pid}
        assert not process_running(pid)
        assert not process_running(int(warm["final_message"]))
        assert not DaemonPaths(git_repo).socket.exists()
    status = await aboo(git_repo, "daemon", "status", "--json")
    assert status.returncode == 1 and json.loads(status.stdout)["running"] is False
    again = await aboo(git_repo, "show", spawned["subagent_id"], "--json")
    assert json.loads(again.stdout)["status"] == "interrupted"
    stopped = await aboo(git_repo, "daemon", "stop")
    assert stopped.returncode == 0 and "stopped the BooCode daemon" in stopped.stdout
    with pytest.raises(NotRunning):
        control(git_repo, "status")


def test_the_socket_is_private_and_a_foreign_directory_is_refused(git_repo: Path) -> None:
    configure(git_repo)
    conn = connect(git_repo, "control")
    conn.close()
    paths = DaemonPaths(git_repo)
    assert stat.S_IMODE(os.stat(paths.run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(paths.socket).st_mode) == 0o600
    stop_daemon(git_repo)
    os.chmod(paths.run_dir, 0o755)
    with pytest.raises(DaemonError, match="chmod 700"):
        connect(git_repo, "mcp")
    if os.getuid() == 0:
        os.chmod(paths.run_dir, 0o700)
        os.chown(paths.run_dir, 4321, 4321)
        with pytest.raises(DaemonError, match="uid 4321"):
            connect(git_repo, "mcp")
        os.chown(paths.run_dir, 0, 0)


def test_an_idle_daemon_exits_and_one_whose_workspace_is_deleted_stops_with_its_agents(
    git_repo: Path, tmp_path: Path
) -> None:
    configure(git_repo)
    with (git_repo / ".boocode" / "config.toml").open("a") as f:
        f.write("\n[daemon]\nidle_exit_s = 1\n")
    trust_workspace(git_repo, user_config(git_repo).parent)
    first = boo(git_repo, "run", "--quiet", "--json", "pid")
    assert first.returncode == 0, first.stderr
    agent_pid = int(json.loads(first.stdout)["final_message"])
    pid = int((DaemonPaths(git_repo).read_info() or {})["pid"])
    wait_until(lambda: not process_running(pid), timeout_s=30, what="the idle daemon to exit")
    assert not process_running(agent_pid)
    log = (git_repo / ".boocode" / "logs" / "daemon.log").read_text()
    assert "idle for 1s" in log

    # A daemon that is never idle (a front end stays connected) but whose workspace is deleted.
    moved = tmp_path / "elsewhere"
    conn = connect(git_repo, "mcp")
    try:
        pid = conn.daemon_pid
        second = boo(git_repo, "run", "--quiet", "--json", "pid")
        agent_pid = int(json.loads(second.stdout)["final_message"])
        subprocess.run(["rm", "-rf", str(git_repo)], check=True)
        wait_until(lambda: not process_running(pid), timeout_s=30, what="the orphaned daemon to stop")
        assert not process_running(agent_pid)
    finally:
        conn.close()
    assert not moved.exists()


def test_a_daemon_of_another_version_is_replaced_when_idle_and_refused_when_busy(git_repo: Path) -> None:
    configure(git_repo)
    paths = DaemonPaths(git_repo)
    paths.make_private_dirs()
    old = (
        "import sys, boocode_mcp; boocode_mcp.__version__ = '0.0.1'\n"
        "from boocode_mcp.daemon.__main__ import main\n"
        f"main(['--workspace', {str(git_repo)!r}, '--detach'])\n"
    )
    env = server_env(git_repo)
    subprocess.run(
        [sys.executable, "-c", old], env=env, check=True, timeout=TIMEOUT_S, start_new_session=True
    )
    wait_until(lambda: (paths.read_info() or {}).get("version") == "0.0.1", what="the old daemon")
    old_pid = int((paths.read_info() or {})["pid"])
    try:
        # Busy: a front end of its own version is connected.
        busy = socket.socket(socket.AF_UNIX)
        busy.connect(os.fspath(paths.socket))
        busy.sendall(json.dumps({"boocode": PROTOCOL, "version": "0.0.1", "kind": "api"}).encode() + b"\n")
        assert json.loads(busy.recv(4096).split(b"\n")[0])["ok"] is True
        refused = boo(git_repo, "ls")
        assert refused.returncode == 1
        assert "version 0.0.1" in refused.stderr and "boocode daemon stop" in refused.stderr
        busy.close()
        # Idle: replaced by a daemon of this version.
        wait_until(
            lambda: control(git_repo, "status")["front_ends"] == 0, what="the old daemon to see the close"
        )
        listing = boo(git_repo, "ls", "--json")
        assert listing.returncode == 0, listing.stderr
        assert not process_running(old_pid)
        assert control(git_repo, "status")["version"] != "0.0.1"
    finally:
        if process_running(old_pid):
            os.kill(old_pid, signal.SIGKILL)


async def test_an_editor_and_an_mcp_host_see_each_others_runs(git_repo: Path) -> None:
    from tests.acp_support import RecordingClient, boocode_acp, prompt
    from tests.acp_support import configure as configure_acp

    workspace = configure_acp(git_repo)
    editor = RecordingClient()
    async with boocode_acp(workspace, editor) as acp, Client(stdio_params(workspace), mode="legacy") as host:
        sid = (await acp.new_session(cwd=str(workspace), mcp_servers=[])).session_id
        await prompt(acp, sid, "write from-editor.txt e")
        from_host = await run_turn(host, "write from-host.txt h")
        listed = (await call(host, "subagent_status"))["subagents"]
        assert {r["session_id"] for r in listed} == {sid, from_host["session_id"]}
        editor_run = next(r for r in listed if r["session_id"] == sid)
        assert editor_run["prompt"] == "write from-editor.txt e"
        sessions = await acp.list_sessions(cwd=str(workspace))
        assert {s.session_id for s in sessions.sessions} == {sid, from_host["session_id"]}
        # The host applies the editor's patch by its id.
        applied = await call(host, "apply_pending", patch_ids=[editor_run["patch_id"]])
        assert applied["applied"] == [editor_run["patch_id"]]
    assert (workspace / "from-editor.txt").read_text() == "e"


async def test_an_editor_without_workspace_reaches_each_repositorys_own_daemon(
    git_repo: Path, tmp_path: Path
) -> None:
    from tests.acp_support import RecordingClient, boocode_acp, prompt
    from tests.acp_support import configure as configure_acp
    from tests.conftest import git

    one = configure_acp(git_repo)
    two = tmp_path / "two"
    two.mkdir()
    git(two, "init", "-q", "-b", "main")
    (two / "README.md").write_text("two\n")
    git(two, "add", "-A")
    git(two, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "init")
    configure_acp(two)
    async with boocode_acp(one, RecordingClient(), workspace_arg=False) as acp:
        first = (await acp.new_session(cwd=str(one), mcp_servers=[])).session_id
        second = (await acp.new_session(cwd=str(two), mcp_servers=[])).session_id
        await prompt(acp, first, "write a.txt one")
        await prompt(acp, second, "write b.txt two")
        # The daemons answer with their own process ids: one per repository.
        assert daemon_pid(one) != daemon_pid(two)
        await prompt(acp, first, "/apply")
        await prompt(acp, second, "/apply")
    assert (one / "a.txt").read_text() == "one" and not (one / "b.txt").exists()
    assert (two / "b.txt").read_text() == "two" and not (two / "a.txt").exists()


def test_a_zombie_is_not_alive() -> None:
    # A killed daemon stays a zombie until its parent reaps it; its runs must read interrupted
    # to the next daemon meanwhile, so its pid must not count as a live owner.
    from boocode_mcp.liveness import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        state = Path(f"/proc/{child.pid}/stat")
        wait_until(lambda: state.read_text().rsplit(") ", 1)[1][0] == "Z", what="a zombie")
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert pid_alive(os.getpid())


def test_a_daemon_dying_mid_hello_is_waited_for_until_its_socket_refuses_not_until_its_file_goes(
    git_repo: Path,
) -> None:
    # A daemon killed while a front end greets it drops the connection, and its socket file stays
    # behind (only the next daemon removes it): the front end must go on as soon as nothing
    # listens there, instead of waiting for the file to disappear until its start timeout.
    paths = DaemonPaths(git_repo)
    paths.make_private_dirs()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(paths.socket))
    listener.listen(1)

    def die_mid_hello() -> None:
        conn, _ = listener.accept()
        conn.close()
        listener.close()

    dying = threading.Thread(target=die_mid_hello)
    dying.start()
    try:
        with pytest.raises(NotRunning):
            connect(git_repo, "control", start=False)
    finally:
        dying.join()
    assert paths.socket.exists()
