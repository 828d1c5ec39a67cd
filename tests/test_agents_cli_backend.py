"""CliBackend against a real scripted command-line program (tests/fixtures/fixture_cli.py)."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp.agents.backend_core import BackendState
from boocode_mcp.agents.cli_backend import CliBackend, build_argv
from boocode_mcp.agents.events import AgentEvent, ReasoningEvent, TextEvent, ToolCallEvent, ToolUpdateEvent
from boocode_mcp.agents.permissions import policy_handler
from boocode_mcp.agents.registry import AgentRegistry, ResolvedAgent
from boocode_mcp.config import AgentSpec, Config
from boocode_mcp.errors import AgentBusyError, AgentTurnError
from tests.conftest import FIXTURE_CLI, Recorder
from tests.real_agents import group_members, wait_group_gone

pytestmark = pytest.mark.anyio

ALLOW = policy_handler("auto")
TURN_S = 20


def cli_agent(*args: str, **spec: Any) -> ResolvedAgent:
    """The fixture program as a `protocol = "cli"` entry (by default the prompt is its last argument)."""
    if not spec.get("stdin"):
        args = (*args, "{prompt}")
    entry = AgentSpec(protocol="cli", command=sys.executable, args=(str(FIXTURE_CLI), *args), **spec)
    return AgentRegistry(Config(agents={"fx-cli": entry})).resolve("fx-cli")


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    wt.mkdir()
    return wt.resolve()


@asynccontextmanager
async def open_cli(
    tmp_path: Path, worktree: Path, agent: ResolvedAgent, **kw: Any
) -> AsyncIterator[CliBackend]:
    backend = CliBackend(chat_id="chat-1", agent=agent, cwd=worktree, log_dir=tmp_path / "logs", **kw)
    try:
        yield backend
    finally:
        with anyio.fail_after(15):
            await backend.close()


async def turn(backend: CliBackend, text: str) -> tuple[Any, Recorder]:
    rec = Recorder()
    with anyio.fail_after(TURN_S):
        result = await backend.prompt(text, rec, ALLOW)
    return result, rec


def reported(rec: Recorder) -> dict[str, Any]:
    """What the fixture's `args` prompt printed."""
    return dict(json.loads(rec.text))


def stderr_of(rec: Recorder) -> str:
    return "".join(e.text for e in rec.events if isinstance(e, ReasoningEvent))


# --- argv ------------------------------------------------------------------------------------


def test_build_argv_substitutes_inside_items_and_drops_items_without_a_value() -> None:
    values = {"prompt": "do it", "model": None, "worktree": "/w"}
    items = ["run", "--model={model}", "--dir={worktree}", "{prompt}", '{"json": 1}', "{worktree}:{prompt}"]
    assert build_argv("/bin/tool", items, values) == [
        "/bin/tool",
        "run",
        "--dir=/w",
        "do it",
        '{"json": 1}',
        "/w:do it",
    ]
    # An empty value counts as none; text that only looks like a placeholder stays.
    assert build_argv("t", ["-m", "{model}", "{other}"], {"model": ""}) == ["t", "-m", "{other}"]


# --- turns -----------------------------------------------------------------------------------


async def test_text_turn_runs_in_the_worktree_and_records_its_process_group(
    tmp_path: Path, worktree: Path
) -> None:
    states: list[BackendState] = []
    async with open_cli(tmp_path, worktree, cli_agent(), on_state=states.append) as backend:
        info = await backend.ensure_session()
        assert info.origin == "new" and info.pid is None and info.note is None
        result, rec = await turn(backend, "say hello-cli")
        assert result.stop_reason == "end_turn"
        assert rec.text == "hello-cli\n"
        _, rec = await turn(backend, "args")
        assert reported(rec)["cwd"] == str(worktree)
        assert backend.status == "idle" and not backend.busy and backend.pid is None
    running = [s for s in states if s.status == "active"]
    # The process group is on record while the turn runs (a restarted BooCode reaps it from there).
    assert running and all(s.pid is not None and s.pgid == s.pid and s.backend == "cli" for s in running)
    assert states[-1].status == "closed" and states[-1].pid is None


