"""Real third-party ACP agents for tests and benchmarks: install cache, launch setups, a direct client.

The agents (opencode, qwen-code) come from the npm registry into a cache outside the repository,
``${BOOCODE_AGENT_CACHE:-~/.cache/boocode-agents}/<name>``, installed by scripts/install-agents.sh
only when missing. Each runs against the scripted model server in tests/model_server.py with its
home and XDG directories in a scratch directory, so nothing of the developer's own setup leaks in.

The launch settings here are the *test* overrides of the built-in specs in
boocode_mcp/agents/builtin.py: they add what only a stub provider needs (qwen's
``--auth-type openai``, opencode's inline provider config, no model catalogue fetch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from boocode_mcp.agents.builtin import BUILTIN_AGENTS
from boocode_mcp.trust import trust_workspace

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-agents.sh"
REAL_AGENT_NAMES = ("opencode", "qwen")
# The executable each cached install provides, relative to the agent's cache directory.
_BINARIES = {"opencode": "node_modules/.bin/opencode", "qwen": "node_modules/.bin/qwen"}
# npm's words for "the registry could not be reached"; only these turn a failed install into a skip.
_UNREACHABLE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up",
    re.IGNORECASE,
)


class RegistryUnreachableError(RuntimeError):
    """The npm registry could not be reached, so an agent could not be installed."""


def agent_cache() -> Path:
    return Path(os.environ.get("BOOCODE_AGENT_CACHE") or Path.home() / ".cache" / "boocode-agents")


def agent_binary(name: str) -> Path:
    return agent_cache() / name / _BINARIES[name]


def ensure_installed(name: str) -> Path:
    """The agent's executable, installing it into the cache first when missing.

    Raises RegistryUnreachableError when npm could not reach the registry (callers skip with
    that reason) and RuntimeError for any other install failure (callers fail).
    """
    binary = agent_binary(name)
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        raise RuntimeError(f"cannot install {name}: npm is not on PATH (install Node.js 20+ with npm)")
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), name], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0 or not binary.exists():
        output = (proc.stdout + proc.stderr)[-2000:]
        cause = next((line.strip() for line in output.splitlines() if _UNREACHABLE.search(line)), None)
        if cause is not None:
            raise RegistryUnreachableError(
                f"cannot install {name}: the npm registry is unreachable ({cause}); "
                f"run scripts/install-agents.sh when it is"
            )
        raise RuntimeError(f"installing {name} failed (exit {proc.returncode}): {output}")
    return binary


# -- launch setups ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSetup:
    """One real agent pointed at the scripted model server: what to run and with which env."""

    name: str
    command: str
    args: tuple[str, ...]
    env: dict[str, str]
    # Where the agent keeps its session records (a glob under HOME) when it writes them after
    # the turn's response rather than before it; None when a finished turn is already on disk.
    record_glob: str | None = None

    async def wait_recorded(self, text: str, within: float = 10.0) -> None:
        """Wait until the agent has persisted a turn containing `text`, so a new process can load it.

        qwen-code writes its chat record a few tens of ms after answering session/prompt and
        does not flush it on exit, so an agent closed at once loses its last turn. Nothing
        signals the write, so the file is polled (off the event loop), bounded by `within`.
        """
        if self.record_glob is not None:
            await anyio.to_thread.run_sync(self._poll_recorded, self.record_glob, text, within)

    def _poll_recorded(self, pattern: str, text: str, within: float) -> None:
        home = Path(self.env["HOME"])
        deadline = time.monotonic() + within
        while not any(text in p.read_text(errors="replace") for p in home.glob(pattern)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not record {text!r} under {home / pattern} in {within}s")
            time.sleep(0.02)

    def config_toml(self) -> str:
        """This agent as a `[agents.<name>]` table of BooCode's config."""
        env = ", ".join(f"{k} = {_toml_str(v)}" for k, v in sorted(self.env.items()))
        args = ", ".join(_toml_str(a) for a in self.args)
        # The entry replaces the built-in spec whole; keep the built-in's quirks that are not about
        # the stub provider (settle_s: how long the agent needs to persist a turn).
        settle = BUILTIN_AGENTS[self.name].settle_s if self.name in BUILTIN_AGENTS else 0.0
        return (
            f"[agents.{self.name}]\ncommand = {_toml_str(self.command)}\nargs = [{args}]\nenv = {{ {env} }}\n"
            f"settle_s = {settle}\n"
        )


