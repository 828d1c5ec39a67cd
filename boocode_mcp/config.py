"""Configuration: `<workspace>/.boocode/config.toml` over `~/.config/boocode/config.toml` over defaults."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boocode_mcp.errors import ConfigError

BOOCODE_DIR = ".boocode"


class AgentSpec(BaseModel):
    """How to launch one ACP agent, and the quirks BooCode must know about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(description="program speaking ACP on stdio (a name on PATH or a path)")
    args: tuple[str, ...] = Field(default=(), description="arguments passed to the program")
    env: dict[str, str] = Field(default_factory=dict, description="added to the allow-listed environment")
    fs: bool = Field(default=True, description="advertise the client fs/* capability")
    terminal: bool = Field(default=True, description="advertise the client terminal/* capability")
    install: str | None = Field(default=None, description="how to install the program, shown when missing")
    version_args: tuple[str, ...] = Field(
        default=("--version",), description="arguments that make the program print its version"
    )
    model_env: str | None = Field(
        default=None, description="environment variable through which the agent takes a model name"
    )
    settle_s: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="seconds to give the agent after a turn ends to persist its session before it is closed",
    )
    mode_env: str | None = Field(
        default=None, description="environment variable through which the agent takes a mode name"
    )


class PermissionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["auto", "ask", "deny"] = "auto"
    timeout_s: float = Field(default=300.0, gt=0)


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_warm: int = Field(default=8, ge=1)
    idle_ttl_s: float = Field(default=600.0, gt=0)
    max_concurrent_runs: int = Field(default=4, ge=1)
    # `boocode acp`: start a session's worktree and agent when the editor opens (or reopens) it,
    # not at its first prompt.
    prewarm: bool = True


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The workspace's daemon exits after this long with no front end connected and nothing
    # queued or running; the next front end starts it again.
    idle_exit_s: float = Field(default=900.0, gt=0)


class Config(BaseModel):
    """The merged configuration of one workspace."""

    model_config = ConfigDict(extra="forbid")

    default_agent: str = "opencode"
    agents: dict[str, AgentSpec] = Field(default_factory=dict)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "boocode"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the file or remove it") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge tables key by key; an agent entry is replaced whole, so a workspace spec never inherits
    half of a user spec of the same name."""
    out = dict(base)
    for key, value in over.items():
        if key == "agents" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _validate(data: dict[str, Any], sources: list[Path]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()
        )
        names = " over ".join(str(p) for p in sources) or "defaults"
        raise ConfigError(f"invalid configuration in {names}: {problems}") from e


def load_config(workspace: Path, user_config: Path | None = None) -> Config:
    """Load the workspace's configuration; an error names the file and the offending key."""
    user_path = user_config if user_config is not None else user_config_dir() / "config.toml"
    ws_path = workspace / BOOCODE_DIR / "config.toml"
    user_data = _read_toml(user_path)
    ws_data = _read_toml(ws_path)
    # Validate each file alone first so an error names the file it is in.
    present = [(p, d) for p, d in ((user_path, user_data), (ws_path, ws_data)) if d]
    for path, data in present:
        _validate(data, [path])
    return _validate(_merge(user_data, ws_data), [p for p, _ in reversed(present)])
