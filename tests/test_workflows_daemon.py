"""Workflows through every front end of the workspace's daemon: the MCP tools and resource, the
`boocode workflow` commands, `/workflow` in `boocode acp`; a daemon killed mid-workflow, and the
same workflow run again finishing from the step cache."""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from boocode_mcp.daemon.client import SocketApi
from boocode_mcp.daemon.wire import stop_daemon
from tests.acp_support import RecordingClient, boocode_acp, prompt
from tests.cli_support import boo, boo_json, one_line_error
from tests.conftest import write_config
from tests.mcp_support import ResourceUpdates, call, call_error, inprocess_server, read_json
from tests.mcp_support import configure as configure_mcp
from tests.workflow_support import write_workflow

TWO_STEPS = """
workflow = {
  name: "two",
  description: "a step, then a step fed by it",
  args: {type: "object", properties: {x: {type: "string"}}, required: ["x"]},
  async run({x}) {
    log("starting " + x);
    const first = await phase("first", () => agent("first", {prompt: "slow 5 20 " + x}).run());
    const second = await agent("second", {prompt: "write out.txt done"}).run(first.text);
    return {first: first.text, second: second.text, files: second.files};
  },
};
"""


@pytest.mark.anyio
async def test_workflow_tools_resource_and_its_updates_over_mcp(git_repo: Path) -> None:
    repo = configure_mcp(git_repo)
    write_workflow(repo, "two", TWO_STEPS)
    on_message = ResourceUpdates()

    async with (
        inprocess_server(repo) as server,
        Client(server, mode="legacy", message_handler=on_message) as client,
    ):
        listing = await call(client, "list_workflows")
        assert {w["name"] for w in listing["workflows"]} >= {"two", "best-of-n", "plan-verify"}
        assert listing["warnings"] == []
        refused = await call_error(client, "run_workflow", name="two", args={"x": 3})
        assert "args.x: 3 is not of type 'string'" in refused

        started = await call(client, "run_workflow", name="two", args={"x": "go"})
        uri = f"workflows://{started['workflow_run_id']}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)
        with anyio.fail_after(60):
            status = await call(client, "workflow_status", workflow_run_id=started["workflow_run_id"])
            while status["status"] in ("queued", "running"):
                status = await call(
                    client, "workflow_status", workflow_run_id=started["workflow_run_id"], wait_seconds=10
                )
            await on_message.changed.wait()
        assert status["status"] == "completed", status["error"]
        assert uri in on_message.uris
        assert status["result"]["files"] == ["out.txt"]
        assert [(s["step_id"], s["phase"], s["cached"]) for s in status["steps"]] == [
            ("first", "first", False),
            ("second", None, False),
        ]
        assert [entry["message"] for entry in status["logs"]] == ["starting go"]
        assert await read_json(client, uri) == status

        again = await call(client, "run_workflow", name="two", args={"x": "go"}, wait_seconds=20)
        assert again["status"] == "completed" and again["result"] == status["result"]
        done = await call(client, "cancel_workflow", workflow_run_id=again["workflow_run_id"])
        assert done == {"workflow_run_id": again["workflow_run_id"], "status": "completed"}


def _daemon_pid(repo: Path) -> int:
    return int(boo_json(repo, "daemon", "status")["pid"])


def test_workflow_commands_and_scripts_over_their_limits_leave_the_daemon_serving(git_repo: Path) -> None:
    write_config(git_repo, extra="[workflows]\ncpu_limit_s = 1\nmemory_limit_mb = 16\n")
    write_workflow(git_repo, "two", TWO_STEPS)
    write_workflow(git_repo, "spin", 'workflow = {name: "spin", description: "d", run() { for (;;) {} }};')
    write_workflow(
        git_repo,
        "bomb",
        'workflow = {name: "bomb", description: "d",'
        " run() { let a = []; for (;;) a.push(new Array(1e5)); }};",
    )
    write_workflow(
        git_repo,
        "throws",
        'workflow = {name: "throws", description: "d",\n run() { throw new Error("boom"); }};',
    )
    write_workflow(
        git_repo,
        "deep",
        'workflow = {name: "deep", description: "d", run() { const r = (n) => r(n + 1) + 1; return r(0); }};',
    )
    write_workflow(git_repo, "broken", "workflow = {")

    listing = boo_json(git_repo, "workflow", "ls")
    assert {"two", "spin", "bomb", "throws", "deep", "best-of-n"} <= {w["name"] for w in listing["workflows"]}
    assert [Path(w["file"]).name for w in listing["warnings"]] == ["broken.js"]
    pid = _daemon_pid(git_repo)

    done = boo(git_repo, "workflow", "run", "two", "--args", '{"x": "cli"}')
    assert json.loads(done.stdout)["files"] == ["out.txt"]
    assert "step first [first] on fixture: completed" in done.stderr
    assert "log: starting cli" in done.stderr
    again = boo(git_repo, "workflow", "run", "two", "--args", '{"x": "cli"}', "--json")
    final = json.loads(again.stdout)
    assert final["status"] == "completed" and [s["cached"] for s in final["steps"]] == [True, True]
    assert "(from the step cache)" in again.stderr
    shown = boo(git_repo, "workflow", "status", final["workflow_run_id"][:10])
    assert "workflow two completed: 2 steps, 2 from the step cache" in shown.stdout

    spin = boo(git_repo, "workflow", "run", "spin", "--quiet", check=False)
    assert one_line_error(spin) == (
        "boocode: workflow spin failed: 0 steps, 0 from the step cache; the workflow script used more "
        "than 1 s of CPU time ([workflows] cpu_limit_s = 1)"
    )
    bomb = boo(git_repo, "workflow", "run", "bomb", "--quiet", check=False)
    assert "used more than 16 MB of memory ([workflows] memory_limit_mb = 16)" in one_line_error(bomb)
    # An exception thrown by run() fails the run with its message and the script's line.
    thrown = boo(git_repo, "workflow", "run", "throws", "--quiet", check=False)
    assert (
        thrown.returncode != 0 and "Error: boom" in thrown.stderr and "at run (throws.js:2:" in thrown.stderr
    )
    deep = boo(git_repo, "workflow", "run", "deep", "--quiet", check=False)
    assert "RangeError: Maximum call stack size exceeded" in deep.stderr
    bad = boo(git_repo, "workflow", "run", "two", "--args", "{x", check=False)
    assert one_line_error(bad).startswith("boocode: --args is not JSON")
    # The same daemon served every command, the failing scripts included.
    assert _daemon_pid(git_repo) == pid


