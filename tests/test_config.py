"""Configuration loading: precedence, validation errors that name the file and key (the workspace
file trusted where its agents matter; what an untrusted one may do is in test_trust.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boocode_mcp.config import Config
from boocode_mcp.errors import ConfigError
from boocode_mcp.trust import ConfigSource, trust_workspace


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    cfg = ConfigSource(tmp_path, user_config=tmp_path / "missing.toml").config
    assert cfg == Config()
    assert cfg.permissions.policy == "auto"
    assert cfg.pool.max_warm == 8


def test_workspace_overrides_user_and_agent_entries_replace_whole(tmp_path: Path) -> None:
    user = write(
        tmp_path / "user.toml",
        'default_agent = "qwen"\n[pool]\nmax_warm = 3\nidle_ttl_s = 5\n'
        '[agents.mine]\ncommand = "a"\nargs = ["x"]\nenv = { K = "1" }\n',
    )
    write(
        tmp_path / "ws" / ".boocode" / "config.toml",
        '[pool]\nmax_warm = 2\n[agents.mine]\ncommand = "b"\n[permissions]\npolicy = "ask"\ntimeout_s = 7\n',
    )
    trust_workspace(tmp_path / "ws", user_dir=user.parent)
    cfg = ConfigSource(tmp_path / "ws", user_config=user).config
    assert cfg.default_agent == "qwen"
    assert cfg.pool.max_warm == 2
    assert cfg.pool.idle_ttl_s == 5
    assert cfg.permissions.policy == "ask"
    assert cfg.permissions.timeout_s == 7
    # The workspace's entry replaces the user's entry of the same name; nothing is inherited.
    assert cfg.agents["mine"].command == "b"
    assert cfg.agents["mine"].args == ()
    assert cfg.agents["mine"].env == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[pool]\nmax_warm = "many"\n', "pool.max_warm"),
        ('[permissions]\npolicy = "sometimes"\n', "permissions.policy"),
        ('[agents.x]\nargs = ["a"]\n', "agents.x.command"),
        ('[agents.x]\ncommand = "a"\nflavour = 1\n', "agents.x.flavour"),
        ("unknown_key = 1\n", "unknown_key"),
    ],
)
def test_invalid_key_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / ".boocode" / "config.toml", text)
    with pytest.raises(ConfigError) as err:
        ConfigSource(tmp_path, user_config=tmp_path / "none.toml")
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path / "user.toml", "this is = = not toml\n")
    with pytest.raises(ConfigError) as err:
        ConfigSource(tmp_path, user_config=path)
    assert str(path) in str(err.value)
    assert "TOML" in str(err.value)


# --- command-line agents ------------------------------------------------------------------


def test_cli_entry_loads_and_takes_the_model_through_its_own_variable(tmp_path: Path) -> None:
    write(
        tmp_path / ".boocode" / "config.toml",
        '[agents.tool]\nprotocol = "cli"\ncommand = "tool"\nargs = ["run", "--model={model}"]\n'
        'stdin = true\nparser = "jsonl"\nresume = ["--continue"]\ndelegate = false\n'
        '[agents.acp]\ncommand = "acp-agent"\nfallback = "tool"\n',
    )
    trust_workspace(tmp_path, user_dir=tmp_path)
    cfg = ConfigSource(tmp_path, user_config=tmp_path / "config.toml").config
    tool = cfg.agents["tool"]
    assert (tool.protocol, tool.stdin, tool.parser, tool.resume) == ("cli", True, "jsonl", ("--continue",))
    assert tool.model_env == "BOOCODE_MODEL"
    assert cfg.agents["acp"].protocol == "acp" and cfg.agents["acp"].fallback == "tool"


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ('[agents.x]\ncommand = "a"\nstdin = true\n', "agents.x.stdin", 'protocol = "cli"'),
        ('[agents.x]\ncommand = "a"\nresume = ["-c"]\n', "agents.x.resume", 'protocol = "cli"'),
        ('[agents.x]\nprotocol = "cli"\ncommand = "a"\nparser = "xml"\n', "agents.x.parser", "jsonl"),
        ('[agents.x]\nprotocol = "grpc"\ncommand = "a"\n', "agents.x.protocol", "cli"),
        (
            '[agents.x]\nprotocol = "cli"\ncommand = "a"\nstdin = true\nfallback = "y"\n',
            "agents.x.fallback",
            "only an ACP entry",
        ),
        ('[agents.x]\nprotocol = "cli"\ncommand = "a"\nargs = ["run"]\n', "agents.x", "{prompt}"),
        ('[agents.x]\nprotocol = "cli"\ncommand = "a"\nargs = ["{promt}"]\n', "agents.x", "{promt}"),
        (
            '[agents.x]\nprotocol = "cli"\ncommand = "a"\nargs = ["{prompt}"]\nstdin = true\n',
            "agents.x",
            "stdin",
        ),
        (
            '[agents.x]\ncommand = "a"\nfallback = "y"\n[agents.y]\ncommand = "b"\n',
            "agents.x.fallback",
            "'y' is an ACP entry",
        ),
        (
            '[agents.x]\nprotocol = "cli"\ncommand = "a"\nstdin = true\ndelegate = true\n',
            "agents.x.delegate",
            "given no MCP server",
        ),
    ],
)
def test_invalid_cli_keys_name_file_and_key(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = write(tmp_path / ".boocode" / "config.toml", text)
    with pytest.raises(ConfigError) as err:
        ConfigSource(tmp_path, user_config=tmp_path / "none.toml")
    assert str(path) in str(err.value)
    assert key in str(err.value) and says in str(err.value)
