"""WarmAcpBackend against the real fixture agent over real pipes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp import procs
from boocode_mcp.agents.acp_backend import BackendState, WarmAcpBackend
from boocode_mcp.agents.events import PermissionRequestEvent
from boocode_mcp.agents.permissions import choose_option, policy_handler
from boocode_mcp.agents.registry import AgentRegistry, ResolvedAgent
from boocode_mcp.config import AgentSpec, Config
from boocode_mcp.errors import AgentBusyError, AgentCrashedError
from tests.conftest import FIXTURE_AGENT, Recorder

pytestmark = pytest.mark.anyio

ALLOW = policy_handler("auto")


def fixture_agent(**env: str) -> ResolvedAgent:
    spec = AgentSpec(command=sys.executable, args=(str(FIXTURE_AGENT),), env=env)
    return AgentRegistry(Config(agents={"fx": spec})).resolve("fx")


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    wt.mkdir()
    return wt


@asynccontextmanager
async def open_backend(
    tmp_path: Path, worktree: Path, agent: ResolvedAgent | None = None, **kw: Any
) -> AsyncIterator[WarmAcpBackend]:
    backend = WarmAcpBackend(
        chat_id="chat-1", agent=agent or fixture_agent(), cwd=worktree, log_dir=tmp_path / "logs", **kw
    )
    try:
        yield backend
    finally:
        pid = backend.pid
        with anyio.fail_after(15):
            await backend.close()
        if pid is not None:
            assert not procs.group_alive(pid), "agent process group survived close()"


async def turn(backend: WarmAcpBackend, text: str, permissions: Any = ALLOW) -> tuple[Any, Recorder]:
    rec = Recorder()
    with anyio.fail_after(20):
        result = await backend.prompt(text, rec, permissions)
    return result, rec


async def test_two_prompts_reuse_one_process(tmp_path: Path, worktree: Path) -> None:
    states: list[BackendState] = []
    async with open_backend(tmp_path, worktree, on_state=states.append) as backend:
        with anyio.fail_after(20):
            info = await backend.ensure_session()
        assert info.origin == "new" and info.load_supported
        assert info.agent_name == "fixture-agent" and info.agent_version == "1.2.3"
        r1, rec1 = await turn(backend, "pid")
        r2, rec2 = await turn(backend, "hello there")
        assert r1.stop_reason == r2.stop_reason == "end_turn"
        assert rec1.text == str(info.pid) == str(backend.pid)
        assert rec2.text == "echo: hello there"
        again = await backend.ensure_session()
        assert again.origin == "reused" and again.pid == info.pid
        assert again.acp_session_id == info.acp_session_id
        assert backend.status == "idle" and not backend.busy
    assert [s.status for s in states][:4] == ["idle", "active", "idle", "active"]
    assert states[-1].status == "closed" and states[-1].pid is None


async def test_events_of_every_kind_in_order(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        _, rec = await turn(backend, "all")
        assert rec.kinds == ["reasoning", "plan", "text", "text", "tool_call", "tool_update"]
        _, rec = await turn(backend, "tools")
        call, update = rec.events[0], rec.events[1]
        assert call.kind == "tool_call" and call.locations == (str(worktree / "a.py"), str(worktree / "b.py"))
        assert update.kind == "tool_update" and update.content_text == "read 2 files"
        _, rec = await turn(backend, "commands")
        assert rec.events[0].kind == "available_commands" and rec.events[0].commands == ("alpha", "beta")
        _, rec = await turn(backend, "mode plan")
        assert rec.events[0].kind == "mode_change" and rec.events[0].mode_id == "plan"


async def test_usage_is_reported_and_accumulated(tmp_path: Path, worktree: Path) -> None:
    states: list[BackendState] = []
    async with open_backend(tmp_path, worktree, on_state=states.append) as backend:
        result, rec = await turn(backend, "usage")
        assert rec.kinds[0] == "usage"
        assert (result.input_tokens, result.output_tokens, result.cost) == (11, 7, 0.25)
        result2, _ = await turn(backend, "usage")
        # The agent reports the same cumulative session cost again: no new cost this turn.
        assert result2.cost is None
        final = backend.state()
        assert (final.input_tokens, final.output_tokens, final.cost) == (22, 14, 0.25)


async def test_cancel_mid_stream_then_new_prompt_on_same_process(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        await turn(backend, "hello")
        pid = backend.pid
        rec = Recorder()
        results: list[Any] = []

        async def run() -> None:
            results.append(await backend.prompt("slow 1000 20", rec, ALLOW))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await rec.first_text.wait()
                assert backend.busy
                await backend.cancel()
                assert not backend.busy
        assert results[0].stop_reason == "cancelled"
        assert 0 < rec.text.count("chunk") < 1000
        r, rec2 = await turn(backend, "pid")
        assert r.stop_reason == "end_turn" and rec2.text == str(pid) == str(backend.pid)


async def test_cancelled_caller_sends_session_cancel_and_session_stays_usable(
    tmp_path: Path, worktree: Path
) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        await turn(backend, "hello")
        pid = backend.pid
        rec = Recorder()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await backend.prompt("slow 1000 20", rec, ALLOW)

                tg.start_soon(run)
                await rec.first_text.wait()
                tg.cancel_scope.cancel()
        assert not backend.busy
        chunks = rec.text.count("chunk")
        _, rec2 = await turn(backend, "pid")
        assert rec2.text == str(pid)
        # The slow turn really stopped: no further chunks reached the old sink.
        assert rec.text.count("chunk") == chunks < 1000


async def test_second_prompt_while_busy_is_refused(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        rec = Recorder()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(backend.prompt, "slow 1000 20", rec, ALLOW)
                await rec.first_text.wait()
                with pytest.raises(AgentBusyError, match="already running a prompt"):
                    await backend.prompt("hello", Recorder(), ALLOW)
                await backend.cancel()


async def crash_mid_turn(
    backend: WarmAcpBackend, prompt: str, act: Callable[[], Awaitable[object] | None]
) -> AgentCrashedError:
    """The AgentCrashedError of a turn on `prompt` during which `act` ran (once text streamed)."""
    rec = Recorder()
    errors: list[AgentCrashedError] = []

    async def run() -> None:
        try:
            await backend.prompt(prompt, rec, ALLOW)
        except AgentCrashedError as e:
            errors.append(e)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await rec.first_text.wait()
            acted = act()
            if acted is not None:
                await acted
    assert len(errors) == 1, errors
    return errors[0]


async def test_kill_9_mid_prompt_is_a_crash_and_next_prompt_respawns(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        await turn(backend, "hello")
        old_pid = backend.pid
        assert old_pid is not None
        msg = str(await crash_mid_turn(backend, "slow 1000 20", lambda: os.kill(old_pid, signal.SIGKILL)))
        assert f"pid {old_pid}" in msg and "SIGKILL" in msg and str(backend.log_path) in msg
        assert "next prompt restarts it" in msg
        assert backend.status == "crashed" and not backend.busy
        assert await backend.health() is False
        r, rec2 = await turn(backend, "pid")
        assert r.stop_reason == "end_turn"
        assert rec2.text == str(backend.pid) and backend.pid != old_pid
        assert str(backend.status) == "idle"
        assert not procs.group_alive(old_pid)


async def test_crash_on_command_reports_exit_code(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        with pytest.raises(AgentCrashedError, match="exited with code 7 during the turn"):
            await turn(backend, "crash 7")
        assert backend.status == "crashed"


async def test_agent_ignoring_cancel_is_killed_after_the_bound(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree, cancel_timeout_s=0.5) as backend:
        await turn(backend, "hello")
        pid = backend.pid
        assert pid is not None
        assert "did not answer session/cancel" in str(await crash_mid_turn(backend, "hang", backend.cancel))
        assert backend.status == "crashed"
        assert not procs.group_alive(pid)
        _, rec2 = await turn(backend, "pid")
        assert rec2.text == str(backend.pid) != str(pid)


async def test_fs_is_confined_to_the_worktree(tmp_path: Path, worktree: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (worktree / "link.txt").symlink_to(secret)
    (worktree / "linkdir").symlink_to(tmp_path)
    async with open_backend(tmp_path, worktree) as backend:
        _, rec = await turn(backend, "read ../secret.txt")
        assert rec.text.startswith("error -32602") and "secret.txt" in rec.text and "outside" in rec.text
        _, rec = await turn(backend, "read link.txt")
        assert rec.text.startswith("error -32602") and "link.txt" in rec.text
        _, rec = await turn(backend, f"read {secret}")
        assert rec.text.startswith("error -32602")
        _, rec = await turn(backend, "write linkdir/escaped.txt nope")
        assert rec.text.startswith("error -32602") and rec.kinds[-2:] == ["tool_update", "text"]
        assert not (tmp_path / "escaped.txt").exists()
        _, rec = await turn(backend, "read missing.txt")
        assert rec.text.startswith("error -32002")
        _, rec = await turn(backend, "write sub/dir/new.txt hello world")
        assert (worktree / "sub" / "dir" / "new.txt").read_text() == "hello world"
        _, rec = await turn(backend, "read sub/dir/new.txt")
        assert rec.text == "content: hello world"
        (worktree / "lines.txt").write_text("l1\nl2\nl3\nl4\n")
        _, rec = await turn(backend, "read-lines lines.txt 2 2")
        assert rec.text == "content: l2\nl3\n"
    assert secret.read_text() == "top secret"


async def test_terminal_round_trip_and_output_limit(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        _, rec = await turn(backend, "terminal sh -c 'echo out; echo err >&2; exit 4'")
        assert rec.text.startswith("[term exit=4 signal=None truncated=False]")
        assert "out\n" in rec.text and "err\n" in rec.text
        _, rec = await turn(backend, "terminal-limit 10 sh -c 'printf 0123456789abcdefghij'")
        assert rec.text == "[term exit=0 signal=None truncated=True] abcdefghij"
        _, rec = await turn(backend, "terminal boocode-no-such-command-x")
        assert rec.text.startswith("error -32602") and "boocode-no-such-command-x" in rec.text


async def test_permission_chosen_by_kind_with_odd_ids(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        seen: list[PermissionRequestEvent] = []
        rec = Recorder()

        async def allow(event: PermissionRequestEvent) -> str | None:
            # The event reached the sink before the decision was asked for.
            assert rec.events and rec.events[-1] is event
            seen.append(event)
            return choose_option(event.options, allow=True)

        with anyio.fail_after(20):
            await backend.prompt("permission ok.txt", rec, allow)
        assert rec.text == "allowed yes please!"
        assert (worktree / "ok.txt").read_text() == "permitted\n"
        assert {o.option_id for o in seen[0].options} == {"~never//x", "proceed_always-é", "0", "yes please!"}
        assert seen[0].title == "Write ok.txt"

        async def deny(event: PermissionRequestEvent) -> str | None:
            return choose_option(event.options, allow=False)

        _, rec = await turn(backend, "permission no.txt", deny)
        assert rec.text == "denied 0" and not (worktree / "no.txt").exists()

        async def none(event: PermissionRequestEvent) -> str | None:
            return None

        _, rec = await turn(backend, "permission none.txt", none)
        assert rec.text == "denied"

        async def bogus(event: PermissionRequestEvent) -> str | None:
            return "not-an-option"

        _, rec = await turn(backend, "permission bogus.txt", bogus)
        assert rec.text == "denied" and not (worktree / "bogus.txt").exists()


async def test_cancel_answers_a_pending_permission_cancelled(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        asked = anyio.Event()
        handler_cancelled: list[bool] = []

        async def never(event: PermissionRequestEvent) -> str | None:
            asked.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                handler_cancelled.append(True)
                raise
            return None

        rec = Recorder()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(backend.prompt, "permission p.txt", rec, never)
                await asked.wait()
                await backend.cancel()
        assert handler_cancelled == [True]
        assert rec.text == "denied"
        assert not (worktree / "p.txt").exists()


async def test_stderr_flood_does_not_deadlock(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        r, rec = await turn(backend, f"stderr {1 << 20}")
        assert rec.text == "stderr done" and r.stop_reason == "end_turn"
        assert backend.log_path.stat().st_size >= 1 << 20


async def test_session_load_restores_context_without_replaying_output(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as first:
        await turn(first, "remember apple")
        await turn(first, "remember pear")
        sid = first.acp_session_id
        old_pid = first.pid
    async with open_backend(tmp_path, worktree, resume_session_id=sid) as second:
        with anyio.fail_after(20):
            info = await second.ensure_session()
        assert info.origin == "loaded" and info.acp_session_id == sid and info.pid != old_pid
        _, rec = await turn(second, "history")
        # Only this turn's output: the replayed history was not reported as new events.
        assert rec.kinds == ["text"]
        assert rec.text == "history: 2 prompts: remember apple | remember pear"
        assert second.note is None


async def test_agent_without_load_starts_fresh_after_restart(tmp_path: Path, worktree: Path) -> None:
    agent = fixture_agent(FIXTURE_NO_LOAD="1")
    async with open_backend(tmp_path, worktree, agent=agent) as first:
        await turn(first, "remember apple")
        sid = first.acp_session_id
    async with open_backend(tmp_path, worktree, agent=agent, resume_session_id=sid) as second:
        with anyio.fail_after(20):
            info = await second.ensure_session()
        assert info.origin == "fresh_after_restart" and not info.load_supported
        assert info.acp_session_id != sid
        assert second.note is not None and "cannot session/load" in second.note
        _, rec = await turn(second, "history")
        assert rec.text == "history: 0 prompts: "


async def test_failed_load_falls_back_to_fresh_session(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree, resume_session_id="fx-does-not-exist") as backend:
        with anyio.fail_after(20):
            info = await backend.ensure_session()
        assert info.origin == "fresh_after_restart" and info.acp_session_id != "fx-does-not-exist"
        assert backend.note is not None and "fx-does-not-exist" in backend.note


async def test_missing_program_at_start_names_it(tmp_path: Path, worktree: Path) -> None:
    agent = ResolvedAgent(
        name="gone",
        spec=AgentSpec(command="/nonexistent/agent"),
        program="/nonexistent/agent",
        argv=("/nonexistent/agent",),
    )
    async with open_backend(tmp_path, worktree, agent=agent) as backend:
        with pytest.raises(AgentCrashedError, match="could not be started"):
            await backend.ensure_session()


async def test_agent_that_dies_at_start_points_to_its_log(tmp_path: Path, worktree: Path) -> None:
    agent = ResolvedAgent(
        name="dies",
        spec=AgentSpec(command="sh"),
        program="/bin/sh",
        argv=("/bin/sh", "-c", "echo boom-at-start >&2; exit 9"),
    )
    async with open_backend(tmp_path, worktree, agent=agent) as backend:
        with (
            anyio.fail_after(20),
            pytest.raises(AgentCrashedError, match="exited with code 9 while starting"),
        ):
            await backend.ensure_session()
        assert "boom-at-start" in backend.log_path.read_text()
        assert backend.status == "crashed"


async def test_close_is_idempotent_and_refuses_new_work(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        await turn(backend, "hello")
        pid = backend.pid
        assert pid is not None
        await backend.close()
        await backend.close()
        assert backend.status == "closed" and not procs.group_alive(pid)
        with pytest.raises(AgentCrashedError, match="was closed"):
            await backend.prompt("hello", Recorder(), ALLOW)


async def test_close_during_a_turn_ends_it(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        rec = Recorder()
        outcome: list[Any] = []

        async def run() -> None:
            try:
                outcome.append(await backend.prompt("slow 1000 20", rec, ALLOW))
            except AgentCrashedError as e:
                outcome.append(e)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await rec.first_text.wait()
                await backend.close()
        # The fixture honours the cancel that close() sends first.
        assert outcome[0].stop_reason == "cancelled"
        assert backend.status == "closed"


async def test_cancel_while_the_agent_is_still_starting_skips_the_turn(
    tmp_path: Path, worktree: Path
) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        results: list[Any] = []
        started = anyio.Event()

        async def run() -> None:
            started.set()
            results.append(await backend.prompt("remember this", Recorder(), ALLOW))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await started.wait()
                assert backend.busy and backend.pid is None
                await backend.cancel()
        assert results[0].stop_reason == "cancelled"
        # The prompt never reached the agent.
        _, rec = await turn(backend, "history")
        assert rec.text == "history: 0 prompts: "


async def test_crash_takes_the_agents_terminals_with_it(tmp_path: Path, worktree: Path) -> None:
    async with open_backend(tmp_path, worktree) as backend:
        _, rec = await turn(backend, "terminal-bg sleep 60")
        assert rec.text.startswith("terminal term-")
        (pgid,) = backend.terminal_pgids()
        assert procs.group_alive(pgid)
        with pytest.raises(AgentCrashedError):
            await turn(backend, "crash")
        assert not procs.group_alive(pgid) and backend.terminal_pgids() == []


async def test_close_while_the_agent_is_starting_leaves_no_process(tmp_path: Path, worktree: Path) -> None:
    backend = WarmAcpBackend(chat_id="c", agent=fixture_agent(), cwd=worktree, log_dir=tmp_path / "logs")
    errors: list[BaseException] = []
    started = anyio.Event()

    async def run() -> None:
        started.set()
        try:
            await backend.prompt("hello", Recorder(), ALLOW)
        except AgentCrashedError as e:
            errors.append(e)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await started.wait()
            await backend.close()
    assert len(errors) == 1 and "was closed" in str(errors[0])
    assert backend.status == "closed" and backend.pid is None
