"""The `boocode-mcp` process itself: stdout purity, EOF, signals, a SIGKILL and a restart, as a
front end of the workspace's daemon (the default: its runs and agents outlive it) and with the
engine in its own process (`--no-daemon`: they end with it).

The tools and resources over stdio, in both eras, are exercised by test_mcp_flows.py; the daemon
itself by test_daemon.py."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from mcp import Client

from tests.mcp_support import (
    BOOCODE_MCP,
    call,
    command_line,
    configure,
    parent_pid,
    process_running,
    read_json,
    run_turn,
    server_env,
    stdio_params,
    wait_for,
)

pytestmark = pytest.mark.anyio


async def _agent_pid(client: Client, chat_id: str) -> int:
    rows = (await read_json(client, f"agent-sessions://{chat_id}"))["agent_sessions"]
    assert len(rows) == 1 and rows[0]["pid"], rows
    return int(rows[0]["pid"])


@pytest.fixture(params=["daemon", "no-daemon"])
def engine_in(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _argv(repo: Path, engine_in: str) -> list[str]:
    return [
        str(BOOCODE_MCP),
        "--workspace",
        str(repo),
        *(["--no-daemon"] if engine_in == "no-daemon" else []),
    ]


async def test_sigkilled_server_leaves_an_interrupted_run_and_no_agent_after_restart(git_repo: Path) -> None:
    configure(git_repo)
    params = stdio_params(git_repo)
    params.args.append("--no-daemon")
    killed = False
    try:
        async with Client(params, mode="legacy") as client:
            warm = await run_turn(client, "pid")
            agent_pid = int(warm["final_message"])
            assert await _agent_pid(client, warm["chat_id"]) == agent_pid
            spawned = await call(client, "spawn_subagent", prompt="slow 5000 20", chat_id=warm["chat_id"])
            await wait_for(client, spawned["subagent_id"], {"running"})
            server_pid = parent_pid(agent_pid)
            assert b"boocode-mcp" in command_line(server_pid)
            os.kill(server_pid, signal.SIGKILL)
            killed = True
    except Exception:
        # The connection died with the server; the client may report that on its way out.
        if not killed:
            raise
    # The killed server left its agent behind: exactly what the restart must clean up.
    assert process_running(agent_pid)

    async with Client(params, mode="legacy") as client:
        status = await call(
            client, "subagent_status", subagent_id=spawned["subagent_id"], session_id=spawned["session_id"]
        )
        assert status["status"] == "interrupted", status
        assert status["error"]
        # Killed by the restart's recovery (nothing else signals it); SIGKILL lands asynchronously.
        with anyio.fail_after(5):
            while process_running(agent_pid):  # noqa: ASYNC110
                await anyio.sleep(0.02)
        # The chat is usable again, on a fresh agent process.
        nxt = await run_turn(client, "pid", chat_id=spawned["chat_id"], session_id=spawned["session_id"])
        assert nxt["status"] == "completed" and int(nxt["final_message"]) != agent_pid


async def _read_line(proc: Process, buf: bytearray) -> bytes:
    assert proc.stdout is not None
    while b"\n" not in buf:
        chunk = await proc.stdout.receive()
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


async def _rpc(proc: Process, buf: bytearray, msg: dict[str, Any]) -> dict[str, Any]:
    """Send one request; return its response (notifications in between are checked, then skipped)."""
    assert proc.stdin is not None
    await proc.stdin.send((json.dumps(msg) + "\n").encode())
    while True:
        line = await _read_line(proc, buf)
        frame = json.loads(line)
        assert frame["jsonrpc"] == "2.0", line
        if frame.get("id") == msg["id"]:
            return dict(frame)
        assert "method" in frame, line


async def _initialize(proc: Process, buf: bytearray) -> dict[str, Any]:
    init = await _rpc(proc, buf, {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}},
    })  # fmt: skip
    assert proc.stdin is not None
    await proc.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    return init


async def test_stdout_carries_only_json_rpc_and_sigterm_ends_the_front_end(
    git_repo: Path, engine_in: str
) -> None:
    configure(git_repo)
    stderr_path = git_repo.parent / "server.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await anyio.open_process(
            _argv(git_repo, engine_in),
            env=server_env(git_repo),
            cwd=str(git_repo),
            stderr=stderr,
        )
        buf = bytearray()
        try:
            with anyio.fail_after(60):
                init = await _initialize(proc, buf)
                assert init["result"]["capabilities"]["resources"]["subscribe"] is True
                # An agent that prints, a terminal command that prints, a command that prints:
                # none of it may reach the protocol stream.
                spawn = await _rpc(proc, buf, {
                    "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "spawn_subagent",
                               "arguments": {"prompt": "terminal echo to-stdout", "wait_seconds": 20}},
                })  # fmt: skip
                run = spawn["result"]["structuredContent"]
                assert run["status"] == "completed", spawn
                assert "to-stdout" in run["final_message"]
                ran = await _rpc(proc, buf, {
                    "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "run_command", "arguments": {"command": "echo", "args": ["loud"]}},
                })  # fmt: skip
                assert ran["result"]["structuredContent"]["stdout"] == "loud\n"
                bad = await _rpc(proc, buf, {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"})
                assert bad["error"]["code"] == -32601
                sessions = await _rpc(proc, buf, {
                    "jsonrpc": "2.0", "id": 5, "method": "resources/read",
                    "params": {"uri": f"agent-sessions://{run['chat_id']}"},
                })  # fmt: skip
                rows = json.loads(sessions["result"]["contents"][0]["text"])["agent_sessions"]
                agent_pid = int(rows[0]["pid"])
                assert process_running(agent_pid)

                proc.send_signal(signal.SIGTERM)
                assert await proc.wait() == 0
                assert proc.stdout is not None
                # Whatever was still in flight must also be protocol.
                async for chunk in proc.stdout:
                    buf.extend(chunk)
                for line in bytes(buf).splitlines():
                    assert json.loads(line)["jsonrpc"] == "2.0", line
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    if engine_in == "daemon":
        assert process_running(agent_pid), "the front end's SIGTERM stopped the daemon's agent"
    else:
        assert not process_running(agent_pid), "SIGTERM left the agent running"


async def test_stdin_eof_ends_the_front_end(git_repo: Path, engine_in: str) -> None:
    configure(git_repo)
    proc = await anyio.open_process(
        _argv(git_repo, engine_in),
        env=server_env(git_repo),
        cwd=str(git_repo),
        stderr=None,
    )
    buf = bytearray()
    try:
        with anyio.fail_after(60):
            await _initialize(proc, buf)
            spawn = await _rpc(proc, buf, {
                "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "spawn_subagent", "arguments": {"prompt": "pid", "wait_seconds": 20}},
            })  # fmt: skip
            agent_pid = int(spawn["result"]["structuredContent"]["final_message"])
            assert process_running(agent_pid)
            assert proc.stdin is not None
            await proc.stdin.aclose()
            # A host that goes away just closes the pipe; the front end must notice and leave.
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if engine_in == "daemon":
        assert process_running(agent_pid), "the host leaving stopped the daemon's warm agent"
    else:
        assert not process_running(agent_pid), "stdin EOF left the agent running"


async def test_a_directory_outside_git_fails_fast_with_a_message(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    proc = await anyio.open_process(
        [str(BOOCODE_MCP), "--workspace", str(plain)], env=server_env(plain), cwd=str(plain)
    )
    # stdin stays open, as a host would keep it: the server must not wait for it to close.
    with anyio.fail_after(30):
        code = await proc.wait()
    assert proc.stderr is not None and proc.stdout is not None
    err = b"".join([chunk async for chunk in proc.stderr])
    out = b"".join([chunk async for chunk in proc.stdout])
    assert proc.stdin is not None
    await proc.stdin.aclose()
    assert code == 1
    assert b"not a git repository" in err and out == b""