def _toml_str(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value)


def _scratch_env(scratch: Path) -> dict[str, str]:
    dirs = {
        "HOME": scratch / "home",
        "XDG_CONFIG_HOME": scratch / "config",
        "XDG_DATA_HOME": scratch / "data",
        "XDG_CACHE_HOME": scratch / "cache",
        "XDG_STATE_HOME": scratch / "state",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return {k: str(v) for k, v in dirs.items()}


def opencode_config(base_url: str) -> dict[str, Any]:
    """opencode's provider config for the stub model (the provider package ships inside opencode)."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "stub": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Stub",
                "options": {"baseURL": base_url, "apiKey": "sk-stub"},
                "models": {"stub-model": {"name": "Stub Model", "tool_call": True}},
            }
        },
        "model": "stub/stub-model",
        "small_model": "stub/stub-model",
        "autoupdate": False,
        "share": "disabled",
    }


def opencode_setup(binary: Path, base_url: str, scratch: Path) -> AgentSetup:
    env = {
        **_scratch_env(scratch),
        # Given in the environment rather than as opencode.json in the cwd, which would show up
        # in every patch.
        "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(base_url)),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
    }
    return AgentSetup("opencode", str(binary), ("acp",), env)


def qwen_setup(binary: Path, base_url: str, scratch: Path) -> AgentSetup:
    env = {
        **_scratch_env(scratch),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-stub",
        "OPENAI_MODEL": "stub-model",
    }
    # qwen's own default mode asks permission before edits; BooCode's policy answers it.
    return AgentSetup(
        "qwen",
        str(binary),
        ("--acp", "--auth-type", "openai"),
        env,
        record_glob=".qwen/projects/*/chats/*.jsonl",
    )


def setup_for(name: str, binary: Path, base_url: str, scratch: Path) -> AgentSetup:
    return {"opencode": opencode_setup, "qwen": qwen_setup}[name](binary, base_url, scratch)


def write_workspace_config(
    workspace: Path, setups: Sequence[AgentSetup], *, policy: str = "auto", timeout_s: float = 300
) -> Path:
    """Write <workspace>/.boocode/config.toml naming the given agents (first one is the default),
    trusted in the user config directory of this process's environment."""
    cfg_dir = workspace / ".boocode"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"default_agent = {_toml_str(setups[0].name)}\n"] if setups else []
    parts += [s.config_toml() for s in setups]
    parts.append(f"[permissions]\npolicy = {_toml_str(policy)}\ntimeout_s = {timeout_s}\n")
    path = cfg_dir / "config.toml"
    path.write_text("\n".join(parts))
    trust_workspace(workspace)
    return path


# -- a direct ACP client (for the first end-to-end checks and the benchmark baseline) ------------


