"""The activity digest of a run: what a parent polling subagent_status needs to see, kept small.

Pure: it folds event records — (kind, payload) pairs exactly as stored in the `events` table — so
the live digest of a running turn and the digest rebuilt from the database for a finished one are
the same computation.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import PurePath
from typing import Any

from boocode_mcp.agents.events import AgentEvent
from boocode_mcp.lru import Lru
from boocode_mcp.views import Activity, PlanEntryView, ToolCallDigest

RECENT_TEXT_CHARS = 1_000
FINAL_MESSAGE_CHARS = 100_000
MAX_TOOL_CALLS = 10
MAX_FILES = 50

# Usage figures an agent reports as increments (summed over the turn) or, in a cumulative report,
# as running totals; and those that are a snapshot of its context window (the last one counts).
SUMMED_USAGE = (
    "input_tokens",
    "output_tokens",
    "cost",
    "total_tokens",
    "thought_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
SNAPSHOT_USAGE = ("context_used", "context_size")

# A record BooCode adds to a run's events itself (not from the agent): how the agent session was
# established, so that "the agent could not restore its context" survives in the history.
SESSION_KIND = "session"


def _jsonable(value: Any) -> Any:
    """Events carry ACP objects in raw_input/raw_output; keep what JSON can hold."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "raw"
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _jsonable(dump(mode="json", by_alias=True, exclude_none=True))
    return str(value)


def event_record(event: AgentEvent) -> tuple[str, dict[str, Any]]:
    """The (kind, payload) stored for an agent event; `raw` (the ACP update) is left out."""
    payload = {
        f.name: _jsonable(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name not in ("raw", "kind")
    }
    return event.kind, payload


def _relative(path: str, roots: tuple[str, ...]) -> str:
    """A tool-call location as a workspace-relative path when it lies under a known root."""
    p = PurePath(path)
    for root in roots:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return path


@dataclasses.dataclass
class Digest:
    """Folds a run's event records into an Activity, the turn's full text and its usage."""

    # Tool-call locations under these directories (the chat's worktree, then the workspace) are
    # shown relative to them, since the worktree path means nothing to the parent.
    roots: tuple[str, ...] = ()
    event_count: int = 0
    last_event_at: float | None = None
    text: str = ""
    text_truncated: bool = False
    message_start: int = 0
    tool_calls: OrderedDict[str, ToolCallDigest] = dataclasses.field(default_factory=OrderedDict)
    plan: list[PlanEntryView] = dataclasses.field(default_factory=list)
    files: dict[str, None] = dataclasses.field(default_factory=dict)
    session_note: str | None = None
    # Every figure of SUMMED_USAGE and SNAPSHOT_USAGE, None until the agent reports it.
    usage: dict[str, float | None] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(SUMMED_USAGE + SNAPSHOT_USAGE)
    )

    def apply(self, kind: str, payload: dict[str, Any], at: float | None = None) -> None:
        self.event_count += 1
        if at is not None:
            self.last_event_at = at
        if kind == "text":
            self._add_text(str(payload.get("text") or ""))
        elif kind == "tool_call":
            self._tool_call(payload)
        elif kind == "tool_update":
            self._tool_update(payload)
        elif kind == "plan":
            self.plan = [
                PlanEntryView(
                    content=str(e.get("content", "")),
                    status=str(e.get("status", "")),
                    priority=e.get("priority"),
                )
                for e in payload.get("entries") or []
                if isinstance(e, dict)
            ]
        elif kind == "usage":
            self._usage(payload)
        elif kind == SESSION_KIND:
            self.event_count -= 1  # bookkeeping, not agent activity
            note = payload.get("note")
            self.session_note = str(note) if note else None

    def _add_text(self, chunk: str) -> None:
        self.text += chunk
        if len(self.text) > FINAL_MESSAGE_CHARS:
            cut = len(self.text) - FINAL_MESSAGE_CHARS
            self.text = self.text[cut:]
            self.message_start = max(0, self.message_start - cut)
            self.text_truncated = True

    def _touch(self, locations: Any) -> None:
        for loc in locations or []:
            rel = _relative(str(loc), self.roots)
            self.files.pop(rel, None)
            self.files[rel] = None
        while len(self.files) > MAX_FILES:
            del self.files[next(iter(self.files))]

    def _tool_call(self, p: dict[str, Any]) -> None:
        tcid = str(p.get("tool_call_id", ""))
        self.tool_calls.pop(tcid, None)
        self.tool_calls[tcid] = ToolCallDigest(
            tool_call_id=tcid,
            title=str(p.get("title") or ""),
            status=p.get("status"),
            kind=p.get("tool_kind"),
        )
        while len(self.tool_calls) > MAX_TOOL_CALLS:
            self.tool_calls.popitem(last=False)
        self._touch(p.get("locations"))
        # A new message starts after a tool call: the recent text is what came since.
        self.message_start = len(self.text)

    def _tool_update(self, p: dict[str, Any]) -> None:
        tcid = str(p.get("tool_call_id", ""))
        old = self.tool_calls.get(tcid)
        if old is not None:
            self.tool_calls[tcid] = ToolCallDigest(
                tool_call_id=tcid,
                title=str(p.get("title") or old.title),
                status=p.get("status") or old.status,
                kind=old.kind,
            )
        elif p.get("title"):
            self.tool_calls[tcid] = ToolCallDigest(
                tool_call_id=tcid, title=str(p["title"]), status=p.get("status")
            )
            while len(self.tool_calls) > MAX_TOOL_CALLS:
                self.tool_calls.popitem(last=False)
        self._touch(p.get("locations"))

    def _usage(self, p: dict[str, Any]) -> None:
        cumulative = bool(p.get("cumulative"))
        for name in SUMMED_USAGE + SNAPSHOT_USAGE:
            value = p.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            current = self.usage[name]
            if name in SUMMED_USAGE and not cumulative and current is not None:
                value = current + value
            self.usage[name] = value

    @property
    def final_message(self) -> str:
        return self.text

    def recent_text(self) -> str:
        recent = self.text[self.message_start :] or self.text
        return recent[-RECENT_TEXT_CHARS:]

    def activity(self) -> Activity:
        return Activity(
            recent_text=self.recent_text(),
            tool_calls=list(self.tool_calls.values()),
            plan=list(self.plan),
            files_touched=list(self.files),
            event_count=self.event_count,
            last_event_at=self.last_event_at,
        )


class DigestCache(Lru[str, Digest]):
    """The digests of finished runs, most recently used kept: a finished run's events never change,
    so its digest is computed once (or handed over live by the runner as the run ends)."""

    def __init__(self, max_entries: int = 256) -> None:
        super().__init__(max_entries)
