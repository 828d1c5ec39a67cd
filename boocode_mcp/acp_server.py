"""BooCode as an ACP agent for editors: `boocode acp`.

Each ACP session is a BooCode session of its own holding one chat; the ACP session id *is* the
BooCode session id, so `session/load` from any later process finds the chat through the
workspace's database and nothing else has to be persisted. The backend agent's updates are
passed through unchanged, except that paths inside the chat's worktree are rewritten to the
workspace paths the editor knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from acp import (
    InitializeResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PromptResponse,
    RequestError,
    run_agent,
    start_tool_call,
    update_agent_message_text,
    update_agent_thought_text,
    update_plan,
    update_tool_call,
    update_user_message_text,
)
from acp.helpers import plan_entry, update_available_commands
from acp.schema import (
    AllowedOutcome,
    AvailableCommand,
    AvailableCommandInput,
    CloseSessionResponse,
    ListSessionsResponse,
    PermissionOption,
    ResumeSessionResponse,
    SessionInfo,
    ToolCallUpdate,
    UnstructuredCommandInput,
)
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import BaseModel

from boocode_mcp import procs
from boocode_mcp.acp_capabilities import initialize_result
from boocode_mcp.agents.events import (
    AgentEvent,
    AvailableCommandsEvent,
    PermissionRequestEvent,
    PlanEvent,
    ReasoningEvent,
    TextEvent,
    ToolCallEvent,
    ToolUpdateEvent,
)
from boocode_mcp.errors import BooCodeError, InvalidRequestError
from boocode_mcp.states import LIVE_WORKFLOW_STATUSES
from boocode_mcp.views import ApplyResult, PatchView, SubagentView
from boocode_mcp.workflow_progress import Follower, summary
from boocode_mcp.workspace import ensure_repo, worktree_path

if TYPE_CHECKING:
    from boocode_mcp.engine import Engine

__all__ = [
    "BOOCODE_COMMANDS",
    "BooCodeAgent",
    "EngineHost",
    "FixedEngine",
    "main_acp",
    "rewrite_paths",
    "serve_acp_connection",
]

# What the editor offers after every turn. ACP command names carry no slash; the editor shows
# `/apply` and sends the prompt text "/apply".
BOOCODE_COMMANDS: tuple[tuple[str, str, str | None], ...] = (
    ("apply", "Apply this chat's pending patch to the workspace (all or nothing)", None),
    ("discard", "Discard this chat's pending patch", None),
    ("patches", "List this chat's patches", None),
    ("status", "Show the chat's agent, last run and pending patch", None),
    ("agent", "Switch the backend agent for later turns", "agent name, e.g. opencode"),
    (
        "workflow",
        "Run a workflow (steps as subagents, cached): /workflow NAME [JSON args]; no NAME lists them",
        'NAME [JSON args], e.g. best-of-n {"task": "...", "agents": ["opencode", "qwen"]}',
    ),
)
_COMMAND_NAMES = frozenset(name for name, _, _ in BOOCODE_COMMANDS)


class EngineHost:
    """Opens one Engine per workspace on first use and keeps it open until `close()`.

    Engine.open is a context manager holding a task group, so it must be entered and exited by
    the same task: each engine gets an owner task in the host's task group that enters it,
    hands it over, and waits for shutdown.
    """

    def __init__(self, tg: TaskGroup) -> None:
        self._tg = tg
        self._engines: dict[Path, Engine] = {}
        self._lock = anyio.Lock()
        self._stop = anyio.Event()

    async def get(self, directory: Path) -> Engine:
        # Keyed by the repository's top level: an editor may open any directory inside it.
        workspace = await ensure_repo(directory)
        async with self._lock:
            engine = self._engines.get(workspace)
            if engine is None:
                engine = await self._open(workspace)
                self._engines[workspace] = engine
            return engine

    async def _open(self, workspace: Path) -> Engine:
        ready = anyio.Event()
        box: dict[str, Any] = {}

        async def owner() -> None:
            from boocode_mcp.agent_mcp import open_engine

            try:
                async with open_engine(workspace) as engine:
                    box["engine"] = engine
                    ready.set()
                    await self._stop.wait()
            except Exception as e:
                if ready.is_set():
                    raise
                box["error"] = e
                ready.set()

        self._tg.start_soon(owner)
        await ready.wait()
        if "error" in box:
            raise box["error"]
        engine: Engine = box["engine"]
        return engine

    def engines(self) -> list[Engine]:
        """The engines opened so far."""
        return list(self._engines.values())

    def close(self) -> None:
        self._stop.set()


class FixedEngine:
    """The engine host of a daemon connection: its one workspace's engine, whatever the editor's
    cwd (the front end routes each session to the daemon of the workspace it belongs to)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def get(self, directory: Path) -> Engine:
        return self._engine

    def engines(self) -> list[Engine]:
        return [self._engine]