@dataclass
class DirectClient:
    """A minimal ACP client: records updates, allows every permission, serves fs inside cwd."""

    cwd: Path
    updates: list[Any] = field(default_factory=list)
    permissions: list[list[str]] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)

    def text(self) -> str:
        out = []
        for u in self.updates:
            if getattr(u, "session_update", None) == "agent_message_chunk":
                content = getattr(u, "content", None)
                out.append(getattr(content, "text", "") or "")
        return "".join(out)

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates.append(update)

    async def request_permission(self, session_id: str, tool_call: Any, options: Any, **kw: Any) -> Any:
        from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse

        self.permissions.append([f"{o.option_id}:{o.kind}" for o in options])
        for kind in ("allow_once", "allow_always"):
            for o in options:
                if o.kind == kind:
                    return RequestPermissionResponse(
                        outcome=AllowedOutcome(outcome="selected", option_id=o.option_id)
                    )
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))

    def _inside(self, path: str) -> Path:
        p = Path(path)
        p = p if p.is_absolute() else self.cwd / p
        return p

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kw: Any
    ) -> Any:
        from acp import RequestError
        from acp.schema import ReadTextFileResponse

        p = self._inside(path)
        if not p.is_file():
            raise RequestError.resource_not_found(str(p))
        lines = p.read_text().splitlines(keepends=True)
        start = max((line or 1) - 1, 0)
        end = start + limit if limit else None
        return ReadTextFileResponse(content="".join(lines[start:end]))

    async def write_text_file(self, session_id: str, path: str, content: str, **kw: Any) -> Any:
        p = self._inside(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        self.writes.append(str(p))
        return None


@dataclass
class DirectAgent:
    """A spawned agent process attached over ACP."""

    proc: asyncio.subprocess.Process
    conn: Any
    client: DirectClient
    init: Any
    stderr_path: Path


@contextlib.asynccontextmanager
async def direct_agent(
    setup: AgentSetup,
    cwd: Path,
    log_path: Path,
    *,
    fs: bool = True,
    terminal: bool = False,
    close_grace_s: float = 5.0,
) -> AsyncIterator[DirectAgent]:
    """Spawn the agent in its own process group, attach ACP, initialize; kill the group on exit."""
    from acp import PROTOCOL_VERSION, connect_to_agent
    from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

    env = _agent_env(setup.env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            setup.command,
            *setup.args,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            limit=50 * 1024 * 1024,
        )
    client = DirectClient(cwd)
    conn = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        conn = connect_to_agent(client, proc.stdin, proc.stdout)  # type: ignore[arg-type]
        init = await conn.initialize(
            protocol_version=PROTOCOL_VERSION,
            client_capabilities=ClientCapabilities(
                fs=FileSystemCapabilities(read_text_file=fs, write_text_file=fs), terminal=terminal
            ),
            client_info=Implementation(name="boocode-test", version="0.1"),
        )
        yield DirectAgent(proc, conn, client, init, log_path)
    finally:
        await close_agent(proc, grace_s=close_grace_s)
        if conn is not None:
            # Stops the connection's receive and send tasks, which would otherwise be left pending.
            await conn.close()


async def close_agent(proc: asyncio.subprocess.Process, *, grace_s: float) -> str:
    """End an agent the polite way: close its stdin and wait, then SIGTERM, then SIGKILL its group.

    Returns how it ended ("eof", "sigterm" or "sigkill"). Some agents persist their session
    record asynchronously (qwen-code), so an agent killed at once can lose its last turn.
    """
    how = "eof"
    if proc.stdin is not None and grace_s > 0:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace_s)
    if proc.returncode is None:
        how = "sigterm"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            how = "sigkill"
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    # The group may outlive its leader (agents spawn helpers); never leave one behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return how


def _agent_env(extra: Mapping[str, str]) -> dict[str, str]:
    keep = ("PATH", "TERM", "LANG", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("LC_")}
    env.update(extra)
    return env


