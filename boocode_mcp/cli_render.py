"""How the command line prints: tables and a colored diff on a terminal, plain text otherwise.

Everything here renders the JSON objects the daemon's API returns (the MCP tools' structured
content), so the CLI needs neither pydantic nor the engine. `rich` is imported only when a table
or diff goes to a terminal; progress lines use plain ANSI dimming, so a scripted `boocode run`
pays for no import it does not use. The `--json` forms bypass this module entirely.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

Obj = Mapping[str, Any]


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


def _short(ident: str | None) -> str:
    return (ident or "")[:8]


class Renderer:
    """Prints listings and results to stdout; a terminal gets tables and color."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.tty = is_tty(self.out)
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.out, highlight=False, soft_wrap=not self.tty)
        return self._console

    def _table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.tty:
            from rich.table import Table

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
            from rich.text import Text

            self.console.print(Text(text, style=style))
        else:
            self.out.write(text + "\n")

    # -- listings ---------------------------------------------------------------------------

    def subagents(self, runs: Sequence[Obj]) -> None:
        if not runs:
            self.line("no subagents yet")
            return
        self._table(
            "subagents",
            ["id", "status", "agent", "chat", "session", "started", "patch", "prompt"],
            [
                [
                    _short(r["subagent_id"]),
                    r["status"],
                    r["agent"],
                    _short(r["chat_id"]),
                    _short(r["session_id"]),
                    _when(r.get("created_at")),
                    _short(r.get("patch_id")),
                    _excerpt(r.get("prompt"), 50),
                ]
                for r in runs
            ],
        )

    def patches(self, patches: Sequence[Obj]) -> None:
        if not patches:
            self.line("no patches")
            return
        self._table(
            "patches",
            ["id", "status", "agent", "chat", "files", "+", "-", "created", "paths"],
            [
                [
                    _short(p["id"]),
                    p["status"] + (" (mid-turn)" if p.get("failed_mid_turn") else ""),
                    p["agent"],
                    _short(p["chat_id"]),
                    str(p["file_count"]),
                    str(p["additions"]),
                    str(p["deletions"]),
                    _when(p.get("created_at")),
                    _excerpt(", ".join(f["path"] for f in p.get("files") or []), 50),
                ]
                for p in patches
            ],
        )

    def agents(self, agents: Sequence[Obj]) -> None:
        self._table(
            "agents",
            ["name", "installed", "version", "protocol", "images", "command", "install"],
            [
                [
                    a["name"] + (" (default)" if a.get("default") else ""),
                    "yes" if a.get("installed") else "no",
                    a.get("version") or "",
                    a.get("protocol") or "",
                    "?" if a.get("images") is None else "yes" if a["images"] else "no",
                    a.get("path") or a.get("command") or "",
                    "" if a.get("installed") else (a.get("install") or ""),
                ]
                for a in agents
            ],
        )

    def inbox(self, items: Sequence[Obj]) -> None:
        if not items:
            self.line("the inbox is empty")
            return
        self._table(
            "inbox",
            ["when", "kind", "run", "patch", "status", "reason"],
            [
                [
                    _when(i.get("created_at")),
                    i["kind"],
                    _short(i.get("subagent_id")),
                    _short(i.get("patch_id")),
                    i.get("status") or "",
                    _excerpt(i.get("reason"), 70),
                ]
                for i in items
            ],
        )

    def usage(self, rows: Sequence[Obj]) -> None:
        if not rows:
            self.line("no runs")
            return

        def count(value: Any) -> str:
            return "" if value is None else f"{value:,}"

        self._table(
            "usage",
            [
                "key",
                "runs",
                "ok",
                "failed",
                "success",
                "median turn",
                "in",
                "out",
                "cache read",
                "cache write",
                "cost",
            ],
            [
                [
                    _short(r["key"]) if len(r["key"]) > 30 else r["key"],
                    str(r["runs"]),
                    str(r["completed"]),
                    str(r["failed"]),
                    "" if r.get("success_rate") is None else f"{r['success_rate']:.0%}",
                    "" if r.get("median_turn_ms") is None else f"{r['median_turn_ms'] / 1000:.1f}s",
                    count(r.get("input_tokens")),
                    count(r.get("output_tokens")),
                    count(r.get("cache_read_tokens")),
                    count(r.get("cache_write_tokens")),
                    "" if r.get("cost") is None else f"{r['cost']:.4g}",
                ]
                for r in rows
            ],
        )

    def traces(self, traces: Sequence[Obj]) -> None:
        if not traces:
            self.line("no traces")
            return
        self._table(
            "traces",
            ["started", "source", "tool", "outcome", "ms", "session", "subagent"],
            [
                [
                    _when(t.get("started_at")),
                    t["source"],
                    t["tool_name"],
                    t.get("outcome") or "",
                    "" if t.get("latency_ms") is None else f"{t['latency_ms']:.0f}",
                    _short(t.get("session_id")),
                    _short(t.get("subagent_id")),
                ]
                for t in traces
            ],
        )

    def hits(self, hits: Sequence[Obj]) -> None:
        if not hits:
            self.line("no matches")
            return
        self._table(
            "memory",
            ["score", "source", "title", "snippet"],
            [[f"{h['score']:.2f}", h["source"], h["title"], _excerpt(h.get("snippet"), 70)] for h in hits],
        )

    # -- single objects ---------------------------------------------------------------------

    def subagent(self, run: Obj) -> None:
        self.line(f"subagent {run['subagent_id']}  {run['status']}", "bold")
        self.line(f"agent {run['agent']}  chat {run['chat_id']}  session {run['session_id']}")
        if run.get("worktree"):
            self.line(f"worktree {run['worktree']}")
        if run.get("prompt"):
            self.line(f"prompt: {run['prompt']}")
        if run.get("stop_reason"):
            self.line(f"stop reason: {run['stop_reason']}")
        if run.get("error"):
            self.line(f"error: {run['error']}", "red")
        if run.get("session_note"):
            self.line(f"note: {run['session_note']}", "yellow")
        pp = run.get("pending_permission")
        if pp:
            opts = ", ".join(f"{o['option_id']} ({o['kind']})" for o in pp["options"])
            self.line(f"waiting for permission {pp['request_id']}: {pp['title']} [{opts}]", "yellow")
        tool_calls = (run.get("activity") or {}).get("tool_calls") or []
        if tool_calls:
            self.line("tool calls:")
            for tc in tool_calls:
                self.line(f"  {tc.get('status') or '?':<11} {tc['title']}")
        if run.get("final_message"):
            self.line("")
            self.out.write(run["final_message"].rstrip("\n") + "\n")

    def patch_header(self, p: Obj) -> None:
        self.line(
            f"patch {p['id']}  {p['status']}  {p['file_count']} files (+{p['additions']} -{p['deletions']})"
            f"  agent {p['agent']}  chat {p['chat_id']}  session {p['session_id']}",
            "bold",
        )
        for c in p.get("collisions") or []:
            other = f"patch {_short(c['other_patch_id'])} of chat {_short(c['other_chat_id'])}"
            self.line(f"  overlaps {c['file']} with {other}")

    def diff(self, text: str) -> None:
        if not self.tty:
            self.out.write(text if text.endswith("\n") or not text else text + "\n")
            return
        from rich.text import Text

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

    def apply_result(self, result: Obj) -> None:
        if result.get("conflicts"):
            self.line("nothing applied; conflicts:", "red")
            for c in result["conflicts"]:
                self.line(f"  {_short(c['patch_id'])} {c['file']}: {c['reason']}")
            return
        verb = "would apply" if result.get("dry_run") else "applied"
        if not result.get("applied"):
            self.line("nothing to apply")
            return
        commit = f" (commit {result['commit_sha'][:10]})" if result.get("commit_sha") else ""
        self.line(f"{verb} {', '.join(_short(p) for p in result['applied'])}{commit}", "green")

    # -- workflows --------------------------------------------------------------------------

    def workflows(self, workflows: Sequence[Obj], warnings: Sequence[Obj]) -> None:
        if workflows:
            self._table(
                "workflows",
                ["name", "source", "args", "description"],
                [
                    [
                        w["name"],
                        w["source"],
                        ", ".join(sorted((w.get("args_schema") or {}).get("properties") or {})),
                        _excerpt(w.get("description"), 70),
                    ]
                    for w in workflows
                ],
            )
        else:
            self.line("no workflows")
        for w in warnings:
            self.line(f"skipped {w['file']}: {w['reason']}", "yellow")

    def workflow_run(self, view: Obj) -> None:
        from boocode_mcp.workflow_progress import step_line, summary

        self.line(f"workflow run {view['workflow_run_id']} ({view['name']}, session {view['session_id']})")
        self.line(summary(view), "bold")
        for step in view.get("steps") or []:
            self.line("  " + step_line(step))
        for entry in view.get("logs") or []:
            self.line(f"  log: {entry['message']}")
        if view.get("result") is not None:
            import json

            self.line(json.dumps(view["result"], indent=2, ensure_ascii=False))


