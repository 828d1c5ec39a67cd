"""The workflow sandbox process: one QuickJS (quickjs-ng) interpreter per workflow run.

`sandbox.py` starts it as `python -I -S sandbox_child.py QUICKJS_DIR CPU_LIMIT_S MEMORY_LIMIT_MB`,
in a process group of its own with an empty environment. It imports nothing of BooCode and nothing
outside the standard library but `_quickjs`, so that it starts fast, and it holds no file, socket or
process the script could reach: the script's one way out is the host function the workflow API
(prelude.js) calls, which turns each call into a JSON line on stdout.

Its limits hold in two layers. QuickJS's own: a CPU-time limit (re-armed with what is left before
each entry into JavaScript, so time spent waiting for the daemon costs nothing), a heap limit and a
stack limit, each surfacing as a catchable JavaScript error (an interrupt is uncatchable). The
kernel's, under them: RLIMIT_CPU a little above the CPU limit, RLIMIT_AS above the heap limit, no
core files, and death with the parent (PR_SET_PDEATHSIG), so a script that somehow escapes the
interpreter's checks, or a crash of the interpreter itself, ends this process and nothing else.

Requests (stdin) and messages (stdout), one JSON object per line:
    → {"op": "describe", "files": [{"path", "source"}]}   ← {"type": "described", "results": [...]}
    → {"op": "run", "source", "filename", "args", "seed"}
                                  ← {"type": "call", "id", "op": "agent", ...} (the script awaits it)
                                  ← {"type": "log" | "budget" | "scope", ...}
    → {"op": "settle", "id", "ok", "value" | "error"}
                                  ← {"type": "done", "ok", "value" | "error", "limit"}  (then exits)
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Top-level code of a workflow file only defines it: describing one gets this much CPU at most.
DESCRIBE_CPU_S = 2.0
STACK_BYTES = 2 * 1024 * 1024
REACH = "a workflow script reaches only args, agent(), parallel(), pipeline(), phase(), budget() and log()"
MAX_FRAMES = 6
# A stack frame as QuickJS prints it: "    at fn (<input>:12:5)" or "    at <input>:3:1".
_FRAME = re.compile(r"^\s*at (?:(?P<fn>[^(]*?) \()?<input>(?::(?P<line>\d+)(?::(?P<col>\d+))?)?\)?\s*$")


class Violation(Exception):
    """A limit the script went over; `limit` names the config key."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


