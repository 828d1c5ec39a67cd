"""The web page's server over plain HTTP: `boocode ui` makes the daemon serve it once on loopback;
the login token becomes a strict cookie; every refusal (no login, a rebound Host, a foreign
Origin, an action without this origin or without JSON, an operation the page does not offer) is
4xx and shows nothing; a run's stream carries its events in order and resumes where it left
off; an open stream keeps the daemon from idling out."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from boocode_mcp.daemon.wire import NotRunning, control
from tests.mcp_support import (
    BOOCODE,
    call,
    configure,
    process_running,
    run_turn,
    server_env,
    stdio_params,
)
from tests.ui_support import base_of, ui_url

pytestmark = pytest.mark.anyio


def login_cookie(url: str) -> str:
    """The Cookie header a browser sends once it has opened the login URL."""
    port = url.split(":")[2].split("/")[0]
    return f"boocode_ui_{port}={url.split('token=')[1]}"


async def first_event(
    http: httpx2.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> tuple[str, str | None, Any]:
    """(event, id, data) of the first server-sent event on a stream; the retry hint is skipped."""
    event, event_id = "message", None
    async with http.stream("GET", url, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                return event, event_id, json.loads(line[6:])
    raise AssertionError(f"{url} ended before its first event")


async def test_boocode_ui_serves_one_page_per_daemon_and_the_token_becomes_a_strict_cookie(
    git_repo: Path, tmp_path: Path
) -> None:
    configure(git_repo)
    url = await anyio.to_thread.run_sync(ui_url, git_repo)
    assert await anyio.to_thread.run_sync(ui_url, git_repo) == url, "one server and token per daemon"
    # --open hands the address to the browser webbrowser finds ($BROWSER names one).
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    done = await anyio.run_process(
        [str(BOOCODE), "ui", "--open", "--workspace", str(git_repo)],
        env={**server_env(git_repo), "BROWSER": str(browser)},
    )
    assert done.stdout.decode().strip() == url and opened.read_text() == url
    async with httpx2.AsyncClient() as http:
        login = await http.get(f"{url}&tab=runs")
        assert login.status_code == 303
        assert login.headers["location"] == "/?tab=runs", "the token leaves the address, the rest stays"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith(f"{login_cookie(url)};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        logged = {"cookie": login_cookie(url)}
        page = await http.get(base_of(url), headers=logged)
        assert page.status_code == 200 and '<main id="view">' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        app = await http.get(f"{base_of(url)}static/app.js", headers=logged)
        assert app.status_code == 200 and "PAGES" in app.text


async def test_refusals_are_4xx_show_nothing_and_change_nothing(git_repo: Path) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client:
        done = await run_turn(client, "write kept.txt pending")
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        base = base_of(url)
        port = int(base.rsplit(":", 1)[1].strip("/"))
        token = url.split("token=")[1]
        apply = {"patch_ids": [done["patch_id"]]}
        logged = {"cookie": login_cookie(url)}
        page_post = {"content-type": "application/json", "origin": f"http://127.0.0.1:{port}"}
        other_port = {"origin": f"http://127.0.0.1:{port + 1}"}
        attempts: list[tuple[str, str, dict[str, str], Any, int]] = [
            ("GET", "api/list_runs", {}, None, 401),
            ("GET", "api/list_runs?token=wrong", {}, None, 401),
            ("POST", "api/apply_pending", page_post, apply, 401),
            ("POST", f"api/apply_pending?token={token}", page_post, apply, 401),
            ("GET", "api/list_runs", {**logged, "host": f"rebound.example:{port}"}, None, 421),
            ("GET", "api/list_runs", {**logged, "origin": "http://evil.example"}, None, 403),
            ("POST", "api/apply_pending", {**logged, "content-type": "application/json"}, apply, 403),
            ("POST", "api/apply_pending", {**logged, **page_post, **other_port}, apply, 403),
            ("POST", "api/apply_pending", {**logged, **page_post, "content-type": "text/plain"}, apply, 415),
            ("PUT", "api/apply_pending", {**logged, **page_post}, apply, 405),
            ("GET", "api/run_command?command=touch&args=x", logged, None, 404),
            ("POST", "api/run_command", {**logged, **page_post}, {"command": "touch", "args": ["x"]}, 404),
            ("POST", "api/spawn_subagent", {**logged, **page_post}, {"prompt": "write x.txt x"}, 404),
            ("GET", "api/apply_pending", logged, None, 404),
        ]
        async with httpx2.AsyncClient() as http:
            for method, path, headers, sent, expected in attempts:
                content = json.dumps(sent) if sent is not None else None
                r = await http.request(method, base + path, headers=headers, content=content)
                assert r.status_code == expected, (method, path, headers, r.status_code, r.text)
                assert done["subagent_id"] not in r.text and done["patch_id"] not in r.text
                assert str(git_repo) not in r.text
            # The same action from the page itself is accepted.
            ok = await http.post(
                f"{base}api/apply_pending", json={**apply, "dry_run": True}, headers={**logged, **page_post}
            )
            assert ok.status_code == 200 and ok.json()["result"]["applied"] == [done["patch_id"]]
        pending = await call(client, "list_patches", status="pending")
        assert [p["id"] for p in pending["patches"]] == [done["patch_id"]]
        assert not (git_repo / "kept.txt").exists() and not (git_repo / "x").exists()


async def test_a_run_stream_sends_its_events_in_order_and_resumes_after_the_last_event_id(
    git_repo: Path,
) -> None:
    configure(git_repo)
    async with Client(stdio_params(git_repo), mode="legacy") as client:
        done = await run_turn(client, "steps 2 50")
        url = await anyio.to_thread.run_sync(ui_url, git_repo)
        stream = f"{base_of(url)}api/stream?run={done['subagent_id']}"
        logged = {"cookie": login_cookie(url)}
        async with httpx2.AsyncClient(timeout=30) as http:
            event, event_id, data = await first_event(http, stream, logged)
            assert event == "run"
            seqs = [e["seq"] for e in data["events"]]
            assert seqs == list(range(1, len(seqs) + 1)) and event_id == str(seqs[-1])
            assert data["status"]["status"] == "completed"
            kinds = [e["kind"] for e in data["events"]]
            assert kinds.count("tool_call") == 2 and kinds[-1] == "text"
            _, _, resumed = await first_event(http, stream, {**logged, "last-event-id": str(seqs[3])})
            assert [e["seq"] for e in resumed["events"]] == seqs[4:]
            event, _, failure = await first_event(http, f"{base_of(url)}api/stream?run=no-such-run", logged)
            assert event == "failure" and "no subagent 'no-such-run'" in failure["message"]


async def test_an_open_page_keeps_the_daemon_up_and_it_idles_out_once_the_page_closes(git_repo: Path) -> None:
    configure(git_repo)
    with (git_repo / ".boocode" / "config.toml").open("a") as f:
        f.write("\n[daemon]\nidle_exit_s = 2\n")
    url = await anyio.to_thread.run_sync(ui_url, git_repo)
    pid = int(control(git_repo, "status")["pid"])
    logged = {"cookie": login_cookie(url)}
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{base_of(url)}api/stream", headers=logged) as r,
    ):
        assert r.status_code == 200
        assert control(git_repo, "status")["front_ends"] == 1
        # Several idle periods pass with the page open: the daemon stays (a deliberate window:
        # what is checked is that nothing happens in it).
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert process_running(pid)
            await anyio.sleep(0.2)
        assert control(git_repo, "status")["front_ends"] == 1
    # Nothing to wait on but the process itself: poll it, bounded.
    with anyio.fail_after(60):
        while process_running(pid):  # noqa: ASYNC110
            await anyio.sleep(0.1)
    with pytest.raises(NotRunning):
        control(git_repo, "status")
