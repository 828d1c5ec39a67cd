"""Memory search on PostgreSQL: the `memory.search` tsvector (schema/002_memory.sql) through its GIN
index, ranked with `ts_rank`, snippets from `ts_headline`. `store.memory` hands searches here
when the store is PostgreSQL.

A query's terms become a `tsquery` built here from the words `memory.query` parsed, never from the
user's text: each word a quoted lexeme, a phrase its words joined by `<->`, a prefix `:*`, a
`#tag` restricted to weight B (the tags). Title, tags and body carry weights A, B and D, which
`ts_rank` weighs with the ranking's column weights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from boocode_mcp.store.db import Database, Row
from boocode_mcp.store.memory import Found, MatchTerm, Probe, Search, Snippet, found_from_row


def _lexeme(word: str, suffix: str = "") -> str:
    # The words hold only letters and digits (memory.query); quoting keeps even those inert.
    return "'" + word.lower().replace("'", "''").replace("\\", "\\\\") + "'" + suffix


def tsquery_term(term: MatchTerm, *, weights: str = "") -> str:
    """One term: a word, or its words as a phrase; weights (e.g. "AB") restrict where it matches."""
    restrict = "B" if term.tag else weights
    parts = []
    for i, word in enumerate(term.words):
        star = "*" if term.prefix and i == len(term.words) - 1 else ""
        parts.append(_lexeme(word, f":{star}{restrict}" if star or restrict else ""))
    return "(" + " <-> ".join(parts) + ")" if len(parts) > 1 else parts[0]


def tsquery(terms: Iterable[MatchTerm], *, any_term: bool = False, weights: str = "") -> str:
    """The terms joined by & (or |), each once."""
    rendered = dict.fromkeys(tsquery_term(t, weights=weights) for t in terms)
    return (" | " if any_term else " & ").join(rendered)


async def count_probes(db: Database, limits: dict[Probe, int]) -> dict[Probe, int]:
    """How many entries match each probe (a word, or a prefix), counted up to its limit."""
    probes = list(limits)
    rows = await db.execute_fetchall(
        " UNION ALL ".join(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM memory"
            " WHERE search @@ to_tsquery('simple', boocode_fold(?)) LIMIT ?) AS hits)"
            for _ in probes
        ),
        [
            x
            for word, prefix in probes
            for x in (_lexeme(word, ":*" if prefix else ""), limits[(word, prefix)])
        ],
    )
    return {p: int(r[0]) for p, r in zip(probes, rows, strict=True)}


def _q(param: str) -> str:
    """The tsquery in parameter `param`, its Latin letters folded as the entries' are."""
    return f"to_tsquery('simple', boocode_fold(:{param}))"


def _where(source: str | None) -> str:
    return f"search @@ {_q('match')}" + ("" if source is None else " AND source = :source")


async def best_matches(db: Database, search: Search, snippet: Snippet) -> list[Found]:
    """`store.memory.best_matches` on PostgreSQL (see there); ids follow write order."""
    s = search
    match = tsquery(s.terms, any_term=s.any_term)
    ranked: list[tuple[int, float]] = []
    if s.scored:
        ranked = await _scored(db, s, match)
    found = await _found(db, ranked, match, snippet)
    # With every term required, the scored entries are all the window's matches: nothing to add.
    if len(found) < s.limit and (s.any_term or not s.scored):
        rows = await db.execute_fetchall(
            f"SELECT id FROM memory WHERE {_where(s.source)} AND NOT (id = ANY(:skip))"
            " ORDER BY id DESC LIMIT :n",
            {"match": match, "source": s.source, "skip": [f.id for f in found], "n": s.limit - len(found)},
        )
        found += await _found(db, [(int(r[0]), -1.0) for r in rows], match, snippet)
    return found