def write(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def _die_with_parent() -> None:
    """SIGKILL this process when the daemon dies (kill -9 included): no sandbox outlives it."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:
        # The parent died before the prctl took effect.
        os._exit(1)


def _kernel_limits(cpu_s: float, memory_mb: int) -> None:
    soft = int(cpu_s) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    # The interpreter, its heap and JSON copies of what crosses the pipe.
    address_space = (max(memory_mb * 3, 192) + 256) << 20
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Interpreter:
    """One QuickJS context with the workflow API, its CPU account and the run's step calls."""

    def __init__(
        self,
        quickjs: Any,
        prelude: str,
        cpu_s: float,
        memory_mb: int,
        seed: list[int],
        *,
        describing: bool = False,
    ) -> None:
        self.cpu_s = cpu_s
        self.describing = describing
        self.memory_mb = memory_mb
        self.used_s = 0.0
        self.outstanding: set[int] = set()
        self.outcome: dict[str, Any] | None = None
        self.ctx = quickjs.Context()
        self.ctx.set_memory_limit(memory_mb << 20)
        self.ctx.set_max_stack_size(STACK_BYTES)
        self.ctx.eval(f"var __boocode_seed = {json.dumps(seed)};")
        self.prelude = prelude
        # Lines of the program before the script's first (see load).
        self.prelude_lines = 0
        self.filename = "<script>"
        self.js_error: type[BaseException] = quickjs.JSException

    def enter(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` (which runs JavaScript), every job it queued, and pass on what the script
        posted; all of it on the CPU account. QuickJS re-arms its limit at each call, so the jobs
        are also counted here, between calls."""
        started = time.process_time()
        try:
            result = self._call(fn, started)
            while self._call(self.ctx.execute_pending_job, started):
                pass
            posted = self._call(lambda: self.ctx.eval("__boocode.drain()"), started)
        except self.js_error as e:
            raise self._classify(e) from None
        finally:
            self.used_s += time.process_time() - started
        self._forward(json.loads(posted))
        return result

    def _call(self, fn: Callable[[], Any], started: float) -> Any:
        remaining = self.cpu_s - self.used_s - (time.process_time() - started)
        if remaining <= 0:
            raise self._cpu_violation()
        self.ctx.set_time_limit(remaining)
        return fn()

    def _forward(self, posted: list[dict[str, Any]]) -> None:
        for msg in posted:
            op = msg.pop("op", None)
            if self.outcome is not None:
                continue
            if op == "done":
                self.outcome = msg
            elif op == "agent":
                self.outstanding.add(int(msg["id"]))
                write({"type": "call", "op": "agent", **msg})
            elif op in ("log", "budget", "scope"):
                write({"type": op, **msg})

    def _cpu_violation(self) -> Violation:
        if self.describing:
            return Violation(
                f"its top level used more than {self.cpu_s:g} s of CPU time: the top level of a "
                "workflow file should only define the workflow",
                "cpu_limit_s",
            )
        return Violation(
            f"the workflow script used more than {self.cpu_s:g} s of CPU time "
            f"([workflows] cpu_limit_s = {self.cpu_s:g})",
            "cpu_limit_s",
        )

    def _classify(self, error: BaseException) -> Exception:
        text = str(error)
        return self.classify(text.split("\n", 1)[0], text)

    def classify(self, head: str, stack: str) -> Exception:
        """What a JavaScript error means: a limit the script went over (whether the script let it
        through or the interpreter raised it past the script), or the script's own error."""
        if head.startswith("InternalError: interrupted"):
            return self._cpu_violation()
        # QuickJS throws null when it cannot even allocate its out-of-memory error (a script that
        # throws null itself is reported the same way).
        if head.startswith("InternalError: out of memory") or head == "null":
            return Violation(
                f"the workflow script used more than {self.memory_mb} MB of memory "
                f"([workflows] memory_limit_mb = {self.memory_mb})",
                "memory_limit_mb",
            )
        return ScriptError(self.describe_error(head, stack))

    def describe_error(self, head: str, stack: str) -> str:
        """The error's first line and its frames in the script (the API's own frames left out),
        with the script's file name and its own line numbers."""
        frames: list[list[Any]] = []
        for line in stack.splitlines():
            m = _FRAME.match(line)
            if m is None or m.group("line") is None:
                continue
            n = int(m.group("line"))
            if n <= self.prelude_lines:
                continue
            where = f"{self.filename}:{n - self.prelude_lines}"
            if m.group("col"):
                where += f":{m.group('col')}"
            fn = (m.group("fn") or "").strip()
            frame = f"    at {fn} ({where})" if fn and fn != "<eval>" else f"    at {where}"
            # A deep recursion repeats one frame many times: said once, with its count.
            if frames and frames[-1][0] == frame:
                frames[-1][1] += 1
            else:
                frames.append([frame, 1])
        lines = [f"{f} (×{n})" if n > 1 else str(f) for f, n in frames[:MAX_FRAMES]]
        return "\n".join([_clearer(head), *lines])

    def load(self, source: str, filename: str, args_json: str) -> None:
        """The API, the run's args and the script, as one program (the script's line numbers are
        recovered from the frames)."""
        self.filename = filename
        program = f"{self.prelude}\n__boocode.bind({json.dumps(args_json)});\n{source}"
        self.prelude_lines = program.count("\n") - source.count("\n")
        self.enter(lambda: self.ctx.eval(program))


class ScriptError(Exception):
    """The script threw (or could not be parsed); the message is what the run's error shows."""


def _clearer(head: str) -> str:
    """BooCode's words for what QuickJS reports tersely."""
    m = re.match(r"ReferenceError: could not load module '(.*)'", head)
    if m:
        return f"import('{m.group(1)}') is not available in a workflow script: it loads no modules; {REACH}"
    return head


def _static_import(source: str) -> str | None:
    """A plain script cannot hold import/export statements; say so instead of a bare syntax error."""
    for n, line in enumerate(source.splitlines(), 1):
        if re.match(r"\s*(import\s*[\w*{'\"]|export\s)", line):
            word = line.split()[0]
            return (
                f"line {n}: `{word}` statements are not available: a workflow is a plain script (not a "
                f"module) that assigns workflow = {{name, description, args?, run(args)}}; {REACH}"
            )
    return None


def describe(quickjs: Any, prelude: str, request: dict[str, Any], cpu_s: float, memory_mb: int) -> None:
    results = []
    for f in request["files"]:
        path, source = f["path"], f["source"]
        problem = _static_import(source)
        if problem is not None:
            results.append({"path": path, "error": problem})
            continue
        interp = Interpreter(
            quickjs, prelude, min(cpu_s, DESCRIBE_CPU_S), memory_mb, [1, 2, 3, 4], describing=True
        )
        try:
            interp.load(source, Path(path).name, "{}")
            described = json.loads(interp.enter(functools.partial(interp.ctx.eval, "__boocode.describe()")))
        except (ScriptError, Violation) as e:
            results.append({"path": path, "error": str(e)})
            continue
        results.append({"path": path, **described})
    write({"type": "described", "results": results})


def run(quickjs: Any, prelude: str, request: dict[str, Any], cpu_s: float, memory_mb: int) -> None:
    interp = Interpreter(quickjs, prelude, cpu_s, memory_mb, list(request["seed"]))
    done: dict[str, Any]
    try:
        problem = _static_import(request["source"])
        if problem is not None:
            raise ScriptError(problem)
        interp.load(request["source"], request["filename"], json.dumps(request["args"]))
        interp.enter(lambda: interp.ctx.eval("__boocode.start()"))
        settle = interp.ctx.eval("__boocode.settle")
        while interp.outcome is None:
            if not interp.outstanding:
                raise ScriptError(
                    "run() is waiting on a promise nothing will settle (no agent step is running); "
                    "await only agent(...).run(), parallel(), pipeline() or your own async functions"
                )
            line = sys.stdin.buffer.readline()
            if not line:
                return  # the daemon has gone: nothing to report to
            msg = json.loads(line)
            if msg.get("op") != "settle" or msg.get("id") not in interp.outstanding:
                continue
            interp.outstanding.discard(msg["id"])
            ok = bool(msg["ok"])
            payload = json.dumps(msg["value"]) if ok else str(msg["error"])
            interp.enter(functools.partial(settle, msg["id"], ok, payload))
        outcome = interp.outcome
        if not outcome.get("ok"):
            error = outcome.get("error") or {}
            raise interp.classify(
                str(error.get("text") or "the workflow failed"), str(error.get("stack") or "")
            )
        done = {"type": "done", "ok": True, "value": outcome.get("value")}
    except Violation as e:
        done = {"type": "done", "ok": False, "error": str(e), "limit": e.limit}
    except ScriptError as e:
        done = {"type": "done", "ok": False, "error": str(e), "limit": None}
    done["cpu_s"] = round(interp.used_s, 4)
    write(done)


def main(argv: list[str]) -> int:
    quickjs_dir, cpu_s, memory_mb = argv[0], float(argv[1]), int(argv[2])
    _die_with_parent()
    _kernel_limits(cpu_s, memory_mb)
    sys.path.insert(0, quickjs_dir)
    import _quickjs

    prelude = (HERE / "prelude.js").read_text(encoding="utf-8")
    write({"type": "ready", "pid": os.getpid()})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if request.get("op") == "describe":
            describe(_quickjs, prelude, request, cpu_s, memory_mb)
        elif request.get("op") == "run":
            # One run per process: what a script leaves behind dies with it.
            run(_quickjs, prelude, request, cpu_s, memory_mb)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
