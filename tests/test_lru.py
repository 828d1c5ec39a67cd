"""The bounded map behind BooCode's caches (digests of finished runs, parsed patches, chats'
worktrees): the least recently used entry goes first, and reading one counts as using it."""

from __future__ import annotations

from boocode_mcp.lru import Lru


def test_the_least_recently_used_entry_goes_first_and_a_read_counts_as_use() -> None:
    cache: Lru[str, int] = Lru(2)
    assert cache.put("a", 1) == 1
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.put("a", 10)  # replaced, and used last
    cache.put("d", 4)
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (10, None, 4)