async def _scored(db: Database, s: Search, match: str) -> list[tuple[int, float]]:
    scored = tsquery(s.scored, any_term=s.any_term)
    # Candidates: the newest `window` matches of the query (with every term required they all
    # match the scored terms; with any term, those matching a scored one), and, when every term
    # is scored, the newest `heading_window` with the scored terms in their title or tags.
    all_scored = s.any_term or len(s.scored) == len(s.terms)
    candidates = scored if s.any_term else match
    title, tags, body = s.weights
    top = max(s.weights) or 1.0
    args: dict[str, object] = {
        "match": candidates,
        "scored": scored,
        "source": s.source,
        "window": s.window,
        # ts_rank's weights are for D, C, B, A: body, (unused), tags, title.
        "weights": [body / top, 0.0, tags / top, title / top],
        "limit": s.limit,
    }
    heading = ""
    if all_scored and s.heading_window:
        args["heading"] = tsquery(s.scored, any_term=s.any_term, weights="AB")
        args["heading_window"] = s.heading_window
        heading = f"""
            UNION
            (SELECT id FROM memory WHERE {_where(s.source)} AND search @@ {_q("heading")}
             ORDER BY id DESC LIMIT :heading_window)"""
    rows = await db.execute_fetchall(
        f"""
        WITH c AS (
            (SELECT id FROM memory WHERE {_where(s.source)} ORDER BY id DESC LIMIT :window){heading}
        )
        SELECT m.id, ts_rank(CAST(:weights AS real[]), m.search, {_q("scored")}) AS score
        FROM memory m JOIN c ON m.id = c.id
        ORDER BY score DESC, m.created_at DESC, m.id DESC
        LIMIT :limit
        """,
        args,
    )
    return [(int(r[0]), float(r[1])) for r in rows]


def _options(snippet: Snippet, *, whole: bool) -> str:
    marks = f'StartSel="{snippet.open}", StopSel="{snippet.close}"'
    if whole:
        return f"{marks}, HighlightAll=true"
    return (
        f"{marks}, MaxWords={snippet.tokens}, MinWords={max(1, snippet.tokens // 3)}, ShortWord=0, "
        f'MaxFragments=1, FragmentDelimiter="{snippet.ellipsis}"'
    )


async def _found(
    db: Database, ranked: Sequence[tuple[int, float]], match: str, snippet: Snippet
) -> list[Found]:
    """The hits for ranked entries (a score below 0: not scored), in their order, with snippets:
    the body's fragment where it matched, else the title or tags with their matches marked."""
    if not ranked:
        return []
    rows = await db.execute_fetchall(
        f"""
        SELECT id, source, ref, path, title, created_at, hb, ht, hg,
               starts_with(ltrim(body), btrim(plain)), right(rtrim(body), length(btrim(plain))) = btrim(plain)
        FROM (
            SELECT m.*, ts_headline('simple', body, q, :fragment) AS hb,
                   ts_headline('simple', title, q, :whole) AS ht, ts_headline('simple', tags, q, :whole) AS hg
            FROM memory m, {_q("match")} AS q WHERE id = ANY(:ids)
        ) AS x, LATERAL (SELECT replace(replace(hb, :open, ''), :close, '') AS plain) AS p
        """,
        {
            "match": match,
            "ids": [i for i, _ in ranked],
            "fragment": _options(snippet, whole=False),
            "whole": _options(snippet, whole=True),
            "open": snippet.open,
            "close": snippet.close,
        },
    )
    by_id = {int(r[0]): _with_context(r, snippet) for r in rows}
    return [
        found_from_row(by_id[i], score if score >= 0 else None, snippet.open)
        for i, score in ranked
        if i in by_id
    ]


def _with_context(row: Row, snippet: Snippet) -> tuple[Any, ...]:
    """The row with its body fragment as FTS5's snippet() gives it: an ellipsis where the body
    goes on, and the words of one phrase marked as one run (ts_headline marks each word)."""
    mark_gap = re.compile(re.escape(snippet.close) + r"(\s+)" + re.escape(snippet.open))
    body = mark_gap.sub(r"\1", str(row[6] or ""))
    if body:
        body = ("" if row[9] else snippet.ellipsis) + body + ("" if row[10] else snippet.ellipsis)
    return (*(row[i] for i in range(6)), body, row[7], row[8])
