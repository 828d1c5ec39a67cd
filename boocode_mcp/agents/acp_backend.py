"""WarmAcpBackend: one ACP agent process and session for one (chat, agent), kept warm between turns.

The process leads its own process group (spawned by procs, attached with `connect_to_agent`,
since the SDK's spawner cannot do that), its stderr goes to a log file, and it is only ever
killed as a group: to close, when it crashed, or when it ignored `session/cancel` for longer
than the cancel bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Unpack, cast

import anyio
from acp import PROTOCOL_VERSION, RequestError, RequestPermissionResponse, connect_to_agent, text_block
from acp.core import ClientSideConnection
from acp.interfaces import Client
from acp.schema import (
    AllowedOutcome,
    AudioContentBlock,
    ClientCapabilities,
    DeniedOutcome,
    EmbeddedResourceContentBlock,
    FileSystemCapabilities,
    ImageContentBlock,
    Implementation,
    InitializeResponse,
    PermissionOption,
    PromptResponse,
    ResourceContentBlock,
    TextContentBlock,
    ToolCallUpdate,
)

from boocode_mcp import __version__ as boocode_version
from boocode_mcp import procs
from boocode_mcp.agents.backend import (
    EventSink,
    McpGrant,
    McpProvider,
    PermissionHandler,
    PromptImage,
    SessionInfo,
    StopReason,
    TurnResult,
)

# CANCEL_TIMEOUT_S and BackendState used to live here; they stay importable from this module.
from boocode_mcp.agents.backend_core import CANCEL_TIMEOUT_S as CANCEL_TIMEOUT_S
from boocode_mcp.agents.backend_core import BackendArgs, BackendCore, describe_exit
from boocode_mcp.agents.backend_core import BackendState as BackendState
from boocode_mcp.agents.client import WorktreeClient
from boocode_mcp.agents.events import AgentEvent, UsageEvent
from boocode_mcp.agents.mapping import map_permission_request, map_update, meta_usage
from boocode_mcp.agents.terminals import TerminalLedger, TerminalManager
from boocode_mcp.errors import AgentCrashedError, AgentTurnError
from boocode_mcp.store.agent_capabilities import AgentCapabilities

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STDOUT_LIMIT = 1 << 24
NOTE_FRESH = "context not restored: {why}; the agent starts a fresh session"


@dataclass
class _Turn:
    sink: EventSink
    permissions: PermissionHandler
    cost_at_start: float | None
    scopes: set[anyio.CancelScope]
    cancelling: bool = False
    # Lines the agent wrote during the turn that were not JSON-RPC messages (excerpt: problem).
    bad_frames: list[str] = field(default_factory=list)


# How much of a line that is not a JSON-RPC message an error quotes.
FRAME_EXCERPT_CHARS = 120


def _excerpt(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace")
    return repr(text if len(text) <= FRAME_EXCERPT_CHARS else text[:FRAME_EXCERPT_CHARS] + "…")


def frame_problem(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """The JSON-RPC message on `line`, or None and what is wrong with it."""
    try:
        message = json.loads(line)
    except ValueError:
        return None, "not JSON"
    if not isinstance(message, dict):
        return None, f"JSON {type(message).__name__}, not an object"
    if isinstance(message.get("method"), str) or (
        "id" in message and ("result" in message or "error" in message)
    ):
        return message, ""
    return None, "an object that is neither a request, a notification nor a response"


class AgentFrames:
    """The newline-delimited JSON-RPC stream to and from one agent process (an ACP transport).

    The SDK's own stdio transport skips a line that is not JSON, but a JSON line that is not an
    object (`[1]`, `null`) ends its connection as if the agent had hung up, and the turn then
    looked like a crash of an agent that was still running. Here every line that is not a JSON-RPC
    message is dropped before the SDK sees it and reported to `on_invalid` (a quoted excerpt and
    what is wrong with it), so the connection lives on and the turn can say what the agent sent.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_invalid: Callable[[str, str], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_invalid = on_invalid
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
        async with self._send_lock:
            self._writer.write(data)
            await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        while True:
            line = await self._read_line()
            if not line:
                return None
            line = line.strip()
            if not line:
                continue
            message, problem = frame_problem(line)
            if message is not None:
                return message
            self._on_invalid(_excerpt(line), problem)

    async def close(self) -> None:
        """Nothing to release: the process's pipes go with the process."""

    async def _read_line(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(await self._reader.readuntil(b"\n"))
            except asyncio.LimitOverrunError as e:
                # A line longer than the reader's buffer: take what is there and go on reading it.
                chunks.append(await self._reader.readexactly(e.consumed))
                continue
            except asyncio.IncompleteReadError as e:
                chunks.append(e.partial)
            return b"".join(chunks)


class WarmAcpBackend(BackendCore):
    """An AgentBackend over an ACP agent process; see the module docstring."""

    kind = "acp"

    def __init__(
        self,
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        terminal_ledger: TerminalLedger | None = None,
        mcp: McpProvider | None = None,
        on_capabilities: Callable[[AgentCapabilities], None] | None = None,
        **args: Unpack[BackendArgs],
    ) -> None:
        super().__init__(args)
        self._resume_id = args.get("resume_session_id")
        self._start_timeout = start_timeout_s
        self._mcp = mcp
        self._on_capabilities = on_capabilities
        # BooCode's MCP server as the running process's session was given it (revoked with it).
        self._grant: McpGrant | None = None
        self._capabilities: AgentCapabilities | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._conn: ClientSideConnection | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._terminals = TerminalManager(self._cwd, terminal_ledger)
        self._session_id: str | None = None
        # How the process now running got its session, until a turn has run on it.
        self._start_origin: Literal["new", "loaded", "fresh_after_restart"] | None = None
        self._agent_info: tuple[str | None, str | None] = (None, None)
        self._start_lock = asyncio.Lock()
        self._turn: _Turn | None = None
        self._prompt_task: asyncio.Task[PromptResponse] | None = None
        self._cancel_gave_up = False
        # The last cumulative session cost the agent reported.
        self._session_cost: float | None = None
        # After session/load the agent's running cost total includes earlier processes' turns,
        # which were counted then: its first report only sets the baseline.
        self._cost_baseline_pending = False

    # --- AgentBackend properties -------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def acp_session_id(self) -> str | None:
        return self._session_id

    @property
    def capabilities(self) -> AgentCapabilities | None:
        """What the running agent said it can do in its initialize answer (None before it)."""
        return self._capabilities

    def terminal_pgids(self) -> list[int]:
        return self._terminals.pgids()

    def _recorded_session_id(self) -> str | None:
        return self._session_id or self._resume_id

    # --- process lifecycle -------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self._conn is not None

    async def ensure_session(self) -> SessionInfo:
        if self._closed:
            raise self._closed_error()
        async with self._start_lock:
            if self._closed:
                raise self._closed_error()
            if self._alive() and self._session_id is not None:
                # Started ahead of its first turn (a pre-warm): that turn still learns how.
                return self._info(self._start_origin or "reused")
            if self._proc is not None:
                # A dead (or half-dead) process from before: clear it away before the restart.
                await self._teardown()
            return await self._start()

    def _info(self, origin: Literal["new", "loaded", "reused", "fresh_after_restart"]) -> SessionInfo:
        assert self._proc is not None and self._session_id is not None
        return SessionInfo(
            acp_session_id=self._session_id,
            pid=self._proc.pid,
            pgid=self._proc.pid,
            origin=origin,
            load_supported=bool(self._load_supported),
            agent_name=self._agent_info[0],
            agent_version=self._agent_info[1],
        )

    async def _start(self) -> SessionInfo:
        spec = self._agent.spec
        self._log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as logf:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            logf.write(f"--- {stamp} start: {shlex.join(self._agent.argv)} (cwd {self._cwd})\n".encode())
            logf.flush()
            try:
                proc = await procs.spawn_in_group(
                    self._agent.argv,
                    cwd=self._cwd,
                    env=procs.child_env({**spec.env, **self._env}, agent=True),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    # A file, never a pipe: nobody would read it and a chatty agent would block.
                    stderr=logf,
                    limit=STDOUT_LIMIT,
                )
            except OSError as e:
                self._set_status("crashed")
                raise AgentCrashedError(
                    f"agent {self._agent.name!r} could not be started ({self._agent.program}: "
                    f"{e.strerror or e}); check `boocode agents`"
                ) from e
        assert proc.stdin is not None and proc.stdout is not None
        if self._closed:
            # close() ran while the process was being spawned and could not see it.
            await procs.terminate_group(proc, grace_s=0.5)
            raise self._closed_error()
        self._proc = proc
        client = WorktreeClient(
            self._cwd,
            self._terminals,
            self._route_update,
            self._route_permission,
            fs=spec.fs,
            terminal=spec.terminal,
        )
        # WorktreeClient is a plain class on purpose (see agents/client.py), so it is not an acp.Client.
        frames = AgentFrames(proc.stdout, proc.stdin, self._invalid_frame)
        self._conn = connect_to_agent(cast(Client, client), frames)
        self._watcher = asyncio.ensure_future(self._watch(proc, self._conn))
        self._cancel_gave_up = False
        try:
            with anyio.fail_after(self._start_timeout):
                return await self._handshake(self._conn)
        except TimeoutError:
            await self._teardown()
            self._start_failed()
            raise AgentCrashedError(
                f"agent {self._agent.name!r} (pid {proc.pid}) did not finish starting within "
                f"{self._start_timeout:.0f} s; see log {self.log_path}"
            ) from None
        except ConnectionError:
            code = await self._reap(proc)
            await self._teardown()
            if self._closed:
                raise self._closed_error() from None
            self._start_failed()
            raise AgentCrashedError(
                f"agent {self._agent.name!r} (pid {proc.pid}) {describe_exit(code)} while starting; "
                f"see log {self.log_path}"
            ) from None
        except RequestError as e:
            await self._teardown()
            self._start_failed()
            raise AgentTurnError(
                f"agent {self._agent.name!r} refused to start a session ({e.code}: {e}); "
                f"see log {self.log_path}"
            ) from None
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._teardown()
            raise

    def _start_failed(self) -> None:
        if not self._closed:
            self._set_status("crashed")

    async def _handshake(self, conn: ClientSideConnection) -> SessionInfo:
        spec = self._agent.spec
        init = await conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=spec.fs, write_text_file=spec.fs),
                terminal=spec.terminal,
            ),
            client_info=Implementation(name="boocode", version=boocode_version),
        )
        caps = self._note_capabilities(init)
        self._load_supported = caps.load_session
        self._agent_info = (caps.agent_name, caps.agent_version)
        servers = await self._grant_mcp(caps)
        previous = self._session_id or self._resume_id
        origin: Literal["new", "loaded", "fresh_after_restart"] = "new"
        if previous is not None:
            if self._load_supported:
                try:
                    # No turn is active, so the history the agent replays here is dropped by
                    # _route_update: it is not new output.
                    await conn.load_session(cwd=str(self._cwd), session_id=previous, mcp_servers=servers)
                except RequestError as e:
                    self._note = NOTE_FRESH.format(why=f"session/load of {previous} failed ({e})")
                    origin = "fresh_after_restart"
                else:
                    self._session_id = previous
                    self._note = None
                    self._session_cost = None
                    self._cost_baseline_pending = True
                    origin = "loaded"
            else:
                self._note = NOTE_FRESH.format(why=f"agent {self._agent.name!r} cannot session/load")
                origin = "fresh_after_restart"
        if origin != "loaded":
            resp = await conn.new_session(cwd=str(self._cwd), mcp_servers=servers)
            self._session_id = resp.session_id
            self._session_cost = None
            self._cost_baseline_pending = False
        self._resume_id = None
        self._last_active = time.time()
        self._set_status("idle")
        self._start_origin = origin
        return self._info(origin)

    def _note_capabilities(self, init: InitializeResponse) -> AgentCapabilities:
        caps = init.agent_capabilities
        prompt = caps.prompt_capabilities if caps is not None else None
        mcp = caps.mcp_capabilities if caps is not None else None
        info = init.agent_info
        noted = AgentCapabilities(
            agent=self._agent.name,
            image=bool(prompt is not None and prompt.image),
            audio=bool(prompt is not None and prompt.audio),
            embedded_context=bool(prompt is not None and prompt.embedded_context),
            mcp_http=bool(mcp is not None and mcp.http),
            mcp_sse=bool(mcp is not None and mcp.sse),
            load_session=bool(caps is not None and caps.load_session),
            agent_name=info.name if info is not None else None,
            agent_version=info.version if info is not None else None,
            seen_at=time.time(),
        )
        self._capabilities = noted
        if self._on_capabilities is not None:
            try:
                self._on_capabilities(noted)
            except Exception:
                log.exception("on_capabilities callback failed for %s", self._agent.name)
        return noted

    async def _grant_mcp(self, caps: AgentCapabilities) -> list[Any]:
        """BooCode's MCP server for the session about to be made, with a credential of its own: the
        one an earlier process of this backend was given stops working now."""
        self._revoke_mcp()
        if self._mcp is None:
            return []
        self._grant = await self._mcp.grant(self._chat_id, self._agent.name, http=caps.mcp_http)
        return list(self._grant.servers) if self._grant is not None else []

    def _revoke_mcp(self) -> None:
        grant, self._grant = self._grant, None
        if grant is not None:
            grant.revoke()

    async def _watch(self, proc: asyncio.subprocess.Process, conn: ClientSideConnection) -> None:
        """Notice the process exiting; closing the connection fails whatever request is pending."""
        await proc.wait()
        if self._proc is proc and not self._closed:
            # Whatever the agent left in its group (tool processes, MCP servers) goes with it.
            procs.kill_group(proc.pid)
            self._status = "crashed"
            self._changed()
        with contextlib.suppress(Exception):
            await conn.close()

    async def _reap(self, proc: asyncio.subprocess.Process, bound: float = 5.0) -> int | None:
        """The exit code once the process is gone; one that lingers past `bound` is killed."""
        with anyio.move_on_after(bound):
            return await proc.wait()
        procs.kill_group(proc.pid)
        with anyio.move_on_after(bound):
            await proc.wait()
        return proc.returncode

    async def _teardown(self) -> None:
        """Kill the group, close the connection, release terminals, revoke the session's MCP
        credential; leaves no child behind."""
        self._revoke_mcp()
        proc, conn, watcher = self._proc, self._conn, self._watcher
        self._proc = None
        self._conn = None
        self._watcher = None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                await procs.terminate_group(proc, grace_s=2.0)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await self._terminals.close_all()

    # --- routing of agent → client traffic ------------------------------------------------------

    def _route_update(self, session_id: str, update: Any) -> None:
        turn = self._turn
        if turn is None or session_id != self._session_id:
            # Outside a turn: replayed history during session/load, or late noise. Not output.
            return
        events: list[AgentEvent] = [map_update(update)]
        extra = meta_usage(update)
        if extra is not None:
            events.append(extra)
        self._last_active = time.time()
        for event in events:
            if isinstance(event, UsageEvent) and event.cost is not None:
                self._account_cost(event.cost)
            try:
                turn.sink(event)
            except Exception:
                log.exception("event sink failed for %s/%s", self._chat_id, self._agent.name)

    def _account_cost(self, session_total: float) -> None:
        if self._cost_baseline_pending:
            self._cost_baseline_pending = False
            self._session_cost = session_total
            return
        previous = self._session_cost or 0.0
        if session_total >= previous:
            self._cost += session_total - previous
        self._session_cost = session_total

    def _invalid_frame(self, excerpt: str, problem: str) -> None:
        log.warning("agent %s wrote a line that is not JSON-RPC (%s): %s", self._agent.name, problem, excerpt)
        with contextlib.suppress(OSError), self.log_path.open("a", encoding="utf-8") as logf:
            logf.write(f"--- not a JSON-RPC message ({problem}), dropped: {excerpt}\n")
        if self._turn is not None:
            self._turn.bad_frames.append(f"{excerpt} ({problem})")

    async def _route_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption]
    ) -> RequestPermissionResponse:
        cancelled = RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        turn = self._turn
        if turn is None or turn.cancelling or session_id != self._session_id:
            return cancelled
        event = map_permission_request(f"perm-{uuid.uuid4().hex[:12]}", tool_call, options)
        try:
            turn.sink(event)
        except Exception:
            log.exception("event sink failed for %s/%s", self._chat_id, self._agent.name)
        choice: str | None = None
        scope = anyio.CancelScope()
        turn.scopes.add(scope)
        try:
            with scope:
                choice = await turn.permissions(event)
        except Exception:
            log.exception("permission handler failed for %s/%s", self._chat_id, self._agent.name)
            choice = None
        finally:
            turn.scopes.discard(scope)
        # A cancelled turn answers every pending request "cancelled", as the protocol requires.
        if choice is None or scope.cancel_called or turn.cancelling:
            return cancelled
        if choice not in {o.option_id for o in options}:
            log.warning("permission handler chose unknown option %r; answering cancelled", choice)
            return cancelled
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=choice))

    # --- turns ------------------------------------------------------------------------------

    def _turn_ends(self) -> None:
        self._turn = None
        self._prompt_task = None

    async def _run_turn(
        self, text: str, on_event: EventSink, permissions: PermissionHandler, images: Sequence[PromptImage]
    ) -> TurnResult:
        conn, proc, sid = self._conn, self._proc, self._session_id
        assert conn is not None and proc is not None and sid is not None
        if self._cancel_requested:
            return TurnResult(stop_reason="cancelled")
        if images and not (self._capabilities is not None and self._capabilities.image):
            raise AgentTurnError(
                f"agent {self._agent.name!r} does not take images: its ACP initialize answer does not "
                "advertise promptCapabilities.image; send the prompt without images or use an agent "
                "that takes them (list_agents shows which)"
            )
        blocks: list[
            TextContentBlock
            | ImageContentBlock
            | AudioContentBlock
            | ResourceContentBlock
            | EmbeddedResourceContentBlock
        ] = [text_block(text)]
        blocks += [
            ImageContentBlock(type="image", mime_type=i.mime_type, data=base64.b64encode(i.data).decode())
            for i in images
        ]
        turn = _Turn(sink=on_event, permissions=permissions, cost_at_start=self._cost, scopes=set())
        self._turn = turn
        self._start_origin = None
        self._last_active = time.time()
        self._set_status("active")
        task: asyncio.Task[PromptResponse] = asyncio.ensure_future(conn.prompt(session_id=sid, prompt=blocks))
        self._prompt_task = task
        try:
            # Shielded: a cancelled caller must not abandon the request (that would leave the
            # agent running and its late answer unread); it cancels the turn instead.
            resp = await asyncio.shield(task)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._cancel_turn(turn, task)
            raise
        except ConnectionError:
            raise await self._crashed(proc) from None
        except RequestError as e:
            raise AgentTurnError(
                f"agent {self._agent.name!r} failed the prompt ({e.code}: {e}); see log {self.log_path}"
            ) from None
        result = self._result(resp, turn)
        if turn.bad_frames:
            raise AgentTurnError(
                f"agent {self._agent.name!r} broke the ACP protocol during the turn: it wrote "
                f"{len(turn.bad_frames)} line(s) that are not JSON-RPC messages, which were dropped "
                f"(the first: {turn.bad_frames[0]}), so the turn's output may be incomplete; "
                f"see log {self.log_path}"
            )
        return result

    def _result(self, resp: PromptResponse, turn: _Turn) -> TurnResult:
        stop: StopReason = resp.stop_reason
        usage = resp.usage
        inp = usage.input_tokens if usage is not None else None
        out = usage.output_tokens if usage is not None else None
        self._input_tokens += inp or 0
        self._output_tokens += out or 0
        start = turn.cost_at_start or 0.0
        cost = self._cost - start if self._cost != start else None
        if usage is None:
            return TurnResult(stop_reason=stop, cost=cost)
        return TurnResult(
            stop_reason=stop,
            input_tokens=inp,
            output_tokens=out,
            cost=cost,
            total_tokens=usage.total_tokens,
            thought_tokens=usage.thought_tokens,
            cache_read_tokens=usage.cached_read_tokens,
            cache_write_tokens=usage.cached_write_tokens,
        )

    async def _crashed(self, proc: asyncio.subprocess.Process) -> AgentCrashedError:
        code = await self._reap(proc)
        procs.kill_group(proc.pid)
        await self._terminals.close_all()
        if not self._closed:
            self._status = "crashed"
            self._changed()
        if self._closed:
            return AgentCrashedError(
                f"agent {self._agent.name!r} for chat {self._chat_id} was closed during the turn"
            )
        if self._cancel_gave_up:
            return AgentCrashedError(
                f"agent {self._agent.name!r} (pid {proc.pid}) did not answer session/cancel within "
                f"{self._cancel_timeout:g} s and was killed; see log {self.log_path}; "
                "the next prompt restarts it"
            )
        return AgentCrashedError(
            f"agent {self._agent.name!r} (pid {proc.pid}) {describe_exit(code)} during the turn; "
            f"see log {self.log_path}; the next prompt restarts it"
        )

    async def _cancel_turn(self, turn: _Turn, task: asyncio.Task[PromptResponse]) -> None:
        """session/cancel, then wait (bounded) for the agent to end the turn; kill it if it won't."""
        if task.done():
            return
        turn.cancelling = True
        for scope in list(turn.scopes):
            scope.cancel()
        conn, proc, sid = self._conn, self._proc, self._session_id
        if conn is not None and sid is not None:
            with contextlib.suppress(Exception):
                await conn.cancel(session_id=sid)
        with anyio.move_on_after(self._cancel_timeout):
            await asyncio.wait([task])
        if not task.done() and proc is not None:
            # The agent ignored the cancel: only now is it treated as crashed (never kill to cancel).
            self._cancel_gave_up = True
            log.warning(
                "agent %s (pid %s) ignored session/cancel; killing its group", self._agent.name, proc.pid
            )
            procs.kill_group(proc.pid)
            with anyio.move_on_after(5):
                await asyncio.wait([task])
        if task.done() and not task.cancelled():
            # Consume the outcome so asyncio does not report an unretrieved exception.
            task.exception()

    async def cancel(self) -> None:
        turn, task = self._turn, self._prompt_task
        if turn is None or task is None:
            if self._busy:
                # prompt() is still starting the agent; it will see this before sending the prompt.
                self._cancel_requested = True
                with anyio.move_on_after(self._cancel_timeout):
                    await self._turn_done.wait()
            return
        await self._cancel_turn(turn, task)
        # Return only once prompt() has finished, so the session can take the next prompt.
        with anyio.move_on_after(self._cancel_timeout):
            await self._turn_done.wait()

    async def health(self) -> bool:
        alive = self._proc is not None and self._proc.returncode is None and procs.pid_alive(self._proc.pid)
        if not alive and self._proc is not None and self._status in ("idle", "active"):
            self._set_status("crashed")
        return alive

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        turn, task = self._turn, self._prompt_task
        with anyio.CancelScope(shield=True):
            if turn is not None and task is not None and not task.done():
                saved = self._cancel_timeout
                # Closing should not wait the full cancel bound on an agent that ignores it.
                self._cancel_timeout = min(saved, 2.0)
                await self._cancel_turn(turn, task)
                self._cancel_timeout = saved
            settle = self._agent.spec.settle_s - (time.time() - self._turn_ended_at)
            if self._proc is not None and self._proc.returncode is None and settle > 0:
                # Some agents persist a turn only after answering it (the spec's settle_s says how
                # long); closing sooner would lose the turn for a later session/load.
                await anyio.sleep(settle)
            await self._teardown()
            self._status = "closed"
            self._changed()
