"""The memory tables: note and transcript entries, what the note index last saw of each file, and
their full-text search (sqlite FTS5; schema in schema/002_memory.sql and 003_memory_search.sql).

Callers ask by meaning: which note files are known, make a file's entries match its sections,
store a subagent run, how costly a search term is, the best matches of a query, and the rows to
show for chosen entries. memory/ decides what to ask (query parsing, which terms count towards
the score, the window, the weights); this module knows only how sqlite answers. A PostgreSQL
dialect would implement the same functions over a `tsvector` column: the terms rendered as a
`tsquery`, `ts_rank` with setweight A/B/D for the column weights, `ORDER BY id DESC LIMIT` for a
window, `ts_headline` for snippets.

Why the search is several small statements instead of one `ORDER BY bm25(...) LIMIT k`: FTS5's
bm25 costs two things per query that grow with the table. It counts every entry each phrase
matches (a walk of the phrase's whole doclist, before the first row is scored: 45 ms at 100k
entries for a two-word phrase of common words), and it scores every matching row (~2 µs each:
200 ms for a word in every entry). So bm25 is asked only for terms whose doclists are cheap to
walk (`term_costs`), and only over a bounded window of the newest matches (`best_matches`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosqlite

from boocode_mcp.store.transaction import atomically

# The FTS columns the user's words are matched in; `source` is indexed too but only for the
# source filter, so every query is restricted to these.
TEXT_COLUMNS = "{title tags body}"
# Prefix lengths memory_fts has an index for (003_memory_search.sql): a longer prefix makes FTS5
# merge the doclists of every term that starts with it, once per statement that uses it.
LONGEST_INDEXED_PREFIX = 4
# Relative cost of walking one document of a term's doclist, by kind of term (measured at 100k
# entries: a word ~0.05 µs, an indexed prefix ~0.15 µs, a phrase's position check or an
# unindexed prefix's merge ~0.5 µs).
_WORD_COST, _PREFIX_COST, _PHRASE_COST = 1, 3, 10


class MatchTerm(Protocol):
    """One term of a query, as memory.query parses it: words matched as a phrase."""

    @property
    def words(self) -> tuple[str, ...]: ...

    @property
    def prefix(self) -> bool: ...  # the last word is a prefix

    @property
    def tag(self) -> bool: ...  # matched in the tags column only


def fts5_term(term: MatchTerm) -> str:
    """The term as an FTS5 phrase: words are FTS5 strings, so nothing in them is syntax."""
    # Words hold only token characters, so they cannot contain '"'; doubling is belt and braces.
    phrase = '"' + " ".join(w.replace('"', '""') for w in term.words) + '"'
    if term.prefix:
        phrase += " *"
    return f"tags : {phrase}" if term.tag else phrase


def fts5_match(terms: Iterable[MatchTerm], *, any_term: bool = False) -> str:
    """The terms joined by AND (or OR), each once; empty when there are no terms."""
    return (" OR " if any_term else " AND ").join(dict.fromkeys(fts5_term(t) for t in terms))


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


async def known_note_files(db: aiosqlite.Connection) -> dict[str, KnownFile]:
    rows = await db.execute_fetchall("SELECT path, mtime_ns, size, hash FROM memory_files")
    return {str(r[0]): KnownFile(int(r[1]), int(r[2]), str(r[3])) for r in rows}


async def write_note_files(
    db: aiosqlite.Connection, files: Sequence[NoteFile], gone: Sequence[str], now: float
) -> WriteCounts:
    """In one transaction: drop the entries of `gone` files and make each file's entries match."""
    counts = WriteCounts()

    def work(conn: sqlite3.Connection) -> None:
        for path in gone:
            counts.deleted += conn.execute(
                "DELETE FROM memory WHERE source = 'note' AND path = ?", (path,)
            ).rowcount
            conn.execute("DELETE FROM memory_files WHERE path = ?", (path,))
        for f in files:
            if f.entries is not None:
                _sync_entries(conn, f.path, f.entries, f.mtime_ns / 1e9, counts)
            conn.execute(
                """
                INSERT INTO memory_files (path, mtime_ns, size, hash, indexed_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (path) DO UPDATE SET
                    mtime_ns = excluded.mtime_ns, size = excluded.size, hash = excluded.hash,
                    indexed_at = excluded.indexed_at
                """,
                (f.path, f.mtime_ns, f.size, f.hash, now),
            )

    await atomically(db, work)
    return counts


