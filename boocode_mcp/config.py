"""Configuration: `<workspace>/.boocode/config.toml` over `~/.config/boocode/config.toml` over defaults.

This module holds the schema and how the files are read and layered. Which layers count is decided
in `boocode_mcp.trust`: the workspace's file comes with the repository, so it counts in full only
once the user has trusted it, and `trust.ConfigSource` is what loads a workspace's configuration.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from boocode_mcp.errors import ConfigError

BOOCODE_DIR = ".boocode"

# What a `protocol = "cli"` entry may substitute inside its argv items.
CLI_PLACEHOLDERS = ("prompt", "model", "worktree")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_]+)\}")
# How a cli entry that uses {model} receives the run's model: the runner hands a model to any agent
# through the variable its spec names in model_env, and a cli entry without one gets this one.
CLI_MODEL_ENV = "BOOCODE_MODEL"
_CLI_ONLY_KEYS = ("stdin", "parser", "resume")


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
    protocol: Literal["acp", "cli"] = Field(
        default="acp", description='"acp": speaks ACP on stdio; "cli": a command run once per turn'
    )
    stdin: bool = Field(default=False, description="cli: send the prompt on stdin instead of as {prompt}")
    parser: Literal["text", "jsonl"] = Field(
        default="text", description="cli: stdout is plain text, or JSON lines of a known stream format"
    )
    resume: tuple[str, ...] = Field(
        default=(), description="cli: argv items appended on a follow-up turn of the same chat"
    )
    fallback: str | None = Field(
        default=None, description="acp: the cli entry a turn runs on when this agent's handshake fails"
    )
    delegate: bool = Field(
        default=False,
        description="also offer this agent spawn_subagent and cancel_subagent (its children) through "
        "BooCode's MCP server, so it can hand work to subagents of its own",
    )

    @field_validator(*_CLI_ONLY_KEYS, "fallback", "delegate")
    @classmethod
    def _fits_protocol(cls, value: Any, info: ValidationInfo) -> Any:
        # Runs only for keys the entry sets; `protocol` is validated before these fields.
        cli = info.data.get("protocol") == "cli"
        if info.field_name == "fallback" and cli:
            raise ValueError('only an ACP entry has a fallback; remove it from this protocol = "cli" entry')
        if info.field_name == "delegate":
            if cli and value:
                raise ValueError(
                    "a command-line agent is given no MCP server, so it cannot delegate; remove "
                    'delegate from this protocol = "cli" entry'
                )
            return value
        if info.field_name != "fallback" and not cli:
            raise ValueError(f'{info.field_name} is for protocol = "cli" entries only; add protocol = "cli"')
        return value

    @model_validator(mode="before")
    @classmethod
    def _cli_model_env(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("protocol") != "cli" or data.get("model_env") is not None:
            return data
        items = [*(data.get("args") or ()), *(data.get("resume") or ())]
        if any(isinstance(item, str) and "{model}" in item for item in items):
            return {**data, "model_env": CLI_MODEL_ENV}
        return data

    @model_validator(mode="after")
    def _cli_argv(self) -> AgentSpec:
        if self.protocol != "cli":
            return self
        items = (*self.args, *self.resume)
        unknown = sorted({p for item in items for p in PLACEHOLDER_RE.findall(item)} - set(CLI_PLACEHOLDERS))
        if unknown:
            raise ValueError(
                f"args/resume: unknown placeholder {', '.join('{' + p + '}' for p in unknown)}; "
                f"the placeholders are {', '.join('{' + p + '}' for p in CLI_PLACEHOLDERS)}"
            )
        has_prompt = any("{prompt}" in item for item in items)
        if self.stdin and has_prompt:
            raise ValueError("args: {prompt} and stdin = true both give the prompt; keep one")
        if not self.stdin and not any("{prompt}" in item for item in self.args):
            raise ValueError("args: a cli entry needs an item with {prompt} in args, or stdin = true")
        return self


class PermissionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["auto", "ask", "deny"] = "auto"
    timeout_s: float = Field(default=300.0, gt=0)


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_warm: int = Field(default=8, ge=1)
    idle_ttl_s: float = Field(default=600.0, gt=0)
    max_concurrent_runs: int = Field(default=4, ge=1)
    # Runs waiting for a worker; a spawn past it is refused with an error, never dropped.
    max_queued_runs: int = Field(default=256, ge=1)
    # `boocode acp`: start a session's worktree and agent when the editor opens (or reopens) it,
    # not at its first prompt.
    prewarm: bool = True


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The workspace's daemon exits after this long with no front end connected and nothing
    # queued or running; the next front end starts it again.
    idle_exit_s: float = Field(default=900.0, gt=0)


class DelegationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A host's run is depth 0, its children depth 1: a spawn that would go deeper is refused.
    max_depth: int = Field(default=2, ge=0)
    # Children one run may spawn (retries of a child do not count).
    max_children: int = Field(default=8, ge=0)


class ImagesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Per image, as stored (decoded); an agent's provider may take less.
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    # Images one prompt may carry.
    max_count: int = Field(default=8, ge=0)


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Where the workspace's store lives: None is the sqlite file .boocode/boocode.db; a
    # postgresql:// URL puts it on PostgreSQL, shared with workers on other hosts.
    # BOOCODE_DB_URL, when set, wins over this.
    url: str | None = None


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # With a PostgreSQL store: how often an idle worker looks for queued runs when no notification
    # came (LISTEN/NOTIFY wakes it at once otherwise), and how long a run it holds stays its own
    # without the worker renewing the lease (a third of it between renewals).
    poll_s: float = Field(default=5.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    # Whether the workspace's daemon on a PostgreSQL store runs queued runs itself, as one worker.
    local: bool = True


class WorkflowsConfig(BaseModel):
    """Workflow scripts (`boocode_mcp.workflows`): the sandbox's limits, budgets, the step cache."""

    model_config = ConfigDict(extra="forbid")

    # CPU time one run's script may use (waiting on its agents costs none), and the memory of its
    # JavaScript heap; a script past either fails its run with a message naming the limit.
    cpu_limit_s: float = Field(default=30.0, gt=0, le=3600)
    memory_limit_mb: int = Field(default=64, ge=8, le=4096)
    # Workflow runs at once; more wait as `queued`. Their steps also obey [pool] max_concurrent_runs.
    max_concurrent: int = Field(default=3, ge=1)
    # Tokens a run may spend when its script sets no budget() of its own.
    default_budget_tokens: int = Field(default=100_000, ge=1)
    # Step results kept for re-runs (least recently used go first).
    cache_size: int = Field(default=1000, ge=0)


