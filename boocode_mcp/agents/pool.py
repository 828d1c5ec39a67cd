"""AgentPool: warm backends keyed by (chat_id, agent), with an LRU cap, an idle TTL, a health tick,
and `agent_sessions` rows kept current.

The pool owns two background tasks (the tick and the row writer) in a task group that lives as
long as `pool.running()` (or `async with pool`); leaving it disposes of every backend, so no agent
process outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc

from boocode_mcp import procs
from boocode_mcp.agents.acp_backend import WarmAcpBackend
from boocode_mcp.agents.backend import AgentBackend, McpProvider
from boocode_mcp.agents.backend_core import CANCEL_TIMEOUT_S, BackendArgs, BackendState
from boocode_mcp.agents.cli_backend import CliBackend
from boocode_mcp.agents.fallback import FallbackBackend
from boocode_mcp.agents.lifecycle import PoolEntry, choose_evictions
from boocode_mcp.agents.registry import AgentRegistry, ResolvedAgent
from boocode_mcp.agents.terminals import TerminalRecords
from boocode_mcp.config import AgentSpec, PoolConfig
from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.store import agent_capabilities
from boocode_mcp.store import agent_sessions as rows
from boocode_mcp.store.agent_capabilities import AgentCapabilities
from boocode_mcp.store.agent_sessions import AgentSessionRow
from boocode_mcp.store.db import Database, DatabaseError

log = logging.getLogger(__name__)

Key = tuple[str, str]
MAX_TICK_S = 30.0
# How long the row writer lets changes of agent sessions gather before writing them.
ROW_WRITE_DELAY_S = 0.05


class PooledBackend(AgentBackend, Protocol):
    """What the pool needs of a backend beyond AgentBackend (ACP, command-line or with fallback)."""

    @property
    def env(self) -> dict[str, str]: ...

    @property
    def acp_session_id(self) -> str | None: ...

    def touch(self) -> None: ...

    def state(self) -> BackendState: ...


def config_hash(spec: AgentSpec, env: Mapping[str, str]) -> str:
    """A fingerprint of how an agent was launched, recorded so a later look can tell it changed."""
    blob = json.dumps(
        {"spec": spec.model_dump(mode="json"), "env": dict(sorted(env.items()))}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class AgentPool:
    """Get-or-create warm agent sessions; see the module docstring."""

    def __init__(
        self,
        registry: AgentRegistry,
        config: PoolConfig,
        *,
        log_dir: Path,
        db: Database | None = None,
        owner_pid: int | None = None,
        worker_id: str | None = None,
        tick_s: float | None = None,
        env: Mapping[str, str] | None = None,
        cancel_timeout_s: float = CANCEL_TIMEOUT_S,
        mcp: McpProvider | None = None,
    ) -> None:
        self._registry = registry
        self._mcp = mcp
        # What agents said they can do as they started, waiting for the writer.
        self._capabilities: dict[str, AgentCapabilities] = {}
        self._config = config
        self._log_dir = log_dir
        self._db = db
        self.owner_pid = owner_pid if owner_pid is not None else os.getpid()
        # On a PostgreSQL store, the worker this pool serves: recorded as holding its agents warm.
        self.worker_id = worker_id
        self._tick_s = tick_s if tick_s is not None else min(config.idle_ttl_s / 4, MAX_TICK_S)
        self._env = dict(env or {})
        self._cancel_timeout = cancel_timeout_s
        self._backends: dict[Key, PooledBackend] = {}
        # Without a database, the session ids of evicted backends, so a later get() can load them.
        self._last_session: dict[Key, str] = {}
        # Usage totals the row held before this pool's backend took over (the backend counts its own).
        self._base_rows: dict[Key, AgentSessionRow] = {}
        self._config_hashes: dict[Key, str] = {}
        # config_hash of the specs in use (a spec is an immutable object the registry keeps until
        # the configuration changes): asked on every turn, computed once per spec and environment.
        self._launch_hashes: dict[int, tuple[AgentSpec, dict[str, str], str]] = {}
        self._pending: dict[Key, AgentSessionRow] = {}
        # Told the chat id of each row written (the runner tells listeners of agent-sessions://).
        self.on_written: Callable[[str], None] | None = None
        self._wake = asyncio.Event()
        # Set with `_wake` when a change is to be written without delay; the (pid, pgid) of each
        # session as last queued, to tell.
        self._urgent = asyncio.Event()
        self._groups: dict[Key, tuple[int | None, int | None]] = {}
        self._write_lock = asyncio.Lock()
        self._get_lock = asyncio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._disposed = False

    # --- context --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AgentPool]:
        """The pool with its background tasks (the tick, the row writer) in a task group; leaving
        disposes of every backend, so no agent process outlives it."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._tick_loop, name="AgentPool.tick")
            if self._db is not None:
                tg.start_soon(self._writer_loop, name="AgentPool.writer")
            try:
                yield self
            finally:
                self._tg = None
                with anyio.CancelScope(shield=True):
                    await self.dispose()
                tg.cancel_scope.cancel()

    async def __aenter__(self) -> AgentPool:
        """`async with pool` is `async with pool.running()`."""
        stack = contextlib.AsyncExitStack()
        pool = await stack.enter_async_context(self.running())
        self._stack = stack
        return pool

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    # --- public API -----------------------------------------------------------------------

    async def get(
        self, chat_id: str, agent: str, cwd: Path, *, env: Mapping[str, str] | None = None
    ) -> AgentBackend:
        """The warm backend of (chat, agent), created if needed (the process starts on first use).

        `env` (e.g. a model chosen through the spec's model_env) is added to the agent's
        environment; an idle backend started with a different `env`, or from a launch spec the
        configuration has changed since, is replaced, keeping its session (loaded again where the
        agent supports it).
        """
        resolved = self._registry.resolve(agent)
        if self._db is not None and self._tg is None:
            raise InvalidRequestError("AgentPool with a database must be used as `async with AgentPool(...)`")
        key = (chat_id, agent)
        wanted_env = {**self._env, **(env or {})}
        async with self._get_lock:
            if self._disposed:
                raise InvalidRequestError("the agent pool is shut down; no new agent sessions can start")
            existing = self._backends.get(key)
            if existing is not None and existing.status != "closed":
                # The same launch spec (the config may have changed since) and environment.
                launch = self._launch_hash(resolved.spec, wanted_env if env is not None else existing.env)
                if existing.busy or self._config_hashes.get(key) == launch:
                    # Being handed out counts as use: the caller is about to prompt it.
                    existing.touch()
                    return existing
                await self._close_keys([key])
            resume = await self._resume_id(key)
            await self._evict(reserve=1)
            mine: list[PooledBackend] = []
            backend = self._new_backend(
                chat_id,
                resolved,
                cwd,
                resume,
                wanted_env,
                lambda state: self._on_state(key, state, mine),
            )
            mine.append(backend)
            self._backends[key] = backend
            self._config_hashes[key] = self._launch_hash(resolved.spec, wanted_env)
            self._on_state(key, backend.state(), mine)
            await self.sync()
            return backend

    def _new_backend(
        self,
        chat_id: str,
        resolved: ResolvedAgent,
        cwd: Path,
        resume: str | None,
        env: dict[str, str],
        on_state: Callable[[BackendState], None],
    ) -> PooledBackend:
        """The backend class the agent's spec calls for: ACP, command-line, or ACP with a fallback."""
        args: BackendArgs = {
            "chat_id": chat_id,
            "agent": resolved,
            "cwd": cwd,
            "log_dir": self._log_dir,
            "resume_session_id": resume,
            "env": env,
            "on_state": on_state,
            "cancel_timeout_s": self._cancel_timeout,
        }
        if resolved.spec.protocol == "cli":
            return CliBackend(**args)
        # The process groups of an ACP agent's terminals are recorded, so recovery can reap them.
        ledger = (
            None
            if self._db is None
            else TerminalRecords(self._db, owner_pid=self.owner_pid, chat_id=chat_id, agent=resolved.name)
        )
        if resolved.spec.fallback is not None:
            fallback = functools.partial(self._registry.resolve, resolved.spec.fallback)
            return FallbackBackend(
                fallback=fallback,
                terminal_ledger=ledger,
                mcp=self._mcp,
                on_capabilities=self._on_capabilities,
                **args,
            )
        return WarmAcpBackend(
            terminal_ledger=ledger, mcp=self._mcp, on_capabilities=self._on_capabilities, **args
        )

    def _launch_hash(self, spec: AgentSpec, env: Mapping[str, str]) -> str:
        kept = self._launch_hashes.get(id(spec))
        if kept is not None and kept[0] is spec and kept[1] == env:
            return kept[2]
        launch = config_hash(spec, env)
        if len(self._launch_hashes) >= 64:
            self._launch_hashes.clear()
        self._launch_hashes[id(spec)] = (spec, dict(env), launch)
        return launch

    def peek(self, chat_id: str, agent: str) -> AgentBackend | None:
        return self._backends.get((chat_id, agent))

    def backends(self) -> list[AgentBackend]:
        return list(self._backends.values())

    async def close_chat(self, chat_id: str) -> None:
        async with self._get_lock:
            await self._close_keys([k for k in self._backends if k[0] == chat_id])

    async def dispose(self) -> None:
        """Close every backend (and so every agent process group); the pool takes no new work."""
        self._disposed = True
        async with self._get_lock:
            await self._close_keys(list(self._backends))
        await self.sync()

    async def sync(self) -> None:
        """Write every pending row change now (the writer task does this on its own, too)."""
        async with self._write_lock:
            while self._pending or self._capabilities:
                batch, self._pending = self._pending, {}
                for row in batch.values():
                    await self._write(row)
                    if self.on_written is not None:
                        self.on_written(row.chat_id)
                noted, self._capabilities = self._capabilities, {}
                for caps in noted.values():
                    await self._write_capabilities(caps)

    async def tick(self) -> None:
        """One health check and eviction pass (the pool's tick task runs this periodically)."""
        for backend in list(self._backends.values()):
            await backend.health()
        async with self._get_lock:
            await self._evict(reserve=0)

    # --- internals --------------------------------------------------------------------------

    async def _resume_id(self, key: Key) -> str | None:
        if self._db is None:
            return self._last_session.get(key)
        row = await rows.get(self._db, *key)
        if row is None:
            self._base_rows[key] = AgentSessionRow(chat_id=key[0], agent=key[1])
            return None
        self._base_rows[key] = row
        owner = row.owner_pid
        if owner is not None and owner != self.owner_pid and row.status in ("idle", "active"):
            if procs.pid_alive(owner):
                raise InvalidRequestError(
                    f"chat {key[0]}'s {key[1]!r} agent is driven by another BooCode process "
                    f"(pid {owner}); use that process, or stop it first"
                )
            if row.pgid is not None:
                # Its owner died without cleaning up: make sure the old agent is gone before a
                # new process loads the same session.
                procs.kill_group(row.pgid)
        return row.acp_session_id

    async def _evict(self, *, reserve: int) -> None:
        entries = [
            PoolEntry(key=k, last_active=b.last_active, busy=b.busy) for k, b in self._backends.items()
        ]
        victims = choose_evictions(
            entries, time.time(), self._config.max_warm, self._config.idle_ttl_s, reserve=reserve
        )
        if victims:
            log.info("evicting idle agent sessions: %s", victims)
            await self._close_keys(victims)

    async def _close_keys(self, keys: list[Key]) -> None:
        backends = [(k, self._backends.pop(k)) for k in keys if k in self._backends]
        for key, backend in backends:
            sid = backend.acp_session_id
            if sid is not None:
                self._last_session[key] = sid

        async def close_one(backend: PooledBackend) -> None:
            try:
                await backend.close()
            except Exception:
                log.exception("closing agent %s of chat %s failed", backend.agent, backend.chat_id)

        async with anyio.create_task_group() as tg:
            for _, backend in backends:
                tg.start_soon(close_one, backend)
        await self.sync()

    def _on_state(self, key: Key, state: BackendState, source: list[PooledBackend]) -> None:
        """Called synchronously by backends; queues the row for the writer (never awaits)."""
        if self._db is None:
            return
        current = self._backends.get(key)
        if current is not None and source and current is not source[0]:
            # A replaced backend finishing late must not overwrite its successor's row.
            return
        base = self._base_rows.get(key) or AgentSessionRow(chat_id=key[0], agent=key[1])
        if self._groups.get(key, ()) != (state.pid, state.pgid):
            # Which process group to kill after a crash is never left unwritten for long.
            self._groups[key] = (state.pid, state.pgid)
            self._urgent.set()
        self._pending[key] = base.with_(
            status=state.status,
            backend=state.backend,
            acp_session_id=state.acp_session_id,
            pid=state.pid,
            pgid=state.pgid,
            owner_pid=self.owner_pid,
            owner_host=procs.host_name(),
            worker_id=self.worker_id,
            config_hash=self._config_hashes.get(key, base.config_hash),
            last_active_at=state.last_active,
            load_supported=state.load_supported,
            note=state.note,
            input_tokens=base.input_tokens + state.input_tokens,
            output_tokens=base.output_tokens + state.output_tokens,
            cost=base.cost + state.cost,
        )
        self._wake.set()

    def _on_capabilities(self, caps: AgentCapabilities) -> None:
        """Called synchronously by backends as their agent starts; queued for the writer."""
        if self._db is None:
            return
        self._capabilities[caps.agent] = caps
        self._wake.set()

    async def _write_capabilities(self, caps: AgentCapabilities) -> None:
        assert self._db is not None
        try:
            await agent_capabilities.record(self._db, caps)
        except DatabaseError as e:
            log.warning("cannot record the capabilities of agent %s: %s", caps.agent, e)

    async def _write(self, row: AgentSessionRow) -> None:
        assert self._db is not None
        try:
            await rows.upsert(self._db, row)
        except DatabaseError as e:
            # Most likely the chat row does not exist (foreign key); the pool keeps working.
            log.warning("cannot record agent session %s/%s: %s", row.chat_id, row.agent, e)

    async def _writer_loop(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent.is_set():
                # Changes that come meanwhile are written with this one, only the last state of a
                # row: a short turn's session, active and then idle again, is one write (the turn's
                # end syncs at once). An agent process started or gone is written at once.
                with anyio.move_on_after(ROW_WRITE_DELAY_S):
                    await self._urgent.wait()
            self._wake.clear()
            self._urgent.clear()
            await self.sync()

    async def _tick_loop(self) -> None:
        while True:
            await anyio.sleep(self._tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("agent pool tick failed")
