"""The command line's operations around runs: attach, send, retry, inbox, stats, run --image and
agents --json, each a real `boocode` process talking to the workspace's real daemon (one daemon
for the module, stopped at its end) and the fixture agent."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from boocode_mcp.daemon.wire import stop_daemon
from tests.cli_support import BOOCODE, boo, boo_json, configure, read_until, start_run, stop
from tests.conftest import git

PNG = b"\x89PNG\r\n\x1a\n" + b"from outside the workspace"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    repo = tmp_path_factory.mktemp("cli-operations") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    configure(repo)
    try:
        yield repo
    finally:
        stop_daemon(repo)


def latest_run(workspace: Path) -> dict[str, object]:
    runs: list[dict[str, object]] = boo_json(workspace, "ls", "--limit", "1")["subagents"]
    return runs[0]


def test_attach_follows_a_live_run_from_another_process_and_exits_with_its_outcome(workspace: Path) -> None:
    run = start_run(workspace, "slow 400 50", stderr=subprocess.PIPE)  # 20 s unless cancelled
    try:
        assert run.stderr is not None
        started = read_until(run.stderr.fileno(), lambda text: " on fixture " in text)
        prefix = started.split("subagent ", 1)[1].split()[0]
        attach = subprocess.Popen(
            [str(BOOCODE), "attach", prefix, "--workspace", str(workspace)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert attach.stdout is not None
            # The agent's text reaches attach's stdout as the run goes on.
            seen = read_until(attach.stdout.fileno(), lambda text: "chunk 2 " in text)
            assert seen.startswith("chunk 0 chunk 1 chunk 2 ")
            os.kill(run.pid, signal.SIGINT)  # Ctrl-C on the `boocode run` that started it: cancelled
            _, err = attach.communicate(timeout=60)
        finally:
            stop(attach)  # type: ignore[arg-type]
    finally:
        stop(run)
    assert attach.returncode == 1, err
    assert err.decode().strip().splitlines()[-1].startswith(f"boocode: run {prefix} cancelled")
    again = boo(workspace, "attach", prefix, check=False)
    assert again.returncode == 1 and again.stdout.startswith(seen)


def test_attach_to_a_finished_run_prints_its_text_and_its_outcome(workspace: Path) -> None:
    boo(workspace, "run", "slow 3 1", "--quiet")
    finished = latest_run(workspace)
    attached = boo(workspace, "attach", str(finished["subagent_id"]))
    assert attached.stdout == "chunk 0 chunk 1 chunk 2 \n"
    assert "completed" in attached.stderr


def test_send_is_a_follow_up_on_the_runs_chat(workspace: Path) -> None:
    first = json.loads(boo(workspace, "run", "remember me", "--json").stdout)
    follow = json.loads(boo(workspace, "send", first["subagent_id"][:8], "history", "--json").stdout)
    assert follow["chat_id"] == first["chat_id"] and follow["subagent_id"] != first["subagent_id"]
    assert follow["final_message"] == "history: 1 prompts: remember me"


def test_a_failed_run_is_in_the_inbox_until_retried(workspace: Path) -> None:
    failed = boo(workspace, "run", "crash 9", "--json", check=False)
    assert failed.returncode == 1
    run = json.loads(failed.stdout)
    inbox = boo_json(workspace, "inbox")["items"]
    [item] = [i for i in inbox if i["subagent_id"] == run["subagent_id"]]
    assert item["kind"] == "failed" and "exited with code 9" in item["reason"]
    assert run["subagent_id"][:8] in boo(workspace, "inbox").stdout

    retried = boo(workspace, "retry", run["subagent_id"][:8], "--json", check=False)
    assert retried.returncode == 1, "the retry fails the same way, and says so"
    again = json.loads(retried.stdout)
    assert again["retry_of"] == run["subagent_id"] and again["chat_id"] == run["chat_id"]
    ids = {(i["kind"], i["subagent_id"]) for i in boo_json(workspace, "inbox")["items"]}
    assert ("failed", run["subagent_id"]) not in ids and ("failed", again["subagent_id"]) in ids


def test_stats_as_json_and_as_a_table(workspace: Path) -> None:
    boo(workspace, "run", "usage", "--quiet")
    stats = boo_json(workspace, "stats")
    assert set(stats) == {"group_by", "since", "rows"} and stats["group_by"] == "agent"
    [row] = stats["rows"]
    runs = boo_json(workspace, "ls", "--limit", "500")["subagents"]
    assert (row["key"], row["runs"]) == ("fixture", len(runs))
    assert row["cache_read_tokens"] == 5 * sum(1 for r in runs if r["prompt"] == "usage")
    table = boo(workspace, "stats", "--by", "day", "--since", "1d").stdout
    assert "cache read" in table.splitlines()[0] and str(len(runs)) in table


def test_run_sends_an_image_from_anywhere(workspace: Path, tmp_path: Path) -> None:
    picture = tmp_path / "screenshot.png"
    picture.write_bytes(PNG)
    run = boo(workspace, "run", "images", "--image", str(picture), "--quiet")
    assert run.stdout.strip() == f"images: 1 image/png {hashlib.sha256(PNG).hexdigest()}"


def test_agents_json_has_the_list_agents_fields(workspace: Path) -> None:
    agents = boo_json(workspace, "agents")["agents"]
    fields = {"name", "installed", "version", "protocol", "images", "install"}
    assert all(fields <= set(a) for a in agents)
    fixture = next(a for a in agents if a["name"] == "fixture")
    assert fixture["installed"] and fixture["protocol"] == "acp" and fixture["images"] is True
