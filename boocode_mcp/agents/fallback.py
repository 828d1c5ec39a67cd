"""FallbackBackend: an ACP agent that runs a turn on its `fallback` command-line entry when its
ACP handshake fails.

The ACP agent stays the chat's agent: each turn tries it first (starting it if it is not running),
and only a turn whose start fails — the process exits before answering `initialize`, or
`initialize` / `session/new` answers with an error, or it never finishes starting — runs on the
fallback, with a session note saying so. While that turn runs, the state the pool records (pid,
pgid, status) is the fallback process's, so start-up recovery reaps it like any agent; afterwards
it is the ACP agent's again, keeping its session id for a later `session/load`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Unpack

from boocode_mcp.agents.acp_backend import WarmAcpBackend
from boocode_mcp.agents.backend import (
    BackendStatus,
    EventSink,
    McpProvider,
    PermissionHandler,
    PromptImage,
    SessionInfo,
    TurnResult,
)
from boocode_mcp.agents.backend_core import BackendArgs, BackendState
from boocode_mcp.agents.cli_backend import CliBackend
from boocode_mcp.agents.registry import ResolvedAgent
from boocode_mcp.agents.terminals import TerminalLedger
from boocode_mcp.errors import AgentCrashedError, AgentTurnError, BooCodeError
from boocode_mcp.store.agent_capabilities import AgentCapabilities

NOTE_FALLBACK = "agent {agent!r} failed its ACP handshake ({why}); this turn ran on its fallback {fallback!r}"
# The handshake error as the note quotes it (the full text, with the log's path, is in the log).
WHY_CHARS = 300


class FallbackBackend:
    """An AgentBackend that is a WarmAcpBackend until a turn's handshake fails; see the module."""

    def __init__(
        self,
        *,
        fallback: Callable[[], ResolvedAgent],
        terminal_ledger: TerminalLedger | None = None,
        mcp: McpProvider | None = None,
        on_capabilities: Callable[[AgentCapabilities], None] | None = None,
        **args: Unpack[BackendArgs],
    ) -> None:
        self._resolve_fallback = fallback
        self._args = args
        self._on_state = args.get("on_state")
        primary: BackendArgs = {**args, "on_state": self._inner_changed}
        # BooCode's MCP server goes to the ACP agent's sessions only: a command line has no way to
        # take one.
        self._primary = WarmAcpBackend(
            terminal_ledger=terminal_ledger, mcp=mcp, on_capabilities=on_capabilities, **primary
        )
        self._cli: CliBackend | None = None
        # The fallback while a turn is due to run (or runs) on it; None: the ACP agent's turn.
        self._active: CliBackend | None = None
        self._note: str | None = None
        self._closed = False

    # --- AgentBackend properties -------------------------------------------------------------

    @property
    def chat_id(self) -> str:
        return self._primary.chat_id

    @property
    def agent(self) -> str:
        return self._primary.agent

    @property
    def status(self) -> BackendStatus:
        return self._active.status if self._active is not None else self._primary.status

    @property
    def busy(self) -> bool:
        return self._primary.busy or (self._active is not None and self._active.busy)

    @property
    def last_active(self) -> float:
        cli = self._cli.last_active if self._cli is not None else 0.0
        return max(self._primary.last_active, cli)

    @property
    def acp_session_id(self) -> str | None:
        return self._primary.acp_session_id

    @property
    def env(self) -> dict[str, str]:
        return self._primary.env

    @property
    def capabilities(self) -> AgentCapabilities | None:
        """What the ACP agent said it can do when it last started (None if it never has)."""
        return self._primary.capabilities

    def touch(self) -> None:
        self._primary.touch()

    def state(self) -> BackendState:
        primary = self._primary.state()
        if self._active is None:
            current = primary
        else:
            # The pool keys rows by the ACP agent's name; the fallback's process is what runs now.
            current = dataclasses.replace(
                self._active.state(),
                agent=primary.agent,
                note=self._note,
                acp_session_id=primary.acp_session_id,
                load_supported=primary.load_supported,
            )
        cli = self._cli.state() if self._cli is not None else None
        if cli is None:
            return current
        return dataclasses.replace(
            current,
            input_tokens=primary.input_tokens + cli.input_tokens,
            output_tokens=primary.output_tokens + cli.output_tokens,
            cost=primary.cost + cli.cost,
        )

    def _inner_changed(self, _: BackendState) -> None:
        self._changed()

    def _changed(self) -> None:
        if self._on_state is not None:
            self._on_state(self.state())

    # --- sessions and turns --------------------------------------------------------------------

    async def ensure_session(self) -> SessionInfo:
        if self._active is not None:
            return await self._fallback_session(self._active)
        try:
            return await self._primary.ensure_session()
        except (AgentCrashedError, AgentTurnError) as e:
            if self._closed:
                raise
            return await self._fallback_session(self._switch(e))

    def _switch(self, error: BooCodeError) -> CliBackend:
        """Make the fallback this turn's agent; an error says why neither can run."""
        if self._cli is None:
            try:
                resolved = self._resolve_fallback()
            except BooCodeError as e:
                raise type(error)(f"{error}; its fallback cannot run either: {e}") from e
            # An earlier session of the chat makes this turn a follow-up for the fallback too.
            resume = self._primary.state().acp_session_id
            cli: BackendArgs = {
                **self._args,
                "agent": resolved,
                "resume_session_id": resume,
                "on_state": self._inner_changed,
            }
            self._cli = CliBackend(**cli)
        why = " ".join(str(error).split())
        if len(why) > WHY_CHARS:
            why = why[: WHY_CHARS - 1] + "…"
        self._note = NOTE_FALLBACK.format(agent=self.agent, why=why, fallback=self._cli.agent)
        self._active = self._cli
        self._changed()
        return self._cli

    async def _fallback_session(self, cli: CliBackend) -> SessionInfo:
        info = await cli.ensure_session()
        note = "; ".join(n for n in (self._note, info.note) if n)
        return dataclasses.replace(info, note=note)

    async def prompt(
        self,
        text: str,
        on_event: EventSink,
        permissions: PermissionHandler,
        images: Sequence[PromptImage] = (),
    ) -> TurnResult:
        if self._active is None:
            # The ACP agent's turn, unless it cannot start now (it died since ensure_session).
            await self.ensure_session()
        if self._active is None:
            return await self._primary.prompt(text, on_event, permissions, images)
        try:
            # A fallback turn with images fails saying so: the fallback is a command line.
            return await self._active.prompt(text, on_event, permissions, images)
        finally:
            # The next turn tries the ACP agent again.
            self._active = None
            self._changed()

    async def cancel(self) -> None:
        if self._active is not None:
            await self._active.cancel()
        else:
            await self._primary.cancel()

    async def health(self) -> bool:
        if self._active is not None:
            return await self._active.health()
        return await self._primary.health()

    async def close(self) -> None:
        self._closed = True
        await self._primary.close()
        if self._cli is not None:
            await self._cli.close()
