"""Workspace trust: a repository's own `.boocode/config.toml` counts in full only once trusted.

Whoever wrote a repository wrote its `.boocode/config.toml`, and an agent entry there names a
command BooCode runs (`[agents.opencode] command = "sh"` would replace the default agent for anyone
who runs BooCode in a clone). So, as with VS Code's workspace trust or direnv's `allow`:

- `boocode trust [--workspace DIR]` (`trust_workspace`) records the file's SHA-256 in the user
  config directory (`trusted-workspaces.json`); a file whose content changed needs trusting again.
- Until then (status untrusted or changed), the agent entries of the file are ignored, whether
  they define an agent or override a built-in or user one (the built-in or user entry is used, as
  if the file did not have it); a run naming an agent that only the file defines fails with an
  `UntrustedConfigError` naming the file and the command that trusts it.
- The file may still set `default_agent` (it chooses among agents the user trusts) and `[pool]`
  (sizes and timeouts of warm agents), and it may tighten `[permissions]` but never loosen what
  the user config (or the default) sets: deny is stricter than ask, ask stricter than auto, and a
  shorter `timeout_s` stricter than a longer one (an unanswered request is denied when it runs
  out). Every `[workflows]` value is a limit (a script's CPU and memory, concurrent runs, the
  default token budget, the step cache's size): the file may lower one, never raise it. Any other
  setting waits until the file is trusted.
- The user config is always trusted, and so is a `Config` built in code (`FixedConfig`).

`ConfigSource` is how BooCode loads a workspace's configuration. It applies the above and reads
the two config files and the trust record again whenever one of them changed (one stat of each
per look), so a long-lived BooCode process honours `boocode trust` and edits of either config file
the next time it resolves an agent, without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from boocode_mcp.config import (
    Config,
    PermissionsConfig,
    WorkflowsConfig,
    layer,
    parse_toml,
    read_bytes,
    user_config_dir,
    validate,
    workspace_config_path,
)
from boocode_mcp.errors import ConfigError, UntrustedConfigError
from boocode_mcp.views import WorkspaceConfigView, WorkspaceTrustStatus

TRUST_FILE = "trusted-workspaces.json"
# What an untrusted workspace config may set; `permissions` only where it tightens, `workflows` only
# where it lowers a limit. None of these can make BooCode run a command.
UNTRUSTED_MAY_SET = frozenset({"default_agent", "pool", "permissions", "daemon", "workflows"})
POLICY_STRICTNESS = {"auto": 0, "ask": 1, "deny": 2}
# A file modified this close to when it was read may have changed again within the granularity of
# its timestamps without its stat changing: such a file is read again (and its hash compared).
RACY_S = 2.0


def trust_file(user_dir: Path) -> Path:
    return user_dir / TRUST_FILE


def workspace_root(path: Path) -> Path:
    """The top of the git work tree holding `path` (the nearest directory with a `.git`), found
    without running git in a repository nobody has vetted yet; `path` itself when there is none."""
    start = Path(os.path.realpath(path))
    for d in (start, *start.parents):
        if os.path.lexists(d / ".git"):
            return d
    return start


def trust_command(workspace: Path) -> str:
    return f"boocode trust --workspace {shlex.quote(str(workspace))}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the trust record ----------------------------------------------------------------------


def _records(path: Path, data: bytes | None) -> dict[str, Any]:
    """The trust record's entries by config file path (`{"sha256", "trusted_at"}` each)."""
    if data is None:
        return {}
    try:
        entries = json.loads(data)["trusted"]
        if not all(isinstance(e.get("sha256"), str) for e in entries.values()):
            raise ValueError("an entry has no sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"{path}: not a trust record BooCode wrote ({e}); delete it, then run `boocode trust` "
            "again in the workspaces you trust"
        ) from e
    return dict(entries)