@dataclass
class _Session:
    """One ACP session: a BooCode session of its own with (after the first turn) one chat."""

    session_id: str
    engine: Engine
    workspace: Path
    chat_id: str | None = None
    agent: str | None = None  # backend for the first turn; later switches go to the chat itself
    run_id: str | None = None
    cancel_requested: bool = False  # a session/cancel that came before the run had an id
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    backend_commands: list[AvailableCommand] = field(default_factory=list)
    commands_sent: bool = False
    workflow_run_id: str | None = None  # the /workflow run this session is following


def rewrite_paths(value: Any, worktree: str, workspace: str) -> Any:
    """`value` with every string that is `worktree` or starts with `worktree/` re-rooted at
    `workspace` (walks dicts and lists, as dumped from an ACP update)."""
    if isinstance(value, str):
        if value == worktree:
            return workspace
        if value.startswith(worktree + os.sep):
            return workspace + value[len(worktree) :]
        return value
    if isinstance(value, dict):
        return {k: rewrite_paths(v, worktree, workspace) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite_paths(v, worktree, workspace) for v in value]
    return value


def _rewrite_model(model: BaseModel, worktree: str | None, workspace: str) -> BaseModel:
    if worktree is None:
        return model
    dumped = model.model_dump(by_alias=True, exclude_unset=True)
    rewritten = rewrite_paths(dumped, worktree, workspace)
    if rewritten == dumped:
        return model
    return type(model).model_validate(rewritten)


def _update_for(event: AgentEvent) -> BaseModel | None:
    """The ACP update to forward for an event: its original when it has one, else rebuilt."""
    if isinstance(event.raw, BaseModel):
        return event.raw
    if isinstance(event, TextEvent):
        return update_agent_message_text(event.text)
    if isinstance(event, ReasoningEvent):
        return update_agent_thought_text(event.text)
    if isinstance(event, ToolCallEvent):
        from acp.schema import ToolCallLocation

        return start_tool_call(
            event.tool_call_id,
            event.title,
            kind=event.tool_kind,  # type: ignore[arg-type]
            status=event.status,
            locations=[ToolCallLocation(path=p) for p in event.locations] or None,
            raw_input=event.raw_input,
        )
    if isinstance(event, ToolUpdateEvent):
        return update_tool_call(event.tool_call_id, status=event.status, title=event.title)
    if isinstance(event, PlanEvent):
        return update_plan(
            [plan_entry(e.content, priority=e.priority or "medium", status=e.status) for e in event.entries]  # type: ignore[arg-type]
        )
    return None


def prompt_text(blocks: Sequence[Any]) -> str:
    """The prompt as plain text: text blocks as they are, links and embedded resources inline."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource_link":
            parts.append(f"@{block.uri}")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            if text is not None:
                parts.append(f"\n<file uri={res.uri!r}>\n{text}\n</file>\n")
            else:
                parts.append(f"@{res.uri}")
    return "".join(parts).strip()


def prompt_images(blocks: Sequence[Any]) -> list[str]:
    """The prompt's image blocks as data URIs, in order (what spawn takes as images)."""
    return [
        f"data:{block.mime_type};base64,{block.data}"
        for block in blocks
        if getattr(block, "type", None) == "image" and getattr(block, "data", None)
    ]


def parse_command(text: str) -> tuple[str, str] | None:
    """("apply", "") for "/apply", ("agent", "goose") for "/agent goose"; None for a normal prompt."""
    if not text.startswith("/"):
        return None
    name, _, arg = text[1:].partition(" ")
    # A workflow's JSON args may span lines; every other command takes one word at most.
    if name not in _COMMAND_NAMES or ("\n" in arg and name != "workflow"):
        return None
    return name, arg.strip()


