"""Error types shared by every part.

Each error's message names the thing that was wrong and what to do about it, because the front
ends pass it to users verbatim (MCP `ToolError`, ACP `RequestError`, CLI stderr).
"""

from __future__ import annotations


class BooCodeError(Exception):
    """Base of every error BooCode raises on purpose; its message is meant for a user."""


class ConfigError(BooCodeError):
    """A config file is unreadable or has an invalid key."""


class UntrustedConfigError(ConfigError):
    """An agent that only a workspace config the user has not trusted defines."""


class StoreError(BooCodeError):
    """The database cannot be opened, migrated or written."""


class WorkspaceError(BooCodeError):
    """A git or workspace operation failed (not a repository, bad worktree, git failure)."""


class PathOutsideWorkspaceError(WorkspaceError):
    """A path resolves outside the directory it must stay in."""


class UnknownAgentError(BooCodeError):
    """An agent name that is neither built in nor configured."""


class AgentNotInstalledError(BooCodeError):
    """An agent whose program cannot be found."""


class AgentCrashedError(BooCodeError):
    """An agent process exited or its connection closed while it was needed."""


class AgentTurnError(BooCodeError):
    """The agent answered a request (prompt, session/new) with a JSON-RPC error."""


class AgentBusyError(BooCodeError):
    """A second prompt for an agent session that already has one in flight."""


class NotFoundError(BooCodeError):
    """An id (subagent, chat, patch, permission request) that does not exist in the session."""


class InvalidRequestError(BooCodeError):
    """A request that is well-formed but refused (wrong state, conflicting arguments)."""


class CommandError(BooCodeError):
    """run_command could not start the program (missing program, bad cwd)."""
