"""The memory tables: note and transcript entries, what the note index last saw of each file, and
their full-text search (sqlite FTS5; schema in schema/002_memory.sql and 004_memory_search.sql).

Callers ask by meaning: which note files are known, make a file's entries match its sections,
store a subagent run, how costly a search term is, the best matches of a query with a snippet
of each. memory/ decides what to ask (query parsing, which terms count towards
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
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiosqlite

from boocode_mcp.store.transaction import atomically

# memory_fts indexes `source` too, for the source filter: each row holds one of these tokens
# (the CHECK on memory.source). A term that could match one is restricted to the text columns;
# the others are not, as a column filter makes FTS5 read every matching entry's positions (2-3x
# the walk for a common word).
_SOURCE_TOKENS = ("note", "subagent")
_TEXT_COLUMNS = "{title tags body}"
# Prefix lengths memory_fts has an index for (004_memory_search.sql): a longer prefix makes FTS5
# merge the doclists of every term that starts with it, once per statement that uses it.
LONGEST_INDEXED_PREFIX = 4
# Relative cost of walking one document of a term's doclist, by kind of term (measured at 100k
# entries: a word ~0.05 µs, an indexed prefix ~0.15 µs, a phrase's position check or an
# unindexed prefix's merge ~0.5 µs).
_WORD_COST, _PREFIX_COST, _PHRASE_COST = 1, 3, 10
# Distinct words term_costs counts per call: a pasted paragraph has hundreds, and the first
# ones are as likely to be the telling ones as any.
MAX_PROBES = 64


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
    """Make the file's rows match `entries`, rewriting only rows whose text changed.

    A changed row is deleted and inserted again rather than updated: rowids follow write order,
    which is what "most recently written" means to search.
    """
    existing = {
        str(ref): (int(rowid), str(h))
        for rowid, ref, h in conn.execute(
            "SELECT id, ref, hash FROM memory WHERE source = 'note' AND path = ?", (path,)
        )
    }
    for e in entries:
        old = existing.pop(e.ref, None)
        if old is not None and old[1] == e.hash:
            continue
        if old is not None:
            conn.execute("DELETE FROM memory WHERE id = ?", (old[0],))
        conn.execute(
            """
            INSERT INTO memory (source, ref, path, title, tags, body, created_at, hash)
            VALUES ('note', ?, ?, ?, ?, ?, ?, ?)
            """,
            (e.ref, path, e.title, e.tags, e.body, mtime, e.hash),
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
    """Store one finished run's entry, replacing an earlier one with the same ref (a new text is
    a new row, so it counts as just written; see _sync_entries)."""

    def work(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM memory WHERE source = 'subagent' AND ref = ? AND hash != ?", (ref, hash))
        conn.execute(
            """
            INSERT INTO memory (source, ref, path, title, tags, body, agent, created_at, hash)
            VALUES ('subagent', ?, NULL, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, ref) DO UPDATE SET agent = excluded.agent, created_at = excluded.created_at
            """,
            (ref, title, tags, body, agent, created_at, hash),
        )

    await atomically(db, work)


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


@dataclass(frozen=True)
class Snippet:
    open: str
    close: str
    ellipsis: str
    tokens: int


async def term_costs(db: aiosqlite.Connection, terms: Sequence[MatchTerm], cap: int) -> list[int]:
    """For each term, an upper bound on the work of walking every entry it matches (one unit: a
    word's document), counted no further than `cap`; the counting itself costs at most that.
    Past the first MAX_PROBES distinct words the rest are not counted: they cost `cap`."""
    # A phrase is bounded by its rarest word (it cannot match more entries than that word), a
    # prefix by its indexed part: probing the whole of an unindexed prefix would cost the very
    # merge the bound is meant to predict.
    plans: list[list[tuple[str, int]] | None] = []
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
        if len(limits.keys() | {p for p, _ in plan}) > MAX_PROBES:
            plans.append(None)
            continue
        for probe, unit in plan:
            limits[probe] = max(limits.get(probe, 0), -(-cap // unit))
        plans.append(plan)
    if not limits:
        return [cap for _ in plans]
    # One statement, one FTS cursor per probe (fewer than the 500 a compound SELECT may hold).
    rows = await db.execute_fetchall(
        " UNION ALL ".join(
            "SELECT ?, (SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?))"
            for _ in limits
        ),
        [x for probe, n in limits.items() for x in (probe, probe, n)],
    )
    counts = {str(r[0]): int(r[1]) for r in rows}
    return [cap if plan is None else min(cap, *(counts[p] * unit for p, unit in plan)) for plan in plans]


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


async def best_matches(db: aiosqlite.Connection, search: Search, snippet: Snippet) -> list[Found]:
    """The `limit` best entries matching every term (or any, with `any_term`), best first.

    Entries matching the `scored` terms are ranked by bm25 over those terms alone, with `weights`
    for (title, tags, body), newer (created_at) first among equal scores. Only the `window` most
    recently written of them are considered, and, when every term is scored, the
    `heading_window` most recently written with the scored terms in their title or tags. Then,
    while fewer than `limit`: the most recently written entries matching the terms and not yet
    listed, unscored (all of the hits when `scored` is empty). Rowids follow write order.
    """
    s = search
    match = _text_match(s.terms, any_term=s.any_term)
    found: list[Found] = []
    if s.scored:
        found = await _found(db, await _scored(db, s, match), match, s.terms, snippet)
    # With every term required, the scored entries are all the window's matches: nothing to add.
    if len(found) < s.limit and (s.any_term or not s.scored):
        found += await _newest(db, match, s.source, [f.id for f in found], s.limit - len(found), snippet)
    return found


async def _scored(db: aiosqlite.Connection, s: Search, match: str) -> list[tuple[int, float]]:
    score_match = _text_match(s.scored, any_term=s.any_term)
    # Candidates: with every term required, matches of all of them (they all match the scored
    # terms); with any term, matches of a scored term.
    all_scored = s.any_term or len(s.scored) == len(s.terms)
    candidates = _with_source(score_match if all_scored else match, s.source)
    args: dict[str, object] = {
        "score_match": score_match,
        "title": s.weights[0],
        "tags": s.weights[1],
        "body": s.weights[2],
    }
    # bm25 over `score_match` only: FTS5 walks the doclist of every phrase in the expression it
    # scores. The source column has weight 0 and is never in that expression.
    scoring = """
        SELECT memory_fts.rowid, -bm25(memory_fts, :title, :tags, :body, 0) FROM memory_fts
        WHERE memory_fts MATCH :score_match
    """
    if candidates == score_match:
        # One walk: the candidates are the scored expression's own newest matches.
        rows = list(
            await db.execute_fetchall(
                f"{scoring} ORDER BY memory_fts.rowid DESC LIMIT :window", {**args, "window": s.window}
            )
        )
    else:
        driver = _with_source(score_match, s.source)
        rows = await _score_window(db, scoring, args, candidates, driver, s.window)
    if len(rows) == s.window and s.heading_window and all_scored:
        # More match than the window holds: add the newest whose title or tags hold the scored
        # terms, from further back; the column weights rank those high, and they are few. Not
        # with unscored terms to match too: finding few headings among the matches of a very
        # common word would walk all of its doclist.
        heading = f"{candidates} AND {{title tags}} : ({fts5_match(s.scored, any_term=s.any_term)})"
        rows += await _score_newest(db, scoring, args, heading, s.heading_window, [int(r[0]) for r in rows])
    return await _best(db, {int(r[0]): float(r[1]) for r in rows}, s.limit)


async def _best(db: aiosqlite.Connection, scores: dict[int, float], limit: int) -> list[tuple[int, float]]:
    """The `limit` best scores, newer (created_at) first among equal ones; created_at is looked
    up only for the scores that tie there (a lookup per scored entry would cost a third more)."""
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    if not ranked:
        return []
    cut = ranked[min(limit, len(ranked)) - 1][1]
    top = [(i, score) for i, score in ranked if score >= cut]
    counts = Counter(score for _, score in top)
    tied = [i for i, score in top if counts[score] > 1]
    created: dict[int, float] = {}
    if tied:
        rows = await db.execute_fetchall(
            "SELECT id, created_at FROM memory INDEXED BY memory_rank"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(tied),),
        )
        created = {int(r[0]): float(r[1]) for r in rows}
    top.sort(key=lambda item: (-item[1], -created.get(item[0], 0.0), -item[0]))
    return top[:limit]


async def _score_window(
    db: aiosqlite.Connection,
    scoring: str,
    args: dict[str, object],
    candidates: str,
    driver: str,
    n: int,
) -> list[sqlite3.Row]:
    """Score the matches of `candidates` among the `n` newest matches of `driver`, an expression
    all candidates match. The driver (the scored terms, cheap to walk) is walked backwards to
    find where that window starts, the candidates forwards from there: FTS5 walks the doclist of
    a very common word backwards several times slower than forwards, as each page is reversed."""
    return list(
        await db.execute_fetchall(
            f"""
            WITH c(id) AS MATERIALIZED (
                SELECT rowid FROM memory_fts WHERE memory_fts MATCH :candidates AND rowid >= coalesce((
                    SELECT rowid FROM memory_fts WHERE memory_fts MATCH :driver
                    ORDER BY rowid DESC LIMIT 1 OFFSET :n - 1
                ), 0)
            )
            {scoring} AND memory_fts.rowid >= (SELECT min(id) FROM c) AND memory_fts.rowid + 0 IN c
            """,
            {**args, "candidates": candidates, "driver": driver, "n": n},
        )
    )


async def _score_newest(
    db: aiosqlite.Connection,
    scoring: str,
    args: dict[str, object],
    candidates: str,
    n: int,
    skip: Sequence[int],
) -> list[sqlite3.Row]:
    """Score the `n` newest matches of `candidates` not in `skip` (one walk finds them, another
    over their rowid range scores them)."""
    return list(
        await db.execute_fetchall(
            f"""
            WITH c(id) AS MATERIALIZED (
                SELECT rowid FROM memory_fts
                WHERE memory_fts MATCH :candidates AND rowid + 0 NOT IN (SELECT value FROM json_each(:skip))
                ORDER BY rowid DESC LIMIT :n
            )
            {scoring} AND memory_fts.rowid >= (SELECT min(id) FROM c) AND memory_fts.rowid + 0 IN c
            """,
            {**args, "candidates": candidates, "n": n, "skip": json.dumps(list(skip))},
        )
    )


# The columns of a hit: the entry's, and where the match is (snippet of the body, title and tags
# with their matches marked); `Found` picks the first of those three with a mark.
_HIT_COLUMNS = """
    memory_fts.rowid, m.source, m.ref, m.path, m.title, m.created_at,
    snippet(memory_fts, 2, :open, :close, :ellipsis, :tokens),
    highlight(memory_fts, 0, :open, :close), highlight(memory_fts, 1, :open, :close)
"""


def _hit_args(match: str, snippet: Snippet) -> dict[str, object]:
    return {
        "match": match,
        "open": snippet.open,
        "close": snippet.close,
        "ellipsis": snippet.ellipsis,
        "tokens": snippet.tokens,
    }


def _hit(row: sqlite3.Row, score: float | None, mark: str) -> Found:
    shown = next((str(s) for s in (row[6], row[7], row[8]) if s and mark in str(s)), str(row[6] or ""))
    return Found(int(row[0]), score, str(row[1]), str(row[2]), row[3], str(row[4]), float(row[5]), shown)


async def _newest(
    db: aiosqlite.Connection, match: str, source: str | None, skip: Sequence[int], n: int, snippet: Snippet
) -> list[Found]:
    """The `n` most recently written matches not in `skip`: the walk that finds them stops there,
    and makes their snippets on the way."""
    args = _hit_args(_with_source(match, source), snippet)
    args.update(skip=json.dumps(list(skip)), n=n)
    rows = await db.execute_fetchall(
        f"""
        SELECT {_HIT_COLUMNS}
        FROM memory_fts CROSS JOIN memory AS m ON m.id = memory_fts.rowid
        WHERE memory_fts MATCH :match AND memory_fts.rowid + 0 NOT IN (SELECT value FROM json_each(:skip))
        ORDER BY memory_fts.rowid DESC LIMIT :n
        """,
        args,
    )
    return [_hit(r, None, snippet.open) for r in rows]


async def _found(
    db: aiosqlite.Connection,
    ranked: Sequence[tuple[int, float]],
    match: str,
    terms: Sequence[MatchTerm],
    snippet: Snippet,
) -> list[Found]:
    """The hits for ranked entries, in their order (an entry removed since is skipped)."""
    if not ranked:
        return []
    ids = [i for i, _ in ranked]
    # How to reach them among the matches: FTS5 plans the MATCH again for every seek to one rowid
    # (a lookup per term in every index segment, and for an unindexed prefix a merge of all its
    # doclists), while one walk over the ids' rowid range costs at most the walk that ranked
    # them, which is cheap for words and prefixes. A phrase's walk checks positions in every
    # entry holding all its words, so with a phrase (and no unindexed prefix) the ids are sought.
    long_prefix = any(t.prefix and len(t.words[-1]) > LONGEST_INDEXED_PREFIX for t in terms)
    if any(len(t.words) > 1 for t in terms) and not long_prefix:
        fts = "json_each(:ids) AS i CROSS JOIN memory_fts ON memory_fts.rowid = i.value"
        where = "memory_fts MATCH :match"
    else:
        fts = "memory_fts"
        where = (
            "memory_fts MATCH :match AND memory_fts.rowid BETWEEN :lo AND :hi"
            " AND memory_fts.rowid + 0 IN (SELECT value FROM json_each(:ids))"
        )
    args = _hit_args(match, snippet)
    args.update(ids=json.dumps(ids), lo=min(ids), hi=max(ids))
    rows = await db.execute_fetchall(
        f"SELECT {_HIT_COLUMNS} FROM {fts} CROSS JOIN memory AS m ON m.id = memory_fts.rowid WHERE {where}",
        args,
    )
    by_id = {int(r[0]): r for r in rows}
    return [_hit(by_id[i], score, snippet.open) for i, score in ranked if i in by_id]


def _string(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _text_match(terms: Iterable[MatchTerm], *, any_term: bool = False) -> str:
    """Like fts5_match, with every term that could match the source column kept out of it."""
    return (" OR " if any_term else " AND ").join(dict.fromkeys(_text_term(t) for t in terms))


def _text_term(term: MatchTerm) -> str:
    phrase = fts5_term(term)
    if term.tag or len(term.words) > 1:  # one column, or more words than a source row holds
        return phrase
    # Folded more eagerly than unicode61 folds (compatibility forms too): a needless restriction
    # only costs time, a missing one would match every entry of a source.
    word = "".join(c for c in unicodedata.normalize("NFKD", term.words[0]) if not unicodedata.combining(c))
    word = word.casefold()
    if any(t.startswith(word) if term.prefix else t == word for t in _SOURCE_TOKENS):
        return f"{_TEXT_COLUMNS} : {phrase}"
    return phrase


def _with_source(match: str, source: str | None) -> str:
    return match if source is None else f"source : {_string(source)} AND {match}"
