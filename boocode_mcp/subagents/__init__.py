"""subagents part."""
