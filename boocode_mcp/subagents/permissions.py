"""The permission queue: a run's permission requests answered by policy, by a caller's handler, or
by a host through respond_permission before a deadline — failing closed when nobody answers."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio

from boocode_mcp.agents.backend import PermissionHandler
from boocode_mcp.agents.events import PermissionOptionInfo, PermissionRequestEvent
from boocode_mcp.agents.permissions import choose_option
from boocode_mcp.config import PermissionsConfig
from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.store import permissions as store
from boocode_mcp.store.db import Database
from boocode_mcp.views import PendingPermission, PermissionOptionView

# Called when a run starts or stops waiting for an answer (pending None): the runner turns it into
# the run's status (awaiting_permission / running).
OnPending = Callable[[str, PendingPermission | None], Awaitable[None]]


@dataclasses.dataclass
class _Waiting:
    view: PendingPermission
    options: tuple[PermissionOptionInfo, ...]
    answered: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    answer: str | None = None
    status: str = "answered"


class PermissionQueue:
    """Pending requests by subagent; at most one per run, since a turn asks one at a time."""

    def __init__(
        self,
        db: Database,
        config: PermissionsConfig | Callable[[], PermissionsConfig],
        on_pending: OnPending,
    ) -> None:
        self._db = db
        # A callable is asked at each request: the policy in force when the question comes.
        self._config = config if callable(config) else lambda: config
        self._on_pending = on_pending
        self._waiting: dict[str, _Waiting] = {}

    def pending(self, subagent_id: str) -> PendingPermission | None:
        w = self._waiting.get(subagent_id)
        return w.view if w is not None else None

    def handler_for(
        self,
        session_id: str,
        subagent_id: str,
        override: PermissionHandler | None = None,
        config: PermissionsConfig | None = None,
    ) -> PermissionHandler:
        """The handler a run's turn uses: the caller's (the ACP front end forwards to its editor)
        when given, else `config` (the requester's, which travels with a run on a shared store),
        else the configured policy."""
        if override is not None:
            return override
        settings = config if config is not None else self._config()
        policy = settings.policy

        async def handle(request: PermissionRequestEvent) -> str | None:
            if policy == "auto":
                return choose_option(request.options, allow=True)
            if policy == "deny":
                return choose_option(request.options, allow=False)
            return await self._ask(session_id, subagent_id, request, settings.timeout_s)

        return handle

    async def _ask(
        self, session_id: str, subagent_id: str, request: PermissionRequestEvent, timeout_s: float
    ) -> str | None:
        request_id = uuid.uuid4().hex
        deadline = time.time() + timeout_s
        view = PendingPermission(
            request_id=request_id,
            title=request.title,
            options=[
                PermissionOptionView(option_id=o.option_id, name=o.name, kind=o.kind) for o in request.options
            ],
            deadline=deadline,
        )
        await store.insert(
            self._db,
            request_id=request_id,
            session_id=session_id,
            subagent_id=subagent_id,
            title=request.title,
            options=[o.model_dump() for o in view.options],
            deadline=deadline,
        )
        waiting = _Waiting(view=view, options=request.options)
        self._waiting[subagent_id] = waiting
        try:
            await self._on_pending(subagent_id, view)
            with anyio.move_on_after(max(0.0, deadline - time.time())):
                await waiting.answered.wait()
            if not waiting.answered.is_set():
                # Nobody answered in time: fail closed, refusing by kind, or cancelling the request.
                waiting.answer = choose_option(request.options, allow=False)
                waiting.status = "timed_out"
        except anyio.get_cancelled_exc_class():
            waiting.answer, waiting.status = None, "cancelled"
            raise
        finally:
            self._waiting.pop(subagent_id, None)
            with anyio.CancelScope(shield=True):
                await store.decide(self._db, request_id, waiting.status, waiting.answer)
                await self._on_pending(subagent_id, None)
        return waiting.answer

    def respond(self, subagent_id: str, request_id: str, option_id: str) -> None:
        """Answer the run's pending request; the run resumes once its turn sees the answer."""
        waiting = self._waiting.get(subagent_id)
        if waiting is None:
            raise NotFoundError(
                f"subagent {subagent_id!r} has no pending permission request; check subagent_status "
                "(it may have timed out or been answered already)"
            )
        if waiting.view.request_id != request_id:
            raise NotFoundError(
                f"no pending permission request {request_id!r} for subagent {subagent_id!r}; the pending "
                f"one is {waiting.view.request_id!r}"
            )
        valid = [o.option_id for o in waiting.options]
        if option_id not in valid:
            raise InvalidRequestError(
                f"option {option_id!r} is not an option of permission request {request_id!r}; "
                f"valid option ids: {', '.join(valid)}"
            )
        waiting.answer = option_id
        waiting.status = "answered"
        waiting.answered.set()

    def cancel(self, subagent_id: str) -> None:
        """Answer a pending request "cancelled" (the run is being cancelled)."""
        waiting = self._waiting.get(subagent_id)
        if waiting is not None and not waiting.answered.is_set():
            waiting.answer = None
            waiting.status = "cancelled"
            waiting.answered.set()