def _sandboxes_of(pid: int) -> list[int]:
    """Live sandbox processes whose parent is `pid`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"sandbox_child.py" in cmdline:
            found.append(int(proc.name))
    return found


def _wait_until(check: Any, within: float = 30) -> Any:
    """Poll `check` (bounded): the state of another process has no event to wait on."""
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_a_daemon_killed_mid_workflow_leaves_it_interrupted_and_a_rerun_finishes_from_the_cache(
    git_repo: Path,
) -> None:
    write_config(git_repo)
    # The second step lasts until this file exists: the whole first run, and no time at all after.
    release = git_repo.parent / "release"
    write_workflow(
        git_repo,
        "resume",
        """
        workflow = {
          name: "resume",
          description: "a quick step, then one waiting for a file",
          async run() {
            const quick = await agent("quick", {prompt: "write first.txt one"}).run();
            const slow = await agent("slow", {prompt: "wait-file RELEASE"}).run();
            return {quick: quick.patch_id, slow: slow.text};
          },
        };
        """.replace("RELEASE", str(release)),
    )
    api = SocketApi(git_repo)
    try:
        started = api.call("run_workflow", name="resume")
        run_id = started["workflow_run_id"]
        deadline = time.monotonic() + 60
        view = started
        while not (len(view.get("steps") or []) == 2 and view["steps"][1]["status"] == "running"):
            assert time.monotonic() < deadline and view["status"] in ("queued", "running"), view
            view = api.call("workflow_status", workflow_run_id=run_id, wait_seconds=5)
        daemon = api.daemon_pid
        # The run's sandbox, and the spare kept ready for the next run.
        _wait_until(lambda: len(_sandboxes_of(daemon)) == 2)
        sandboxes = _sandboxes_of(daemon)
    finally:
        api.close()
    os.kill(daemon, signal.SIGKILL)
    # The sandboxes die with the daemon that started them.
    _wait_until(lambda: all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in sandboxes))

    api = SocketApi(git_repo)
    try:
        assert api.daemon_pid != daemon
        old = api.call("workflow_status", workflow_run_id=run_id)
        assert old["status"] == "interrupted"
        assert "run it again with the same args" in old["error"]
        assert (
            api.call("subagent_status", subagent_id=old["steps"][1]["subagent_id"])["status"] == "interrupted"
        )

        release.touch()
        rerun = api.call("run_workflow", name="resume")
        deadline = time.monotonic() + 60
        view = rerun
        while view["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            view = api.call("workflow_status", workflow_run_id=rerun["workflow_run_id"], wait_seconds=10)
        assert view["status"] == "completed", view["error"]
        quick, slow = view["steps"]
        assert quick["cached"] and quick["subagent_id"] == old["steps"][0]["subagent_id"]
        assert not slow["cached"] and slow["status"] == "completed"
        assert view["result"] == {"quick": old["steps"][0]["patch_id"], "slow": f"waiting found {release}"}
    finally:
        api.close()
        stop_daemon(git_repo)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.anyio
async def test_workflow_command_in_boocode_acp_streams_steps_and_ends_with_the_result(git_repo: Path) -> None:
    write_config(git_repo, policy="deny")
    write_workflow(git_repo, "two", TWO_STEPS)
    client = RecordingClient()
    async with boocode_acp(git_repo, client) as conn:
        sid = (await conn.new_session(cwd=str(git_repo), mcp_servers=[])).session_id
        listed = await prompt(conn, sid, "/workflow")
        assert listed.stop_reason == "end_turn"
        assert "- two (workspace): a step, then a step fed by it" in client.messages()
        resp = await prompt(conn, sid, '/workflow two {\n  "x": "editor"\n}')
        assert resp.stop_reason == "end_turn"
        text = client.messages()
        assert (
            "step first [first] on fixture: running" in text
            or "step first [first] on fixture: queued" in text
        )
        assert "log: starting editor" in text
        assert "BooCode: workflow two completed: 2 steps, 0 from the step cache" in text
        assert '"files": [\n    "out.txt"\n  ]' in text
        bad = await prompt(conn, sid, "/workflow two {nope")
        assert bad.stop_reason == "end_turn"
        assert "BooCode: the workflow's args are not JSON" in client.messages()
        assert "workflow" in client.commands()
