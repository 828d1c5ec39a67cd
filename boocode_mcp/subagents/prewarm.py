"""Pre-warming a chat: its worktree, diff index and agent started before its first turn needs them."""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskGroup, TaskStatus

from boocode_mcp.agents.pool import AgentPool
from boocode_mcp.subagents.recording import ChatWorktrees

log = logging.getLogger(__name__)


class Prewarmer:
    """Starts chats' worktrees and agents in the background, in its own task group (`serve`)."""

    def __init__(self, worktrees: ChatWorktrees, pool: AgentPool) -> None:
        self._worktrees = worktrees
        self._pool = pool
        self._tg: TaskGroup | None = None
        # Chats being pre-warmed: the event is set when that ends.
        self._running: dict[str, anyio.Event] = {}

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the pre-warm tasks until cancelled (which cuts them short)."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._tg = None

    def prewarm(self, session_id: str, chat_id: str, agent: str) -> None:
        """Make a chat's worktree and start its agent in the background, so that its first turn
        finds both ready. A failure is left for that turn to meet and report."""
        if self._tg is None or chat_id in self._running:
            return
        self._running[chat_id] = anyio.Event()
        self._tg.start_soon(self._prewarm, session_id, chat_id, agent, name=f"pre-warm chat {chat_id}")

    async def prewarmed(self, chat_id: str) -> None:
        """Return once the chat's pre-warm (if any) has ended."""
        done = self._running.get(chat_id)
        if done is not None:
            await done.wait()

    async def _prewarm(self, session_id: str, chat_id: str, agent: str) -> None:
        try:
            tree, base = await self._worktrees.ensure(session_id, chat_id)
            await self._worktrees.prepare(tree, base)
            backend = await self._pool.get(chat_id, agent, tree.work_tree)
            await backend.ensure_session()
            # Its row written (and listeners told) before the pre-warm reads as done.
            await self._pool.sync()
        except Exception as e:
            log.info("pre-warming chat %s failed; its first turn starts it instead: %s", chat_id, e)
        finally:
            self._running.pop(chat_id).set()
