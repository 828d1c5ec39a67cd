"""Streamable HTTP: `boocode serve --http` (the daemon listens while the command runs, or an engine
of its own with --no-daemon), loopback protection, the bearer token."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.mcp_support import BOOCODE, call, configure, process_running, run_turn, server_env

pytestmark = pytest.mark.anyio

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _stderr_until(proc: Process, marker: bytes) -> bytes:
    assert proc.stderr is not None
    seen = bytearray()
    while marker not in seen:
        seen.extend(await proc.stderr.receive())
    return bytes(seen)


@asynccontextmanager
async def http_server(repo: Path, hostport: str, *extra: str) -> AsyncIterator[str]:
    """`boocode serve --http`; yields the URL it announced, stops it with SIGTERM after, and checks
    that the listener went with it."""
    proc = await anyio.open_process(
        [str(BOOCODE), "serve", "--workspace", str(repo), "--http", hostport, *extra],
        env=server_env(repo),
        cwd=str(repo),
    )
    try:
        with anyio.fail_after(60):
            said = await _stderr_until(proc, b"/mcp")
        url = re.search(rb"at (http://\S+/mcp)", said)
        assert url is not None, said
        yield url.group(1).decode()
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await proc.wait() == 0
        with anyio.fail_after(10):
            while True:
                try:
                    async with httpx2.AsyncClient() as http:
                        await http.post(url.group(1).decode(), json=INIT, headers=ACCEPT)
                except httpx2.ConnectError:
                    break
                except (httpx2.ReadError, httpx2.RemoteProtocolError):
                    # Accepted while the daemon was closing the listener, then dropped: not gone yet.
                    pass
                await anyio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_loopback_serves_both_eras_and_refuses_foreign_hosts(git_repo: Path, mode: str) -> None:
    configure(git_repo)
    async with http_server(git_repo, "127.0.0.1:0") as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with Client(url, mode=mode) as client:
            done = await run_turn(client, "pid")
            assert done["status"] == "completed"
            agent_pid = int(done["final_message"])
        async with httpx2.AsyncClient() as http:
            # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host/Origin.
            r = await http.post(url, json=INIT, headers={**ACCEPT, "Host": "evil.example"})
            assert r.status_code == 421
            r = await http.post(url, json=INIT, headers={**ACCEPT, "Origin": "http://evil.example"})
            assert r.status_code == 403
            r = await http.post(url, json=INIT, headers=ACCEPT)
            assert r.status_code == 200
    # The listener ended with the command; the agent is the daemon's and stays warm.
    assert process_running(agent_pid)


async def test_without_a_daemon_the_server_takes_its_agents_down(git_repo: Path) -> None:
    configure(git_repo)
    async with http_server(git_repo, "127.0.0.1:0", "--no-daemon") as url, Client(url) as client:
        agent_pid = int((await run_turn(client, "pid"))["final_message"])
    assert not process_running(agent_pid), "the HTTP server left its agent running"


async def test_each_http_connection_gets_its_own_session_and_sees_the_others(git_repo: Path) -> None:
    configure(git_repo)
    async with (
        http_server(git_repo, "127.0.0.1:0") as url,
        Client(url, mode="legacy") as one,
        Client(url, mode="legacy") as two,
    ):
        mine = await run_turn(one, "hello from one")
        theirs = await run_turn(two, "hello from two")
        assert mine["session_id"] != theirs["session_id"]
        listed = (await call(two, "subagent_status"))["subagents"]
        assert [(r["subagent_id"], r["session_id"]) for r in listed] == [
            (theirs["subagent_id"], theirs["session_id"]),
            (mine["subagent_id"], mine["session_id"]),
        ]
        narrowed = await call(two, "subagent_status", session_id=mine["session_id"])
        assert [r["subagent_id"] for r in narrowed["subagents"]] == [mine["subagent_id"]]


async def test_non_loopback_without_token_refuses_to_start(git_repo: Path) -> None:
    configure(git_repo)
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(BOOCODE), "serve", "--workspace", str(git_repo), "--http", "0.0.0.0:0"],
            env=server_env(git_repo),
            cwd=str(git_repo),
            check=False,
        )
    assert done.returncode != 0
    assert b"--token" in done.stderr and b"0.0.0.0" in done.stderr


async def test_token_is_required_on_every_request(git_repo: Path, mode: str) -> None:
    configure(git_repo)
    token = "s3cret-token"
    async with http_server(git_repo, "0.0.0.0:0", "--token", token) as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx2.AsyncClient() as http:
            r = await http.post(url, json=INIT, headers=ACCEPT)
            assert r.status_code == 401
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = await http.post(url, json=INIT, headers={**ACCEPT, "Authorization": "Bearer wrong"})
            assert r.status_code == 401
            r = await http.get(url, headers={"Authorization": f"Bearer {token}x"})
            assert r.status_code == 401
        authed = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with authed, Client(streamable_http_client(url, http_client=authed), mode=mode) as client:
            ran = await call(
                client, "run_command", command="git", args=["rev-parse", "--is-inside-work-tree"]
            )
            assert ran["stdout"] == "true\n"
