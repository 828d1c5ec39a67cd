"""How the command line prints: rich tables and a colored diff on a terminal, plain text otherwise.

The `--json` forms bypass this module entirely: they print the view models as MCP returns them.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from boocode_mcp.views import AgentInfo, ApplyResult, MemoryHit, PatchView, SubagentView, TraceView


def is_tty(stream: IO[str]) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _excerpt(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class Renderer:
    """Prints listings and results to stdout; a terminal gets tables and color."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.tty = is_tty(self.out)
        self.console = Console(file=self.out, highlight=False, soft_wrap=not self.tty)

    def _table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.tty:
            table = Table(title=title, title_justify="left", header_style="bold")
            for col in columns:
                table.add_column(col, overflow="fold")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        # Plain aligned columns: easy to grep and cut, no box drawing.
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        self.out.write("\n".join(lines) + "\n")

    def line(self, text: str, style: str | None = None) -> None:
        if self.tty and style:
            self.console.print(Text(text, style=style))
        else:
            self.out.write(text + "\n")

    # -- listings ---------------------------------------------------------------------------

    def subagents(self, runs: Sequence[SubagentView]) -> None:
        if not runs:
            self.line("no subagents yet")
            return
        self._table(
            "subagents",
            ["id", "status", "agent", "chat", "started", "patch", "prompt"],
            [
                [
                    r.subagent_id[:8],
                    r.status,
                    r.agent,
                    r.chat_id[:8],
                    _when(r.created_at),
                    (r.patch_id or "")[:8],
                    _excerpt(r.prompt, 50),
                ]
                for r in runs
            ],
        )

    def patches(self, patches: Sequence[PatchView]) -> None:
        if not patches:
            self.line("no patches")
            return
        self._table(
            "patches",
            ["id", "status", "agent", "chat", "files", "+", "-", "created", "paths"],
            [
                [
                    p.id[:8],
                    p.status + (" (mid-turn)" if p.failed_mid_turn else ""),
                    p.agent,
                    p.chat_id[:8],
                    str(p.file_count),
                    str(p.additions),
                    str(p.deletions),
                    _when(p.created_at),
                    _excerpt(", ".join(f.path for f in p.files), 50),
                ]
                for p in patches
            ],
        )

    def agents(self, agents: Sequence[AgentInfo]) -> None:
        self._table(
            "agents",
            ["name", "protocol", "installed", "version", "command", "install"],
            [
                [
                    a.name + (" (default)" if a.default else ""),
                    a.protocol,
                    "yes" if a.installed else "no",
                    a.version or "",
                    a.path or a.command,
                    "" if a.installed else (a.install or ""),
                ]
                for a in agents
            ],
        )

    def traces(self, traces: Sequence[TraceView]) -> None:
        if not traces:
            self.line("no traces")
            return
        self._table(
            "traces",
            ["started", "source", "tool", "outcome", "ms", "session", "subagent"],
            [
                [
                    _when(t.started_at),
                    t.source,
                    t.tool_name,
                    t.outcome or "",
                    "" if t.latency_ms is None else f"{t.latency_ms:.0f}",
                    (t.session_id or "")[:8],
                    (t.subagent_id or "")[:8],
                ]
                for t in traces
            ],
        )

    def hits(self, hits: Sequence[MemoryHit]) -> None:
        if not hits:
            self.line("no matches")
            return
        self._table(
            "memory",
            ["score", "source", "title", "snippet"],
            [[f"{h.score:.2f}", h.source, h.title, _excerpt(h.snippet, 70)] for h in hits],
        )

    # -- single objects ---------------------------------------------------------------------

    def subagent(self, run: SubagentView) -> None:
        self.line(f"subagent {run.subagent_id}  {run.status}", "bold")
        self.line(f"agent {run.agent}  chat {run.chat_id}  session {run.session_id}")
        if run.worktree:
            self.line(f"worktree {run.worktree}")
        if run.prompt:
            self.line(f"prompt: {run.prompt}")
        if run.stop_reason:
            self.line(f"stop reason: {run.stop_reason}")
        if run.error:
            self.line(f"error: {run.error}", "red")
        if run.session_note:
            self.line(f"note: {run.session_note}", "yellow")
        if run.pending_permission:
            pp = run.pending_permission
            opts = ", ".join(f"{o.option_id} ({o.kind})" for o in pp.options)
            self.line(f"waiting for permission {pp.request_id}: {pp.title} [{opts}]", "yellow")
        if run.activity.tool_calls:
            self.line("tool calls:")
            for tc in run.activity.tool_calls:
                self.line(f"  {tc.status or '?':<11} {tc.title}")
        if run.final_message:
            self.line("")
            self.out.write(run.final_message.rstrip("\n") + "\n")

    def patch_header(self, p: PatchView) -> None:
        self.line(
            f"patch {p.id}  {p.status}  {p.file_count} files (+{p.additions} -{p.deletions})"
            f"  agent {p.agent}  chat {p.chat_id}",
            "bold",
        )
        for c in p.collisions:
            self.line(f"  overlaps {c.file} with patch {c.other_patch_id[:8]} of chat {c.other_chat_id[:8]}")

    def diff(self, text: str) -> None:
        if not self.tty:
            self.out.write(text if text.endswith("\n") or not text else text + "\n")
            return
        for raw in text.splitlines():
            style: str | None = None
            if raw.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file")):
                style = "bold"
            elif raw.startswith("@@"):
                style = "cyan"
            elif raw.startswith("+"):
                style = "green"
            elif raw.startswith("-"):
                style = "red"
            self.console.print(Text(raw, style=style or ""), soft_wrap=True)

    def apply_result(self, result: ApplyResult) -> None:
        if result.conflicts:
            self.line("nothing applied; conflicts:", "red")
            for c in result.conflicts:
                self.line(f"  {c.patch_id[:8]} {c.file}: {c.reason}")
            return
        verb = "would apply" if result.dry_run else "applied"
        if not result.applied:
            self.line("nothing to apply")
            return
        commit = f" (commit {result.commit_sha[:10]})" if result.commit_sha else ""
        self.line(f"{verb} {', '.join(p[:8] for p in result.applied)}{commit}", "green")


