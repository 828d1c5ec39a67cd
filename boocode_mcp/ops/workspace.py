"""Everything else a front end asks of the workspace: memory search, a command, traces, agents,
looking an id up by its prefix, and following a run's events as they arrive."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict

from boocode_mcp.errors import InvalidRequestError, NotFoundError
from boocode_mcp.ops.caller import Caller, Outcome, clip
from boocode_mcp.ops.subagents import MAX_WAIT_SECONDS, StatusResult, line
from boocode_mcp.views import (
    TERMINAL_STATUSES,
    AgentInfo,
    CommandResult,
    MemoryHits,
    MemorySource,
    TraceView,
    WorkspaceConfigView,
)

# The host gives up on a call after about 60 s; a longer command belongs in a subagent.
MAX_COMMAND_SECONDS = 50.0
# At most this many events per watch answer; the caller asks again from the last seq it got.
WATCH_BATCH = 500

IdKind = Literal["subagent", "patch", "chat", "workflow_run"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TraceListing(_Out):
    session_id: str | None
    traces: list[TraceView]


class AgentList(_Out):
    agents: list[AgentInfo]
    workspace_config: WorkspaceConfigView | None = None


class ResolvedId(_Out):
    """An id found from a unique prefix, with the session it belongs to."""

    kind: IdKind
    id: str
    session_id: str


class EventView(_Out):
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: float


class WatchResult(_Out):
    """A run's events after `after_seq` (oldest first) and its status as of the last of them."""

    events: list[EventView]
    next_seq: int
    status: StatusResult


async def search_memory(
    caller: Caller, query: str, *, limit: int = 10, source: MemorySource | None = None
) -> Outcome[MemoryHits]:
    if not query.strip():
        raise InvalidRequestError("the query is empty; give words to search for")
    if not 1 <= limit <= 100:
        raise InvalidRequestError(f"limit must be between 1 and 100 (got {limit})")
    hits = await caller.engine.search_memory(query, limit, source)
    text = "\n".join(f"[{h.source}] {h.title} ({h.id}): {clip(h.snippet, 160)}" for h in hits) or "no hits"
    return Outcome(MemoryHits(hits=hits), text)


async def run_command(
    caller: Caller,
    command: str,
    args: Sequence[str] = (),
    *,
    cwd: str | None = None,
    timeout_s: float = 30,
    env: Mapping[str, str] | None = None,
) -> Outcome[CommandResult]:
    if not 0 < timeout_s <= MAX_COMMAND_SECONDS:
        raise InvalidRequestError(
            f"timeout_s must be above 0 and at most {MAX_COMMAND_SECONDS:g}; run longer work as a subagent"
        )
    out = await caller.engine.run_command(command, args, cwd=cwd, timeout_s=timeout_s, env=env)
    if out.timed_out:
        head = f"{command} timed out after {timeout_s:g}s"
    else:
        head = f"{command} exited {out.exit_code} in {out.duration_ms:.0f} ms"
    tail = clip(out.stdout or out.stderr, 400)
    return Outcome(out, f"{head}: {tail}" if tail else head)


async def traces(caller: Caller, *, session_id: str | None = None) -> Outcome[TraceListing]:
    """Traced tool calls oldest first: the workspace's, or one session's."""
    sid = await caller.session_filter(session_id)
    rows = sorted(await caller.engine.traces(sid), key=lambda t: t.started_at)
    return Outcome(TraceListing(session_id=sid, traces=rows), f"{len(rows)} traced tool calls")


async def agents(caller: Caller) -> Outcome[AgentList]:
    """The agents a run may name (installed or not, version, protocol, whether they take images,
    how to install them), and whether the workspace's own config counts."""
    from boocode_mcp.trust import describe

    rows = await caller.engine.list_agents()
    ws = caller.engine.registry.workspace_config()
    lines = [_agent_line(a) for a in rows]
    if ws is not None:
        lines.append(describe(ws))
    return Outcome(AgentList(agents=rows, workspace_config=ws), "\n".join(lines))


def _agent_line(a: AgentInfo) -> str:
    if not a.installed:
        how = f"; install: {a.install}" if a.install else ""
        return f"{a.name}: not installed{how}"
    images = {True: "takes images", False: "no images", None: "images unknown until it has run"}[a.images]
    version = f" {a.version}" if a.version else ""
    default = ", the default" if a.default else ""
    return f"{a.name}: installed{version} ({a.protocol}, {images}{default})"


async def resolve_id(
    caller: Caller,
    ident: str,
    *,
    kinds: Sequence[IdKind] = ("subagent", "patch"),
    session_id: str | None = None,
) -> Outcome[ResolvedId]:
    """The subagent, patch or chat whose id is `ident` or starts with it (unique prefixes only)."""
    sid = await caller.session_filter(session_id)
    found: list[ResolvedId] = []
    for kind in kinds:
        for full, owner in await caller.engine.find_ids(kind, ident, sid):
            found.append(ResolvedId(kind=kind, id=full, session_id=owner))
    exact = [f for f in found if f.id == ident]
    found = exact or found
    where = f"session {sid}" if sid is not None else "this workspace"
    nouns = " or ".join(k.replace("_", " ") for k in kinds)
    if not found:
        raise NotFoundError(f"no {nouns} {ident} in {where}; see `boocode ls` and `boocode patches`")
    if len(found) > 1:
        raise InvalidRequestError(
            f"{ident} is ambiguous: it starts {len(found)} {nouns} ids; give more of it"
        )
    return Outcome(found[0], f"{found[0].kind} {found[0].id} (session {found[0].session_id})")


async def watch(
    caller: Caller, subagent_id: str, *, after_seq: int = 0, wait_seconds: float = 0
) -> Outcome[WatchResult]:
    """The run's events after `after_seq`; with none yet, waits up to `wait_seconds` for one (or
    for the run to end). What `boocode run` and `boocode attach` print as it arrives."""
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise InvalidRequestError(f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:g}")
    engine = caller.engine
    uri = f"subagents://{subagent_id}"
    changed = anyio.Event()

    def listener(changed_uri: str) -> None:
        if changed_uri == uri:
            changed.set()

    # Listening before reading: a change between the read and the wait still wakes the wait.
    remove = engine.add_listener(listener)
    try:
        rows = await engine.events(subagent_id, after_seq, limit=WATCH_BATCH)
        view = await engine.status(None, subagent_id)
        if not rows and view.status not in TERMINAL_STATUSES and wait_seconds > 0:
            with anyio.move_on_after(wait_seconds):
                await changed.wait()
            rows = await engine.events(subagent_id, after_seq, limit=WATCH_BATCH)
            view = await engine.status(None, subagent_id)
    finally:
        remove()
    events = [EventView(seq=r.seq, kind=r.kind, payload=r.payload, created_at=r.created_at) for r in rows]
    next_seq = events[-1].seq if events else after_seq
    result = WatchResult(
        events=events, next_seq=next_seq, status=StatusResult.model_validate(view.model_dump())
    )
    return Outcome(result, line(view))
