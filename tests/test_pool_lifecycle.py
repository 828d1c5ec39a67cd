"""The pure eviction decision: TTL, LRU cap, and never a busy entry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from boocode_mcp.agents.lifecycle import PoolEntry, choose_evictions


def e(key: str, last: float, busy: bool = False) -> PoolEntry[str]:
    return PoolEntry(key=key, last_active=last, busy=busy)


def test_nothing_to_do_under_cap_and_ttl() -> None:
    assert choose_evictions([e("a", 90), e("b", 95)], now=100, max_warm=2, idle_ttl=60) == []


def test_idle_past_ttl_are_evicted_oldest_first() -> None:
    entries = [e("new", 95), e("old", 10), e("older", 5)]
    assert choose_evictions(entries, now=100, max_warm=8, idle_ttl=60) == ["older", "old"]


def test_ttl_boundary_is_inclusive() -> None:
    assert choose_evictions([e("a", 40)], now=100, max_warm=8, idle_ttl=60) == ["a"]
    assert choose_evictions([e("a", 40.001)], now=100, max_warm=8, idle_ttl=60) == []


def test_busy_past_ttl_is_kept() -> None:
    assert choose_evictions([e("a", 0, busy=True)], now=100, max_warm=8, idle_ttl=60) == []


def test_lru_cap_evicts_least_recently_active() -> None:
    entries = [e("a", 50), e("b", 70), e("c", 60)]
    assert choose_evictions(entries, now=100, max_warm=2, idle_ttl=600) == ["a"]


def test_reserve_makes_room_for_a_new_entry() -> None:
    entries = [e("a", 50), e("b", 70)]
    assert choose_evictions(entries, now=100, max_warm=2, idle_ttl=600, reserve=1) == ["a"]


def test_cap_never_evicts_busy_even_if_over() -> None:
    entries = [e("a", 10, busy=True), e("b", 20, busy=True), e("c", 30)]
    assert choose_evictions(entries, now=100, max_warm=1, idle_ttl=600, reserve=1) == ["c"]
    only_busy = [e("a", 10, busy=True), e("b", 20, busy=True)]
    assert choose_evictions(only_busy, now=100, max_warm=1, idle_ttl=600, reserve=1) == []


def test_ttl_evictions_count_towards_cap() -> None:
    entries = [e("stale", 0), e("a", 90), e("b", 95)]
    assert choose_evictions(entries, now=100, max_warm=2, idle_ttl=60) == ["stale"]


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=1000), st.booleans()),
        max_size=12,
    ),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=1, max_value=1000),
    st.integers(min_value=0, max_value=2),
)
def test_invariants(raw: list[tuple[float, bool]], max_warm: int, ttl: float, reserve: int) -> None:
    entries = [e(str(i), last, busy) for i, (last, busy) in enumerate(raw)]
    now = 1000.0
    chosen = choose_evictions(entries, now, max_warm, ttl, reserve=reserve)
    by_key = {x.key: x for x in entries}
    assert len(chosen) == len(set(chosen))
    assert all(not by_key[k].busy for k in chosen)
    kept = [x for x in entries if x.key not in chosen]
    # Every idle entry past its TTL goes.
    assert all(x.busy or now - x.last_active < ttl for x in kept)
    # The cap holds unless only busy entries are left to blame.
    if len(kept) + reserve > max_warm:
        assert all(x.busy for x in kept)
    # Minimal: nothing fresh is evicted unless the cap required it.
    fresh_chosen = [k for k in chosen if now - by_key[k].last_active < ttl]
    if fresh_chosen:
        assert len(kept) + reserve == max_warm or all(x.busy for x in kept)
        newest_evicted = max(by_key[k].last_active for k in fresh_chosen)
        oldest_kept_idle = min((x.last_active for x in kept if not x.busy), default=float("inf"))
        assert newest_evicted <= oldest_kept_idle
