"""CliBackend: an agent without ACP, run as one process per turn in the chat's worktree.

A `protocol = "cli"` entry is a command template: its argv items get `{prompt}`, `{model}` and
`{worktree}` substituted (an item whose placeholder has no value is dropped), or the prompt goes
on stdin. Each turn starts the command as the leader of its own process group, with the explicit
environment of its launch spec plus the allow-list; the group's id is reported through `on_state`
(and so recorded like an ACP agent's), so start-up recovery can reap a turn a killed BooCode left
running. stdout is parsed into AgentEvents (agents/cli_streams.py); stderr lines go to the agent's
log and into the run's events as progress (reasoning), and its tail is kept for the error of a
failed turn. Cancel signals the group SIGINT, then SIGTERM, then SIGKILL, each after a bounded
wait. Nothing is asked of BooCode's permission policy: the tool's own flags decide what it may do.

Between turns there is no process. What carries a chat's context from one turn to the next is the
tool's own session store: a follow-up turn appends the entry's `resume` items (e.g. `--continue`);
an entry without them starts every follow-up afresh, and the turn's session note says so.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import shlex
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Unpack

import anyio

from boocode_mcp import procs
from boocode_mcp.agents.backend import EventSink, PermissionHandler, PromptImage, SessionInfo, TurnResult
from boocode_mcp.agents.backend_core import BackendArgs, BackendCore, describe_exit
from boocode_mcp.agents.cli_streams import Parsed, StdoutParser, parser_for
from boocode_mcp.agents.events import AgentEvent, ReasoningEvent, UsageEvent
from boocode_mcp.config import CLI_PLACEHOLDERS, PLACEHOLDER_RE
from boocode_mcp.errors import AgentCrashedError, AgentTurnError

log = logging.getLogger(__name__)

# A command line carries the prompt's text only; dropping its images would run another prompt.
CLI_NO_IMAGES = (
    "agent {agent!r} is a command-line agent and cannot take images; send the prompt without images "
    "or use an ACP agent that takes them (list_agents shows which)"
)

# How long each signal of a cancel (SIGINT, then SIGTERM) is given before the next one.
SIGNAL_GRACE_S = 3.0
# How long closing (as opposed to cancelling) gives each signal.
CLOSE_GRACE_S = 1.0
READ_CHUNK = 1 << 16
# How long the pipes may stay open after the tool's group was killed (only a process that left the
# group can hold them) before the turn stops reading them.
DRAIN_S = 5.0
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000
NOTE_NO_RESUME = (
    "agent {agent!r} runs one process per turn and has no resume arguments: this follow-up started "
    "without the chat's earlier context"
)


def build_argv(
    program: str,
    items: Sequence[str],
    values: Mapping[str, str | None],
) -> list[str]:
    """`program` and `items` with each `{placeholder}` replaced by its value; an item whose
    placeholder has no value (None or empty) is dropped whole, so `--model={model}` vanishes
    when there is no model."""
    argv = [program]
    for item in items:
        names = [n for n in PLACEHOLDER_RE.findall(item) if n in CLI_PLACEHOLDERS]
        if any(not values.get(n) for n in names):
            continue
        argv.append(PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1)) or m.group(0), item))
    return argv


class _Usage:
    """A turn's usage folded from its usage events (a cumulative report replaces, others add)."""

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cost: float | None = None

    def add(self, event: UsageEvent) -> None:
        for name in ("input_tokens", "output_tokens", "cost"):
            value = getattr(event, name)
            if value is None:
                continue
            current = getattr(self, name)
            setattr(self, name, value if event.cumulative or current is None else current + value)


