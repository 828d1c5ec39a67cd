"""The memory tables: note and transcript entries, what the note index last saw of each file, and
their full-text search (schema in schema/002_memory.sql and 004_memory_search.sql).

Callers ask by meaning: which note files are known, make a file's entries match its sections,
store a subagent run, how costly a search term is, the best matches of a query with a snippet
of each. memory/ decides what to ask (query parsing, which terms count towards the score, the
window, the weights); this module keeps the entries (the same SQL on both databases) and hands a
search to its dialect: `memory_fts5` (sqlite FTS5, bm25) or `memory_pg` (PostgreSQL `tsvector`,
`ts_rank`, `ts_headline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from boocode_mcp.store.db import Database, Row

# Prefix lengths sqlite's memory_fts has an index for (004_memory_search.sql): a longer prefix
# makes FTS5 merge the doclists of every term that starts with it, once per statement using it.
LONGEST_INDEXED_PREFIX = 4
# Relative cost of walking one document of a term's doclist, by kind of term (measured at 100k
# entries: a word ~0.05 µs, an indexed prefix ~0.15 µs, a phrase's position check or an
# unindexed prefix's merge ~0.5 µs).
_WORD_COST, _PREFIX_COST, _PHRASE_COST = 1, 3, 10
# Distinct words term_costs counts per call: a pasted paragraph has hundreds, and the first
# ones are as likely to be the telling ones as any.
MAX_PROBES = 64
# A word, or (True) a prefix: what term_costs counts matches of.
Probe = tuple[str, bool]


class MatchTerm(Protocol):
    """One term of a query, as memory.query parses it: words matched as a phrase."""

    @property
    def words(self) -> tuple[str, ...]: ...

    @property
    def prefix(self) -> bool: ...  # the last word is a prefix

    @property
    def tag(self) -> bool: ...  # matched in the tags column only


# -- notes and subagent runs -------------------------------------------------------------------


@dataclass(frozen=True)
class KnownFile:
    mtime_ns: int
    size: int
    hash: str


@dataclass(frozen=True)
class NoteEntry:
    """One section of a note file as it should be stored."""

    ref: str
    title: str
    tags: str
    body: str
    hash: str  # of title/tags/body: an entry whose hash is unchanged is not rewritten


@dataclass(frozen=True)
class NoteFile:
    """A note file as last read: its entries, or None when its content is known unchanged."""

    path: str
    mtime_ns: int
    size: int
    hash: str
    entries: tuple[NoteEntry, ...] | None


@dataclass
class WriteCounts:
    written: int = 0
    deleted: int = 0


async def known_note_files(db: Database) -> dict[str, KnownFile]:
    rows = await db.execute_fetchall("SELECT path, mtime_ns, size, hash FROM memory_files")
    return {str(r[0]): KnownFile(int(r[1]), int(r[2]), str(r[3])) for r in rows}


async def write_note_files(
    db: Database, files: Sequence[NoteFile], gone: Sequence[str], now: float
) -> WriteCounts:
    """In one transaction: drop the entries of `gone` files and make each file's entries match."""
    counts = WriteCounts()
    async with db.transaction() as tx:
        for path in gone:
            counts.deleted += (
                await tx.execute("DELETE FROM memory WHERE source = 'note' AND path = ?", (path,))
            ).rowcount
            await tx.execute("DELETE FROM memory_files WHERE path = ?", (path,))
        for f in files:
            if f.entries is not None:
                await _sync_entries(tx, f.path, f.entries, f.mtime_ns / 1e9, counts)
            await tx.execute(
                """
                INSERT INTO memory_files (path, mtime_ns, size, hash, indexed_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (path) DO UPDATE SET
                    mtime_ns = excluded.mtime_ns, size = excluded.size, hash = excluded.hash,
                    indexed_at = excluded.indexed_at
                """,
                (f.path, f.mtime_ns, f.size, f.hash, now),
            )
    return counts


