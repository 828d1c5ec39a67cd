"""One workflow run, from its sandbox's first message to its final status.

The script runs in a sandbox process (sandbox.py); what it asks for arrives as messages. Each
`agent(id, …).run(input)` is a step: its cache key (SHA-256 of canonical JSON {step_id, prompt,
agent, model, mode, base commit}) is looked up in the step cache; a hit answers at once with the
stored result (`cached: true`), a miss becomes an ordinary subagent run in a chat of its own, in the
run's session, at the run's base commit. Budgets (the run's, a parallel/pipeline group's, a step's)
are checked before a step is dispatched and after it reports its usage; exhausting one fails the
run, naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from boocode_mcp import workspace
from boocode_mcp.errors import BooCodeError
from boocode_mcp.states import TERMINAL_STATUSES, WorkflowStatus
from boocode_mcp.store import step_cache
from boocode_mcp.store import workflow_runs as store
from boocode_mcp.store.db import Database
from boocode_mcp.store.workflow_runs import WorkflowRunRow
from boocode_mcp.views import PatchView, SubagentView
from boocode_mcp.workflows.discovery import Definition
from boocode_mcp.workflows.sandbox import Limits, Sandbox, SandboxPool

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 1_000_000
# A step's result carries its patch's diff (a judge step compares them) up to this size.
MAX_DIFF_CHARS = 50_000
MAX_RESULT_CHARS = 4_000_000
MAX_LOGS = 1000
MAX_LOG_CHARS = 4000
# Bound on the bookkeeping that ends a run (cancelling its steps, writing its status) when it runs
# shielded during a cancel or a shutdown.
FINISH_TIMEOUT_S = 30.0


class StepHost(Protocol):
    """What a workflow run needs of the engine: subagent runs."""

    async def spawn(
        self,
        session_id: str | None,
        prompt: str,
        *,
        agent: str | None = None,
        model: str | None = None,
        mode: str | None = None,
        base: str | None = None,
    ) -> SubagentView: ...

    async def status(self, session_id: str | None, subagent_id: str) -> SubagentView: ...

    def add_listener(self, fn: Callable[[str], None]) -> Callable[[], None]: ...

    async def cancel(self, session_id: str | None, subagent_id: str) -> SubagentView: ...

    async def get_patch(
        self, session_id: str | None, patch_id: str, *, include_hunks: bool = True, include_diff: bool = False
    ) -> PatchView: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a run takes from the configuration when it starts."""

    default_agent: str
    limits: Limits
    default_budget_tokens: int
    cache_size: int


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    *, step_id: str, prompt: str, agent: str, model: str | None, mode: str | None, base: str
) -> str:
    """The step cache's key: what the step was asked, of whom, on which commit."""
    fields = {
        "step_id": step_id,
        "prompt": prompt,
        "agent": agent,
        "model": model,
        "mode": mode,
        "base_commit": base,
    }
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def random_seed(name: str, args: dict[str, Any]) -> list[int]:
    """Math.random's seed: the same workflow with the same args draws the same numbers."""
    digest = hashlib.sha256(f"{name}\0{canonical_json(args)}".encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "big") for i in range(0, 16, 4)]


class StepFailed(Exception):
    """A step that did not complete; the script sees its promise rejected with this message."""


class RunFailed(Exception):
    """What ends the whole run (an exhausted budget); the message is the run's error."""


@dataclasses.dataclass
class Budget:
    """A limit on tokens and dispatched steps, and what has been spent against it."""

    label: str
    tokens: int | None = None
    steps: int | None = None
    tokens_used: int = 0
    steps_used: int = 0
    origin: str = ""

    def before_dispatch(self) -> None:
        if self.steps is not None and self.steps_used >= self.steps:
            raise RunFailed(
                f"{self.label} is exhausted: {self.steps_used} of {self.steps} steps dispatched{self.origin}"
            )
        if self.tokens is not None and self.tokens_used >= self.tokens:
            raise RunFailed(
                f"{self.label} is exhausted: {self.tokens_used} of {self.tokens} tokens used{self.origin}"
            )

    def after_step(self, step_id: str) -> None:
        if self.tokens is not None and self.tokens_used > self.tokens:
            raise RunFailed(
                f"{self.label} is exhausted: {self.tokens_used} tokens used, over its {self.tokens}, after "
                f"step {step_id!r}{self.origin}"
            )


