"""Memory search on sqlite: FTS5 with bm25 (the `memory_fts` table of schema/002_memory.sql and
004_memory_search.sql). `store.memory` hands searches here when the store is sqlite.

Why the search is several small statements instead of one `ORDER BY bm25(...) LIMIT k`: FTS5's
bm25 costs two things per query that grow with the table. It counts every entry each phrase
matches (a walk of the phrase's whole doclist, before the first row is scored: 45 ms at 100k
entries for a two-word phrase of common words), and it scores every matching row (~2 µs each:
200 ms for a word in every entry). So bm25 is asked only for terms whose doclists are cheap to
walk (`term_costs`), and only over a bounded window of the newest matches (`best_matches`).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from boocode_mcp.store.db import Database, Row
from boocode_mcp.store.memory import (
    LONGEST_INDEXED_PREFIX,
    Found,
    MatchTerm,
    Probe,
    Search,
    Snippet,
    found_from_row,
)

# memory_fts indexes `source` too, for the source filter: each row holds one of these tokens
# (the CHECK on memory.source). A term that could match one is restricted to the text columns;
# the others are not, as a column filter makes FTS5 read every matching entry's positions (2-3x
# the walk for a common word).
_SOURCE_TOKENS = ("note", "subagent")
_TEXT_COLUMNS = "{title tags body}"


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


async def count_probes(db: Database, limits: dict[Probe, int]) -> dict[Probe, int]:
    """How many entries match each probe (a word, or a prefix with `*`), counted up to its limit."""
    probes = list(limits)
    # One statement, one FTS cursor per probe (fewer than the 500 a compound SELECT may hold).
    rows = await db.execute_fetchall(
        " UNION ALL ".join(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ? LIMIT ?))"
            for _ in probes
        ),
        [
            x
            for word, prefix in probes
            for x in (_string(word) + (" *" if prefix else ""), limits[(word, prefix)])
        ],
    )
    return {p: int(r[0]) for p, r in zip(probes, rows, strict=True)}


async def best_matches(db: Database, search: Search, snippet: Snippet) -> list[Found]:
    """`store.memory.best_matches` on FTS5 (see there); rowids follow write order."""
    s = search
    match = _text_match(s.terms, any_term=s.any_term)
    found: list[Found] = []
    if s.scored:
        found = await _found(db, await _scored(db, s, match), match, s.terms, snippet)
    # With every term required, the scored entries are all the window's matches: nothing to add.
    if len(found) < s.limit and (s.any_term or not s.scored):
        found += await _newest(db, match, s.source, [f.id for f in found], s.limit - len(found), snippet)
    return found


async def _scored(db: Database, s: Search, match: str) -> list[tuple[int, float]]:
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


async def _best(db: Database, scores: dict[int, float], limit: int) -> list[tuple[int, float]]:
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
    db: Database,
    scoring: str,
    args: dict[str, object],
    candidates: str,
    driver: str,
    n: int,
) -> list[Row]:
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
    db: Database,
    scoring: str,
    args: dict[str, object],
    candidates: str,
    n: int,
    skip: Sequence[int],
) -> list[Row]:
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


async def _newest(
    db: Database, match: str, source: str | None, skip: Sequence[int], n: int, snippet: Snippet
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
    return [found_from_row(r, None, snippet.open) for r in rows]


async def _found(
    db: Database,
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
    return [found_from_row(by_id[i], score, snippet.open) for i, score in ranked if i in by_id]


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
