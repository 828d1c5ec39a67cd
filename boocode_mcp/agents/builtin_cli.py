"""Built-in `<agent>-cli` entries: the one-shot command modes of the agents BooCode knows.

Each runs the tool once per turn in the chat's worktree (protocol = "cli"); a config entry of the
same name replaces one whole. The flags are what lets the tool work unattended in a worktree,
since no one can answer its questions there and BooCode's permission policy does not reach it.

Decisions, per tool:

- Every prompt goes on stdin (`stdin = true`): a prompt that starts with ``-`` would otherwise be
  read as an option (qwen-code takes nothing after ``--`` as its prompt), and one argument may not
  exceed 128 KiB on Linux. Each of these tools reads its prompt from stdin when none is given.
- ``{model}`` is one item with its flag (``--model={model}``), so both go when a run names no
  model and the tool's own configuration chooses.
- ``opencode-cli``: ``opencode run --format json`` (JSON lines); follow-ups ``--continue`` (the
  last session in the directory, and every chat has a worktree of its own). opencode's defaults
  let it edit files and run commands without asking; ``--auto`` (approve everything else too) is
  not given. The model is ``provider/model``.
- ``qwen-cli``: ``qwen --approval-mode yolo -o stream-json``: in its default mode a one-shot qwen
  refuses every edit it would have asked about. Follow-ups ``--continue`` (the project's most
  recent session; the project is the worktree). No ``--auth-type``, as for the ACP entry.
- ``claude-cli``: ``claude -p --output-format stream-json --verbose`` (stream-json needs
  ``--verbose`` with ``-p``) with ``--permission-mode acceptEdits``: edits are allowed, other tools
  only as claude's own settings allow (its bypass mode refuses to run as root). Follow-ups
  ``--continue``.
- ``gemini-cli``: ``gemini --approval-mode yolo``; plain text output (its JSON stream is not one
  BooCode parses). No resume: gemini's ``--resume`` takes a session that a plain-text run does not
  print, so every follow-up starts afresh and says so.
- ``codex-cli``: ``codex exec --sandbox workspace-write -`` (``-``: the prompt is on stdin); the
  final message on stdout, progress on stderr. No resume: ``codex exec resume`` is a subcommand
  that cannot be appended to these arguments.
"""

from __future__ import annotations

from boocode_mcp.agents.builtin import BUILTIN_AGENTS
from boocode_mcp.config import AgentSpec


def _one_shot(
    command: str,
    args: tuple[str, ...],
    *,
    jsonl: bool,
    resume: tuple[str, ...] = (),
    install: str | None,
    env: dict[str, str] | None = None,
) -> AgentSpec:
    """A tool's one-shot mode, its prompt on stdin."""
    return AgentSpec(
        protocol="cli",
        command=command,
        args=args,
        stdin=True,
        parser="jsonl" if jsonl else "text",
        resume=resume,
        install=install,
        env=env or {},
    )


BUILTIN_CLI_AGENTS: dict[str, AgentSpec] = {
    "opencode-cli": _one_shot(
        "opencode",
        ("run", "--format", "json", "--model={model}"),
        jsonl=True,
        resume=("--continue",),
        install=BUILTIN_AGENTS["opencode"].install,
        env={"OPENCODE_DISABLE_AUTOUPDATE": "1"},
    ),
    "qwen-cli": _one_shot(
        "qwen",
        ("--approval-mode", "yolo", "--output-format", "stream-json", "--model={model}"),
        jsonl=True,
        resume=("--continue",),
        install=BUILTIN_AGENTS["qwen"].install,
    ),
    "claude-cli": _one_shot(
        "claude",
        (
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            "--model={model}",
        ),
        jsonl=True,
        resume=("--continue",),
        install="npm install -g @anthropic-ai/claude-code",
    ),
    "gemini-cli": _one_shot(
        "gemini",
        ("--approval-mode", "yolo", "--model={model}"),
        jsonl=False,
        install=BUILTIN_AGENTS["gemini"].install,
    ),
    "codex-cli": _one_shot(
        "codex",
        ("exec", "--sandbox", "workspace-write", "--model={model}", "-"),
        jsonl=False,
        install="npm install -g @openai/codex",
    ),
}
