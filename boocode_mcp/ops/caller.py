"""Who an operation acts for, and what it hands back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from boocode_mcp.delegation import CallingRun
    from boocode_mcp.engine import Engine

M = TypeVar("M", bound=BaseModel)


class Caller:
    """The engine and the caller's own session (an MCP connection's, an API connection's).

    The own session is created on first use: only operations that create work (a new chat) or
    act on "my" pending patches need one; ids and listings reach the whole workspace. (A plain
    class, not a dataclass: the API validates operation arguments with pydantic, which must take
    a Caller as it is rather than look into its fields.)

    `delegator` is set when the caller is an agent calling BooCode's MCP server from inside a run:
    that run, whose session is the caller's own, whose children its spawns become, and whose
    children are the only runs it may cancel.
    """

    __slots__ = ("delegator", "engine", "own_session")

    def __init__(
        self,
        engine: Engine,
        own_session: Callable[[], Awaitable[str]],
        delegator: CallingRun | None = None,
    ) -> None:
        self.engine = engine
        self.own_session = own_session
        self.delegator = delegator

    async def session_filter(self, session_id: str | None) -> str | None:
        """An explicit session narrowing a lookup or listing; it must exist."""
        if session_id is None:
            return None
        return await self.engine.ensure_session(session_id, create=False)


@dataclass(frozen=True)
class Outcome(Generic[M]):
    """An operation's answer: the structured result and its text for hosts that read only text."""

    result: M
    text: str


def clip(text: str | None, limit: int = 300) -> str:
    """One line of at most `limit` characters, for the text summaries."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