def summarize_patch(patch: PatchView | None, workspace: Path) -> str:
    if patch is None:
        return "BooCode: no file changes this turn."
    files = ", ".join(f.path for f in patch.files[:8]) + (" …" if len(patch.files) > 8 else "")
    noun = "file" if patch.file_count == 1 else "files"
    note = " (the turn did not finish cleanly)" if patch.failed_mid_turn else ""
    return (
        f"BooCode: patch {patch.id[:8]}{note}: {patch.file_count} {noun} "
        f"(+{patch.additions} −{patch.deletions}): {files}. "
        f"/apply to land it in {workspace}, /discard to drop it."
    )


def describe_apply(result: ApplyResult) -> str:
    if result.conflicts:
        lines = [f"- {c.file}: {c.reason} (patch {c.patch_id[:8]})" for c in result.conflicts]
        return "BooCode: nothing applied, the workspace is untouched; conflicts:\n" + "\n".join(lines)
    if not result.applied:
        return "BooCode: no pending patch to apply."
    ids = ", ".join(p[:8] for p in result.applied)
    commit = f" (commit {result.commit_sha[:10]})" if result.commit_sha else ""
    return f"BooCode: applied patch {ids} to the workspace{commit}."


INVALID_PARAMS = -32602
# /workflow re-reads its run after each change, or this often at least.
WORKFLOW_WAIT_S = 30.0
LIST_PAGE = 50  # sessions per session/list page
# What shutting down may spend removing never-prompted chats before the engines close anyway.
SHUTDOWN_LET_GO_S = 10.0
TITLE_MAX = 80


def session_title(prompt: str) -> str | None:
    """A session's title for a picker: its first prompt on one line, cut at a word."""
    text = " ".join(prompt.split())
    if len(text) <= TITLE_MAX:
        return text or None
    return text[: TITLE_MAX - 1].rsplit(" ", 1)[0] + "…"


def _refused(error: BooCodeError) -> RequestError:
    # The message itself carries the reason: editors show a JSON-RPC error's message, and
    # BooCode's messages say what was wrong and what to do.
    return RequestError(INVALID_PARAMS, str(error))


_STOP_REASONS = frozenset({"end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled"})