def _sync_entries(
    conn: sqlite3.Connection, path: str, entries: Sequence[NoteEntry], mtime: float, counts: WriteCounts
) -> None:
    """Make the file's rows match `entries`, rewriting only rows whose text changed."""
    existing = {
        str(ref): (int(rowid), str(h))
        for rowid, ref, h in conn.execute(
            "SELECT id, ref, hash FROM memory WHERE source = 'note' AND path = ?", (path,)
        )
    }
    for e in entries:
        old = existing.pop(e.ref, None)
        if old is None:
            conn.execute(
                """
                INSERT INTO memory (source, ref, path, title, tags, body, created_at, hash)
                VALUES ('note', ?, ?, ?, ?, ?, ?, ?)
                """,
                (e.ref, path, e.title, e.tags, e.body, mtime, e.hash),
            )
            counts.written += 1
        elif old[1] != e.hash:
            conn.execute(
                "UPDATE memory SET title = ?, tags = ?, body = ?, created_at = ?, hash = ? WHERE id = ?",
                (e.title, e.tags, e.body, mtime, e.hash, old[0]),
            )
            counts.written += 1
    for rowid, _ in existing.values():
        conn.execute("DELETE FROM memory WHERE id = ?", (rowid,))
        counts.deleted += 1


async def put_subagent(
    db: aiosqlite.Connection,
    *,
    ref: str,
    title: str,
    tags: str,
    body: str,
    agent: str,
    created_at: float,
    hash: str,
) -> None:
    """Store one finished run's entry, replacing an earlier one with the same ref."""
    await db.execute(
        """
        INSERT INTO memory (source, ref, path, title, tags, body, agent, created_at, hash)
        VALUES ('subagent', ?, NULL, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (source, ref) DO UPDATE SET
            title = excluded.title, tags = excluded.tags, body = excluded.body,
            agent = excluded.agent, created_at = excluded.created_at, hash = excluded.hash
        """,
        (ref, title, tags, body, agent, created_at, hash),
    )


# -- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    id: int
    score: float | None  # bm25 over the scored terms, higher is better; None: ranked without it


@dataclass(frozen=True)
class EntryRow:
    id: int
    source: str
    ref: str
    path: str | None
    title: str
    created_at: float
    snippet: str


@dataclass(frozen=True)
class Snippet:
    open: str
    close: str
    ellipsis: str
    tokens: int