async def test_stdin_mode_and_placeholders(tmp_path: Path, worktree: Path) -> None:
    agent = cli_agent("--model={model}", "--cwd={worktree}", stdin=True)
    assert agent.spec.model_env == "BOOCODE_MODEL"  # what the runner hands the run's model through
    async with open_cli(tmp_path, worktree, agent, env={"BOOCODE_MODEL": "m-1"}) as backend:
        _, rec = await turn(backend, "args")
    got = reported(rec)
    assert got["stdin"] == "args"  # the prompt came on stdin and is not among the arguments
    assert got["argv"] == ["--model=m-1", f"--cwd={worktree}"] and got["model"] == "m-1"
    async with open_cli(tmp_path, worktree, agent) as backend:
        _, rec = await turn(backend, "args")
    # No model: the item with {model} is dropped whole.
    assert reported(rec)["argv"] == [f"--cwd={worktree}"]


async def test_follow_up_appends_resume_args(tmp_path: Path, worktree: Path) -> None:
    agent = cli_agent(resume=("--continue",))
    async with open_cli(tmp_path, worktree, agent) as backend:
        _, first = await turn(backend, "args")
        info = await backend.ensure_session()
        _, second = await turn(backend, "args")
    assert not reported(first)["continue"] and reported(second)["continue"]
    assert reported(second)["argv"][-2:] == ["args", "--continue"]
    assert info.origin == "reused" and info.note is None and info.load_supported
    # After a restart the pool hands the recorded session over: the first turn is a follow-up.
    async with open_cli(tmp_path, worktree, agent, resume_session_id=backend.acp_session_id) as again:
        _, rec = await turn(again, "args")
    assert reported(rec)["continue"]


async def test_follow_up_without_resume_args_says_it_has_no_context(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent()) as backend:
        await turn(backend, "say one")
        info = await backend.ensure_session()
        _, rec = await turn(backend, "args")
    assert info.origin == "new" and not info.load_supported
    assert info.note is not None and "without the chat's earlier context" in info.note
    assert backend.note == info.note
    assert not reported(rec)["continue"]


@pytest.mark.parametrize("fmt", ["opencode", "stream-json"])
async def test_jsonl_turn_maps_tool_calls_text_usage_and_session(
    tmp_path: Path, worktree: Path, fmt: str
) -> None:
    agent = cli_agent("--format", fmt, parser="jsonl")
    async with open_cli(tmp_path, worktree, agent) as backend:
        result, rec = await turn(backend, "write out/f.txt hello file")
        assert backend.acp_session_id == "fixture-session-1"
        state = backend.state()
    target = worktree / "out" / "f.txt"
    assert target.read_text() == "hello file\n"
    call = next(e for e in rec.events if isinstance(e, ToolCallEvent))
    update = next(e for e in rec.events if isinstance(e, ToolUpdateEvent))
    assert call.locations == (str(target),) and call.tool_kind == "edit"
    assert update.tool_call_id == call.tool_call_id and update.status == "completed"
    assert update.content_text == "wrote out/f.txt"
    assert [e.text for e in rec.events if isinstance(e, TextEvent)] == ["wrote out/f.txt"]
    assert (result.input_tokens, result.output_tokens) == (3, 2)
    assert (state.input_tokens, state.output_tokens) == (3, 2)
    assert result.cost == (0.5 if fmt == "opencode" else None)


async def test_non_zero_exit_fails_with_the_tail_of_stderr(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent()) as backend:
        with pytest.raises(AgentTurnError) as err:
            await turn(backend, "fail")
        msg = str(err.value)
        assert "'fx-cli' exited with code 3" in msg
        assert "something went wrong\nfixture-cli: giving up" in msg and str(backend.log_path) in msg
        # The next turn runs as usual.
        result, rec = await turn(backend, "say again")
    assert result.stop_reason == "end_turn" and rec.text == "again\n"
    assert "fixture-cli: giving up" in backend.log_path.read_text()


async def test_an_error_only_in_the_output_stream_fails_the_turn(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent("--format", "opencode", parser="jsonl")) as backend:
        with pytest.raises(AgentTurnError, match=r"exited with code 1: StubError: stub stream failure"):
            await turn(backend, "stream-error")


