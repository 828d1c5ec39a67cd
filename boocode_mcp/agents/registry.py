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
from boocode_mcp.trust import ConfigProvider, EffectiveConfig, FixedConfig, refusal
from boocode_mcp.views import AgentInfo, WorkspaceConfigView

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
    """Launch specs by name: the built-ins, with configured entries of the same name winning.

    The configuration is looked at again on every call (a stat of its files, see
    `boocode_mcp.trust.ConfigSource`), so a long-lived process resolves agents as the config files
    and the user's trust say now.
    """

    def __init__(self, config: Config | ConfigProvider) -> None:
        self._source: ConfigProvider = FixedConfig(config) if isinstance(config, Config) else config
        self._seen: EffectiveConfig | None = None
        self._specs: dict[str, AgentSpec] = {}

    def _now(self) -> EffectiveConfig:
        current = self._source.current()
        if current is not self._seen:
            self._seen = current
            self._specs = {**BUILTINS, **current.config.agents}
        return current

    @property
    def config(self) -> Config:
        """The configuration in force now."""
        return self._now().config

    def workspace_config(self) -> WorkspaceConfigView | None:
        """Whether the workspace's own config file counts (None for a config built in code)."""
        return self._now().workspace

    def names(self) -> list[str]:
        self._now()
        return sorted(self._specs)

    def installed(self) -> list[str]:
        """The agents whose program is there now, by name (a PATH lookup each, no process run)."""
        self._now()
        return sorted(n for n, spec in self._specs.items() if find_program(spec.command) is not None)

    def spec(self, name: str) -> AgentSpec:
        current = self._now()
        if current.problem is not None:
            raise ConfigError(f"{current.problem}; no agent starts until that is fixed")
        try:
            spec = self._specs[name]
        except KeyError:
            if current.workspace is not None and name in current.workspace.ignored_agents:
                raise refusal(current.workspace, name) from None
            raise UnknownAgentError(
                f"unknown agent {name!r}; known agents: {', '.join(self.names())}. To add one, put "
                f'[agents.{name}] with command = "..." (and args = [...]) in '
                f"{BOOCODE_DIR}/config.toml"
            ) from None
        if spec.fallback is not None:
            self._check_fallback(name, spec.fallback)
        return spec

    def _check_fallback(self, name: str, fallback: str) -> None:
        """A `fallback` must name a command-line agent (config.py checks those within one file;
        one defined elsewhere, or built in, is known only here)."""
        target = self._specs.get(fallback)
        if target is not None and target.protocol == "cli":
            return
        clis = ", ".join(n for n in sorted(self._specs) if self._specs[n].protocol == "cli")
        what = "no agent" if target is None else "an ACP agent"
        raise ConfigError(
            f"invalid configuration: agents.{name}.fallback = {fallback!r} names {what}; it must name "
            f'a protocol = "cli" entry ({clis}); fix it in {BOOCODE_DIR}/config.toml or the user config'
        )

    def resolve(self, name: str) -> ResolvedAgent:
        spec = self.spec(name)
        program = find_program(spec.command)
        if program is None:
            where = "on PATH" if os.sep not in spec.command else "at that path"
            hint = f"install it with `{spec.install}`" if spec.install else "install it"
            ws = self.workspace_config()
            if ws is not None and name in ws.ignored_agents:
                # The workspace's own entry for it exists, unused: say so rather than suggest one.
                hint += (
                    f", or trust {ws.path}, whose [agents.{name}] is ignored until then: `{ws.trust_command}`"
                )
            else:
                hint += f", or set [agents.{name}] command in {BOOCODE_DIR}/config.toml"
            raise AgentNotInstalledError(
                f"agent {name!r} is not installed: no {spec.command!r} {where}; {hint}; see `boocode agents`"
            )
        return ResolvedAgent(name=name, spec=spec, program=program, argv=(program, *spec.args))

    async def describe(self) -> list[AgentInfo]:
        """One row per agent for `boocode agents`; versions are probed concurrently and bounded."""
        config = self._now().config
        specs = dict(self._specs)
        names = sorted(specs)
        programs = {n: find_program(specs[n].command) for n in names}
        versions = await asyncio.gather(*(_version(programs[n], specs[n].version_args) for n in names))
        return [
            AgentInfo(
                name=n,
                command=specs[n].command,
                args=list(specs[n].args),
                installed=programs[n] is not None,
                path=programs[n],
                version=v,
                install=specs[n].install,
                protocol=specs[n].protocol,
                # A command line carries the prompt's text only.
                images=False if specs[n].protocol == "cli" else None,
                builtin=n in BUILTINS,
                configured=n in config.agents,
                default=n == config.default_agent,
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