async def term_costs(db: aiosqlite.Connection, terms: Sequence[MatchTerm], cap: int) -> list[int]:
    """For each term, an upper bound on the work of walking every entry it matches (one unit: a
    word's document), counted no further than `cap`; the counting itself costs at most that."""
    # A phrase is bounded by its rarest word (it cannot match more entries than that word), a
    # prefix by its indexed part: probing the whole of an unindexed prefix would cost the very
    # merge the bound is meant to predict.
    plans: list[list[tuple[str, int]]] = []
    limits: dict[str, int] = {}
    for term in terms:
        plan = []
        for i, word in enumerate(term.words):
            if term.prefix and i == len(term.words) - 1:
                probe = _string(word[:LONGEST_INDEXED_PREFIX]) + " *"
                unit = _PREFIX_COST if len(word) <= LONGEST_INDEXED_PREFIX else _PHRASE_COST
            else:
                probe = _string(word)
                unit = _WORD_COST
            if len(term.words) > 1:
                unit = max(unit, _PHRASE_COST)
            plan.append((probe, unit))
            limits[probe] = max(limits.get(probe, 0), -(-cap // unit))
        plans.append(plan)
    if not limits:
        return [0 for _ in terms]
    probes = list(limits)
    sql = " UNION ALL ".join(
        "SELECT ?, (SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?))"
        for _ in probes
    )
    args: list[str | int] = []
    for p in probes:
        args += [p, p, limits[p]]
    counts = {str(r[0]): int(r[1]) for r in await db.execute_fetchall(sql, args)}
    return [min(cap, min(counts[p] * unit for p, unit in plan)) if plan else 0 for plan in plans]


async def best_matches(
    db: aiosqlite.Connection,
    *,
    terms: Sequence[MatchTerm],
    any_term: bool,
    scored: Sequence[MatchTerm],
    weights: tuple[float, float, float],
    source: str | None,
    window: int,
    limit: int,
) -> list[Ranked]:
    """The `limit` best entries matching every term (or any, with `any_term`), best first.

    Entries matching the `scored` terms are ranked by bm25 over those terms alone, with `weights`
    for (title, tags, body), newer first among equal scores; only the `window` newest of them
    (by when they were added) are considered. When they are fewer than `limit`, the rest are
    the newest (by created_at) of the `window` newest entries matching the terms without any
    scored term (all of them when `scored` is empty).
    """
    match = _restricted(fts5_match(terms, any_term=any_term))
    ranked: list[Ranked] = []
    if scored:
        ranked = await _scored(db, match, terms, any_term, scored, weights, source, window, limit)
    if len(ranked) < limit:
        rows = await db.execute_fetchall(
            """
            WITH w AS MATERIALIZED (
                SELECT rowid AS id FROM memory_fts WHERE memory_fts MATCH :match
                ORDER BY rowid DESC LIMIT :window
            )
            SELECT w.id FROM w JOIN memory AS m INDEXED BY memory_rank ON m.id = w.id
            WHERE w.id NOT IN (SELECT value FROM json_each(:have))
            ORDER BY m.created_at DESC, w.id DESC
            LIMIT :n
            """,
            {
                "match": _with_source(match, source),
                "window": window,
                "have": json.dumps([r.id for r in ranked]),
                "n": limit - len(ranked),
            },
        )
        ranked += [Ranked(int(r[0]), None) for r in rows]
    return ranked


async def _scored(
    db: aiosqlite.Connection,
    match: str,
    terms: Sequence[MatchTerm],
    any_term: bool,
    scored: Sequence[MatchTerm],
    weights: tuple[float, float, float],
    source: str | None,
    window: int,
    limit: int,
) -> list[Ranked]:
    score_match = _restricted(fts5_match(scored, any_term=any_term))
    # bm25 over `score_match` only: FTS5 walks the doclist of every phrase in the expression it
    # scores. The source column has weight 0 and is never in that expression.
    bm25 = "-bm25(memory_fts, ?, ?, ?, 0)"
    # Candidates: with every term required, the newest matches of all of them (they all match the
    # scored terms); with any term, the newest matches of a scored term.
    candidates = score_match if any_term or len(scored) == len(terms) else match
    if source is None and candidates == score_match:
        # One walk: the candidates are the scored expression's own newest matches.
        ctes = f"""
            s AS MATERIALIZED (
                SELECT rowid AS id, {bm25} AS score FROM memory_fts WHERE memory_fts MATCH ?
                ORDER BY rowid DESC LIMIT ?
            )
        """
        args: list[object] = [*weights, score_match, window]
    else:
        ctes = f"""
            c AS MATERIALIZED (
                SELECT rowid AS id FROM memory_fts WHERE memory_fts MATCH ?
                ORDER BY rowid DESC LIMIT ?
            ),
            s AS MATERIALIZED (
                SELECT rowid AS id, {bm25} AS score FROM memory_fts
                WHERE memory_fts MATCH ? AND rowid >= (SELECT min(id) FROM c) AND rowid + 0 IN c
            )
        """
        args = [_with_source(candidates, source), window, *weights, score_match]
    # Recency breaks ties, so created_at is looked up for the rows that can make the top `limit`
    # (scores at least the limit-th best), not for every candidate.
    rows = await db.execute_fetchall(
        f"""
        WITH {ctes}
        SELECT s.id, s.score FROM s JOIN memory AS m INDEXED BY memory_rank ON m.id = s.id
        WHERE s.score >= coalesce((SELECT score FROM s ORDER BY score DESC LIMIT 1 OFFSET ?), -1e308)
        ORDER BY s.score DESC, m.created_at DESC, s.id DESC
        LIMIT ?
        """,
        [*args, limit - 1, limit],
    )
    return [Ranked(int(r[0]), float(r[1])) for r in rows]


async def entry_rows(
    db: aiosqlite.Connection,
    ids: Sequence[int],
    *,
    terms: Sequence[MatchTerm],
    any_term: bool,
    snippet: Snippet,
) -> list[EntryRow]:
    """The rows to show for `ids` (in that order; an id since removed is skipped), each with a
    snippet of where the terms matched: the body's context when the body matched, else the
    title or the tags with their matches marked."""
    if not ids:
        return []
    # How to reach the ids' rows among the matches: FTS5 plans the MATCH again for every seek to
    # one rowid (a lookup per term in every index segment, and for an unindexed prefix a merge of
    # all its doclists), while one walk over the ids' rowid range costs at most the walk that
    # ranked them, cheap for words and prefixes. A phrase's walk checks positions in every entry
    # holding all its words, so with a phrase (and no unindexed prefix) the ids are sought.
    long_prefix = any(t.prefix and len(t.words[-1]) > LONGEST_INDEXED_PREFIX for t in terms)
    phrase = any(len(t.words) > 1 for t in terms)
    if phrase and not long_prefix:
        fts = "json_each(:ids) AS i CROSS JOIN memory_fts ON memory_fts.rowid = i.value"
        where = "memory_fts MATCH :match"
    else:
        fts = "memory_fts"
        where = (
            "memory_fts MATCH :match AND memory_fts.rowid BETWEEN :lo AND :hi"
            " AND memory_fts.rowid + 0 IN (SELECT value FROM json_each(:ids))"
        )
    rows = await db.execute_fetchall(
        f"""
        SELECT memory_fts.rowid, m.source, m.ref, m.path, m.title, m.created_at,
               snippet(memory_fts, 2, :open, :close, :ellipsis, :tokens),
               highlight(memory_fts, 0, :open, :close),
               highlight(memory_fts, 1, :open, :close)
        FROM {fts} CROSS JOIN memory AS m ON m.id = memory_fts.rowid
        WHERE {where}
        """,
        {
            "match": _restricted(fts5_match(terms, any_term=any_term)),
            "lo": min(ids),
            "hi": max(ids),
            "ids": json.dumps(list(ids)),
            "open": snippet.open,
            "close": snippet.close,
            "ellipsis": snippet.ellipsis,
            "tokens": snippet.tokens,
        },
    )
    found = {int(r[0]): r for r in rows}
    out = []
    for i in ids:
        if (r := found.get(i)) is None:
            continue
        body, title, tags = (str(x or "") for x in (r[6], r[7], r[8]))
        shown = next((s for s in (body, title, tags) if snippet.open in s), body)
        out.append(EntryRow(i, str(r[1]), str(r[2]), r[3], str(r[4]), float(r[5]), shown))
    return out


def _string(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _restricted(match: str) -> str:
    """Match the user's terms in the text columns only, never in `source`."""
    return f"{TEXT_COLUMNS} : ({match})"


def _with_source(match: str, source: str | None) -> str:
    return match if source is None else f"source : {_string(source)} AND {match}"
