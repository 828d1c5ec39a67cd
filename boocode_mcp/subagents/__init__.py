"""The runner of subagent turns: queue, digest, permission queue and start-up recovery."""

from boocode_mcp.subagents.digest import Digest, event_record
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.recovery import RecoveryReport, recover
from boocode_mcp.subagents.runner import Run, Runner, new_run

__all__ = [
    "Digest",
    "PermissionQueue",
    "RecoveryReport",
    "Run",
    "Runner",
    "event_record",
    "new_run",
    "recover",
]
