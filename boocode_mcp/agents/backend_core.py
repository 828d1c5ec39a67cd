"""What every backend of one (chat, agent) keeps, whatever runs the agent (an ACP session, a command
run once per turn): who it is, where it logs, its status and activity, its usage totals, and the
state snapshots the pool records `agent_sessions` rows from."""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

from boocode_mcp.agents.backend import (
    BackendStatus,
    EventSink,
    PermissionHandler,
    PromptImage,
    SessionInfo,
    TurnResult,
)
from boocode_mcp.agents.registry import ResolvedAgent
from boocode_mcp.errors import AgentBusyError, AgentCrashedError

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BackendState:
    """A snapshot of a backend, handed to `on_state` whenever something in it changed."""

    chat_id: str
    agent: str
    status: BackendStatus
    acp_session_id: str | None
    pid: int | None
    pgid: int | None
    load_supported: bool | None
    note: str | None
    last_active: float
    # Totals over this backend object's life (the pool adds them to what the row held before).
    input_tokens: int
    output_tokens: int
    cost: float
    # Which kind of backend ran the last turn: an ACP session, or a command-line agent's process.
    backend: Literal["acp", "cli"] = "acp"


class BackendArgs(TypedDict):
    """The constructor arguments every backend takes (the pool passes the same to each kind)."""

    chat_id: str
    agent: ResolvedAgent
    cwd: Path
    log_dir: Path
    # The agent session the chat had before this backend (from the agent_sessions row).
    resume_session_id: NotRequired[str | None]
    # The caller's additions to the agent's environment (e.g. a model through the spec's model_env).
    env: NotRequired[Mapping[str, str] | None]
    on_state: NotRequired[Callable[[BackendState], None] | None]
    cancel_timeout_s: NotRequired[float]


def describe_exit(code: int | None) -> str:
    """How a process ended, for an error message ("exited with code 3", "was killed by SIGKILL")."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class BackendCore(abc.ABC):
    """The part of a backend that does not depend on how the agent runs; see the module docstring."""

    kind: Literal["acp", "cli"]

    def __init__(self, args: BackendArgs) -> None:
        self._chat_id = args["chat_id"]
        self._agent = args["agent"]
        self._cwd = args["cwd"].resolve()
        self._log_dir = args["log_dir"]
        self._env = dict(args.get("env") or {})
        self._on_state = args.get("on_state")
        self._cancel_timeout = args.get("cancel_timeout_s", CANCEL_TIMEOUT_S)
        safe_chat = "".join(c if c.isalnum() or c in "-_." else "_" for c in self._chat_id)
        self.log_path = self._log_dir / f"{self._agent.name}-{safe_chat}.log"
        self._status: BackendStatus = "idle"
        self._last_active = time.time()
        self._note: str | None = None
        # Whether the agent can take up the chat's earlier context (None: not known yet).
        self._load_supported: bool | None = None
        self._closed = False
        self._busy = False
        # Usage totals over this backend's life.
        self._input_tokens = 0
        self._output_tokens = 0
        self._cost = 0.0
        self._turn_ended_at = 0.0
        # Set while no turn runs; cancel() and close() wait on it.
        self._turn_done = asyncio.Event()
        self._turn_done.set()
        # cancel() arrived for the turn in flight (possibly before its prompt was sent).
        self._cancel_requested = False

    @property
    def chat_id(self) -> str:
        return self._chat_id

    @property
    def agent(self) -> str:
        return self._agent.name

    @property
    def status(self) -> BackendStatus:
        return self._status

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def last_active(self) -> float:
        return self._last_active

    @property
    def note(self) -> str | None:
        return self._note

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment additions this backend was created with."""
        return dict(self._env)

    def touch(self) -> None:
        """Count as activity now (the pool calls this when it hands the backend out)."""
        self._last_active = time.time()

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The agent's process (the leader of its group) while one runs."""

    @abc.abstractmethod
    def _recorded_session_id(self) -> str | None:
        """The agent session id the chat's row keeps (what a later backend resumes)."""

    def state(self) -> BackendState:
        pid = self.pid
        return BackendState(
            chat_id=self._chat_id,
            agent=self._agent.name,
            status=self._status,
            acp_session_id=self._recorded_session_id(),
            pid=pid,
            pgid=pid,
            load_supported=self._load_supported,
            note=self._note,
            last_active=self._last_active,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            cost=self._cost,
            backend=self.kind,
        )

    async def prompt(
        self,
        text: str,
        on_event: EventSink,
        permissions: PermissionHandler,
        images: Sequence[PromptImage] = (),
    ) -> TurnResult:
        """One turn: the agent's session ensured, then `_run_turn`; one at a time."""
        if self._busy:
            raise self._busy_error()
        self._busy = True
        self._cancel_requested = False
        self._turn_done = asyncio.Event()
        try:
            await self.ensure_session()
            return await self._run_turn(text, on_event, permissions, images)
        finally:
            self._turn_ends()
            self._busy = False
            self._last_active = self._turn_ended_at = time.time()
            if self._status == "active":
                self._status = "idle"
            self._changed()
            self._turn_done.set()

    @abc.abstractmethod
    async def ensure_session(self) -> SessionInfo: ...

    @abc.abstractmethod
    async def _run_turn(
        self, text: str, on_event: EventSink, permissions: PermissionHandler, images: Sequence[PromptImage]
    ) -> TurnResult: ...

    @abc.abstractmethod
    def _turn_ends(self) -> None:
        """Let go of what the turn held, once it has ended (however it ended)."""

    def _changed(self) -> None:
        if self._on_state is not None:
            try:
                self._on_state(self.state())
            except Exception:
                log.exception("on_state callback failed for %s/%s", self._chat_id, self._agent.name)

    def _set_status(self, status: BackendStatus) -> None:
        self._status = status
        self._changed()

    def _closed_error(self) -> AgentCrashedError:
        return AgentCrashedError(
            f"agent {self._agent.name!r} for chat {self._chat_id} was closed; ask the pool for a new one"
        )

    def _busy_error(self) -> AgentBusyError:
        return AgentBusyError(
            f"agent {self._agent.name!r} in chat {self._chat_id} is already running a prompt; "
            "wait for it or cancel it first"
        )