async def _sync_entries(
    tx: Database, path: str, entries: Sequence[NoteEntry], mtime: float, counts: WriteCounts
) -> None:
    """Make the file's rows match `entries`, rewriting only rows whose text changed.

    A changed row is deleted and inserted again rather than updated: ids follow write order,
    which is what "most recently written" means to search.
    """
    existing = {
        str(r[1]): (int(r[0]), str(r[2]))
        for r in await tx.execute_fetchall(
            "SELECT id, ref, hash FROM memory WHERE source = 'note' AND path = ?", (path,)
        )
    }
    deletes: list[tuple[int]] = []
    inserts: list[tuple[Any, ...]] = []
    for e in entries:
        old = existing.pop(e.ref, None)
        if old is not None and old[1] == e.hash:
            continue
        if old is not None:
            deletes.append((old[0],))
        inserts.append((e.ref, path, *_text(e.title, e.tags, e.body), mtime, e.hash))
    deletes += [(rowid,) for rowid, _ in existing.values()]
    counts.deleted += len(existing)
    counts.written += len(inserts)
    if deletes:
        # Before the inserts: a rewritten section's ref must be free again.
        await tx.executemany("DELETE FROM memory WHERE id = ?", deletes)
    if inserts:
        await tx.executemany(
            "INSERT INTO memory (source, ref, path, title, tags, body, created_at, hash)"
            " VALUES ('note', ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )


async def put_subagent(
    db: Database,
    *,
    ref: str,
    title: str,
    tags: str,
    body: str,
    agent: str,
    created_at: float,
    hash: str,
) -> None:
    """Store one finished run's entry, replacing an earlier one with the same ref (a new text is
    a new row, so it counts as just written; see _sync_entries)."""
    async with db.transaction(quick=True) as tx:
        await tx.execute(
            "DELETE FROM memory WHERE source = 'subagent' AND ref = ? AND hash != ?", (ref, hash)
        )
        await tx.execute(
            """
            INSERT INTO memory (source, ref, path, title, tags, body, agent, created_at, hash)
            VALUES ('subagent', ?, NULL, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, ref) DO UPDATE SET agent = excluded.agent, created_at = excluded.created_at
            """,
            (ref, *_text(title, tags, body), agent, created_at, hash),
        )


def _text(*texts: str) -> tuple[str, ...]:
    # PostgreSQL's text cannot hold NUL, and a NUL is no word either: dropped on both databases.
    return tuple(t.replace("\x00", "") for t in texts)


# -- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One hit: the entry, its score and a snippet of where the terms matched in it."""

    id: int
    score: float | None  # bm25 over the scored terms, higher is better; None: not scored
    source: str
    ref: str
    path: str | None
    title: str
    created_at: float
    snippet: str  # the body's context where it matched, else the title or tags, matches marked


def found_from_row(row: Row | tuple[Any, ...], score: float | None, mark: str) -> Found:
    """A hit from a row of (id, source, ref, path, title, created_at, body snippet, marked title,
    marked tags): its snippet is the first of the last three with a mark."""
    shown = next((str(s) for s in (row[6], row[7], row[8]) if s and mark in str(s)), str(row[6] or ""))
    return Found(int(row[0]), score, str(row[1]), str(row[2]), row[3], str(row[4]), float(row[5]), shown)


@dataclass(frozen=True)
class Snippet:
    open: str
    close: str
    ellipsis: str
    tokens: int


@dataclass(frozen=True)
class Search:
    """What best_matches looks for, and how far it may look (see there)."""

    terms: Sequence[MatchTerm]
    any_term: bool  # any term may match instead of every one
    scored: Sequence[MatchTerm]  # the terms bm25 weighs, a subset of `terms`
    weights: tuple[float, float, float]  # bm25 column weights: title, tags, body
    source: str | None
    window: int
    heading_window: int
    limit: int


async def term_costs(db: Database, terms: Sequence[MatchTerm], cap: int) -> list[int]:
    """For each term, an upper bound on the work of walking every entry it matches (one unit: a
    word's document), counted no further than `cap`; the counting itself costs at most that.
    Past the first MAX_PROBES distinct words the rest are not counted: they cost `cap`."""
    # A phrase is bounded by its rarest word (it cannot match more entries than that word), a
    # prefix by its indexed part: probing the whole of an unindexed prefix would cost the very
    # merge the bound is meant to predict.
    plans: list[list[tuple[Probe, int]] | None] = []
    limits: dict[Probe, int] = {}
    for term in terms:
        plan: list[tuple[Probe, int]] = []
        for i, word in enumerate(term.words):
            if term.prefix and i == len(term.words) - 1:
                probe = (word[:LONGEST_INDEXED_PREFIX], True)
                unit = _PREFIX_COST if len(word) <= LONGEST_INDEXED_PREFIX else _PHRASE_COST
            else:
                probe, unit = (word, False), _WORD_COST
            if len(term.words) > 1:
                unit = max(unit, _PHRASE_COST)
            plan.append((probe, unit))
        if len(limits.keys() | {p for p, _ in plan}) > MAX_PROBES:
            plans.append(None)
            continue
        for probe, unit in plan:
            limits[probe] = max(limits.get(probe, 0), -(-cap // unit))
        plans.append(plan)
    if not limits:
        return [cap for _ in plans]
    if db.dialect == "postgres":
        from boocode_mcp.store import memory_pg

        counts = await memory_pg.count_probes(db, limits)
    else:
        from boocode_mcp.store import memory_fts5

        counts = await memory_fts5.count_probes(db, limits)
    return [cap if plan is None else min(cap, *(counts[p] * unit for p, unit in plan)) for plan in plans]


async def best_matches(db: Database, search: Search, snippet: Snippet) -> list[Found]:
    """The `limit` best entries matching every term (or any, with `any_term`), best first.

    Entries matching the `scored` terms are ranked over those terms alone, with `weights` for
    (title, tags, body), newer (created_at) first among equal scores. Only the `window` most
    recently written of them are considered, and, when every term is scored, the
    `heading_window` most recently written with the scored terms in their title or tags. Then,
    while fewer than `limit`: the most recently written entries matching the terms and not yet
    listed, unscored (all of the hits when `scored` is empty). Ids follow write order.
    """
    if db.dialect == "postgres":
        from boocode_mcp.store import memory_pg

        return await memory_pg.best_matches(db, search, snippet)
    from boocode_mcp.store import memory_fts5

    return await memory_fts5.best_matches(db, search, snippet)