def _tokens(usage: dict[str, Any] | None) -> int:
    if not usage:
        return 0
    return int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)


class Execution:
    """One workflow run driven by this process."""

    def __init__(
        self,
        *,
        row: WorkflowRunRow,
        definition: Definition,
        host: StepHost,
        db: Database,
        git: workspace.GitRepo,
        settings: Settings,
        sandboxes: SandboxPool,
        step_limiter: anyio.CapacityLimiter,
        notify: Callable[[str], None],
    ) -> None:
        self.row = row
        self.id = row.id
        self._definition = definition
        self._host = host
        self._db = db
        self._git = git
        self._settings = settings
        self._sandboxes = sandboxes
        self._step_limiter = step_limiter
        self._notify = notify
        self.status: WorkflowStatus = "queued"
        self.changed = anyio.Event()
        self.done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._stop: tuple[WorkflowStatus, str] | None = None
        # Set once the run itself decides to end (its script finished or died, a budget ran out, a
        # cancel): its steps still running are cancelled then. A shutdown leaves them to the runner,
        # which records them as interrupted.
        self._ending = False
        self._sandbox: Sandbox | None = None
        self._base = ""
        self._seq = 0
        self._logs = 0
        self._step_events: dict[str, anyio.Event] = {}
        self._usage = {"input_tokens": 0, "output_tokens": 0, "cost": 0.0}
        self._run_budget = Budget(
            "the run's token budget",
            tokens=settings.default_budget_tokens,
            origin=f" ([workflows] default_budget_tokens = {settings.default_budget_tokens})",
        )
        self._scopes: dict[int, Budget] = {}

    # -- what the service asks -----------------------------------------------------------------

    def stop(self, status: WorkflowStatus, reason: str) -> None:
        """End the run as `status` (its running steps are cancelled), once it is running; a queued
        run is ended by the service before it starts."""
        if self._stop is None:
            self._stop = (status, reason)
        self._ending = True
        if self._scope is not None:
            self._scope.cancel()

    def _stopped(self) -> tuple[WorkflowStatus, str] | None:
        return self._stop

    def _changed(self) -> None:
        event, self.changed = self.changed, anyio.Event()
        event.set()
        self._notify(f"workflows://{self.id}")

    async def _set(self, status: WorkflowStatus, **fields: Any) -> None:
        self.status = status
        await store.set_run(self._db, self.id, status, **fields)
        self._changed()

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> None:
        """The whole run; its final status is written even when BooCode shuts down during it."""
        try:
            stopped = self._stopped()
            if stopped is not None:
                await self._finish(stopped[0], error=stopped[1])
                return
            with anyio.CancelScope() as self._scope:
                status, value, error = await self._drive()
            stopped = self._stopped()
            if stopped is not None:
                status, value, error = stopped[0], None, stopped[1]
        except anyio.get_cancelled_exc_class():
            # BooCode is shutting down: the steps' own runs are interrupted by the runner.
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
                await self._finish(
                    "interrupted",
                    error="BooCode shut down during the workflow; run it again with the same args: its "
                    "completed steps come from the step cache",
                )
            raise
        except Exception as e:
            log.exception("workflow run %s failed", self.id)
            status, value, error = "failed", None, f"internal error: {type(e).__name__}: {e}"
        with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
            await self._finish(status, error=error, result=value)

    async def _finish(self, status: WorkflowStatus, *, error: str | None = None, result: Any = None) -> None:
        try:
            if self._sandbox is not None:
                await self._sandbox.close()
            await self._set(
                status,
                finished_at=time.time(),
                error=error,
                result=result,
                usage=self._usage if any(self._usage.values()) else None,
            )
        finally:
            self.done.set()

    async def _drive(self) -> tuple[WorkflowStatus, Any, str | None]:
        self._base = await workspace.capture_head(self._git)
        sandbox = await self._sandboxes.take(self._settings.limits)
        self._sandbox = sandbox
        await self._set(
            "running",
            started_at=time.time(),
            base_sha=self._base,
            sandbox_pgid=sandbox.pgid,
            sandbox_start=sandbox.token,
        )
        await sandbox.send(
            {
                "op": "run",
                "source": self._definition.text,
                "filename": self._definition.path.name,
                "args": self.row.args,
                "seed": random_seed(self.row.name, self.row.args),
            }
        )
        outcome: tuple[WorkflowStatus, Any, str | None] | None = None
        failure: list[str] = []
        async with anyio.create_task_group() as tg:
            async for message in sandbox.messages():
                kind = message.get("type")
                if kind == "call":
                    tg.start_soon(self._step, sandbox, message, failure, tg)
                elif kind == "log":
                    await self._log(str(message.get("message", "")), message.get("phase"))
                elif kind == "budget":
                    self._set_run_budget(message)
                elif kind == "scope":
                    self._scopes[int(message["id"])] = Budget(
                        f"the budget of {message.get('kind', 'a')} group #{message['id']}",
                        tokens=message.get("tokens"),
                        steps=message.get("steps"),
                    )
                elif kind == "done":
                    outcome = self._outcome(message)
                    break
            # Steps the script did not wait for end with it.
            self._ending = True
            tg.cancel_scope.cancel()
        if failure:
            return "failed", None, failure[0]
        if outcome is None:
            return "failed", None, await sandbox.exit_reason()
        return outcome

    def _outcome(self, message: dict[str, Any]) -> tuple[WorkflowStatus, Any, str | None]:
        if not message.get("ok"):
            return "failed", None, str(message.get("error") or "the workflow failed")
        value = message.get("value")
        if len(json.dumps(value)) > MAX_RESULT_CHARS:
            return "failed", None, f"run() returned more than {MAX_RESULT_CHARS} characters of JSON"
        return "completed", value, None

    def _set_run_budget(self, message: dict[str, Any]) -> None:
        tokens, steps = message.get("tokens"), message.get("steps")
        if tokens is not None:
            self._run_budget.tokens = int(tokens)
        if steps is not None:
            self._run_budget.steps = int(steps)
        self._run_budget.label = "the run's budget"
        self._run_budget.origin = f" (budget({self._describe_budget()}))"

    def _describe_budget(self) -> str:
        parts = []
        if self._run_budget.tokens is not None:
            parts.append(f"tokens: {self._run_budget.tokens}")
        if self._run_budget.steps is not None:
            parts.append(f"steps: {self._run_budget.steps}")
        return "{" + ", ".join(parts) + "}"

    async def _log(self, message: str, phase: Any) -> None:
        self._logs += 1
        if self._logs > MAX_LOGS:
            return
        if self._logs == MAX_LOGS:
            message = f"(log limit of {MAX_LOGS} lines reached; later lines are dropped)"
        elif len(message) > MAX_LOG_CHARS:
            message = message[:MAX_LOG_CHARS] + "…"
        await store.add_log(self._db, self.id, self._logs, message, phase if isinstance(phase, str) else None)
        self._changed()

    # -- steps ---------------------------------------------------------------------------------

    async def _step(self, sandbox: Sandbox, call: dict[str, Any], failure: list[str], tg: TaskGroup) -> None:
        call_id = call.get("id")
        try:
            value = await self._run_step(call)
        except StepFailed as e:
            await sandbox.send({"op": "settle", "id": call_id, "ok": False, "error": str(e)})
        except RunFailed as e:
            # The whole run ends: this run's steps are cancelled as it stops.
            failure.append(str(e))
            self._ending = True
            tg.cancel_scope.cancel()
        else:
            await sandbox.send({"op": "settle", "id": call_id, "ok": True, "value": value})

    def _budgets(self, call: dict[str, Any]) -> list[Budget]:
        scopes = [self._scopes[i] for i in call.get("scopes") or [] if i in self._scopes]
        return [*scopes, self._run_budget]

    async def _run_step(self, call: dict[str, Any]) -> dict[str, Any]:
        step_id = str(call.get("step_id"))
        prompt = str(call.get("prompt"))
        agent = call.get("agent") or self._settings.default_agent
        model, mode = call.get("model"), call.get("mode")
        phase = call.get("phase") if isinstance(call.get("phase"), str) else None
        if len(prompt) > MAX_PROMPT_CHARS:
            raise StepFailed(f"step {step_id!r}: its prompt is over {MAX_PROMPT_CHARS} characters")
        key = cache_key(step_id=step_id, prompt=prompt, agent=agent, model=model, mode=mode, base=self._base)
        self._seq += 1
        seq = self._seq
        hit = await step_cache.take(self._db, key) if self._settings.cache_size > 0 else None
        record = functools.partial(
            store.insert_step, self._db, self.id, seq=seq, step_id=step_id, phase=phase, agent=agent,
            cache_key=key,
        )  # fmt: skip
        if hit is not None:
            await record(
                status="completed",
                cached=True,
                subagent_id=hit.subagent_id,
                patch_id=hit.patch_id,
                usage=hit.result.get("usage"),
            )
            self._changed()
            return {**hit.result, "patch_id": hit.patch_id, "subagent_id": hit.subagent_id, "cached": True}
        await record(status="queued")
        self._changed()
        step_budget = Budget(
            f"the budget of step {step_id!r}", tokens=(call.get("budget") or {}).get("tokens")
        )
        budgets = self._budgets(call)
        view = await self._dispatch(seq, step_id, prompt, agent, model, mode, budgets)
        final = await self._follow(view)
        usage = final.usage.model_dump() if final.usage is not None else None
        spent = _tokens(usage)
        for key_name in ("input_tokens", "output_tokens", "cost"):
            value = (usage or {}).get(key_name)
            if value:
                self._usage[key_name] += value
        for budget in [step_budget, *budgets]:
            budget.tokens_used += spent
            budget.after_step(step_id)
        if final.status != "completed":
            raise StepFailed(
                f"step {step_id!r} (subagent {final.subagent_id}) {final.status}: "
                f"{final.error or final.stop_reason or 'no reason given'}"
            )
        files: list[str] = []
        diff = ""
        if final.patch_id is not None:
            patch = await self._host.get_patch(None, final.patch_id, include_hunks=False, include_diff=True)
            files = [f.path for f in patch.files]
            diff = patch.diff or ""
            if len(diff) > MAX_DIFF_CHARS:
                diff = diff[:MAX_DIFF_CHARS] + f"\n… ({len(diff) - MAX_DIFF_CHARS} more characters)\n"
        result = {"text": final.final_message or "", "files": files, "diff": diff, "usage": usage}
        if self._settings.cache_size > 0:
            await step_cache.put(
                self._db,
                key=key,
                step_id=step_id,
                subagent_id=final.subagent_id,
                patch_id=final.patch_id,
                result=result,
                size=self._settings.cache_size,
            )
        return {**result, "patch_id": final.patch_id, "subagent_id": final.subagent_id, "cached": False}

    async def _dispatch(
        self,
        seq: int,
        step_id: str,
        prompt: str,
        agent: str,
        model: str | None,
        mode: str | None,
        budgets: list[Budget],
    ) -> SubagentView:
        """The step's subagent run, once the budgets and the step limiter allow it."""
        try:
            async with self._step_limiter:
                for budget in budgets:
                    budget.before_dispatch()
                # Counted before the spawn awaits, so steps dispatched at once cannot all pass.
                for budget in budgets:
                    budget.steps_used += 1
                try:
                    view = await self._host.spawn(
                        self.row.session_id, prompt, agent=agent, model=model, mode=mode, base=self._base
                    )
                except BaseException:
                    for budget in budgets:
                        budget.steps_used -= 1
                    raise
                await store.link_step(self._db, self.id, seq, view.subagent_id)
        except RunFailed as e:
            await self._close_step(seq, "failed", str(e))
            raise
        except BooCodeError as e:
            await self._close_step(seq, "failed", str(e))
            raise StepFailed(f"step {step_id!r} could not start: {e}") from e
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._close_step(seq, "cancelled", "the workflow ended before the step started")
            raise
        self._changed()
        return view

    async def _close_step(self, seq: int, status: Any, error: str) -> None:
        await store.fail_step(self._db, self.id, seq, status, error)
        self._changed()

    def heard(self, subagent_id: str) -> None:
        """The engine says the run `subagent_id` changed (`subagents://` listener)."""
        event = self._step_events.get(subagent_id)
        if event is not None:
            event.set()

    async def _follow(self, view: SubagentView) -> SubagentView:
        """Wait for the step's run to end, telling listeners when its status changes; a cancelled
        wait cancels the run. The engine's notification wakes it (set before the status is read, so
        no change between the read and the wait is missed)."""
        seen = view.status
        try:
            while True:
                woken = self._step_events[view.subagent_id] = anyio.Event()
                view = await self._host.status(None, view.subagent_id)
                if view.status != seen:
                    seen = view.status
                    self._changed()
                if view.status in TERMINAL_STATUSES:
                    return view
                await woken.wait()
        except anyio.get_cancelled_exc_class():
            if self._ending:
                with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_S):
                    await self._host.cancel(None, view.subagent_id)
                    self._changed()
            raise
        finally:
            self._step_events.pop(view.subagent_id, None)