class Config(BaseModel):
    """The merged configuration of one workspace."""

    model_config = ConfigDict(extra="forbid")

    default_agent: str = "opencode"
    agents: dict[str, AgentSpec] = Field(default_factory=dict)
    permissions: PermissionsConfig = Field(default_factory=PermissionsConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    delegation: DelegationConfig = Field(default_factory=DelegationConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    workflows: WorkflowsConfig = Field(default_factory=WorkflowsConfig)

    @model_validator(mode="after")
    def _fallbacks_are_cli(self) -> Config:
        # A target defined elsewhere (another file, a built-in) is checked by the agent registry.
        for name, spec in self.agents.items():
            target = self.agents.get(spec.fallback or "")
            if target is not None and target.protocol != "cli":
                raise ValueError(
                    f"agents.{name}.fallback: {spec.fallback!r} is an ACP entry; a fallback must be a "
                    'protocol = "cli" entry'
                )
        return self


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "boocode"


def workspace_config_path(workspace: Path) -> Path:
    return workspace / BOOCODE_DIR / "config.toml"


def read_bytes(path: Path) -> bytes | None:
    """The file's content, or None when there is no such file."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e


def parse_toml(data: bytes | None, path: Path) -> dict[str, Any]:
    """The TOML table in `data` (read from `path`, which errors name); empty for no file."""
    if data is None:
        return {}
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the file or remove it") from e


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


def validate(data: dict[str, Any], sources: list[Path]) -> Config:
    """`data` as a Config; an error names the files it came from and the offending keys."""
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()
        )
        names = " over ".join(str(p) for p in sources) or "defaults"
        raise ConfigError(f"invalid configuration in {names}: {problems}") from e


def layer(layers: list[tuple[Path, dict[str, Any]]]) -> Config:
    """Later layers over earlier ones over the defaults; empty layers are skipped."""
    present = [(path, data) for path, data in layers if data]
    merged: dict[str, Any] = {}
    for _, data in present:
        merged = _merge(merged, data)
    return validate(merged, [path for path, _ in reversed(present)])