def _record(user_dir: Path, config_path: Path, digest: str) -> None:
    """Add (or replace) the trusted digest of `config_path`, atomically and under a lock."""
    user_dir.mkdir(parents=True, exist_ok=True)
    path = trust_file(user_dir)
    lock = os.open(user_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Two `boocode trust` at once must not lose one another's entry.
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = _records(path, read_bytes(path))
        entries[str(config_path)] = {"sha256": digest, "trusted_at": time.time()}
        tmp = path.with_name(f".{TRUST_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "trusted": entries}, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        os.close(lock)


def trust_workspace(workspace: Path, user_dir: Path | None = None) -> WorkspaceConfigView:
    """Trust the workspace's `.boocode/config.toml` as it is now (what `boocode trust` does)."""
    root = workspace_root(workspace)
    path = workspace_config_path(root)
    data = read_bytes(path)
    if data is None:
        raise ConfigError(f"{path} does not exist: the workspace {root} has no config of its own to trust")
    # A file BooCode cannot use is not worth trusting: say what is wrong with it now.
    validate(parse_toml(data, path), [path])
    where = user_dir if user_dir is not None else user_config_dir()
    _record(where, path, _digest(data))
    view = ConfigSource(root, where / "config.toml").current().workspace
    assert view is not None
    return view


# --- what an untrusted file may do -----------------------------------------------------------


def _tighter_permissions(user: dict[str, Any], ws: dict[str, Any], held_back: list[str]) -> dict[str, Any]:
    """The part of the workspace's [permissions] that is no looser than the user's."""
    mine = PermissionsConfig.model_validate(user)
    out: dict[str, Any] = {}
    if "policy" in ws:
        if POLICY_STRICTNESS[ws["policy"]] >= POLICY_STRICTNESS[mine.policy]:
            out["policy"] = ws["policy"]
        else:
            held_back.append(
                f"permissions.policy = {ws['policy']!r}: looser than {mine.policy!r} "
                "(from your config or the default), which stays"
            )
    if "timeout_s" in ws:
        if float(ws["timeout_s"]) <= mine.timeout_s:
            out["timeout_s"] = ws["timeout_s"]
        else:
            held_back.append(
                f"permissions.timeout_s = {ws['timeout_s']}: longer than {mine.timeout_s:g} "
                "(from your config or the default), which stays"
            )
    return out


def _lower_workflows(user: dict[str, Any], ws: dict[str, Any], held_back: list[str]) -> dict[str, Any]:
    """The part of the workspace's [workflows] that lowers the user's limits (or the defaults)."""
    mine = WorkflowsConfig.model_validate(user)
    out: dict[str, Any] = {}
    for key, value in ws.items():
        current = getattr(mine, key)
        if value <= current:
            out[key] = value
        else:
            held_back.append(
                f"workflows.{key} = {value}: higher than {current:g} (from your config or the default), "
                "which stays"
            )
    return out


def restrict_untrusted(
    user: dict[str, Any], ws: dict[str, Any]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """What of an untrusted workspace config applies: (the settings kept, the agent entries
    ignored, the other settings held back and why)."""
    kept: dict[str, Any] = {}
    held_back: list[str] = []
    for key, value in ws.items():
        if key == "permissions":
            kept[key] = _tighter_permissions(user.get("permissions", {}), value, held_back)
        elif key == "workflows":
            kept[key] = _lower_workflows(user.get("workflows", {}), value, held_back)
        elif key in UNTRUSTED_MAY_SET:
            kept[key] = value
        elif key != "agents":
            held_back.append(f"{key}: applies once the file is trusted")
    return kept, sorted(ws.get("agents", {})), held_back


def refusal(view: WorkspaceConfigView, agent: str) -> UntrustedConfigError:
    """The error for a run naming an agent that only an untrusted workspace config defines."""
    why = "has changed since you trusted it" if view.status == "changed" else "you have not trusted"
    return UntrustedConfigError(
        f"agent {agent!r} is defined only in {view.path}, which {why}: a repository's config can "
        f"name any command, so none of its agents run until you trust it. Review the file, then run "
        f"`{view.trust_command}`"
    )


def describe(view: WorkspaceConfigView) -> str:
    """One line for people: whether the workspace config counts, and what to do if not."""
    if view.status == "absent":
        return f"workspace config: none ({view.path} does not exist)"
    if view.status == "trusted":
        return f"workspace config {view.path}: trusted (sha256 {(view.sha256 or '')[:12]}), used in full"
    why = "changed since you trusted it" if view.status == "changed" else "not trusted"
    parts = [f"workspace config {view.path}: {why}"]
    if view.ignored_agents:
        parts.append(f"its agent entries are ignored: {', '.join(view.ignored_agents)}")
    if view.held_back:
        parts.append("held back: " + "; ".join(view.held_back))
    parts.append(f"review it, then run: {view.trust_command}")
    return "; ".join(parts)


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EffectiveConfig:
    """The configuration in force, and how the workspace's own file counted towards it."""

    config: Config
    # None for a Config built in code: no files behind it.
    workspace: WorkspaceConfigView | None = None
    # A file changed into something invalid: `config` is the last valid one, and agents are not
    # started until the file is fixed (the error names it).
    problem: ConfigError | None = None


class ConfigProvider(Protocol):
    def current(self) -> EffectiveConfig: ...


class FixedConfig:
    """A Config built in code (tests, embedders): trusted as a whole, never re-read."""

    def __init__(self, config: Config) -> None:
        self._current = EffectiveConfig(config)

    def current(self) -> EffectiveConfig:
        return self._current


class _Stamp(NamedTuple):
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        # Missing or unreadable: reading it says which (and an unreadable file is an error then).
        return None
    return _Stamp(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ConfigSource:
    """The configuration of one workspace as its files and the trust record say now."""

    def __init__(self, workspace: Path, user_config: Path | None = None) -> None:
        self.workspace = Path(os.path.realpath(workspace))
        self.user_path = user_config if user_config is not None else user_config_dir() / "config.toml"
        self.workspace_path = workspace_config_path(self.workspace)
        self.trust_path = trust_file(self.user_path.parent)
        self._paths = (self.user_path, self.workspace_path, self.trust_path)
        self._stamps = tuple(_stamp(p) for p in self._paths)
        self._read_at = time.time()
        self._digests, blobs = self._read()
        # At start a bad file is an error: there is no earlier configuration to go on with.
        self._current = self._build(blobs)

    def current(self) -> EffectiveConfig:
        stamps = tuple(_stamp(p) for p in self._paths)
        racy = any(s is not None and s.mtime_ns >= (self._read_at - RACY_S) * 1e9 for s in stamps)
        if stamps == self._stamps and not racy:
            return self._current
        self._stamps, self._read_at = stamps, time.time()
        try:
            digests, blobs = self._read()
            if digests != self._digests:
                self._current = self._build(blobs)
                self._digests = digests
        except ConfigError as e:
            self._current = replace(self._current, problem=e)
            # Whatever the files hold next, it is built afresh (and clears the problem).
            self._digests = ()
        return self._current

    @property
    def config(self) -> Config:
        return self.current().config

    def _read(self) -> tuple[tuple[str | None, ...], tuple[bytes | None, ...]]:
        blobs = tuple(read_bytes(p) for p in self._paths)
        return tuple(None if b is None else _digest(b) for b in blobs), blobs

    def _build(self, blobs: tuple[bytes | None, ...]) -> EffectiveConfig:
        user_bytes, ws_bytes, trust_bytes = blobs
        user = parse_toml(user_bytes, self.user_path)
        ws = parse_toml(ws_bytes, self.workspace_path)
        # Each file alone first, so that an error names the file it is in.
        for path, data in ((self.user_path, user), (self.workspace_path, ws)):
            if data:
                validate(data, [path])
        digest = None if ws_bytes is None else _digest(ws_bytes)
        entry = _records(self.trust_path, trust_bytes).get(str(self.workspace_path))
        status: WorkspaceTrustStatus
        if ws_bytes is None:
            status = "absent"
        elif entry is None:
            status = "untrusted"
        else:
            status = "trusted" if entry["sha256"] == digest else "changed"
        ignored: list[str] = []
        held_back: list[str] = []
        if status in ("untrusted", "changed"):
            ws, ignored, held_back = restrict_untrusted(user, ws)
        trusted = status in ("absent", "trusted")
        view = WorkspaceConfigView(
            path=str(self.workspace_path),
            status=status,
            trusted=trusted,
            sha256=digest,
            ignored_agents=ignored,
            held_back=held_back,
            trust_command=None if trusted else trust_command(self.workspace),
        )
        return EffectiveConfig(layer([(self.user_path, user), (self.workspace_path, ws)]), view)
