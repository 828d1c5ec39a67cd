"""Answering permission requests from the command line: `boocode respond` and `boocode run`'s prompt."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import cli_support as cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def workspace(git_repo: Path) -> Path:
    return cli.configure(git_repo, policy="ask")


@contextlib.contextmanager
def run_on_terminal(
    workspace: Path, prompt: str, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`boocode run` with a pseudo-terminal as its stdin and stderr: (the run, the terminal's
    controlling side to read and type on). The run is killed and the terminal closed after."""
    controller, terminal = os.openpty()
    try:
        run = cli.start_run(workspace, prompt, *extra, stdin=terminal, stderr=terminal)
        os.close(terminal)  # the run holds its own copy; EOF on the controller once it exits
        terminal = -1
        try:
            yield run, controller
        finally:
            cli.stop(run)
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)


def patch_files(workspace: Path, subagent_id: str) -> list[str]:
    shown = cli.boo_json(workspace, "show", subagent_id)
    assert shown["status"] == "completed", shown
    patch = cli.boo_json(workspace, "show", shown["patch_id"])
    return [f["path"] for f in patch["files"]]


def test_run_prints_the_respond_command_and_respond_answers_it(workspace: Path) -> None:
    run = cli.start_run(workspace, "permission x.txt", stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert run.stderr is not None
        seen = cli.read_until(run.stderr.fileno(), lambda t: "boocode respond" in t and t.endswith("\n"))
        [hint] = [line for line in seen.splitlines() if "boocode respond" in line]
        [sub] = cli.boo_json(workspace, "ls")["subagents"]
        pending = cli.boo_json(workspace, "show", sub["subagent_id"])["pending_permission"]
        assert sub["subagent_id"] in hint and pending["request_id"] in hint and str(workspace) in hint
        options = pending["options"]
        sub_id, request_id = sub["subagent_id"][:8], pending["request_id"][:8]  # prefixes are enough

        bad = cli.one_line_error(cli.boo(workspace, "respond", sub_id, request_id, "nope", check=False))
        assert "nope" in bad and all(o["option_id"] in bad for o in options)
        # The run lives in the workspace's daemon: an engine of another process cannot answer it.
        elsewhere = cli.boo(workspace, "respond", sub_id, request_id, "0", "--no-daemon", check=False)
        assert "another BooCode process" in cli.one_line_error(elsewhere)

        allow = next(o for o in options if o["kind"] == "allow_once")
        answered = cli.boo_json(workspace, "respond", sub_id, request_id, allow["option_id"])
        assert answered["subagent_id"] == sub["subagent_id"] and set(answered) == {"subagent_id", "status"}
        out, _ = run.communicate(timeout=cli.TIMEOUT)
        assert run.returncode == 0 and out.decode().strip() == f"allowed {allow['option_id']}"
    finally:
        cli.stop(run)
    assert patch_files(workspace, sub["subagent_id"]) == ["x.txt"]
    late = cli.boo(workspace, "respond", sub_id, request_id, allow["option_id"], check=False)
    assert "finished" in cli.one_line_error(late) or "no pending" in cli.one_line_error(late)


@pytest.mark.parametrize("mode", [[], ["--no-daemon"]], ids=["daemon", "in-process"])
def test_run_on_a_terminal_asks_and_answers_by_number(workspace: Path, mode: list[str]) -> None:
    with run_on_terminal(workspace, "permission y.txt", *mode) as (run, controller):
        seen = ANSI.sub("", cli.read_until(controller, lambda t: "(Enter leaves it" in t))
        assert "boocode respond" not in seen  # asked, not told how to answer elsewhere
        number = re.search(r"(\d+)\. Once \(allow_once\)", seen)
        assert number is not None, seen
        assert "Write y.txt" in seen
        os.write(controller, number[1].encode() + b"\n")
        cli.read_until(controller, lambda t: "answered" in t)
        out, _ = run.communicate(timeout=cli.TIMEOUT)
        assert run.returncode == 0 and out.decode().startswith("allowed ")
    [sub] = cli.boo_json(workspace, "ls")["subagents"]
    assert patch_files(workspace, sub["subagent_id"]) == ["y.txt"]


def test_in_process_run_says_only_it_can_answer(workspace: Path) -> None:
    run = cli.start_run(
        workspace, "permission z.txt", "--no-daemon", stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert run.stderr is not None
        seen = cli.read_until(run.stderr.fileno(), lambda t: "asks permission" in t and t.endswith("\n"))
        [hint] = [line for line in seen.splitlines() if "asks permission" in line]
        assert "--no-daemon" in hint and "yes please!" in hint
        [sub] = cli.boo_json(workspace, "ls")["subagents"]
        refused = cli.boo(workspace, "respond", sub["subagent_id"][:8], "r", "0", check=False)
        assert f"pid {run.pid}" in cli.one_line_error(refused)
        os.kill(run.pid, signal.SIGINT)  # Ctrl-C cancels the waiting run
        assert run.wait(timeout=cli.TIMEOUT) != 0
    finally:
        cli.stop(run)
    assert cli.boo_json(workspace, "show", sub["subagent_id"])["status"] == "cancelled"


def test_empty_answer_leaves_the_request_waiting(workspace: Path) -> None:
    with run_on_terminal(workspace, "permission w.txt") as (run, controller):
        cli.read_until(controller, lambda t: "(Enter leaves it" in t)
        os.write(controller, b"9\n")  # not an option: asked again
        cli.read_until(controller, lambda t: "not a number from 1 to 4" in t and t.endswith("deadline): "))
        os.write(controller, b"\n")
        cli.read_until(controller, lambda t: "left unanswered" in t)
        [sub] = cli.boo_json(workspace, "ls")["subagents"]
        shown = cli.boo_json(workspace, "show", sub["subagent_id"])
        assert shown["status"] == "awaiting_permission" and shown["pending_permission"]
        os.kill(run.pid, signal.SIGINT)
        assert run.wait(timeout=cli.TIMEOUT) != 0


def test_prompt_gives_up_at_the_request_deadline(workspace: Path) -> None:
    cli.configure(workspace, policy="ask", timeout_s=2)
    with run_on_terminal(workspace, "permission v.txt") as (run, controller):
        cli.read_until(controller, lambda t: "(Enter leaves it" in t)
        # Nobody answers: the request fails closed and the prompt stops waiting for a line.
        cli.read_until(controller, lambda t: "not answered in time" in t)
        out, _ = run.communicate(timeout=cli.TIMEOUT)
        assert not out.decode().startswith("allowed")
    assert not (workspace / "v.txt").exists()


def test_help_documents_respond() -> None:
    top = subprocess.run([str(cli.BOOCODE), "--help"], capture_output=True, text=True, check=True).stdout
    assert "respond" in top
    out = subprocess.run(
        [str(cli.BOOCODE), "respond", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("SUBAGENT_ID", "REQUEST_ID", "OPTION_ID", "--workspace", "--session", "--json"):
        assert word in out
    run = subprocess.run(
        [str(cli.BOOCODE), "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "boocode respond" in run and "permission" in run