class BooCodeAgent:
    """The ACP agent side. A plain class, not a subclass of the SDK's Agent: the SDK routes a method
    an Agent subclass does not override to a silent default, where a plain class answers -32601."""

    def __init__(
        self,
        host: EngineHost | FixedEngine,
        *,
        workspace: Path | None = None,
        agent: str | None = None,
        runs_outlive_connection: bool = False,
    ) -> None:
        self._host = host
        self._workspace = workspace.resolve() if workspace is not None else None
        self._agent = agent
        # Served by the workspace's daemon, a turn whose editor goes away goes on (the work belongs
        # to the workspace, and session/load shows it later); in a process of its own, the turn
        # ends with the process anyway, so it is cancelled cleanly.
        self._runs_outlive_connection = runs_outlive_connection
        self._sessions: dict[str, _Session] = {}
        # Closed by the editor in this connection: a prompt for one is refused, not re-opened.
        self._closed: set[str] = set()
        self._conn: Any = None

    def on_connect(self, conn: Any) -> None:
        self._conn = conn

    # -- lifecycle -------------------------------------------------------------------------

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: Any = None,
        client_info: Any = None,
        **kw: Any,
    ) -> InitializeResponse:
        return InitializeResponse.model_validate(initialize_result(protocol_version))

    async def _engine_for(self, cwd: str) -> Engine:
        workspace = self._workspace if self._workspace is not None else Path(cwd)
        try:
            return await self._host.get(workspace)
        except BooCodeError as e:
            raise _refused(e) from e

    async def new_session(self, cwd: str, mcp_servers: Any = None, **kw: Any) -> NewSessionResponse:
        engine = await self._engine_for(cwd)
        try:
            if self._agent is not None:
                engine.registry.spec(self._agent)
            session_id = await engine.ensure_session(None)
        except BooCodeError as e:
            raise _refused(e) from e
        # The command list follows with the first prompt: updates for a session id the client
        # has not been given yet may be dropped.
        session = _Session(session_id, engine, engine.workspace, agent=self._agent)
        self._sessions[session_id] = session
        # The chat's worktree and agent start now, so that they are warm by the time the user has
        # typed the first prompt. An agent that is not installed is left for that prompt (or an
        # /agent switch) to meet.
        if engine.config.pool.prewarm:
            with contextlib.suppress(BooCodeError):
                session.chat_id = await engine.open_chat(session_id, self._agent)
        return NewSessionResponse(session_id=session_id)

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: Any = None, **kw: Any
    ) -> LoadSessionResponse:
        session, history = await self._attach(cwd, session_id)
        for run in history:
            if run.prompt:
                await self._update(session_id, update_user_message_text(run.prompt))
            if run.final_message:
                await self._update(session_id, update_agent_message_text(run.final_message))
        await self._send_commands(session)
        return LoadSessionResponse()

    async def resume_session(
        self, session_id: str, cwd: str, mcp_servers: Any = None, **kw: Any
    ) -> ResumeSessionResponse:
        """session/load without the replay: for a client that kept the conversation itself."""
        session, _ = await self._attach(cwd, session_id)
        await self._send_commands(session)
        return ResumeSessionResponse()

    async def _attach(self, cwd: str, session_id: str) -> tuple[_Session, list[SubagentView]]:
        """The stored session `session_id` as an open one of this connection, on its newest chat
        (an ACP session holds one chat) and that chat's last run; and the chat's runs."""
        self._closed.discard(session_id)
        engine = await self._engine_for(cwd)
        try:
            await engine.ensure_session(session_id, create=False)
            chats = await engine.chats(session_id)
            history = await engine.chat_history(session_id, chats[0].id) if chats else []
        except BooCodeError as e:
            raise _refused(e) from e
        session = self._sessions.get(session_id) or _Session(session_id, engine, engine.workspace)
        self._sessions[session_id] = session
        if chats:
            session.chat_id = chats[0].id  # newest first
            if engine.config.pool.prewarm:
                # Its agent starts (and reloads its own session) while the user reads and types.
                with contextlib.suppress(BooCodeError):
                    await engine.prewarm_chat(session_id, session.chat_id)
        if history:
            session.run_id = history[-1].subagent_id
        return session, history

    async def _reopen(self, session_id: str) -> _Session | None:
        """A stored session of the pinned workspace, opened as session/resume would: the daemon
        that served it was replaced, and its front end reconnected without the editor knowing."""
        if self._workspace is None or session_id in self._closed:
            return None
        try:
            session, _ = await self._attach(str(self._workspace), session_id)
        except RequestError:
            return None
        return session

    async def list_sessions(
        self, cwd: str | None = None, cursor: str | None = None, **kw: Any
    ) -> ListSessionsResponse:
        """The workspace's sessions that have run something (every front end's, not only this
        editor's: any of them can be loaded), most recently active first, a page at a time."""
        offset = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise RequestError(
                    INVALID_PARAMS, f"cursor {cursor!r} is not one BooCode gave out; list again without it"
                )
            offset = int(cursor)
        if cwd is not None or self._workspace is not None:
            engines = [await self._engine_for(cwd or str(self._workspace))]
        else:
            engines = self._host.engines()  # no workspace named: the ones this process has open
        # Each engine's first offset + page + 1 rows are enough to cut this page from all of them.
        rows = [
            (summary, engine)
            for engine in engines
            for summary in await engine.list_sessions(limit=offset + LIST_PAGE + 1)
        ]
        rows.sort(key=lambda r: (-r[0].last_active_at, r[0].id))
        page = rows[offset : offset + LIST_PAGE]
        return ListSessionsResponse(
            sessions=[
                SessionInfo(
                    session_id=summary.id,
                    cwd=str(engine.workspace),
                    title=session_title(summary.first_prompt),
                    updated_at=datetime.fromtimestamp(summary.last_active_at, UTC).isoformat(),
                )
                for summary, engine in page
            ],
            next_cursor=str(offset + LIST_PAGE) if len(rows) > offset + LIST_PAGE else None,
        )

    async def close_session(self, session_id: str, **kw: Any) -> CloseSessionResponse:
        """Cancel the session's turn and close its backend agent; what it did stays stored, so
        session/load or session/resume opens it again."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            raise RequestError(
                INVALID_PARAMS,
                f"session {session_id} is not open in this connection; open it with session/load first",
            )
        self._closed.add(session_id)
        session.cancel_requested = True
        await self._let_go(session)
        return CloseSessionResponse()

    async def _let_go(self, session: _Session) -> None:
        """Stop the session's turn and agent. A chat that never ran is removed with its worktree
        (only its pre-warm made it); one that ran is kept for session/load."""
        if session.chat_id is None:
            return
        with contextlib.suppress(BooCodeError):
            if not await session.engine.drop_chat_if_unused(session.session_id, session.chat_id):
                await session.engine.release_chat(session.session_id, session.chat_id)

    async def shutdown(self) -> None:
        """Let go of every open session, as the connection ends. Served by the daemon, only chats
        that never ran go (a pre-warm nobody used); the others keep their agents warm and their
        runs going for the next front end."""
        for session in list(self._sessions.values()):
            if not self._runs_outlive_connection:
                await self._let_go(session)
            elif session.chat_id is not None:
                with contextlib.suppress(BooCodeError):
                    await session.engine.drop_chat_if_unused(session.session_id, session.chat_id)
        self._sessions.clear()

    async def cancel(self, session_id: str, **kw: Any) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        if session.workflow_run_id is not None:
            with contextlib.suppress(BooCodeError):
                await session.engine.workflows.cancel(session.workflow_run_id)
            return
        if session.lock.locked():
            session.cancel_requested = True
        if session.run_id is None:
            return
        with contextlib.suppress(BooCodeError):
            await session.engine.cancel(session_id, session.run_id)

    # -- prompts ---------------------------------------------------------------------------

    async def prompt(self, session_id: str, prompt: list[Any], **kw: Any) -> PromptResponse:
        session = self._sessions.get(session_id) or await self._reopen(session_id)
        if session is None:
            raise RequestError(
                INVALID_PARAMS, f"unknown session {session_id}: create it with session/new or session/load"
            )
        text = prompt_text(prompt)
        images = prompt_images(prompt)
        async with session.lock:
            if not session.commands_sent:
                await self._send_commands(session)
            command = parse_command(text)
            if command is not None and command[0] == "workflow":
                return await self._workflow(session, command[1])
            if command is not None:
                try:
                    reply = await self._command(session, *command)
                except BooCodeError as e:
                    reply = f"BooCode: {e}"
                await self._update(session_id, update_agent_message_text(reply))
                await self._send_commands(session)
                return PromptResponse(stop_reason="end_turn")
            session.cancel_requested = False
            return await self._turn(session, text, images)

    async def _workflow(self, session: _Session, arg: str) -> PromptResponse:
        """`/workflow NAME [JSON args]`: run it, telling the editor each step and log line as it
        goes, then its result; without a name, list the workflows."""
        engine, sid = session.engine, session.session_id
        name, _, rest = arg.partition(" ")
        name = name.strip()
        try:
            if not name:
                listing = await engine.workflows.list()
                lines = [f"- {w.name} ({w.source}): {w.description}" for w in listing.workflows]
                lines += [f"- skipped {w.file}: {w.reason}" for w in listing.warnings]
                await self._update(sid, update_agent_message_text("BooCode workflows:\n" + "\n".join(lines)))
                return PromptResponse(stop_reason="end_turn")
            try:
                args = json.loads(rest) if rest.strip() else {}
            except ValueError as e:
                raise InvalidRequestError(
                    f"the workflow's args are not JSON ({e}); give a JSON object"
                ) from e
            if not isinstance(args, dict):
                raise InvalidRequestError("the workflow's args must be a JSON object")
            view = await engine.workflows.start(name, args)
        except BooCodeError as e:
            await self._update(sid, update_agent_message_text(f"BooCode: {e}"))
            return PromptResponse(stop_reason="end_turn")
        session.workflow_run_id = view.workflow_run_id
        follower = Follower()
        try:
            while True:
                lines = follower.lines(view.model_dump(mode="json"))
                if lines:
                    await self._update(sid, update_agent_message_text("".join(f"{line}\n" for line in lines)))
                if view.status not in LIVE_WORKFLOW_STATUSES:
                    break
                view = await engine.workflows.wait(view.workflow_run_id, WORKFLOW_WAIT_S)
        except anyio.get_cancelled_exc_class():
            if not self._runs_outlive_connection:
                with anyio.CancelScope(shield=True), contextlib.suppress(BooCodeError):
                    await engine.workflows.cancel(view.workflow_run_id)
            raise
        finally:
            session.workflow_run_id = None
        text = f"\nBooCode: {summary(view.model_dump(mode='json'))}"
        if view.result is not None:
            text += "\n```json\n" + json.dumps(view.result, indent=2, ensure_ascii=False) + "\n```"
        await self._update(sid, update_agent_message_text(text))
        await self._send_commands(session)
        return PromptResponse(stop_reason="cancelled" if view.status == "cancelled" else "end_turn")

    async def _turn(self, session: _Session, text: str, images: list[str]) -> PromptResponse:
        engine, sid = session.engine, session.session_id
        send: MemoryObjectSendStream[tuple[AgentEvent, Any]]
        recv: MemoryObjectReceiveStream[tuple[AgentEvent, Any]]
        send, recv = anyio.create_memory_object_stream(math.inf)
        state: dict[str, Any] = {"texts": 0, "worktree": None, "note_checked": False, "note_sent": False}

        def on_event(event: AgentEvent) -> None:
            # Called synchronously in arrival order (backend.EventSink): enqueue, never await.
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                send.send_nowait((event, None))

        async def on_permission(event: PermissionRequestEvent) -> str | None:
            # Through the same queue, so the editor sees the tool call before the question.
            answer: dict[str, str | None] = {}
            done = anyio.Event()
            try:
                send.send_nowait((event, (answer, done)))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return None
            await done.wait()
            return answer.get("option")

        # A pre-warmed chat another process dropped (it opened this session and ended before a
        # prompt, and this one loaded it meanwhile): start a new chat instead.
        if (
            session.chat_id is not None
            and session.run_id is None
            and session.chat_id not in {c.id for c in await engine.chats(sid)}
        ):
            session.chat_id = None
        view: SubagentView | None = None
        error: BooCodeError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._forward, session, recv, state)
                try:
                    view = await engine.spawn(
                        sid,
                        text,
                        agent=session.agent if session.chat_id is None else None,
                        chat_id=session.chat_id,
                        on_event=on_event,
                        permission_handler=on_permission,
                        images=images,
                    )
                    session.chat_id, session.run_id = view.chat_id, view.subagent_id
                    # Set before anything awaits, so the forwarder sees it with the first event.
                    state["worktree"] = view.worktree or str(worktree_path(engine.workspace, view.chat_id))
                    if session.cancel_requested:
                        await engine.cancel(sid, view.subagent_id)
                    view = await engine.wait_finished(sid, view.subagent_id)
                except BooCodeError as e:
                    # Kept out of the task group, which would wrap it in an ExceptionGroup.
                    error = e
                finally:
                    send.close()
        except anyio.get_cancelled_exc_class():
            # The handler was cancelled (the connection went away): the run stops too, unless
            # it belongs to the daemon rather than to this connection.
            if session.run_id is not None and not self._runs_outlive_connection:
                with anyio.CancelScope(shield=True), contextlib.suppress(BooCodeError):
                    await engine.cancel(sid, session.run_id)
            raise
        if error is not None:
            raise _refused(error) from error
        assert view is not None
        return await self._finish_turn(
            session, view, streamed_text=state["texts"] > 0, note_sent=state["note_sent"]
        )

    async def _forward(
        self,
        session: _Session,
        recv: MemoryObjectReceiveStream[tuple[AgentEvent, Any]],
        state: dict[str, Any],
    ) -> None:
        """The one consumer of a turn's events: forwards them to the editor in order."""
        sid, workspace = session.session_id, str(session.workspace)
        async with recv:
            async for event, reply in recv:
                worktree = state["worktree"]
                if isinstance(event, PermissionRequestEvent):
                    if reply is None:
                        # The event stream's copy of a request; the handler's copy asks the editor.
                        continue
                    answer, done = reply
                    try:
                        answer["option"] = await self._ask_permission(sid, event, worktree, workspace)
                    finally:
                        done.set()
                    continue
                if isinstance(event, AvailableCommandsEvent):
                    raw = event.raw
                    session.backend_commands = [
                        c for c in getattr(raw, "available_commands", []) if c.name not in _COMMAND_NAMES
                    ]
                    await self._send_commands(session)
                    continue
                update = _update_for(event)
                if update is None:
                    continue
                if not state["note_checked"] and session.run_id is not None:
                    # Say it before the agent speaks: a backend that could not restore its context
                    # answers without the earlier turns.
                    state["note_checked"] = True
                    with contextlib.suppress(BooCodeError):
                        note = (await session.engine.status(sid, session.run_id)).session_note
                        if note:
                            state["note_sent"] = True
                            await self._update(sid, update_agent_message_text(f"BooCode: {note}\n\n"))
                if isinstance(event, TextEvent):
                    state["texts"] += 1
                await self._update(sid, _rewrite_model(update, worktree, workspace))

    async def _ask_permission(
        self, sid: str, event: PermissionRequestEvent, worktree: str | None, workspace: str
    ) -> str | None:
        raw = event.raw
        raw_tool_call = raw if isinstance(raw, ToolCallUpdate) else getattr(raw, "tool_call", None)
        if isinstance(raw_tool_call, ToolCallUpdate):
            tool_call = raw_tool_call
        else:
            tool_call = ToolCallUpdate(tool_call_id=event.tool_call_id or event.request_id, title=event.title)
        tool_call = _rewrite_model(tool_call, worktree, workspace)  # type: ignore[assignment]
        options = [PermissionOption(option_id=o.option_id, name=o.name, kind=o.kind) for o in event.options]
        try:
            response = await self._conn.request_permission(
                session_id=sid, tool_call=tool_call, options=options
            )
        except RequestError:
            return None
        outcome = response.outcome
        if isinstance(outcome, AllowedOutcome):
            return outcome.option_id
        return None

    async def _finish_turn(
        self, session: _Session, view: SubagentView, *, streamed_text: bool, note_sent: bool
    ) -> PromptResponse:
        sid, engine = session.session_id, session.engine
        notes: list[str] = []
        if view.session_note and not note_sent:
            notes.append(f"BooCode: {view.session_note}")
        if view.final_message and not streamed_text:
            await self._update(sid, update_agent_message_text(view.final_message))
        if view.status in ("failed", "interrupted"):
            notes.append(f"BooCode: the run {view.status}: {view.error or 'no reason given'}")
        patch: PatchView | None = None
        if view.patch_id is not None:
            with contextlib.suppress(BooCodeError):
                patch = await engine.get_patch(sid, view.patch_id, include_hunks=False)
        notes.append(summarize_patch(patch, session.workspace))
        await self._update(sid, update_agent_message_text("\n\n" + "\n".join(notes)))
        await self._send_commands(session)
        if view.status == "cancelled":
            return PromptResponse(stop_reason="cancelled")
        reason = view.stop_reason if view.stop_reason in _STOP_REASONS else "end_turn"
        return PromptResponse(stop_reason=reason)  # type: ignore[arg-type]

    async def _command(self, session: _Session, name: str, arg: str) -> str:
        engine, sid, chat = session.engine, session.session_id, session.chat_id
        if name == "agent":
            current = session.agent or engine.config.default_agent
            if chat is not None:
                rows = [c for c in await engine.chats(sid) if c.id == chat]
                current = rows[0].agent if rows else current
            if not arg:
                return f"BooCode: agent is {current}; available: {', '.join(engine.registry.names())}"
            engine.registry.spec(arg)
            if chat is None:
                session.agent = arg
            elif arg != current:
                await engine.set_chat_agent(sid, chat, arg)
                if session.run_id is None and engine.config.pool.prewarm:
                    # Warm the new agent rather than the one the session started with.
                    await engine.release_chat(sid, chat)
                    await engine.prewarm_chat(sid, chat)
            return f"BooCode: later turns use {arg}."
        if chat is None:
            return "BooCode: nothing yet; this chat has had no turn."
        if name == "apply":
            return describe_apply(await engine.apply_pending(sid, chat_id=chat))
        if name == "discard":
            pending = await engine.list_patches(sid, chat_id=chat, status="pending")
            for p in pending:
                await engine.discard(sid, p.id)
            if not pending:
                return "BooCode: no pending patch to discard."
            return "BooCode: discarded patch " + ", ".join(p.id[:8] for p in pending) + "."
        if name == "patches":
            patches = await engine.list_patches(sid, chat_id=chat)
            if not patches:
                return "BooCode: this chat has no patches."
            return "BooCode patches (newest first):\n" + "\n".join(
                f"- {p.id[:8]} {p.status}: {p.file_count} files (+{p.additions} −{p.deletions}) "
                + ", ".join(f.path for f in p.files)
                for p in patches
            )
        # status
        history = await engine.chat_history(sid, chat)
        pending = await engine.list_patches(sid, chat_id=chat, status="pending")
        last = history[-1] if history else None
        lines = [f"BooCode chat {chat} in {session.workspace}"]
        if last is not None:
            lines.append(f"- agent {last.agent}; {len(history)} turns; last run {last.status}")
            if last.session_note:
                lines.append(f"- {last.session_note}")
        else:
            agents = [c.agent for c in await engine.chats(sid) if c.id == chat]
            lines.append(f"- agent {agents[0] if agents else '?'}; no turn yet")
        lines.append(
            "- pending patch: "
            + (
                f"{pending[0].id[:8]} (+{pending[0].additions} −{pending[0].deletions})"
                if pending
                else "none"
            )
        )
        return "\n".join(lines)

    # -- helpers ---------------------------------------------------------------------------

    async def _update(self, session_id: str, update: Any) -> None:
        await self._conn.session_update(session_id=session_id, update=update)

    async def _send_commands(self, session: _Session) -> None:
        ours = [
            AvailableCommand(
                name=name,
                description=desc,
                input=AvailableCommandInput(root=UnstructuredCommandInput(hint=hint)) if hint else None,
            )
            for name, desc, hint in BOOCODE_COMMANDS
        ]
        await self._update(session.session_id, update_available_commands(ours + session.backend_commands))
        session.commands_sent = True