async def test_busy_backend_refuses_a_second_prompt(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent()) as backend:
        rec = Recorder()
        async with anyio.create_task_group() as tg:
            tg.start_soon(backend.prompt, "slow", rec, ALLOW)
            with anyio.fail_after(TURN_S):
                await rec.first_text.wait()
            with pytest.raises(AgentBusyError):
                await backend.prompt("say no", Recorder(), ALLOW)
            await backend.cancel()


# --- cancel and close -------------------------------------------------------------------------


class TickRecorder(Recorder):
    """A Recorder that also signals once the program has started ticking."""

    def __init__(self) -> None:
        super().__init__()
        self.ticking = anyio.Event()

    def __call__(self, event: AgentEvent) -> None:
        super().__call__(event)
        if isinstance(event, TextEvent) and "tick" in event.text:
            self.ticking.set()


@asynccontextmanager
async def slow_turn(backend: CliBackend, prompt: str) -> AsyncIterator[tuple[Recorder, int, list[Any]]]:
    """A ticking turn running in a task, once it has printed; yields (recorder, pgid, results)."""
    rec = TickRecorder()
    results: list[Any] = []

    async def run() -> None:
        try:
            results.append(await backend.prompt(prompt, rec, ALLOW))
        except BaseException as e:
            results.append(e)
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(TURN_S):
            await rec.ticking.wait()
        pgid = backend.pid
        assert pgid is not None
        yield rec, pgid, results


def child_pid(rec: Recorder) -> int:
    return int(rec.text.split("child ", 1)[1].split()[0])


async def test_cancel_escalates_sigint_sigterm_sigkill_and_leaves_no_process(
    tmp_path: Path, worktree: Path
) -> None:
    agent = cli_agent(env={"FIXTURE_CLI_IGNORE": "INT,TERM"})
    async with open_cli(tmp_path, worktree, agent, signal_grace_s=0.3) as backend:
        async with slow_turn(backend, "spawn") as (rec, pgid, results):
            child = child_pid(rec)
            assert set(group_members(pgid)) >= {pgid, child}
            with anyio.fail_after(TURN_S):
                await backend.cancel()
        assert results[0].stop_reason == "cancelled"
        await wait_group_gone(pgid)
        # It ignored both polite signals, in that order, and was killed.
        err = stderr_of(rec)
        assert err.index("got SIGINT") < err.index("got SIGTERM")
        assert f"killed by {signal.SIGKILL.name}" in backend.log_path.read_text()
        assert backend.status == "idle" and not backend.busy


async def test_cancel_of_a_tool_that_stops_on_sigint(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent()) as backend:
        async with slow_turn(backend, "spawn") as (rec, pgid, results):
            child = child_pid(rec)
            await backend.cancel()
        assert results[0].stop_reason == "cancelled"
        await wait_group_gone(pgid)
        assert child not in group_members(pgid)
        assert "interrupted" in stderr_of(rec) and "got SIGTERM" not in stderr_of(rec)
        assert "exited with code 130" in backend.log_path.read_text()
        # A cancelled turn leaves the backend ready for the next one.
        result, rec2 = await turn(backend, "say next")
    assert result.stop_reason == "end_turn" and rec2.text == "next\n"


async def test_close_during_a_turn_ends_its_group(tmp_path: Path, worktree: Path) -> None:
    agent = cli_agent(env={"FIXTURE_CLI_IGNORE": "INT,TERM"})
    backend = CliBackend(
        chat_id="c", agent=agent, cwd=worktree, log_dir=tmp_path / "logs", signal_grace_s=0.3
    )
    async with slow_turn(backend, "spawn") as (_, pgid, results):
        with anyio.fail_after(TURN_S):
            await backend.close()
    assert results[0].stop_reason == "cancelled"
    await wait_group_gone(pgid)
    assert backend.status == "closed"


async def test_a_caller_that_gives_up_on_the_turn_ends_its_group(tmp_path: Path, worktree: Path) -> None:
    async with open_cli(tmp_path, worktree, cli_agent(env={"FIXTURE_CLI_IGNORE": "INT"})) as backend:
        rec = Recorder()
        with anyio.move_on_after(TURN_S) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(backend.prompt, "spawn", rec, ALLOW)
                await rec.first_text.wait()
                pgid = backend.pid
                # The caller is cancelled (a shutdown, a run abandoned), not the backend.
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught and pgid is not None
        await wait_group_gone(pgid)
        assert not backend.busy
