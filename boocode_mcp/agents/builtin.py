"""Built-in launch specs for the well-known ACP agents; a config entry of the same name wins.

Each agent's quirks live in its spec (arguments, environment, install hint), not in conditionals
elsewhere.
"""

from __future__ import annotations

from boocode_mcp.config import AgentSpec

BUILTIN_AGENTS: dict[str, AgentSpec] = {
    "opencode": AgentSpec(
        command="opencode",
        args=("acp",),
        env={"OPENCODE_DISABLE_AUTOUPDATE": "1"},
        install="npm install -g opencode-ai",
    ),
    "qwen": AgentSpec(
        command="qwen",
        args=("--acp",),
        install="npm install -g @qwen-code/qwen-code",
    ),
    "gemini": AgentSpec(
        command="gemini",
        args=("--acp",),
        install="npm install -g @google/gemini-cli",
    ),
    "claude": AgentSpec(
        command="claude-agent-acp",
        install="npm install -g @zed-industries/claude-agent-acp",
    ),
    "codex": AgentSpec(
        command="codex-acp",
        install="npm install -g @zed-industries/codex-acp",
    ),
    "goose": AgentSpec(
        command="goose",
        args=("acp",),
        install="see https://block.github.io/goose/docs/getting-started/installation",
    ),
}
