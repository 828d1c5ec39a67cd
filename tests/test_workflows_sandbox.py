"""The workflow sandbox on its own: a real QuickJS process per script, its limits, its errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp.workflows.sandbox import Limits, Sandbox, start_sandbox

pytestmark = pytest.mark.anyio

LIMITS = Limits(cpu_limit_s=1.0, memory_limit_mb=16)
ALLOWED = "a workflow script reaches only args, agent(), parallel(), pipeline(), phase(), budget() and log()"


async def drive(
    script: str, tmp_path: Path, *, args: dict[str, Any] | None = None, seed: list[int] | None = None
) -> dict[str, Any]:
    """Run `script` to its end, answering each step with its prompt; the final message."""
    sandbox = await start_sandbox(LIMITS, tmp_path / "sandbox.log")
    try:
        with anyio.fail_after(30):
            await sandbox.send(
                {
                    "op": "run",
                    "source": script,
                    "filename": "wf.js",
                    "args": args or {},
                    "seed": seed or [1, 2, 3, 4],
                }
            )
            async for message in sandbox.messages():
                if message["type"] == "call":
                    value = {
                        "text": f"did {message['prompt']}",
                        "patch_id": None,
                        "files": [],
                        "cached": False,
                    }
                    await sandbox.send({"op": "settle", "id": message["id"], "ok": True, "value": value})
                elif message["type"] == "done":
                    return message
            return {"type": "exited", "reason": await sandbox.exit_reason()}
    finally:
        await sandbox.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("return require('fs')", f"ReferenceError: require is not available in a workflow script: {ALLOWED}"),
        ("return process.env", f"ReferenceError: process is not available in a workflow script: {ALLOWED}"),
        (
            "return fetch('http://127.0.0.1/')",
            f"ReferenceError: fetch is not available in a workflow script: {ALLOWED}",
        ),
        (
            "return import('fs')",
            f"import('fs') is not available in a workflow script: it loads no modules; {ALLOWED}",
        ),
        (
            "console.log('hi')",
            "ReferenceError: console is not available in a workflow script: use log(message)",
        ),
        ("for (;;) {}", "the workflow script used more than 1 s of CPU time ([workflows] cpu_limit_s = 1)"),
        (
            "const a = []; for (;;) a.push(new Array(1e5).fill(1))",
            "the workflow script used more than 16 MB of memory ([workflows] memory_limit_mb = 16)",
        ),
        ("const r = (n) => r(n + 1) + 1; return r(0)", "RangeError: Maximum call stack size exceeded"),
        ("return Date.now()", "TypeError: Date.now() is not available in a workflow script: it has no clock"),
        ("return new Date()", "TypeError: new Date() without a time is not available in a workflow script"),
    ],
)
async def test_what_a_script_cannot_reach_fails_its_run_with_a_clear_message(
    body: str, expected: str, tmp_path: Path
) -> None:
    done = await drive(f'workflow = {{name: "w", description: "d", async run() {{ {body} }}}};', tmp_path)
    assert done["type"] == "done" and done["ok"] is False
    assert done["error"].startswith(expected), done["error"]


async def test_a_module_import_statement_is_named_with_its_line(tmp_path: Path) -> None:
    done = await drive('// a workflow\nimport fs from "fs";\nworkflow = {};', tmp_path)
    assert done["error"].startswith(
        "line 2: `import` statements are not available: a workflow is a plain script"
    )


async def test_an_exception_reaches_the_run_with_its_message_and_script_lines(tmp_path: Path) -> None:
    script = (
        "function check(x) {\n"
        "  if (x > 1) throw new TypeError(`too big: ${x}`);\n"
        "}\n"
        'workflow = {name: "w", description: "d", async run({x}) {\n'
        '  await agent("s", {prompt: "p"}).run();\n'
        "  check(x);\n"
        "}};\n"
    )
    done = await drive(script, tmp_path, args={"x": 5})
    assert done["error"].splitlines() == [
        "TypeError: too big: 5",
        "    at check (wf.js:2:46)",
        "    at run (wf.js:6:9)",
    ]
    syntax = await drive("workflow = {name: 'w',\n  run() { let = ; }};", tmp_path)
    assert syntax["error"].startswith("SyntaxError:") and "wf.js:2:" in syntax["error"]


async def test_math_random_repeats_for_the_same_seed_and_dates_of_a_given_time_work(tmp_path: Path) -> None:
    script = (
        'workflow = {name: "w", description: "d", run() {\n'
        "  return {r: [Math.random(), Math.random()], d: new Date(Date.UTC(2020, 1, 2)).toISOString()};\n"
        "}};"
    )
    one = await drive(script, tmp_path, seed=[7, 8, 9, 10])
    two = await drive(script, tmp_path, seed=[7, 8, 9, 10])
    other = await drive(script, tmp_path, seed=[7, 8, 9, 11])
    assert one["ok"] and one["value"]["d"] == "2020-02-02T00:00:00.000Z"
    assert one["value"]["r"] == two["value"]["r"] != other["value"]["r"]
    assert all(0 <= r < 1 for r in one["value"]["r"])


async def test_a_sandbox_that_crashes_is_reported_with_its_signal(tmp_path: Path) -> None:
    sandbox: Sandbox = await start_sandbox(LIMITS, tmp_path / "sandbox.log")
    try:
        script = 'workflow = {name: "w", description: "d", run: () => agent("s", {prompt: "p"}).run()};'
        await sandbox.send(
            {"op": "run", "source": script, "filename": "wf.js", "args": {}, "seed": [1, 2, 3, 4]}
        )
        with anyio.fail_after(30):
            call = await sandbox.receive()
            assert call is not None and call["type"] == "call"
            # A native crash of the interpreter, as the kernel would deliver it.
            os.killpg(sandbox.pgid, signal.SIGSEGV)
            assert await sandbox.receive() is None
        reason = await sandbox.exit_reason()
        assert (
            reason
            == "the workflow's sandbox process ended with signal SIGSEGV; the daemon log has the details"
        )
    finally:
        await sandbox.close()