class Progress:
    """Live progress of a run on stderr: the agent's text as it streams, tool calls, a status line."""

    def __init__(self, err: IO[str] | None = None) -> None:
        self.err = err if err is not None else sys.stderr
        self.console = Console(file=self.err, highlight=False, soft_wrap=True)
        self._mid_line = False
        self._tools: dict[str, tuple[str, str | None]] = {}
        self._text = ""

    def _end_line(self) -> None:
        if self._mid_line:
            self.err.write("\n")
            self._mid_line = False

    def text(self, chunk: str) -> None:
        self.err.write(chunk)
        self.err.flush()
        self._mid_line = not chunk.endswith("\n")

    def tool(self, tool_call_id: str, title: str | None, status: str | None) -> None:
        old_title, old_status = self._tools.get(tool_call_id, ("", None))
        title = title or old_title or tool_call_id
        if (title, status) == (old_title, old_status):
            return
        self._tools[tool_call_id] = (title, status)
        self._end_line()
        mark = {"completed": "✓", "failed": "✗"}.get(status or "", "•")
        self.console.print(Text(f"{mark} {title} [{status or 'pending'}]", style="dim"))

    def status(self, text: str) -> None:
        self._end_line()
        self.console.print(Text(f"… {text}", style="dim"))

    def activity(self, view: dict[str, Any]) -> None:
        """Progress from a polled subagent_status object (the MCP path has no event stream)."""
        act = view.get("activity") or {}
        recent = act.get("recent_text") or ""
        if recent and recent != self._text:
            self.text(recent[_overlap(self._text, recent) :])
            self._text = recent
        for tc in act.get("tool_calls") or []:
            self.tool(tc["tool_call_id"], tc.get("title"), tc.get("status"))

    def permission(self, pending: dict[str, Any]) -> None:
        """A pending permission request as a numbered menu (`boocode run` on a terminal)."""
        self._end_line()
        self.console.print(Text(f"? permission requested: {pending['title']}", style="bold"))
        for i, option in enumerate(pending["options"], 1):
            self.console.print(Text(f"  {i}. {option['name']} ({option['kind']})"))

    def ask(self, prompt: str) -> None:
        """A prompt the user's answer completes on the same line."""
        self._end_line()
        self.err.write(prompt)
        self.err.flush()

    def done(self) -> None:
        self._end_line()


def _overlap(seen: str, recent: str) -> int:
    """How much of `recent` (a sliding tail of the agent's text) was already printed as the end
    of `seen`, so that only the new part is printed."""
    if recent.startswith(seen):
        return len(seen)
    for k in range(min(len(seen), len(recent)), 0, -1):
        if seen.endswith(recent[:k]):
            return k
    return 0
