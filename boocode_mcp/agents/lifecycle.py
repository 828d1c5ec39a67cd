"""Pure decisions about which warm agents to let go; no I/O, so they are tested exhaustively."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class PoolEntry(Generic[K]):
    key: K
    last_active: float
    busy: bool


def choose_evictions(
    entries: Sequence[PoolEntry[K]],
    now: float,
    max_warm: int,
    idle_ttl: float,
    *,
    reserve: int = 0,
) -> list[K]:
    """The keys to close: every idle entry past its TTL, then the least recently active idle ones
    until at most `max_warm - reserve` remain (`reserve` = room for entries about to be added).

    A busy entry is never chosen, even when that leaves the pool over its cap: stopping a running
    turn to make room would lose work the user asked for.
    """
    expired = [e for e in entries if not e.busy and now - e.last_active >= idle_ttl]
    chosen = [e.key for e in sorted(expired, key=lambda e: e.last_active)]
    expired_keys = set(chosen)
    remaining = [e for e in entries if e.key not in expired_keys]
    excess = len(remaining) + reserve - max(max_warm, 0)
    if excess > 0:
        idle = sorted((e for e in remaining if not e.busy), key=lambda e: e.last_active)
        chosen.extend(e.key for e in idle[:excess])
    return chosen
