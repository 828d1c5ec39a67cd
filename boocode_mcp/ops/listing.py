"""list_runs: the workspace's runs a page at a time, filtered by status, agent and session, with
the values those filters can take — what the web page's runs page shows. Unlike subagent_status
without an id, a row carries no activity digest unless the run is live, so a page costs a few
index reads however many runs and events the workspace holds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from boocode_mcp.errors import InvalidRequestError
from boocode_mcp.ops.caller import Caller, Outcome, clip
from boocode_mcp.states import LIVE_STATUSES, SubagentStatus, subagent_status
from boocode_mcp.store import listing
from boocode_mcp.views import Activity, PendingPermission, Usage

MAX_PAGE = 200
SESSION_CHOICES = 50


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunItem(_Out):
    subagent_id: str
    session_id: str
    chat_id: str
    agent: str
    status: SubagentStatus
    prompt: str = Field(description=f"the prompt's first {listing.PROMPT_CHARS} characters")
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    usage: Usage | None
    patch_id: str | None
    activity: Activity | None = Field(default=None, description="live runs only")
    pending_permission: PendingPermission | None = None


class SessionChoice(_Out):
    session_id: str
    created_at: float


class RunFacets(_Out):
    """The values the filters can take, with how many runs have each."""

    statuses: dict[str, int]
    agents: dict[str, int]
    sessions: list[SessionChoice] = Field(description=f"the {SESSION_CHOICES} newest sessions with runs")


class RunPage(_Out):
    runs: list[RunItem]
    total: int = Field(description="runs matching the filters, on every page")
    next_before: str | None = Field(
        description="pass as `before` for the next (older) page; null on the last"
    )
    facets: RunFacets


def _cursor(text: str) -> listing.Cursor:
    created, sep, run_id = text.partition("/")
    try:
        if not sep or not run_id:
            raise ValueError
        return listing.Cursor(created_at=float(created), id=run_id)
    except ValueError:
        raise InvalidRequestError(
            f"before {text!r} is not a page cursor; pass the next_before of the previous page"
        ) from None


async def list_runs(
    caller: Caller,
    *,
    status: SubagentStatus | None = None,
    agent: str | None = None,
    session_id: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> Outcome[RunPage]:
    """Runs newest first: a page of at most `limit`, created before the cursor `before`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE} (got {limit})")
    engine = caller.engine
    db = engine.db
    filters = listing.RunFilter(status=status, agent=agent, session_id=session_id)
    rows = await listing.runs_page(db, filters, before=_cursor(before) if before else None, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items: list[RunItem] = []
    for r in rows:
        activity = pending = None
        if r.status in LIVE_STATUSES:
            # Live runs are few, and their digest is in memory: show what they are doing.
            view = await engine.status(None, r.id)
            activity, pending = view.activity, view.pending_permission
        items.append(
            RunItem(
                subagent_id=r.id,
                session_id=r.session_id,
                chat_id=r.chat_id,
                agent=r.agent,
                status=subagent_status(r.status),
                prompt=r.prompt,
                created_at=r.created_at,
                started_at=r.started_at,
                finished_at=r.finished_at,
                error=r.error,
                usage=Usage(**r.usage) if r.usage else None,
                patch_id=r.patch_id,
                activity=activity,
                pending_permission=pending,
            )
        )
    facets = RunFacets(
        statuses=await listing.count_by(db, "status"),
        agents=await listing.count_by(db, "agent"),
        sessions=[
            SessionChoice(session_id=sid, created_at=at)
            for sid, at in await listing.recent_sessions(db, SESSION_CHOICES)
        ],
    )
    last = rows[-1] if rows and more else None
    page = RunPage(
        runs=items,
        total=await listing.count_runs(db, filters),
        next_before=f"{last.created_at!r}/{last.id}" if last is not None else None,
        facets=facets,
    )
    text = "\n".join(
        f"subagent {i.subagent_id} (agent {i.agent}, session {i.session_id}): {i.status}: "
        + clip(i.prompt, 80)
        for i in items
    )
    return Outcome(page, text or "no runs match")
