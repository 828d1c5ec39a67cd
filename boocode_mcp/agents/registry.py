"""Which agents exist (built in, configured) and where their programs are."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from boocode_mcp import procs
from boocode_mcp.agents.builtin import BUILTIN_AGENTS
from boocode_mcp.agents.builtin_cli import BUILTIN_CLI_AGENTS
from boocode_mcp.config import BOOCODE_DIR, AgentSpec, Config
from boocode_mcp.errors import AgentNotInstalledError, ConfigError, UnknownAgentError
from boocode_mcp.views import AgentInfo

VERSION_TIMEOUT_S = 3.0
# ACP agents, and the one-shot command modes of the same tools (`<agent>-cli`).
BUILTINS: dict[str, AgentSpec] = {**BUILTIN_AGENTS, **BUILTIN_CLI_AGENTS}


@dataclass(frozen=True)
class ResolvedAgent:
    """An agent whose program was found: what to exec and how."""

    name: str
    spec: AgentSpec
    program: str
    argv: tuple[str, ...]


def find_program(command: str) -> str | None:
    """The absolute path of `command`: a name is looked up on PATH, a path must exist."""
    if os.sep in command or (os.altsep and os.altsep in command):
        path = Path(command).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            # absolute, not resolved: a venv interpreter is a symlink that must stay one
            return str(path.absolute())
        return None
    return shutil.which(command)


class AgentRegistry:
    """Launch specs by name: the built-ins, with configured entries of the same name winning."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._specs: dict[str, AgentSpec] = {**BUILTINS, **config.agents}
        self._check_fallbacks()

    def _check_fallbacks(self) -> None:
        """Every `fallback` names a command-line agent (config.py checks those in one file)."""
        for name, spec in self._specs.items():
            if spec.fallback is None:
                continue
            target = self._specs.get(spec.fallback)
            if target is None or target.protocol != "cli":
                clis = ", ".join(n for n in self.names() if self._specs[n].protocol == "cli")
                what = "no agent" if target is None else "an ACP agent"
                raise ConfigError(
                    f"invalid configuration: agents.{name}.fallback = {spec.fallback!r} names {what}; "
                    f'it must name a protocol = "cli" entry ({clis}) in {BOOCODE_DIR}/config.toml or '
                    "the user config"
                )

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> AgentSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownAgentError(
                f"unknown agent {name!r}; known agents: {', '.join(self.names())}. To add one, put "
                f'[agents.{name}] with command = "..." (and args = [...]) in '
                f"{BOOCODE_DIR}/config.toml"
            ) from None

    def resolve(self, name: str) -> ResolvedAgent:
        spec = self.spec(name)
        program = find_program(spec.command)
        if program is None:
            where = "on PATH" if os.sep not in spec.command else "at that path"
            hint = f"install it with `{spec.install}`" if spec.install else "install it"
            raise AgentNotInstalledError(
                f"agent {name!r} is not installed: no {spec.command!r} {where}; {hint}, or set "
                f"[agents.{name}] command in {BOOCODE_DIR}/config.toml; see `boocode agents`"
            )
        return ResolvedAgent(name=name, spec=spec, program=program, argv=(program, *spec.args))

    async def describe(self) -> list[AgentInfo]:
        """One row per agent for `boocode agents`; versions are probed concurrently and bounded."""
        names = self.names()
        programs = {n: find_program(self._specs[n].command) for n in names}
        versions = await asyncio.gather(*(_version(programs[n], self._specs[n].version_args) for n in names))
        return [
            AgentInfo(
                name=n,
                command=self._specs[n].command,
                args=list(self._specs[n].args),
                installed=programs[n] is not None,
                path=programs[n],
                version=v,
                install=self._specs[n].install,
                protocol=self._specs[n].protocol,
                builtin=n in BUILTINS,
                configured=n in self._config.agents,
                default=n == self._config.default_agent,
            )
            for n, v in zip(names, versions, strict=True)
        ]


async def _version(program: str | None, args: tuple[str, ...]) -> str | None:
    """The first line the program prints for its version flag, or None; never hangs."""
    if program is None or not args:
        return None
    try:
        proc = await procs.spawn_in_group(
            [program, *args],
            cwd=Path.cwd(),
            env=procs.child_env(agent=True),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT_S)
    except TimeoutError:
        return None
    finally:
        with contextlib.suppress(ProcessLookupError):
            await procs.terminate_group(proc, grace_s=0.5)
    for line in out.decode(errors="replace").splitlines():
        if line.strip():
            return line.strip()[:200]
    return None
