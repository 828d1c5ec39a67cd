"""Workflows for one engine: discovery, starting runs (at most `[workflows] max_concurrent` at a
time, the rest queued), their status as it changes, cancel, and start-up recovery of the runs a
killed BooCode left."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from jsonschema import Draft202012Validator

from boocode_mcp import procs, workspace
from boocode_mcp.config import Config
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.states import LIVE_WORKFLOW_STATUSES
from boocode_mcp.store import sessions
from boocode_mcp.store import workflow_runs as store
from boocode_mcp.store.db import Database
from boocode_mcp.store.workflow_runs import WorkflowRunRow
from boocode_mcp.subagents.locks import RunLocks
from boocode_mcp.subagents.recovery import run_owner_alive, still_its_group
from boocode_mcp.views import Usage
from boocode_mcp.workflows.discovery import CATALOG_DIR, Definition, Discovery, Scan, Source
from boocode_mcp.workflows.runtime import Execution, Settings, StepHost
from boocode_mcp.workflows.sandbox import Limits, SandboxPool
from boocode_mcp.workflows.views import (
    StepView,
    WorkflowInfo,
    WorkflowList,
    WorkflowLog,
    WorkflowRunView,
    WorkflowWarning,
)

log = logging.getLogger(__name__)

# Workflow runs waiting for a place (beyond `max_concurrent` running); more are refused.
MAX_QUEUED_RUNS = 64
# How often wait() re-reads a run that another process drives (no in-process event to wait on).
FOREIGN_POLL_S = 0.25
# cancel() returns once the run has ended, at most this long after asking.
CANCEL_WAIT_S = 20.0
INTERRUPTED_ERROR = (
    "the BooCode process running this workflow (pid {pid}) exited before it finished; run it again "
    "with the same args: its completed steps come from the step cache"
)


class Workflows:
    """The workflows of one workspace and the runs of them this process drives."""

    def __init__(
        self,
        *,
        host: StepHost,
        db: Database,
        git: workspace.GitRepo,
        user_dir: Path,
        config: Callable[[], Config],
        notify: Callable[[str], None],
    ) -> None:
        boocode = git.work_tree / ".boocode"
        self._host = host
        self._db = db
        self._git = git
        self._config = config
        self._notify = notify
        self._locks = RunLocks(boocode / "runs")
        self._sandboxes = SandboxPool(boocode / "logs" / "workflows.log")
        layers: list[tuple[Source, Path]] = [
            ("workspace", boocode / "workflows"),
            ("user", user_dir / "workflows"),
            ("builtin", CATALOG_DIR),
        ]
        self._discovery = Discovery(layers, self._describe)
        self._live: dict[str, Execution] = {}
        sizes = config()
        self._run_limiter = anyio.CapacityLimiter(sizes.workflows.max_concurrent)
        self._step_limiter = anyio.CapacityLimiter(sizes.pool.max_concurrent_runs)
        self._tg: TaskGroup | None = None

    # -- lifetime --------------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover what a killed BooCode left, then own the runs and the sandboxes until cancelled."""
        await self.recover()
        unlisten = self._host.add_listener(self._heard)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._sandboxes.serve)
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            unlisten()
            self._tg = None
            self._locks.close()

    def _heard(self, uri: str) -> None:
        """A step's run changed: the run following it reads it again."""
        if uri.startswith("subagents://"):
            subagent_id = uri.removeprefix("subagents://")
            for execution in self._live.values():
                execution.heard(subagent_id)

    async def recover(self) -> list[str]:
        """Mark the live runs of dead BooCode processes interrupted, and kill their sandboxes."""
        done: list[str] = []
        for row in await store.live_runs(self._db):
            if run_owner_alive(row.owner_pid, row.id, row.created_at, self._locks):
                continue
            pgid = row.sandbox_pgid
            if pgid is not None and still_its_group(pgid, row.sandbox_start) and procs.group_alive(pgid):
                procs.kill_group(pgid)
            if await store.mark_interrupted_if_live(
                self._db, row.id, INTERRUPTED_ERROR.format(pid=row.owner_pid)
            ):
                done.append(row.id)
                self._notify(f"workflows://{row.id}")
        return done

    def live_count(self) -> int:
        return len(self._live)

    # -- discovery -------------------------------------------------------------------------------

    def _limits(self) -> Limits:
        cfg = self._config().workflows
        return Limits(cpu_limit_s=cfg.cpu_limit_s, memory_limit_mb=cfg.memory_limit_mb)

    async def _describe(self, files: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        sandbox = await self._sandboxes.take(self._limits())
        try:
            await sandbox.send({"op": "describe", "files": [{"path": p, "source": t} for p, t in files]})
            answer = await sandbox.receive()
            if answer is None or answer.get("type") != "described":
                reason = await sandbox.exit_reason()
                return [{"error": f"could not be evaluated: {reason}"} for _ in files]
            results: list[dict[str, Any]] = answer["results"]
            return results
        finally:
            await sandbox.close()

    async def scan(self) -> Scan:
        return await self._discovery.scan()

    async def list(self) -> WorkflowList:
        scan = await self.scan()
        return WorkflowList(
            workflows=[
                WorkflowInfo(
                    name=d.name,
                    description=d.description,
                    args_schema=d.args_schema,
                    source=d.source,
                    path=str(d.path),
                )
                for d in scan.definitions.values()
            ],
            warnings=[WorkflowWarning(file=p.file, reason=p.reason) for p in scan.problems],
        )

    async def _definition(self, name: str) -> Definition:
        scan = await self.scan()
        found = scan.definitions.get(name)
        if found is not None:
            return found
        skipped = [p for p in scan.problems if Path(p.file).stem == name]
        if skipped:
            raise InvalidRequestError(f"workflow file {skipped[0].file} cannot be used: {skipped[0].reason}")
        known = ", ".join(scan.definitions) or "none"
        raise NotFoundError(f"no workflow named {name!r}; known: {known} (list_workflows shows each)")

    # -- runs ------------------------------------------------------------------------------------

    async def start(self, name: str, args: dict[str, Any] | None = None) -> WorkflowRunView:
        """Queue a run of the workflow `name` and return at once (status queued or running)."""
        if self._tg is None:
            raise InvalidRequestError("workflows are not available: the engine is shutting down")
        definition = await self._definition(name)
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise InvalidRequestError(f"args for workflow {name!r} must be a JSON object")
        _check_args(definition, args)
        queued = sum(1 for e in self._live.values() if e.status == "queued")
        if queued >= MAX_QUEUED_RUNS:
            raise InvalidRequestError(
                f"{queued} workflow runs already wait for a place ([workflows] max_concurrent = "
                f"{self._run_limiter.total_tokens:g} run at once); wait for some to finish or cancel them"
            )
        cfg = self._config()
        # The run's own session: its steps' chats and patches stay apart from the caller's.
        session_id = str(uuid.uuid4())
        await sessions.create(self._db, session_id, label=f"workflow {name}")
        run_id = str(uuid.uuid4())
        row = await store.insert_run(
            self._db,
            run_id=run_id,
            session_id=session_id,
            name=name,
            source=definition.source,
            path=str(definition.path),
            args=args,
            owner_pid=os.getpid(),
        )
        execution = Execution(
            row=row,
            definition=definition,
            host=self._host,
            db=self._db,
            git=self._git,
            settings=Settings(
                default_agent=cfg.default_agent,
                limits=self._limits(),
                default_budget_tokens=cfg.workflows.default_budget_tokens,
                cache_size=cfg.workflows.cache_size,
            ),
            sandboxes=self._sandboxes,
            step_limiter=self._step_limiter,
            notify=self._notify,
        )
        self._locks.hold(run_id)
        self._live[run_id] = execution
        self._tg.start_soon(self._drive, execution, name=f"workflow run {run_id}")
        self._notify(f"workflows://{run_id}")
        return await self.status(run_id)

    async def _drive(self, execution: Execution) -> None:
        try:
            async with self._run_limiter:
                await execution.run()
        finally:
            self._live.pop(execution.id, None)
            self._locks.drop(execution.id)

    async def _row(self, run_id: str) -> WorkflowRunRow:
        row = await store.get_run(self._db, run_id)
        if row is None:
            raise NotFoundError(f"no workflow run {run_id!r} in this workspace; run_workflow starts one")
        return row

    async def status(self, run_id: str) -> WorkflowRunView:
        row = await self._row(run_id)
        steps = await store.steps_for(self._db, run_id)
        logs = await store.logs_for(self._db, run_id)
        return WorkflowRunView(
            workflow_run_id=row.id,
            name=row.name,
            status=row.status,
            session_id=row.session_id,
            source=row.source,  # type: ignore[arg-type]
            args=row.args,
            steps=[
                StepView(
                    step_id=s.step_id,
                    phase=s.phase,
                    agent=s.agent,
                    status=s.status,
                    cached=s.cached,
                    subagent_id=s.subagent_id,
                    patch_id=s.patch_id,
                    usage=Usage.model_validate(s.usage) if s.usage else None,
                    error=s.error,
                )
                for s in steps
            ],
            logs=[WorkflowLog(message=m.message, phase=m.phase, at=m.created_at) for m in logs],
            result=row.result,
            error=row.error,
            usage=Usage.model_validate(row.usage) if row.usage else None,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    async def wait(self, run_id: str, timeout_s: float) -> WorkflowRunView:
        """The run after its next change (a status, a step, a log line) or `timeout_s`."""
        execution = self._live.get(run_id)
        if execution is not None:
            changed = execution.changed
            if execution.status not in LIVE_WORKFLOW_STATUSES and execution.done.is_set():
                return await self.status(run_id)
            with anyio.move_on_after(timeout_s):
                await changed.wait()
            return await self.status(run_id)
        view = await self.status(run_id)
        if view.status not in LIVE_WORKFLOW_STATUSES or timeout_s <= 0:
            return view
        mark = _mark(view)
        with anyio.move_on_after(timeout_s):
            # Driven by another process: no event crosses processes, so the database is re-read.
            while _mark(view := await self.status(run_id)) == mark:  # noqa: ASYNC110
                await anyio.sleep(FOREIGN_POLL_S)
        return view

    async def cancel(self, run_id: str) -> WorkflowRunView:
        """Cancel a run and its running steps; a finished run is returned as it is."""
        row = await self._row(run_id)
        if row.status not in LIVE_WORKFLOW_STATUSES:
            return await self.status(run_id)
        execution = self._live.get(run_id)
        if execution is not None:
            execution.stop("cancelled", "cancelled by cancel_workflow")
            with anyio.move_on_after(CANCEL_WAIT_S):
                await execution.done.wait()
        elif run_owner_alive(row.owner_pid, row.id, row.created_at, self._locks):
            raise InvalidRequestError(
                f"workflow run {run_id!r} runs in another BooCode process (pid {row.owner_pid}); cancel "
                "it through that process"
            )
        elif await store.mark_interrupted_if_live(
            self._db, run_id, INTERRUPTED_ERROR.format(pid=row.owner_pid)
        ):
            self._notify(f"workflows://{run_id}")
        return await self.status(run_id)


def _mark(view: WorkflowRunView) -> tuple[Any, ...]:
    return (view.status, len(view.logs), tuple((s.status, s.patch_id) for s in view.steps))


def _check_args(definition: Definition, args: dict[str, Any]) -> None:
    if definition.args_schema is None:
        return
    errors = sorted(
        Draft202012Validator(definition.args_schema).iter_errors(args), key=lambda e: list(e.path)
    )
    if errors:
        problems = "; ".join(
            f"{'args.' + '.'.join(str(p) for p in e.path) if e.path else 'args'}: {e.message}" for e in errors
        )
        raise InvalidRequestError(
            f"args for workflow {definition.name!r} do not match its schema: {problems} "
            "(list_workflows shows its args_schema)"
        )