_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"


class Progress:
    """Live progress of a run on stderr: the agent's text as it streams, tool calls, a status line.
    With `text_out` (`boocode attach`), the agent's text goes there instead."""

    def __init__(self, err: IO[str] | None = None, *, text_out: IO[str] | None = None) -> None:
        self.err = err if err is not None else sys.stderr
        self.tty = is_tty(self.err)
        self._text_out = text_out
        self._out_mid_line = False
        self._mid_line = False
        self._tools: dict[str, tuple[str, str | None]] = {}

    def _styled(self, text: str, style: str = _DIM) -> None:
        self.err.write(f"{style}{text}{_RESET}\n" if self.tty else text + "\n")
        self.err.flush()

    def _end_line(self) -> None:
        if self._mid_line:
            self.err.write("\n")
            self._mid_line = False

    def text(self, chunk: str) -> None:
        if self._text_out is not None:
            self._text_out.write(chunk)
            self._text_out.flush()
            if chunk:
                self._out_mid_line = not chunk.endswith("\n")
            return
        self.err.write(chunk)
        self.err.flush()
        self._mid_line = not chunk.endswith("\n")

    def tool(self, tool_call_id: str, title: str | None, status: str | None) -> None:
        old_title, old_status = self._tools.get(tool_call_id, ("", None))
        title = title or old_title or tool_call_id
        status = status or old_status
        if (title, status) == (old_title, old_status):
            return
        self._tools[tool_call_id] = (title, status)
        self._end_line()
        mark = {"completed": "✓", "failed": "✗"}.get(status or "", "•")
        self._styled(f"{mark} {title} [{status or 'pending'}]")

    def event(self, kind: str, payload: Obj) -> None:
        """One recorded agent event (from the daemon's `watch`), as it arrives."""
        if kind == "text":
            self.text(str(payload.get("text") or ""))
        elif kind in ("tool_call", "tool_update"):
            self.tool(str(payload.get("tool_call_id")), payload.get("title"), payload.get("status"))

    def status(self, text: str) -> None:
        self._end_line()
        self._styled(f"… {text}")

    def permission(self, pending: Obj) -> None:
        """A pending permission request as a numbered menu (`boocode run` on a terminal)."""
        self._end_line()
        self._styled(f"? permission requested: {pending['title']}", _BOLD)
        for i, option in enumerate(pending["options"], 1):
            self.err.write(f"  {i}. {option['name']} ({option['kind']})\n")
        self.err.flush()

    def ask(self, prompt: str) -> None:
        """A prompt the user's answer completes on the same line."""
        self._end_line()
        self.err.write(prompt)
        self.err.flush()

    def done(self) -> None:
        self._end_line()
        if self._text_out is not None and self._out_mid_line:
            # The agent's text ends with a line break, so whatever follows starts a line.
            self._text_out.write("\n")
            self._text_out.flush()
            self._out_mid_line = False
