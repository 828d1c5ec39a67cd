"""Agent registry (built-ins merged with config, install hints) and permission choice by kind."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import anyio
import pytest

from boocode_mcp.agents.builtin import BUILTIN_AGENTS
from boocode_mcp.agents.builtin_cli import BUILTIN_CLI_AGENTS
from boocode_mcp.agents.events import PermissionOptionInfo, PermissionRequestEvent
from boocode_mcp.agents.permissions import choose_option, policy_handler
from boocode_mcp.agents.registry import AgentRegistry, find_program
from boocode_mcp.config import AgentSpec, Config
from boocode_mcp.errors import AgentNotInstalledError, ConfigError, UnknownAgentError

pytestmark = pytest.mark.anyio


def _opt(option_id: str, kind: str) -> PermissionOptionInfo:
    return PermissionOptionInfo(option_id=option_id, name=option_id, kind=kind)  # type: ignore[arg-type]


# --- registry -------------------------------------------------------------------------------


def test_names_merge_builtins_and_config() -> None:
    reg = AgentRegistry(Config(agents={"mine": AgentSpec(command="true")}))
    assert set(reg.names()) == {*BUILTIN_AGENTS, *BUILTIN_CLI_AGENTS, "mine"}
    assert reg.spec("mine").command == "true"


def test_config_entry_overrides_builtin_of_same_name() -> None:
    reg = AgentRegistry(Config(agents={"opencode": AgentSpec(command="my-opencode", args=("x",))}))
    assert reg.spec("opencode").command == "my-opencode"
    assert reg.spec("opencode").args == ("x",)


def test_unknown_agent_names_known_ones_and_config_file() -> None:
    reg = AgentRegistry(Config(agents={"mine": AgentSpec(command="true")}))
    with pytest.raises(UnknownAgentError) as exc:
        reg.spec("nope")
    msg = str(exc.value)
    assert "'nope'" in msg and "mine" in msg and "opencode" in msg
    assert "[agents.nope]" in msg and ".boocode/config.toml" in msg


def test_missing_program_gives_install_hint() -> None:
    reg = AgentRegistry(
        Config(agents={"ghost": AgentSpec(command="boocode-no-such-program-x", install="pip install ghost")})
    )
    with pytest.raises(AgentNotInstalledError) as exc:
        reg.resolve("ghost")
    msg = str(exc.value)
    assert "boocode-no-such-program-x" in msg and "pip install ghost" in msg and "boocode agents" in msg


def test_missing_path_program_is_not_installed(tmp_path: Path) -> None:
    reg = AgentRegistry(Config(agents={"p": AgentSpec(command=str(tmp_path / "missing-agent"))}))
    with pytest.raises(AgentNotInstalledError, match="at that path"):
        reg.resolve("p")


def test_resolve_keeps_venv_interpreter_symlink() -> None:
    # A venv's python is a symlink; resolving it would lose the venv's packages.
    reg = AgentRegistry(Config(agents={"fx": AgentSpec(command=sys.executable, args=("a.py",))}))
    resolved = reg.resolve("fx")
    assert resolved.program == os.path.abspath(sys.executable)
    assert resolved.argv == (resolved.program, "a.py")


def test_find_program_on_path() -> None:
    assert find_program("sh") is not None
    assert find_program("boocode-no-such-program-x") is None


async def test_describe_reports_installed_version_and_flags(tmp_path: Path) -> None:
    script = tmp_path / "fake-agent"
    script.write_text("#!/bin/sh\necho 'fake-agent 9.9.9'\necho second line\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    hang = tmp_path / "hang-agent"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    hang.chmod(hang.stat().st_mode | stat.S_IEXEC)
    config = Config(
        default_agent="fake",
        agents={"fake": AgentSpec(command=str(script)), "hang": AgentSpec(command=str(hang))},
    )
    with anyio.fail_after(15):
        infos = {i.name: i for i in await AgentRegistry(config).describe()}
    fake = infos["fake"]
    assert fake.installed and fake.version == "fake-agent 9.9.9"
    assert fake.configured and not fake.builtin and fake.default
    # A version probe that hangs is abandoned, not waited for.
    assert infos["hang"].installed and infos["hang"].version is None
    assert set(BUILTIN_AGENTS) <= set(infos)
    assert infos["opencode"].builtin and not infos["opencode"].default


async def test_builtin_cli_entries_are_listed_with_their_protocol(tmp_path: Path) -> None:
    # The one-shot modes of the known agents work with no config, as `<agent>-cli`.
    commands = {name: spec.command for name, spec in BUILTIN_CLI_AGENTS.items()}
    assert commands == {
        "opencode-cli": "opencode",
        "qwen-cli": "qwen",
        "claude-cli": "claude",
        "gemini-cli": "gemini",
        "codex-cli": "codex",
    }
    assert all(spec.protocol == "cli" and spec.stdin for spec in BUILTIN_CLI_AGENTS.values())
    assert BUILTIN_CLI_AGENTS["qwen-cli"].args[:2] == ("--approval-mode", "yolo")
    assert BUILTIN_CLI_AGENTS["opencode-cli"].args[:3] == ("run", "--format", "json")
    tool = tmp_path / "my-tool"
    tool.write_text("#!/bin/sh\necho 'my-tool 1.0'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    mine = AgentSpec(protocol="cli", command=str(tool), args=("{prompt}",))
    with anyio.fail_after(15):
        infos = {i.name: i for i in await AgentRegistry(Config(agents={"mine": mine})).describe()}
    assert (
        infos["mine"].protocol == "cli" and infos["mine"].installed and infos["mine"].version == "my-tool 1.0"
    )
    assert infos["opencode-cli"].protocol == "cli" and infos["opencode-cli"].builtin
    assert infos["opencode"].protocol == "acp"


def test_fallback_may_name_a_builtin_cli_entry() -> None:
    reg = AgentRegistry(
        Config(agents={"oc": AgentSpec(command="opencode", args=("acp",), fallback="opencode-cli")})
    )
    assert reg.spec("oc").fallback == "opencode-cli"


@pytest.mark.parametrize(("target", "says"), [("nope", "names no agent"), ("qwen", "names an ACP agent")])
def test_fallback_must_name_a_cli_agent(target: str, says: str) -> None:
    reg = AgentRegistry(Config(agents={"mine": AgentSpec(command="x", fallback=target)}))
    with pytest.raises(ConfigError) as err:
        reg.resolve("mine")
    # Only the agent with the bad fallback is refused; the others work.
    assert reg.spec("qwen").command == "qwen"
    msg = str(err.value)
    assert f"agents.mine.fallback = {target!r}" in msg and says in msg and "opencode-cli" in msg


# --- permissions ----------------------------------------------------------------------------


def test_allow_prefers_allow_once_then_allow_always() -> None:
    opts = [_opt("zz-always", "allow_always"), _opt("weird id/1", "allow_once"), _opt("no", "reject_once")]
    assert choose_option(opts, allow=True) == "weird id/1"
    assert choose_option([_opt("a", "allow_always"), _opt("r", "reject_once")], allow=True) == "a"


def test_deny_prefers_reject_once_then_reject_always() -> None:
    opts = [_opt("never", "reject_always"), _opt("0", "reject_once"), _opt("yes", "allow_once")]
    assert choose_option(opts, allow=False) == "0"
    assert choose_option([_opt("never", "reject_always"), _opt("yes", "allow_once")], allow=False) == "never"


def test_no_fitting_kind_gives_none() -> None:
    assert choose_option([_opt("r", "reject_once")], allow=True) is None
    assert choose_option([_opt("a", "allow_once")], allow=False) is None
    assert choose_option([], allow=True) is None


def test_ids_that_look_like_kinds_are_ignored() -> None:
    # Only the kind counts: an option *named* allow_once that rejects is never chosen to allow.
    opts = [_opt("allow_once", "reject_once"), _opt("proceed", "allow_always")]
    assert choose_option(opts, allow=True) == "proceed"
    assert choose_option(opts, allow=False) == "allow_once"


async def test_policy_handlers() -> None:
    event = PermissionRequestEvent(
        request_id="p1",
        tool_call_id="tc",
        title="t",
        options=(_opt("ok", "allow_once"), _opt("nah", "reject_once")),
    )
    assert await policy_handler("auto")(event) == "ok"
    assert await policy_handler("deny")(event) == "nah"
