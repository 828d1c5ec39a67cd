"""The runner of subagent turns: queue, one turn, pre-warm, patch recording, digest, permission
queue and start-up recovery."""

from boocode_mcp.subagents.digest import Digest, DigestCache, event_record
from boocode_mcp.subagents.permissions import PermissionQueue
from boocode_mcp.subagents.queue import QueueFullError
from boocode_mcp.subagents.recovery import RecoveryReport, recover
from boocode_mcp.subagents.run import Run
from boocode_mcp.subagents.runner import Runner

__all__ = [
    "Digest",
    "DigestCache",
    "PermissionQueue",
    "QueueFullError",
    "RecoveryReport",
    "Run",
    "Runner",
    "event_record",
    "recover",
]
