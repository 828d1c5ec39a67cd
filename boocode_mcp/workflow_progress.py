"""What a front end shows while a workflow runs: a line when a step starts, changes state or ends,
each log line of the script, from successive `workflow_status` objects.

Plain dicts in, strings out, standard library only: the CLI (which must start fast and imports no
models) and `boocode acp` print the same lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})


def _short(ident: Any) -> str:
    return str(ident or "")[:8]


def step_line(step: Mapping[str, Any]) -> str:
    where = f" [{step['phase']}]" if step.get("phase") else ""
    text = f"step {step['step_id']}{where} on {step['agent']}: {step['status']}"
    if step.get("cached"):
        text += " (from the step cache)"
    elif step.get("subagent_id"):
        text += f" (subagent {_short(step['subagent_id'])})"
    if step.get("patch_id"):
        text += f", patch {_short(step['patch_id'])}"
    if step.get("error") and step["status"] != "completed":
        text += f": {' '.join(str(step['error']).split())[:200]}"
    return text


class Follower:
    """Turns each new view of one run into the lines not shown yet."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, bool, str | None]] = []
        self._logs = 0
        self._status: str | None = None

    def lines(self, view: Mapping[str, Any]) -> list[str]:
        out: list[str] = []
        if view["status"] != self._status and view["status"] == "running" and self._status != "running":
            out.append(f"workflow {view['name']} running (run {_short(view['workflow_run_id'])})")
        self._status = view["status"]
        for i, step in enumerate(view.get("steps") or []):
            state = (str(step["status"]), bool(step.get("cached")), step.get("subagent_id"))
            if i < len(self._steps) and self._steps[i] == state:
                continue
            if i < len(self._steps):
                self._steps[i] = state
            else:
                self._steps.append(state)
            out.append(step_line(step))
        logs = view.get("logs") or []
        for entry in logs[self._logs :]:
            where = f" [{entry['phase']}]" if entry.get("phase") else ""
            out.append(f"log{where}: {entry['message']}")
        self._logs = len(logs)
        return out


def summary(view: Mapping[str, Any]) -> str:
    """The run's end in one line."""
    steps = view.get("steps") or []
    cached = sum(1 for s in steps if s.get("cached"))
    text = f"workflow {view['name']} {view['status']}: {len(steps)} steps, {cached} from the step cache"
    if view.get("error"):
        text += f"; {' '.join(str(view['error']).split())}"
    return text
