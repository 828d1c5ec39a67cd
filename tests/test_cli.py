"""The `boocode` command line driven as a subprocess against a real workspace and the fixture agent."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from boocode_mcp.cli_render import Progress, Renderer
from boocode_mcp.views import AgentInfo, ApplyResult, MemoryHit, PatchView, SubagentView
from tests.cli_support import (
    BOOCODE,
    boo,
    boo_json,
    configure,
    one_line_error,
    read_until,
    start_run,
    stop,
)
from tests.conftest import git


@pytest.fixture
def workspace(git_repo: Path) -> Path:
    return configure(git_repo)


# subagent_status with an id: the subagent's fields, and its list form's field null.
STATUS_FIELDS = {*SubagentView.model_fields, "subagents"}


def test_run_ls_show_patches_apply_in_process(workspace: Path) -> None:
    run = boo(workspace, "run", "write hello.txt hi from the cli", "--no-daemon")
    assert run.stdout.strip() == "wrote hello.txt"
    assert "wrote hello.txt" in run.stderr  # live progress: the agent's text and tool calls
    assert "completed" in run.stderr

    listed = boo_json(workspace, "ls", "--no-daemon")
    assert set(listed) == {"subagents"}
    [sub] = listed["subagents"]
    assert set(sub) == set(SubagentView.model_fields)
    assert sub["status"] == "completed" and sub["patch_id"]

    shown = boo(workspace, "show", sub["subagent_id"][:8])
    assert "wrote hello.txt" in shown.stdout and "+hi from the cli" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b│┃")  # not a terminal: plain text
    shown_json = boo_json(workspace, "show", sub["subagent_id"])
    assert set(shown_json) == STATUS_FIELDS and shown_json["subagent_id"] == sub["subagent_id"]

    patches = boo_json(workspace, "patches")
    assert set(patches) == {"patches"}
    [patch] = patches["patches"]
    assert set(patch) == set(PatchView.model_fields)
    assert patch["id"] == sub["patch_id"] and patch["status"] == "pending"
    assert [f["path"] for f in patch["files"]] == ["hello.txt"]
    assert "+hi from the cli" in boo(workspace, "patches", "--diff").stdout
    assert "hello.txt" in boo(workspace, "patches").stdout

    applied = boo_json(workspace, "apply", patch["id"][:8])
    assert set(applied) == set(ApplyResult.model_fields)
    assert applied["applied"] == [patch["id"]] and applied["conflicts"] == [] and applied["dry_run"] is False
    assert (workspace / "hello.txt").read_text() == "hi from the cli"
    assert boo_json(workspace, "patches")["patches"][0]["status"] == "applied"


def test_run_json_and_follow_up_in_the_same_chat(workspace: Path) -> None:
    first = json.loads(boo(workspace, "run", "pid", "--no-daemon", "--json").stdout)
    assert set(first) == STATUS_FIELDS
    assert first["status"] == "completed"
    second = json.loads(
        boo(workspace, "run", "history", "--chat", first["chat_id"], "--no-daemon", "--json").stdout
    )
    assert second["chat_id"] == first["chat_id"]
    assert "pid" in second["final_message"]  # the agent remembered the chat's first turn
    other = json.loads(boo(workspace, "run", "another chat", "--no-daemon", "--json").stdout)
    assert other["session_id"] != first["session_id"]
    mine = boo_json(workspace, "ls", "--session", first["session_id"])["subagents"]
    assert {r["subagent_id"] for r in mine} == {first["subagent_id"], second["subagent_id"]}
    assert len(boo_json(workspace, "ls")["subagents"]) == 3  # without --session: every session


def test_errors_are_one_line_and_non_zero(workspace: Path) -> None:
    assert "nosuchid" in one_line_error(boo(workspace, "show", "nosuchid", check=False))
    assert "nosuchpatch" in one_line_error(boo(workspace, "apply", "nosuchpatch", "--no-daemon", check=False))
    assert "nosuchchat" in one_line_error(
        boo(workspace, "run", "x", "--chat", "nosuchchat", "--no-daemon", check=False)
    )
    assert "no-such-agent" in one_line_error(
        boo(workspace, "run", "x", "--agent", "no-such-agent", "--no-daemon", check=False)
    )
    crashed = boo(workspace, "run", "crash", "--no-daemon", check=False)
    assert crashed.returncode != 0
    assert "failed" in crashed.stderr.strip().splitlines()[-1]


def test_refused_apply_leaves_workspace_untouched(workspace: Path) -> None:
    run = json.loads(boo(workspace, "run", "write README.md agent version", "--no-daemon", "--json").stdout)
    (workspace / "README.md").write_text("# user version\n")
    git(workspace, "commit", "-qam", "user edit")
    done = boo(workspace, "apply", run["patch_id"], "--no-daemon", "--json", check=False)
    assert "README.md" in one_line_error(done)
    result = json.loads(done.stdout)
    assert result["applied"] == [] and result["conflicts"][0]["file"] == "README.md"
    assert (workspace / "README.md").read_text() == "# user version\n"


def test_the_daemon_keeps_the_agent_warm_between_commands(workspace: Path) -> None:
    first = json.loads(boo(workspace, "run", "pid", "--json").stdout)
    assert set(first) == STATUS_FIELDS  # subagent_status's object, as the MCP tool returns it
    daemon = json.loads(boo(workspace, "daemon", "status", "--json").stdout)
    assert daemon["running"] and daemon["agents_warm"] == 1
    second = json.loads(boo(workspace, "run", "pid", "--chat", first["chat_id"][:8], "--json").stdout)
    assert json.loads(boo(workspace, "daemon", "status", "--json").stdout)["pid"] == daemon["pid"]
    # The same agent process answered both turns: it stayed warm in the daemon between commands.
    assert first["final_message"] == second["final_message"]
    write = json.loads(
        boo(workspace, "run", "write warm.txt warm", "--chat", first["chat_id"], "--json").stdout
    )
    applied = boo_json(workspace, "apply", write["patch_id"])
    assert applied["applied"] == [write["patch_id"]]
    assert (workspace / "warm.txt").read_text() == "warm"
    agent_pid = int(first["final_message"].split()[-1])
    agent = os.pidfd_open(agent_pid)
    try:
        assert "stopped the BooCode daemon" in boo(workspace, "daemon", "stop").stdout
        # The daemon took its agent down with it.
        assert select.select([agent], [], [], 30)[0], f"agent {agent_pid} outlived its daemon"
    finally:
        os.close(agent)


def test_live_chat_is_refused_from_another_process(workspace: Path) -> None:
    slow = start_run(workspace, "slow 2000 20", "--no-daemon", stderr=subprocess.PIPE)
    try:
        assert slow.stderr is not None
        seen = read_until(slow.stderr.fileno(), lambda text: "(chat " in text and "chunk" in text)
        chat = seen.split("(chat ")[1].split(")")[0]
        refused = boo(workspace, "run", "x", "--chat", chat, "--no-daemon", check=False)
        assert chat in one_line_error(refused)
        os.kill(slow.pid, signal.SIGINT)  # Ctrl-C cancels the run
        assert slow.wait(timeout=60) != 0
    finally:
        stop(slow)
    [run] = boo_json(workspace, "ls")["subagents"]
    assert run["status"] == "cancelled"


def test_ctrl_c_cancels_a_run_on_the_daemon(workspace: Path) -> None:
    slow = start_run(workspace, "slow 2000 20", stderr=subprocess.PIPE)
    try:
        assert slow.stderr is not None
        read_until(slow.stderr.fileno(), lambda text: "chunk" in text)  # progress from the daemon
        os.kill(slow.pid, signal.SIGINT)
        assert slow.wait(timeout=60) != 0
    finally:
        stop(slow)
    [run] = boo_json(workspace, "ls")["subagents"]
    assert run["status"] == "cancelled"


def test_agents_traces_memory_json_shapes(workspace: Path) -> None:
    agents = boo_json(workspace, "agents")
    fixture = next(a for a in agents["agents"] if a["name"] == "fixture")
    assert set(fixture) == set(AgentInfo.model_fields) and fixture["installed"] and fixture["default"]
    assert "fixture" in boo(workspace, "agents").stdout

    boo(workspace, "run", "write memo.txt zebra crossing", "--no-daemon")
    traces = boo_json(workspace, "traces")
    assert set(traces) == {"session_id", "traces"}
    assert any(t["tool_name"] for t in traces["traces"])
    hits = boo_json(workspace, "memory", "search", "zebra")
    assert set(hits) == {"hits"}
    assert hits["hits"] and set(hits["hits"][0]) == set(MemoryHit.model_fields)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_diff_is_colored_on_a_terminal_and_plain_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n"
    tty = _Terminal()
    Renderer(tty).diff(diff)
    assert "\x1b[" in tty.getvalue() and "+new" in tty.getvalue()
    plain = io.StringIO()
    Renderer(plain).diff(diff)
    assert plain.getvalue() == diff


def test_progress_prints_streamed_text_and_each_tool_state_once() -> None:
    err = io.StringIO()
    progress = Progress(err)
    chunks = [f"chunk {i} " for i in range(5)]
    for chunk in chunks:
        progress.event("text", {"text": chunk})
    progress.event("tool_call", {"tool_call_id": "t1", "title": "Write a.txt", "status": "pending"})
    progress.event("tool_update", {"tool_call_id": "t1", "title": None, "status": "pending"})
    progress.event("tool_update", {"tool_call_id": "t1", "title": None, "status": "completed"})
    progress.event("plan", {"entries": []})
    assert err.getvalue() == "".join(chunks) + "\n• Write a.txt [pending]\n✓ Write a.txt [completed]\n"


def test_help_documents_every_option() -> None:
    out = subprocess.run([str(BOOCODE), "run", "--help"], capture_output=True, text=True, check=True).stdout
    for opt in ("--agent", "--chat", "--json", "--workspace", "--session", "--no-daemon"):
        assert opt in out
    out = subprocess.run(
        [str(BOOCODE), "daemon", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for opt in ("status", "stop", "--json", "--workspace"):
        assert opt in out
    out = subprocess.run([str(BOOCODE), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for opt in ("--http", "--token", "--no-daemon", "--workspace"):
        assert opt in out