async def timed(coro: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - t0


# -- BooCode over MCP (the real `boocode-mcp` console script on stdio) ----------------------------

TERMINAL = frozenset({"completed", "failed", "cancelled", "interrupted"})


def boocode_mcp_command() -> list[str]:
    """The `boocode-mcp` console script of this interpreter's environment, else the module entry."""
    import sys

    script = Path(sys.executable).parent / "boocode-mcp"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from boocode_mcp.cli import mcp_main; mcp_main(sys.argv[1:])"]


@dataclass
class BooCodeMcp:
    """A connected MCP client on a BooCode server, with the calls the tests make."""

    client: Any

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, {k: v for k, v in arguments.items() if v is not None})
        if result.is_error:
            texts = [getattr(c, "text", "") for c in result.content]
            raise AssertionError(f"{tool} failed: {' '.join(texts)}")
        assert result.structured_content is not None, f"{tool} returned no structured content"
        return dict(result.structured_content)

    async def spawn(self, prompt: str, **arguments: Any) -> dict[str, Any]:
        return await self.call("spawn_subagent", prompt=prompt, **arguments)

    async def wait_status(
        self, subagent_id: str, statuses: frozenset[str] = TERMINAL, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Poll subagent_status (each call bounded by the server) until the run reaches a status.

        Unbounded by itself: callers bound it with anyio.fail_after.
        """
        while True:
            status = await self.call(
                "subagent_status", subagent_id=subagent_id, wait_seconds=10, session_id=session_id
            )
            if status["status"] in statuses:
                return status

    async def run(self, prompt: str, **arguments: Any) -> dict[str, Any]:
        """Spawn and wait for the run to finish; the final subagent_status."""
        spawned = await self.spawn(prompt, wait_seconds=30, **arguments)
        return await self.wait_status(spawned["subagent_id"], session_id=spawned["session_id"])

    async def resource(self, uri: str) -> Any:
        result = await self.client.read_resource(uri)
        return json.loads(result.contents[0].text)

    async def agent_sessions(self, chat_id: str) -> list[dict[str, Any]]:
        data = await self.resource(f"agent-sessions://{chat_id}")
        if isinstance(data, dict) and "agent_sessions" in data:
            return list(data["agent_sessions"])
        return list(data) if isinstance(data, list) else [data]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name may hold spaces and parentheses; fields after it are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


async def wait_group_gone(pgid: int, within: float = 15.0) -> None:
    """Wait until no process of the group runs; AssertionError naming the survivors otherwise.

    A process group's end has no event to wait on from outside, so /proc is polled (off the
    event loop), bounded by `within`.
    """

    def poll() -> list[int]:
        deadline = time.monotonic() + within
        while (left := group_members(pgid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    survivors = await anyio.to_thread.run_sync(poll)
    assert not survivors, f"agent process group {pgid} outlived BooCode: {survivors}"


@contextlib.asynccontextmanager
async def boocode_mcp(workspace: Path, scratch: Path, log_path: Path) -> AsyncIterator[BooCodeMcp]:
    """Start `boocode-mcp --workspace <workspace>` on stdio and connect an MCP client to it; on
    the way out, stop the workspace's daemon too (its agents stop with it), as a user ending
    BooCode would.

    The daemon's user config directory is in `scratch`, so a developer's own
    ~/.config/boocode/config.toml does not leak into tests; the relay's stderr goes to `log_path`
    (the daemon's own log is `.boocode/logs/daemon.log`).
    """
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from boocode_mcp.daemon.wire import stop_daemon

    config_home = scratch / "boocode-config"
    config_home.mkdir(parents=True, exist_ok=True)
    # The workspace config the test wrote names the agents: trusted where this server looks.
    trust_workspace(workspace, config_home / "boocode")
    cmd = boocode_mcp_command()
    params = StdioServerParameters(
        command=cmd[0],
        args=[*cmd[1:], "--workspace", str(workspace)],
        env={"XDG_CONFIG_HOME": str(config_home)},
        cwd=str(workspace),
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("a") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                yield BooCodeMcp(client)
    finally:
        await anyio.to_thread.run_sync(stop_daemon, workspace)


# -- pytest fixtures (import the *_fixture functions into a test module to use them) ----------


# An unreachable registry is tried once per test session, not once per test.
_UNINSTALLABLE: dict[str, RegistryUnreachableError] = {}


def _installed_or_skip(name: str) -> Path:
    if name in _UNINSTALLABLE:
        pytest.skip(str(_UNINSTALLABLE[name]))
    try:
        return ensure_installed(name)
    except RegistryUnreachableError as e:
        _UNINSTALLABLE[name] = e
        pytest.skip(str(e))


@pytest.fixture(name="real_agent", params=REAL_AGENT_NAMES)
def real_agent_fixture(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(name, executable) for each real agent, installed into the cache when missing."""
    name = str(request.param)
    return name, _installed_or_skip(name)


@pytest.fixture(name="model_server")
def model_server_fixture() -> Any:
    from tests.model_server import ModelServer

    with ModelServer() as server:
        yield server