class CliBackend(BackendCore):
    """An AgentBackend over a command-line agent; see the module docstring."""

    kind = "cli"

    def __init__(self, *, signal_grace_s: float = SIGNAL_GRACE_S, **args: Unpack[BackendArgs]) -> None:
        super().__init__(args)
        self._grace = signal_grace_s
        # The tool's own session id once a turn has run (a marker when its output names none):
        # a turn with one is a follow-up. Restored from the agent_sessions row after a restart.
        self._session_id = args.get("resume_session_id")
        self._load_supported = bool(self._agent.spec.resume)
        self._proc: asyncio.subprocess.Process | None = None
        # Set to end the running turn's process group; the turn's own task does the signalling.
        self._stop = anyio.Event()
        self._stop_grace = signal_grace_s

    # --- AgentBackend properties -------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The running turn's process (the leader of its group), if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def acp_session_id(self) -> str | None:
        return self._session_id

    def _recorded_session_id(self) -> str | None:
        return self._session_id

    # --- sessions ----------------------------------------------------------------------------

    async def ensure_session(self) -> SessionInfo:
        """Nothing to start: says whether the next turn continues the chat's context."""
        if self._closed:
            raise self._closed_error()
        follow_up = self._session_id is not None
        resumes = bool(self._agent.spec.resume)
        self._note = NOTE_NO_RESUME.format(agent=self._agent.name) if follow_up and not resumes else None
        return SessionInfo(
            acp_session_id=self._session_id or "",
            pid=None,
            pgid=None,
            origin="reused" if follow_up and resumes else "new",
            load_supported=resumes,
            note=self._note,
        )

    # --- turns -------------------------------------------------------------------------------

    def _turn_ends(self) -> None:
        self._proc = None

    def _argv(self, text: str | None) -> list[str]:
        spec = self._agent.spec
        items = [*spec.args, *(spec.resume if self._session_id is not None else ())]
        model = self._env.get(spec.model_env) if spec.model_env else None
        values = {"prompt": None if spec.stdin else text, "model": model, "worktree": str(self._cwd)}
        return build_argv(self._agent.program, items, values)

    async def _run_turn(
        self, text: str, sink: EventSink, permissions: PermissionHandler, images: Sequence[PromptImage]
    ) -> TurnResult:
        """Run the command once; `permissions` is unused (the tool's own flags decide)."""
        if images:
            raise AgentTurnError(CLI_NO_IMAGES.format(agent=self._agent.name))
        self._stop = anyio.Event()
        self._stop_grace = self._grace
        if self._cancel_requested or self._closed:
            return TurnResult(stop_reason="cancelled")
        spec = self._agent.spec
        argv = self._argv(text)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as logf:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            # The prompt is in the run's record already; the log shows where it went.
            shown = shlex.join(self._argv("{prompt}"))
            logf.write(f"--- {stamp} turn: {shown} (cwd {self._cwd})\n".encode())
            logf.flush()
            try:
                proc = await procs.spawn_in_group(
                    argv,
                    cwd=self._cwd,
                    env=procs.child_env({**spec.env, **self._env}, agent=True),
                    stdin=asyncio.subprocess.PIPE if spec.stdin else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as e:
                raise AgentCrashedError(
                    f"agent {self._agent.name!r} could not be started ({self._agent.program}: "
                    f"{e.strerror or e}); check `boocode agents`"
                ) from e
            self._proc = proc
            self._session_id = self._session_id or f"cli-{self._chat_id}"
            self._status = "active"
            self._last_active = time.time()
            # The pgid is on record (agent_sessions) before the tool does anything.
            self._changed()
            turn = _TurnIO(parser_for(spec.parser), sink, logf, self.touch)
            try:
                await turn.run(proc, text.encode() if spec.stdin else None, self._stop, self._end_group)
            except BaseException:
                # The caller gave up on the turn (shutdown, an abandoned cancel): end the tool now.
                with anyio.CancelScope(shield=True):
                    await _end_group(proc, CLOSE_GRACE_S)
                raise
            code = proc.returncode
            logf.write(f"--- exit: {describe_exit(code)}\n".encode())
        if turn.session_id is not None:
            self._session_id = turn.session_id
        usage = turn.usage
        self._input_tokens += usage.input_tokens or 0
        self._output_tokens += usage.output_tokens or 0
        self._cost += usage.cost or 0.0
        cancelled = self._cancel_requested or self._closed
        if not cancelled and (code != 0 or turn.error is not None):
            raise AgentTurnError(self._failure(code, turn))
        return TurnResult(
            stop_reason="cancelled" if cancelled else "end_turn",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=usage.cost,
        )

    def _failure(self, code: int | None, turn: _TurnIO) -> str:
        what = (
            f"agent {self._agent.name!r} {describe_exit(code)}"
            if code != 0
            else f"agent {self._agent.name!r} reported an error"
        )
        details = [d for d in (turn.error, turn.stderr_tail()) if d]
        detail = ": " + "\n".join(details) if details else " (nothing on stderr)"
        return f"{what}{detail}\n(see log {self.log_path})"

    # --- stopping ----------------------------------------------------------------------------

    async def _end_group(self, proc: asyncio.subprocess.Process) -> None:
        await _end_group(proc, self._stop_grace)

    async def cancel(self) -> None:
        """End the running turn's process group (SIGINT, SIGTERM, SIGKILL), then wait, bounded,
        for the turn to come back."""
        if not self._busy:
            return
        self._cancel_requested = True
        self._stop.set()
        with anyio.move_on_after(self._cancel_timeout):
            await self._turn_done.wait()

    async def health(self) -> bool:
        """A command-line agent has no process to lose between turns: healthy until closed."""
        return not self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._busy:
                self._stop_grace = min(self._grace, CLOSE_GRACE_S)
                self._stop.set()
                with anyio.move_on_after(self._cancel_timeout):
                    await self._turn_done.wait()
            self._status = "closed"
            self._changed()


async def _end_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGINT the group, then SIGTERM, each given `grace` seconds, then SIGKILL it whole."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if proc.returncode is not None:
            break
        procs.kill_group(proc.pid, sig)
        with anyio.move_on_after(grace):
            await proc.wait()
    # Also when the leader is gone: whatever it left in its group goes with it.
    procs.kill_group(proc.pid)
    with anyio.move_on_after(grace):
        await proc.wait()


class _TurnIO:
    """One turn's pipes: the prompt into stdin, stdout through the parser into the sink, stderr
    into the log, the sink (as progress) and a tail kept for errors."""

    def __init__(
        self, parser: StdoutParser, sink: EventSink, logf: IO[bytes], touch: Callable[[], None]
    ) -> None:
        self._parser = parser
        self._sink = sink
        self._log = logf
        self._touch = touch
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._partial = ""
        self.session_id: str | None = None
        self.error: str | None = None
        self.usage = _Usage()

    async def run(
        self,
        proc: asyncio.subprocess.Process,
        stdin: bytes | None,
        stop: anyio.Event,
        end_group: Callable[[asyncio.subprocess.Process], Awaitable[None]],
    ) -> None:
        """Until the process has exited and its output is read; `stop` ends its group early."""

        async def on_stop() -> None:
            await stop.wait()
            await end_group(proc)

        drained = anyio.Event()

        async def pump() -> None:
            assert proc.stdout is not None and proc.stderr is not None
            async with anyio.create_task_group() as readers:
                readers.start_soon(self._stdout, proc.stdout)
                readers.start_soon(self._stderr, proc.stderr)
            drained.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(on_stop)
            tg.start_soon(pump)
            if stdin is not None and proc.stdin is not None:
                tg.start_soon(self._feed, proc.stdin, stdin)
            await proc.wait()
            # A tool's leftover children (a server it started, a shell) do not outlive its turn;
            # ending them also closes the pipes they held open, which ends the pumps.
            procs.kill_group(proc.pid)
            with anyio.move_on_after(DRAIN_S):
                await drained.wait()
            if not drained.is_set():
                log.warning("output of pid %s still open %g s after its group was killed", proc.pid, DRAIN_S)
            tg.cancel_scope.cancel()

    async def _feed(self, stream: asyncio.StreamWriter, data: bytes) -> None:
        # A tool that exits (or closes stdin) before reading it all is its own business.
        with contextlib.suppress(ConnectionError, OSError):
            stream.write(data)
            await stream.drain()
        stream.close()

    async def _stdout(self, stream: asyncio.StreamReader) -> None:
        while data := await stream.read(READ_CHUNK):
            self._take(self._parser.feed(data))
        self._take(self._parser.finish())

    async def _stderr(self, stream: asyncio.StreamReader) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while data := await stream.read(READ_CHUNK):
            self._log.write(data)
            self._stderr_text(decoder.decode(data))
        self._stderr_text(decoder.decode(b"", final=True) + "\n")
        self._log.flush()

    def _stderr_text(self, text: str) -> None:
        if text.strip():
            self._emit(ReasoningEvent(text=text))
        *lines, self._partial = (self._partial + text).split("\n")
        self._tail.extend(line for line in lines if line.strip())

    def _take(self, parsed: Parsed) -> None:
        self.session_id = parsed.session_id or self.session_id
        self.error = parsed.error or self.error
        for line in parsed.noise:
            self._log.write(f"stdout: {line}\n".encode())
        for event in parsed.events:
            if isinstance(event, UsageEvent):
                self.usage.add(event)
            self._emit(event)

    def _emit(self, event: AgentEvent) -> None:
        self._touch()
        try:
            self._sink(event)
        except Exception:
            log.exception("event sink failed")

    def stderr_tail(self) -> str:
        text = "\n".join(self._tail)
        return text[-STDERR_TAIL_CHARS:]
