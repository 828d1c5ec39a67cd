"""Memory: FTS5 search over markdown notes and finished subagent transcripts."""

from boocode_mcp.memory.index import MAX_LIMIT, MemoryIndex, RefreshStats

__all__ = ["MAX_LIMIT", "MemoryIndex", "RefreshStats"]
