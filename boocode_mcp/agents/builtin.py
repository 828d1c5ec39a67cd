"""Built-in launch specs for the well-known ACP agents; a config entry of the same name wins.

Each agent's quirks live in its spec (arguments, environment, install hint), not in conditionals
elsewhere. The built-ins are what a user with the agent installed and signed in (or holding the
provider's API key in the environment) needs, nothing more; they start no agent in a mode the user
did not choose.

Decisions, per agent (checked against opencode 1.18, qwen-code 0.15, and the published adapters):

- ``opencode``: ``opencode acp``. ``OPENCODE_DISABLE_AUTOUPDATE=1`` because an agent that updates
  itself while BooCode keeps it warm would swap the binary under a live session. The model
  catalogue fetch is left on (``OPENCODE_DISABLE_MODELS_FETCH`` is a test-only override): a real
  user's providers need it. The model is chosen by opencode's own config or the ACP ``model``
  config option; opencode takes no model from the environment. Writes files itself, asks no
  permission by default, and asks the model for a session title on the first turn.
- ``qwen``: ``qwen --acp``. No ``--auth-type``: the user's own ``~/.qwen/settings.json`` picks the
  auth (Qwen OAuth, an API key, ...); forcing ``openai`` would break a signed-in user.
  ``--auth-type openai`` with ``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``OPENAI_MODEL`` is how
  the tests point it at a stub model (a workspace config override). ``OPENAI_MODEL`` names the
  model under the OpenAI-compatible auth the environment form uses. Writes through client fs and
  asks ``session/request_permission`` before edits in its default mode (BooCode's policy answers).
  Newer releases (0.16+) need Node 22; npm on Node 20 resolves a 0.15.x that works.
- ``gemini``: ``gemini --acp`` (``--experimental-acp`` is the deprecated spelling of older
  releases). Model from ``GEMINI_MODEL``; ``GEMINI_API_KEY``/``GOOGLE_*`` pass through.
- ``claude``: the ACP adapter ``claude-agent-acp`` (the ``@agentclientprotocol`` package; the
  ``@zed-industries`` one is its older name). Model from ``ANTHROPIC_MODEL``. The adapter prints
  no version and would wait on stdin for ACP, so no version probe.
- ``codex``: the ACP adapter ``codex-acp`` (``@agentclientprotocol/codex-acp``, which brings its
  own codex binary); ``--version`` works. Model and credentials come from codex's own config.
- ``goose``: ``goose acp``; model and mode from ``GOOSE_MODEL`` and ``GOOSE_MODE``. Not on npm.
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
        model_env="OPENAI_MODEL",
        # qwen-code writes its chat record tens of ms after answering a prompt and does not flush
        # it on exit: closed at once, it forgets the last turn and session/load cannot restore it.
        settle_s=1.0,
    ),
    "gemini": AgentSpec(
        command="gemini",
        args=("--acp",),
        install="npm install -g @google/gemini-cli",
        model_env="GEMINI_MODEL",
    ),
    "claude": AgentSpec(
        command="claude-agent-acp",
        install="npm install -g @agentclientprotocol/claude-agent-acp",
        version_args=(),
        model_env="ANTHROPIC_MODEL",
    ),
    "codex": AgentSpec(
        command="codex-acp",
        install="npm install -g @agentclientprotocol/codex-acp",
    ),
    "goose": AgentSpec(
        command="goose",
        args=("acp",),
        install=(
            "curl -fsSL https://github.com/block/goose/releases/download/stable/download_cli.sh"
            " | CONFIGURE=false bash"
        ),
        model_env="GOOSE_MODEL",
        mode_env="GOOSE_MODE",
    ),
}