# session/update lines can be large (whole files in tool-call diffs); the SDK's own default.
STDIO_LIMIT = 50 * 1024 * 1024


async def claim_stdio() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over stdin and the original stdout, with fd 1 pointed at stderr afterwards: a stray
    print (ours, a library's, a child's that inherits fd 1) cannot corrupt the protocol stream."""
    loop = asyncio.get_running_loop()
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    reader = asyncio.StreamReader(limit=STDIO_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    flow = asyncio.streams.FlowControlMixin()
    transport, _ = await loop.connect_write_pipe(lambda: flow, protocol_out)
    return reader, asyncio.StreamWriter(transport, flow, None, loop)


async def serve_acp(workspace: Path | None = None, agent: str | None = None) -> None:
    """Serve ACP on stdio until the client closes stdin or a SIGTERM; engines close with it."""
    reader, writer = await claim_stdio()
    async with anyio.create_task_group() as engines:
        host = EngineHost(engines)
        boocode = BooCodeAgent(host, workspace=workspace, agent=agent)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(procs.cancel_on_signals, tg.cancel_scope)
                # run_agent's stream parameters are named from the client's side: writer first.
                # session/close and session/resume are still "unstable" in the SDK's router;
                # without this it answers them "method not found" though BooCode implements them.
                await run_agent(boocode, writer, reader, use_unstable_protocol=True)  # type: ignore[arg-type]
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_LET_GO_S):
                await boocode.shutdown()
            # Engines exit through their own context managers: agents and their groups killed.
            host.close()


async def serve_acp_connection(
    engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, agent: str | None = None
) -> None:
    """Serve one editor connection on a daemon socket (what `boocode acp` relays) until it closes.
    Its turns and warm agents stay with the daemon when it does."""
    boocode = BooCodeAgent(
        FixedEngine(engine), workspace=engine.workspace, agent=agent, runs_outlive_connection=True
    )
    try:
        await run_agent(boocode, writer, reader, use_unstable_protocol=True)  # type: ignore[arg-type]
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_LET_GO_S):
            await boocode.shutdown()


def main_acp(workspace: Path | None = None, agent: str | None = None) -> None:
    """`boocode acp`: the ACP agent on stdio."""
    anyio.run(serve_acp, workspace, agent, backend="asyncio")
